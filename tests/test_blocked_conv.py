"""Register-blocked direct convolution (float32, stride 1): against the im2col reference, the same bits at every
thread count, the dispatch rule, shape errors of the extension, and a float32 Conv2D layer against the float64
reference layer."""

import numpy as np
import pytest
from _conv_checks import (
    assert_fast_matches_reference,
    assert_relu_keeps_nan,
    assert_same_at_every_thread_count,
    close,
    conv_case,
    float32_layer_against_float64,
    record_calls,
)

from fastnet._kernels import config
from fastnet._kernels.fast import blocked
from fastnet._kernels.fast import conv as fast_conv
from fastnet._kernels.fast import winograd as fast_wino
from fastnet._kernels.reference import conv as ref_conv
from fastnet.layers import Conv2D

# (n, c, f, h, w, kh, kw, padding): batch 1, odd and non-square sizes and kernels, padding 0 / 1 / 2 and mixed,
# filter and channel counts that are not multiples of the register block (4), planes narrower than a vector,
# and the layers of LeNet-5, the Keras CNN and ResNet-20 (small batches)
SHAPES = [
    (1, 1, 1, 3, 3, 3, 3, (0, 0)),
    (1, 1, 6, 28, 28, 5, 5, (2, 2)),
    (2, 6, 16, 14, 14, 5, 5, (0, 0)),
    (2, 16, 16, 28, 28, 3, 3, (1, 1)),
    (3, 32, 32, 7, 7, 3, 3, (1, 1)),
    (2, 3, 5, 7, 6, 2, 4, (1, 2)),
    (1, 5, 7, 5, 8, 5, 1, (2, 0)),
    (9, 7, 9, 6, 5, 1, 1, (0, 0)),
    (2, 13, 3, 9, 11, 3, 3, (1, 1)),
]
ACTS = [None, "relu"]


def _case(shape, seed=0):
    return conv_case(*shape[:7], np.float32, seed)


@pytest.fixture
def blocked_calls(monkeypatch):
    """Records the calls that reach the blocked kernels, so a test knows it exercised them."""
    return record_calls(monkeypatch, blocked)


@pytest.fixture
def build(blocked_build):
    """Each micro-kernel build this CPU runs (``conftest.blocked_build``)."""
    return blocked_build


def _calls(out_hw, with_dx=1, without_dx=0):
    """The blocked calls of one forward and of backward passes with and without dx: on a small plane a backward is dx
    alone, by the forward kernel (dW and db come from im2col's GEMM: ``blocked.gemm_weight_gradient``), and one
    without dx makes no blocked call."""
    if blocked.gemm_weight_gradient(*out_hw):
        return ["conv2d_forward"] * (1 + with_dx)
    return ["conv2d_forward"] + ["conv2d_backward"] * (with_dx + without_dx)


def _out_hw(shape):
    n, c, f, h, w, kh, kw, (ph, pw) = shape
    return h + 2 * ph - kh + 1, w + 2 * pw - kw + 1


def test_the_cpu_runs_its_best_build():
    ext = blocked._ext
    assert blocked.isa() == ext.supported_isas()[-1]
    assert ext.supported_isas()[0] == "base"
    with pytest.raises(ValueError, match="not one this CPU runs"):
        ext.use_isa("neon")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", ACTS)
def test_fast_blocked_equals_reference(blocked_calls, build, shape, act):
    x, wt, b, rng = _case(shape, seed=1)
    assert_fast_matches_reference(x, wt, b, shape[7], act, rng)
    assert blocked_calls == _calls(_out_hw(shape), without_dx=1)
    assert blocked.isa() == build


@pytest.fixture(params=["default", "kernels' own dW"])
def small_planes(request, monkeypatch):
    """Each way a small plane's backward runs: as configured (dW from im2col's GEMM) and on the kernels alone."""
    if request.param != "default":
        monkeypatch.setattr(config, "BLOCKED_GEMM_DW_MAX_OUTPUT", None)
    return request.param


def test_relu_keeps_nan_and_masks_like_the_reference(blocked_calls, build, small_planes):
    x, wt, b, rng = _case((2, 3, 4, 6, 5, 3, 3, (1, 1)))
    x[0, 1, 2, 3] = np.nan
    y = assert_relu_keeps_nan(x, wt, b)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, dw, db = fast_conv.conv2d_backward(dy, x, wt, (1, 1), (1, 1), "relu", y)
    np.testing.assert_allclose(db, (dy * (y > 0)).sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)  # 0 at NaN or <= 0
    assert np.isnan(dw).any()  # the NaN input reaches the weight gradient, as in the reference
    assert blocked_calls == _calls((6, 5))


