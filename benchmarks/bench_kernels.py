"""Each hot kernel, compiled ("fast") and NumPy reference side by side in one group, float32, at issue 3's shapes.

Both implementations come from ``fastnet._kernels.registry.kernel(name, backend)``. A fast kernel that is not
compiled yet (the registry falls back to the reference) is skipped with that reason rather than timed twice.
``extra_info`` holds GFLOP/s for the GEMM-bound kernels and GB/s of input for the memory-bound ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from common import run_pedantic

pytestmark = pytest.mark.kernels

F32 = np.float32


def _rand(rng, *shape):
    return rng.standard_normal(shape, dtype=F32)


def _conv_flops(n, c, f, kh, kw, oh, ow):
    return 2.0 * n * f * c * kh * kw * oh * ow  # multiply-adds of one GEMM


# Each case: kernels it needs, and a builder (kernel getter, rng) -> (callable, work dict for extra_info).
def dense_case(act=None):
    names = ["dense_act_forward", "dense_act_backward"] if act else ["dense_forward", "dense_backward"]

    def build(k, rng):
        x, w, b, dy = _rand(rng, 128, 784), _rand(rng, 784, 512) * F32(0.05), _rand(rng, 512), _rand(rng, 128, 512)
        if act:
            fwd, bwd = k("dense_act_forward"), k("dense_act_backward")

            def run():
                y, z = fwd(x, w, b, act, 0.0)
                return bwd(dy, x, w, y, z, act, 0.0)
        else:
            fwd, bwd = k("dense_forward"), k("dense_backward")

            def run():
                fwd(x, w, b)
                return bwd(dy, x, w)

        return run, {"gflop": 3 * 2.0 * 128 * 784 * 512 / 1e9}

    return names, build


def dense_backward_case(n, i, o):
    """The Dense backward alone (dW = x^T dy, dx = dy W^T): the Keras CNN's 9216->128 layer has its weight gradient's
    long dimension inside the transposed x, where a strided row block once cost a copy (``fast/gemm.py``)."""

    def build(k, rng):
        x, w, dy = _rand(rng, n, i), _rand(rng, i, o) * F32(0.05), _rand(rng, n, o)
        bwd = k("dense_backward")
        return (lambda: bwd(dy, x, w)), {"gflop": 2 * 2.0 * n * i * o / 1e9}

    return ["dense_backward"], build


def conv_case(n, c, f, h, kh, pad, which, stride=1):
    names = {"fwd": ["conv2d_forward"], "bwd": ["conv2d_backward"], "fwd+bwd": ["conv2d_forward", "conv2d_backward"]}[
        which
    ]

    def build(k, rng):
        x = _rand(rng, n, c, h, h)
        w = _rand(rng, f, c, kh, kh) * F32(1.0 / np.sqrt(c * kh * kh))
        b = _rand(rng, f)
        oh = (h + 2 * pad - kh) // stride + 1
        dy = _rand(rng, n, f, oh, oh)
        fwd, bwd = k("conv2d_forward"), k("conv2d_backward")
        s, p = (stride, stride), (pad, pad)
        runs = {
            "fwd": lambda: fwd(x, w, b, s, p),
            "bwd": lambda: bwd(dy, x, w, s, p),
            "fwd+bwd": lambda: (fwd(x, w, b, s, p), bwd(dy, x, w, s, p)),
        }
        gemms = {"fwd": 1, "bwd": 2, "fwd+bwd": 3}[which]
        return runs[which], {"gflop": gemms * _conv_flops(n, c, f, kh, kh, oh, oh) / 1e9}

    return names, build


def pool_case(n, c, h):
    def build(k, rng):
        x = _rand(rng, n, c, h, h)
        dy = _rand(rng, n, c, h // 2, h // 2)
        fwd, bwd = k("maxpool2d_forward"), k("maxpool2d_backward")

        def run():
            _, argmax = fwd(x, (2, 2), (2, 2), (0, 0))
            return bwd(dy, argmax, x.shape)

        return run, {"gbyte_in": x.nbytes / 1e9}

    return ["maxpool2d_forward", "maxpool2d_backward"], build


def softmax_ce_case(n, classes):
    def build(k, rng):
        logits = _rand(rng, n, classes)
        target = rng.integers(0, classes, n).astype(np.int64)
        fn = k("softmax_cross_entropy")
        return (lambda: fn(logits, target, 0.0)), {"gbyte_in": logits.nbytes / 1e9}

    return ["softmax_cross_entropy"], build


def adam_case(size):
    def build(k, rng):
        p, g = _rand(rng, size), _rand(rng, size) * F32(1e-3)
        m, v = np.zeros_like(p), np.zeros_like(p)
        fn = k("adam_update_")
        return (lambda: fn(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 10, 0.0, False)), {"gbyte_in": 4 * p.nbytes / 1e9}

    return ["adam_update_"], build


CASES = {
    "dense 128x784->512 fwd+bwd": dense_case(),
    "dense+relu fused 128x784->512 fwd+bwd": dense_case("relu"),
    "dense 128x9216->128 bwd": dense_backward_case(128, 9216, 128),
    "conv 1->6 5x5 pad2 128x1x28x28 fwd": conv_case(128, 1, 6, 28, 5, 2, "fwd"),
    "conv 1->6 5x5 pad2 128x1x28x28 bwd": conv_case(128, 1, 6, 28, 5, 2, "bwd"),
    "conv 1->6 5x5 pad2 128x1x28x28 fwd+bwd": conv_case(128, 1, 6, 28, 5, 2, "fwd+bwd"),
    "conv 32->64 3x3 128x32x26x26 fwd": conv_case(128, 32, 64, 26, 3, 0, "fwd"),
    "conv 32->64 3x3 128x32x26x26 bwd": conv_case(128, 32, 64, 26, 3, 0, "bwd"),
    "conv 32->64 3x3 128x32x26x26 fwd+bwd": conv_case(128, 32, 64, 26, 3, 0, "fwd+bwd"),
    "conv 16->32 3x3 s2 pad1 128x16x28x28 fwd+bwd": conv_case(128, 16, 32, 28, 3, 1, "fwd+bwd", stride=2),
    "conv 16->32 1x1 s2 128x16x28x28 fwd+bwd": conv_case(128, 16, 32, 28, 1, 0, "fwd+bwd", stride=2),
    "maxpool 2x2 128x6x28x28 fwd+bwd": pool_case(128, 6, 28),
    "maxpool 2x2 128x64x24x24 fwd+bwd": pool_case(128, 64, 24),
    "softmax-CE 128x10": softmax_ce_case(128, 10),
    "softmax-CE 1024x1000": softmax_ce_case(1024, 1000),
    "adam 1M params": adam_case(1_000_000),
}


def _kernel_getter(backend, names):
    """``registry.kernel`` for ``backend``, or a skip saying why this case cannot be timed there."""
    from fastnet._kernels import registry

    try:
        available = set(registry.kernel_names())
    except Exception as exc:  # a reference module failing to import is worth seeing, not a crash of the suite
        pytest.skip(f"reference kernels failed to load: {exc!r}")
    missing = [n for n in names if n not in available]
    if missing:
        pytest.skip(f"kernel(s) {missing} not in the registry yet")
    if backend == "fast":
        try:
            compiled = set(registry.fast_kernel_names())
        except Exception as exc:
            pytest.skip(f"fast backend failed to load: {exc!r}")
        missing = [n for n in names if n not in compiled]
        if missing:
            pytest.skip(f"fast kernel(s) {missing} not compiled yet (the registry would fall back to NumPy)")
    return lambda name: registry.kernel(name, backend)


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel(benchmark, case, backend, threads, rounds):
    names, build = CASES[case]
    k = _kernel_getter(backend, names)
    benchmark.group = f"kernel {case}"
    benchmark.extra_info.update(variant=backend, threads=threads, dtype="float32")
    fn, work = build(k, np.random.default_rng(0))
    fn()  # first call compiles (Numba) outside any timing
    median = run_pedantic(benchmark, fn, rounds)
    if "gflop" in work:
        benchmark.extra_info["gflops"] = round(work["gflop"] / median, 2)
    if "gbyte_in" in work:
        benchmark.extra_info["gbytes_per_s"] = round(work["gbyte_in"] / median, 2)


# Three conv engines of the fast backend side by side on the stride-1 3x3 layers of ResNet-20 (28x28 input) and
# M4: im2col (``fast/conv.py``), Winograd F(2x2, 3x3) (``fast/winograd.py``) and the register-blocked direct kernels
# (``fast/blocked.py``), forced through ``config.WINOGRAD_MIN_CHANNELS`` and ``config.BLOCKED_MAX_CF`` whatever the
# dispatch rule says. The measurements behind the rule are in config.py.
CONV_ENGINE_SHAPES = {
    "16->16 3x3 pad1 128x16x28x28": (128, 16, 16, 28, 1),
    "32->32 3x3 pad1 128x32x14x14": (128, 32, 32, 14, 1),
    "64->64 3x3 pad1 128x64x7x7": (128, 64, 64, 7, 1),
    "32->64 3x3 128x32x26x26": (128, 32, 64, 26, 0),
}


@pytest.mark.parametrize("engine", ["im2col", "winograd", "blocked"])
@pytest.mark.parametrize("shape", list(CONV_ENGINE_SHAPES))
def test_conv_engine(benchmark, monkeypatch, shape, engine, threads, rounds):
    from fastnet._kernels import config

    n, c, f, h, pad = CONV_ENGINE_SHAPES[shape]
    monkeypatch.setattr(config, "WINOGRAD_MIN_CHANNELS", 1 if engine == "winograd" else None)
    monkeypatch.setattr(config, "WINOGRAD_MIN_OUTPUT", 1)
    monkeypatch.setattr(config, "BLOCKED_MAX_CF", c * f if engine == "blocked" else None)
    benchmark.group = f"conv engine {shape} fwd+bwd"
    benchmark.extra_info.update(variant=engine, threads=threads, dtype="float32")
    fn, work = conv_case(n, c, f, h, 3, pad, "fwd+bwd")[1](
        _kernel_getter("fast", ["conv2d_forward"]), np.random.default_rng(0)
    )
    fn()  # first call compiles (Numba) outside any timing
    median = run_pedantic(benchmark, fn, rounds)
    benchmark.extra_info["gflops"] = round(work["gflop"] / median, 2)


# ResNet-20's 1x1 stride-2 shortcuts on im2col and by stride phases on the blocked kernels (``fast/strided.py``),
# switched by ``config.STRIDED_PHASES``. The measurements behind it are in config.py.
STRIDED_SHAPES = {
    "16->32 1x1 s2 128x16x28x28": (128, 16, 32, 28, 1, 0),
    "32->64 1x1 s2 128x32x14x14": (128, 32, 64, 14, 1, 0),
}


@pytest.mark.parametrize("engine", ["im2col", "strided"])
@pytest.mark.parametrize("shape", list(STRIDED_SHAPES))
def test_strided_engine(benchmark, monkeypatch, shape, engine, threads, rounds):
    from fastnet._kernels import config

    n, c, f, h, k, pad = STRIDED_SHAPES[shape]
    monkeypatch.setattr(config, "STRIDED_PHASES", engine == "strided")
    benchmark.group = f"conv engine {shape} fwd+bwd"
    benchmark.extra_info.update(variant=engine, threads=threads, dtype="float32")
    fn, work = conv_case(n, c, f, h, k, pad, "fwd+bwd", stride=2)[1](
        _kernel_getter("fast", ["conv2d_forward"]), np.random.default_rng(0)
    )
    fn()  # first call compiles (Numba) outside any timing
    median = run_pedantic(benchmark, fn, rounds)
    benchmark.extra_info["gflops"] = round(work["gflop"] / median, 2)


# The machine's float32 GEMM rate in the same run, the yardstick of issue 8's target 3 (a convolution at 70% of it):
# a square product through fastnet's own GEMM (``_kernels/fast/gemm.py``: single-threaded BLAS calls, one output
# block per thread), at the run's thread count. report.py divides every conv benchmark's GFLOP/s by it.
@pytest.mark.parametrize("size", [1024])
def test_gemm_rate(benchmark, size, threads, rounds):
    from fastnet._kernels.fast import gemm

    rng = np.random.default_rng(0)
    a, b = _rand(rng, size, size), _rand(rng, size, size)
    out = np.empty((size, size), dtype=F32)
    benchmark.group = f"gemm {size}^3 float32"
    benchmark.extra_info.update(variant="fast", threads=threads, dtype="float32")
    gemm.matmul(a, b, out)
    median = run_pedantic(benchmark, lambda: gemm.matmul(a, b, out), rounds)
    benchmark.extra_info["gflops"] = round(2.0 * size**3 / 1e9 / median, 2)
