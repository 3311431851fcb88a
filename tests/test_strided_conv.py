"""Strided float32 convolutions by stride phases on the blocked kernels (``fast/strided.py``): against the im2col
reference, forward and backward, the same bits at every thread count, the dispatch rule, and a float32 Conv2D layer
against the float64 reference layer."""

import numpy as np
import pytest
from _conv_checks import close, conv_case, float32_layer_against_float64, record_calls

import fastnet
from fastnet._kernels import config
from fastnet._kernels.fast import blocked, strided
from fastnet._kernels.fast import conv as fast_conv
from fastnet._kernels.reference import conv as ref_conv
from fastnet.layers import Conv2D

# (n, c, f, h, w, kh, kw, stride, padding): batch 1, odd and non-square inputs and kernels, stride 2 and 3 and mixed,
# a stride larger than the kernel (phases without a tap are left out), padding 0 / 1 / 2, inputs the last window does
# not reach, and ResNet-20's stride-2 layers (3x3 and the 1x1 shortcuts, small batches)
SHAPES = [
    (1, 1, 1, 5, 5, 3, 3, (2, 2), (0, 0)),
    (2, 16, 32, 28, 28, 3, 3, (2, 2), (1, 1)),
    (2, 16, 32, 28, 28, 1, 1, (2, 2), (0, 0)),
    (3, 32, 64, 14, 14, 1, 1, (2, 2), (0, 0)),
    (1, 3, 5, 11, 9, 5, 3, (2, 3), (2, 1)),
    (2, 4, 6, 10, 9, 2, 2, (3, 3), (0, 0)),
    (2, 5, 7, 9, 8, 3, 3, (2, 1), (1, 0)),
    (1, 2, 3, 6, 7, 4, 4, (2, 2), (1, 2)),
]
ACTS = [None, "relu"]


@pytest.fixture
def strided_calls(monkeypatch):
    """Records the calls that reach the strided engine, so a test knows it exercised it."""
    return record_calls(monkeypatch, strided)


def _case(shape, seed=0):
    x, wt, b, rng = conv_case(*shape[:7], np.float32, seed)
    return x, wt, b, rng, shape[7], shape[8]


def _forward(x, wt, b, stride, padding, act):
    """The engine itself, whatever the dispatch rule (it sends only kernels no larger than the stride here)."""
    kh, kw = wt.shape[2:]
    out_hw = ((x.shape[2] + 2 * padding[0] - kh) // stride[0] + 1, (x.shape[3] + 2 * padding[1] - kw) // stride[1] + 1)
    return strided.conv2d_forward(x, wt, b, stride, padding, out_hw, act == "relu")


def _backward(dy, x, wt, stride, padding, act, y, need_dx=True):
    # the stride-1 backward fast/conv.py hands the engine (small planes split with im2col)
    return strided.conv2d_backward(dy, x, wt, stride, padding, act == "relu", y, need_dx, fast_conv._blocked_backward)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", ACTS)
def test_strided_equals_reference(blocked_build, shape, act):
    x, wt, b, rng, stride, padding = _case(shape, seed=1)
    y = _forward(x, wt, b, stride, padding, act)
    close(y, ref_conv.conv2d_forward(x, wt, b, stride, padding, act), np.float32)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    want = ref_conv.conv2d_backward(dy, x, wt, stride, padding, act, y)
    for got, ref in zip(_backward(dy, x, wt, stride, padding, act, y), want, strict=True):
        close(got, ref, np.float32)
    dx, dw, db = _backward(dy, x, wt, stride, padding, act, y, need_dx=False)
    assert dx is None
    close(dw, want[1], np.float32)
    close(db, want[2], np.float32)


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[5] <= s[7][0] and s[6] <= s[7][1]])
def test_layers_the_rule_sends_here_go_through_conv2d(strided_calls, shape):
    """Kernels no larger than the stride (ResNet-20's 1x1 shortcuts) reach the engine through fast/conv.py."""
    x, wt, b, rng, stride, padding = _case(shape, seed=2)
    y = fast_conv.conv2d_forward(x, wt, b, stride, padding, "relu")
    close(y, ref_conv.conv2d_forward(x, wt, b, stride, padding, "relu"), np.float32)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    want = ref_conv.conv2d_backward(dy, x, wt, stride, padding, "relu", y)
    for got, ref in zip(fast_conv.conv2d_backward(dy, x, wt, stride, padding, "relu", y), want, strict=True):
        close(got, ref, np.float32)
    assert strided_calls == ["conv2d_forward", "conv2d_backward"]