def test_an_inf_gradient_stays_nan_where_relu_masks_it(build, small_planes):
    """ReLU's input gradient is dy * (y > 0), as the reference computes it: inf * 0 is NaN, not a silent 0."""
    x, wt, b, _ = _case((1, 2, 4, 5, 5, 3, 3, (1, 1)))
    y = fast_conv.conv2d_forward(x, wt, b, (1, 1), (1, 1), "relu")
    dy = np.ones_like(y)
    dead = np.argwhere(y <= 0)[0]
    dy[tuple(dead)] = np.inf
    _, _, db = fast_conv.conv2d_backward(dy, x, wt, (1, 1), (1, 1), "relu", y)
    with np.errstate(invalid="ignore"):  # inf * 0 in the reference, on purpose
        _, _, db_ref = ref_conv.conv2d_backward(dy, x, wt, (1, 1), (1, 1), "relu", y)
    np.testing.assert_array_equal(np.isnan(db), np.isnan(db_ref))
    assert np.isnan(db[dead[1]])


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n", [1, 37])  # one task; several tasks with a short last one
def test_blocked_is_the_same_at_every_thread_count(keep_threads, build, act, n):
    x, wt, b, _ = _case((n, 6, 10, 13, 11, 5, 3, (2, 1)), seed=3)
    assert blocked.applies(6, 10, (5, 3), (1, 1), (2, 1), np.float32)
    assert_same_at_every_thread_count(x, wt, b, (2, 1), act)


@pytest.mark.parametrize(
    "c, f, k, s, p, hw, dtype, expected",
    [
        (1, 6, 5, 1, 2, 12, np.float32, True),  # LeNet-5's first layer
        (6, 16, 5, 1, 0, 12, np.float32, True),  # LeNet-5's second layer
        (16, 16, 3, 1, 1, 12, np.float32, True),  # ResNet-20's first stage
        (32, 32, 3, 1, 1, 12, np.float32, True),  # ResNet-20's second stage (C*F = 1024, Winograd's too)
        (32, 64, 3, 1, 0, 12, np.float32, True),  # the Keras CNN's second layer (C*F = 2048, Winograd's too)
        (64, 64, 3, 1, 1, 7, np.float32, True),  # ResNet-20's third stage on 7x7 (Winograd does not take it)
        (64, 64, 3, 1, 0, 12, np.float32, True),  # the same on a 12x12 input that Winograd takes (C*F = 4096)
        (64, 128, 3, 1, 1, 12, np.float32, False),  # C*F above the widest measured: Winograd
        (16, 16, 3, 2, 1, 12, np.float32, False),  # 3x3 stride 2: im2col (fast/strided.py takes 1x1 stride 2)
        (3, 8, 3, 1, 3, 12, np.float32, False),  # padding as large as the kernel: another engine
        (6, 16, 5, 1, 0, 12, np.float64, False),  # float64: another engine
    ],
)
def test_dispatch_rule(blocked_calls, c, f, k, s, p, hw, dtype, expected):
    x, wt, b, _ = conv_case(2, c, f, hw, hw, k, k, dtype)
    y = fast_conv.conv2d_forward(x, wt, b, (s, s), (p, p))
    grads = fast_conv.conv2d_backward(np.ones_like(y), x, wt, (s, s), (p, p))
    assert blocked_calls == (_calls(y.shape[2:]) if expected else [])
    close(y, ref_conv.conv2d_forward(x, wt, b, (s, s), (p, p)), dtype)
    for g, r in zip(grads, ref_conv.conv2d_backward(np.ones_like(y), x, wt, (s, s), (p, p)), strict=True):
        close(g, r, dtype)


def test_blocked_comes_before_winograd(blocked_calls):
    """A 16-channel 3x3 layer that Winograd would also take goes to the blocked kernels."""
    assert fast_wino.applies(16, 16, (3, 3), (1, 1), (12, 12))
    x, wt, b, _ = _case((2, 16, 16, 12, 12, 3, 3, (1, 1)))
    fast_conv.conv2d_forward(x, wt, b, (1, 1), (1, 1))
    assert blocked_calls == ["conv2d_forward"]


def test_switched_off_it_takes_nothing(monkeypatch, blocked_calls):
    monkeypatch.setattr(config, "BLOCKED_MAX_CF", None)
    assert not blocked.applies(1, 6, (5, 5), (1, 1), (2, 2), np.float32)
    x, wt, b, _ = _case((2, 1, 6, 12, 12, 5, 5, (2, 2)))
    fast_conv.conv2d_forward(x, wt, b, (1, 1), (2, 2))
    assert blocked_calls == []