def test_pixels_no_window_reads_get_no_gradient():
    """A 1x1 stride-2 layer reads every other row and column, and the last row of an even-sized 3x3 stride-2 input
    unpadded is read by no window: dx is 0 there, as in the reference."""
    for shape in [(2, 3, 4, 8, 8, 1, 1, (2, 2), (0, 0)), (1, 2, 3, 8, 8, 3, 3, (2, 2), (0, 0))]:
        x, wt, b, _, stride, padding = _case(shape)
        y = _forward(x, wt, b, stride, padding, None)
        dx, _, _ = _backward(np.ones_like(y), x, wt, stride, padding, None, y)
        dx_ref, _, _ = ref_conv.conv2d_backward(np.ones_like(y), x, wt, stride, padding)
        assert np.array_equal(dx == 0, dx_ref == 0) and (dx == 0).any()


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n", [1, 37])  # one task; several tasks with a short last one
def test_strided_is_the_same_at_every_thread_count(keep_threads, act, n):
    x, wt, b, _, stride, padding = _case((n, 6, 10, 13, 11, 3, 3, (2, 2), (1, 1)), seed=3)
    results = []
    for count in (1, 2, 3):
        fastnet.set_num_threads(count)
        y = _forward(x, wt, b, stride, padding, act)
        dy = np.cos(np.arange(y.size, dtype=y.dtype)).reshape(y.shape)
        results.append((y, *_backward(dy, x, wt, stride, padding, act, y)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other, strict=True):
            assert np.array_equal(a, b_)


@pytest.mark.parametrize(
    "c, f, k, s, dtype, expected",
    [
        (16, 32, 1, 2, np.float32, True),  # ResNet-20's stage-2 shortcut: one phase
        (32, 64, 1, 2, np.float32, True),  # its stage-3 shortcut
        (8, 8, 2, 2, np.float32, True),  # a 2x2 stride-2 kernel: four phases of one tap each
        (16, 32, 3, 2, np.float32, False),  # ResNet-20's stage-2 3x3: zero taps, no gain measured (config.py)
        (80, 64, 1, 2, np.float32, False),  # 80 x 64 channels: wider than the blocked kernels take
        (16, 32, 1, 1, np.float32, False),  # stride 1: the blocked kernels directly
        (16, 32, 1, 2, np.float64, False),  # float64: im2col
    ],
)
def test_dispatch_rule(c, f, k, s, dtype, expected):
    assert strided.applies(c, f, (k, k), (s, s), dtype) == expected
    use = fast_conv.engine(c, f, (k, k), (s, s), (k // 2, k // 2), dtype, (7, 7))
    assert (use == "strided") == expected


def test_switched_off_with_the_blocked_kernels(monkeypatch, strided_calls):
    monkeypatch.setattr(config, "BLOCKED_MAX_CF", None)
    assert not strided.applies(16, 32, (1, 1), (2, 2), np.float32)
    x, wt, b, _, stride, padding = _case(SHAPES[2])
    fast_conv.conv2d_forward(x, wt, b, stride, padding)
    assert strided_calls == []


@pytest.mark.parametrize("relu", [False, True])
def test_a_strided_float32_conv2d_layer_matches_the_float64_reference_layer(monkeypatch, relu):
    """The float32 stride-2 layer on the fast backend (through the stride phases) against the same layer in float64
    on the numpy backend, forward and every gradient."""
    calls = record_calls(monkeypatch, blocked)
    x = np.random.default_rng(6).standard_normal((3, 4, 9, 8))
    y = float32_layer_against_float64(lambda dtype: Conv2D(4, 6, 2, stride=2, padding=1, dtype=dtype), x, relu)
    small = blocked.gemm_weight_gradient(*y.shape[2:])  # then dx by the forward kernel, dW by GEMM
    assert calls == ["conv2d_forward", "conv2d_forward" if small else "conv2d_backward"]