@pytest.mark.parametrize("act", ACTS)
def test_small_planes_take_dw_from_the_gemm_and_match_the_kernels_own(monkeypatch, keep_threads, act):
    """A 7x7 output (ResNet-20's third stage) takes dx from the forward kernel and dW, db from im2col's GEMM: the same
    as the kernels' own backward (BLOCKED_GEMM_DW_MAX_OUTPUT=None) within tolerance, and bit for bit at every
    thread count."""
    x, wt, b, rng = _case((37, 8, 16, 7, 7, 3, 3, (1, 1)), seed=4)
    assert blocked.gemm_weight_gradient(7, 7)
    assert_same_at_every_thread_count(x, wt, b, (1, 1), act)
    y = fast_conv.conv2d_forward(x, wt, b, (1, 1), (1, 1), act)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    split = fast_conv.conv2d_backward(dy, x, wt, (1, 1), (1, 1), act, y)
    monkeypatch.setattr(config, "BLOCKED_GEMM_DW_MAX_OUTPUT", None)
    for got, want in zip(split, fast_conv.conv2d_backward(dy, x, wt, (1, 1), (1, 1), act, y), strict=True):
        close(got, want, np.float32)


def test_the_extension_rejects_mismatched_shapes():
    ext = blocked._ext
    x = np.zeros((2, 3, 8, 8), np.float32)
    y = np.zeros((2, 4, 6, 6), np.float32)
    with pytest.raises(ValueError, match="padding"):
        ext.forward(x, np.zeros((4, 27), np.float32), np.zeros(4, np.float32), 3, 3, 3, 0, False, y)
    with pytest.raises(ValueError, match="shape mismatch"):  # w rows not a multiple of the block
        ext.forward(x, np.zeros((3, 27), np.float32), np.zeros(4, np.float32), 3, 3, 0, 0, False, y)
    with pytest.raises(ValueError, match="shape mismatch"):  # y of the wrong size
        ext.forward(x, np.zeros((4, 27), np.float32), np.zeros(4, np.float32), 3, 3, 1, 1, False, y)
    dw, db = np.zeros((4, 27), np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="dx or w2"):
        ext.backward(y, y, True, x, 3, 3, 0, 0, dw, db, np.zeros((3, 36), np.float32), np.empty_like(x), True, 1 << 20)
    with pytest.raises(ValueError, match="y must have"):
        ext.backward(y, y[:1], True, x, 3, 3, 0, 0, dw, db, np.zeros((4, 36), np.float32), x[:0], False, 1 << 20)


@pytest.mark.parametrize("relu", [False, True])
def test_a_float32_conv2d_layer_through_blocked_matches_the_float64_reference_layer(blocked_calls, relu):
    """The kernels are float32 only, so a float64 gradient check never reaches them (float64 layers take the other
    engines, checked elsewhere): here the float32 layer on the fast backend, plain and as a fused Conv2D+ReLU node,
    against the same layer in float64 on the numpy backend, forward and every gradient."""
    x = np.random.default_rng(6).standard_normal((3, 3, 7, 6))
    y = float32_layer_against_float64(lambda dtype: Conv2D(3, 5, (3, 2), padding=(1, 0), dtype=dtype), x, relu)
    assert blocked_calls == _calls(y.shape[2:])


@pytest.mark.parametrize(
    "flag, expected",
    [
        ("-DBC_PORTABLE_ONLY", 10),  # a non-x86 GCC/Clang: the baseline build only (available, build 0)
        ("-DBC_NO_VECTORS", 0),  # a compiler without vector extensions: no kernels, and it still compiles
    ],
)
def test_the_header_compiles_where_the_builds_are_missing(tmp_path, flag, expected):
    """The fallbacks of _blocked_conv.h for other CPUs and compilers, compiled and run with this machine's C compiler
    (what `pip install` would build there cannot be run here, but it must compile and report no kernels)."""
    import shutil
    import subprocess
    from pathlib import Path

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    header = Path(blocked.__file__).with_name("_blocked_conv.h")
    src = tmp_path / "probe.c"
    src.write_text(f'#include "{header}"\nint main(void) {{ return bc_available() * 10 + bc_isa(); }}\n')
    exe = tmp_path / "probe"
    subprocess.run([cc, "-O1", flag, str(src), "-o", str(exe)], check=True, capture_output=True)
    assert subprocess.run([str(exe)]).returncode == expected
