"""Training through a fused Conv2D + MaxPool2D (``conv2d_maxpool_train_forward`` / ``conv2d_maxpool_backward``):
the pooled output, each window's winner and the gradients against the reference on every engine (on integer data,
where every engine is exact and ties are common), bit for bit against the unfused fast kernels, on every blocked build
and thread count, with NaN; what the layer keeps for backward; the errors."""

import numpy as np
import pytest
from _conv_checks import POOL_CASES, close, pool_case

import fastnet
from fastnet import layers as L
from fastnet._kernels.fast import conv as fast_conv
from fastnet._kernels.fast import conv_pool as fast_cp
from fastnet._kernels.fast import pool as fast_pool
from fastnet._kernels.reference import conv_pool as ref_cp

POOL = ((2, 2), (2, 2), (0, 0))
ACTS = [None, "relu"]
IDS = [f"{c[0]}-{c[1:8]}-{np.dtype(c[-1]).name}" for c in POOL_CASES]


def _integer_case(case, seed=0):
    """Small integers: every engine's sums are exact, so the engines agree bit for bit and windows tie often."""
    x, wt, b, stride, padding = pool_case(case, seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, x.shape).astype(x.dtype)
    wt = rng.integers(-1, 2, wt.shape).astype(x.dtype)
    b = rng.integers(-1, 2, b.shape).astype(x.dtype)
    return x, wt, b, stride, padding


def _unfused(x, wt, b, stride, padding, act, dp):
    """The fast kernels unfused: the convolution (with its ReLU), the pool, the pool's and the conv's backward."""
    y = fast_conv.conv2d_forward(x, wt, b, stride, padding, act)
    p, argmax = fast_pool.maxpool2d_forward(y, *POOL)
    dy = fast_pool.maxpool2d_backward(dp, argmax, y.shape)
    grads = fast_conv.conv2d_backward(dy, x, wt, stride, padding, act, y if act else None)
    return p, grads


def _grad(shape, dtype, seed=7):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("case", POOL_CASES, ids=IDS)
@pytest.mark.parametrize("act", ACTS)
def test_training_kernels_equal_the_reference_on_exact_data(case, act):
    x, wt, b, stride, padding = _integer_case(case, seed=1)
    p, win = fast_cp.conv2d_maxpool_train_forward(x, wt, b, stride, padding, act)
    p_ref, win_ref = ref_cp.conv2d_maxpool_train_forward(x, wt, b, stride, padding, act)
    assert win.dtype == win_ref.dtype == np.uint8 and win.shape == p.shape
    assert np.array_equal(p, p_ref)
    assert np.array_equal(win, win_ref)
    assert np.array_equal(p, ref_cp.conv2d_maxpool_forward(x, wt, b, stride, padding, act))
    dp = _grad(p.shape, x.dtype)
    want = ref_cp.conv2d_maxpool_backward(dp, win_ref, p_ref, x, wt, stride, padding, act)
    for got, ref in zip(fast_cp.conv2d_maxpool_backward(dp, win, p, x, wt, stride, padding, act), want, strict=True):
        close(got, ref, x.dtype)
    dx, dw, db = fast_cp.conv2d_maxpool_backward(dp, win, p, x, wt, stride, padding, act, need_dx=False)
    assert dx is None
    close(dw, want[1], x.dtype)
    close(db, want[2], x.dtype)


def test_winners_tie_often_on_the_exact_data():
    """The exact-data test above is a test of the tie rule only if windows do tie."""
    x, wt, b, stride, padding = _integer_case(POOL_CASES[1], seed=1)
    y = fast_conv.conv2d_forward(x, wt, b, stride, padding)
    n, f, oh, ow = y.shape
    four = y[:, :, : oh // 2 * 2, : ow // 2 * 2].reshape(n, f, oh // 2, 2, ow // 2, 2)
    top = four.max(axis=(3, 5), keepdims=True)
    assert ((four == top).sum(axis=(3, 5)) > 1).sum() >= 20  # of 1200 windows (41 with this seed), before any ReLU


def test_reference_winners_point_where_the_pool_argmax_does():
    from fastnet._kernels.reference import conv as ref_conv
    from fastnet._kernels.reference import pool as ref_pool

    x, wt, b, stride, padding = _integer_case(POOL_CASES[2])
    y = ref_conv.conv2d_forward(x, wt, b, stride, padding, "relu")
    _, argmax = ref_pool.maxpool2d_forward(y, *POOL)
    _, win = ref_cp.conv2d_maxpool_train_forward(x, wt, b, stride, padding, "relu")
    i, j = np.meshgrid(np.arange(win.shape[2]), np.arange(win.shape[3]), indexing="ij")
    assert np.array_equal((2 * i + win // 2) * y.shape[3] + 2 * j + win % 2, argmax)


@pytest.mark.parametrize("case", POOL_CASES, ids=IDS)
@pytest.mark.parametrize("act", ACTS)
def test_training_kernels_equal_the_unfused_kernels_bit_for_bit(case, act):
    x, wt, b, stride, padding = pool_case(case, seed=2)
    p, win = fast_cp.conv2d_maxpool_train_forward(x, wt, b, stride, padding, act)
    dp = _grad(p.shape, x.dtype)
    p_unfused, want = _unfused(x, wt, b, stride, padding, act, dp)
    assert np.array_equal(p, p_unfused)
    for got, ref in zip(fast_cp.conv2d_maxpool_backward(dp, win, p, x, wt, stride, padding, act), want, strict=True):
        assert np.array_equal(got, ref)


def test_every_blocked_build_trains_as_unfused(blocked_build):
    for case in POOL_CASES[:4]:
        for data in (pool_case, _integer_case):
            x, wt, b, stride, padding = data(case, seed=3)
            for act in ACTS:
                p, win = fast_cp.conv2d_maxpool_train_forward(x, wt, b, stride, padding, act)
                dp = _grad(p.shape, x.dtype)
                p_unfused, want = _unfused(x, wt, b, stride, padding, act, dp)
                assert np.array_equal(p, p_unfused)
                got = fast_cp.conv2d_maxpool_backward(dp, win, p, x, wt, stride, padding, act)
                assert all(np.array_equal(g, r) for g, r in zip(got, want, strict=True))


@pytest.mark.parametrize("case", [POOL_CASES[1], POOL_CASES[7]], ids=["blocked", "direct"])
def test_a_nan_wins_its_window_in_training(case):
    x, wt, b, stride, padding = _integer_case(case, seed=4)
    x[0, 0, 3, 4] = np.nan
    x[-1, -1, 5, 1] = np.nan
    for act in ACTS:
        p, win = fast_cp.conv2d_maxpool_train_forward(x, wt, b, stride, padding, act)
        p_ref, win_ref = ref_cp.conv2d_maxpool_train_forward(x, wt, b, stride, padding, act)
        assert np.isnan(p_ref).any()
        assert np.array_equal(p, p_ref, equal_nan=True)
        assert np.array_equal(win, win_ref)
        dp = _grad(p.shape, x.dtype)
        _, want = _unfused(x, wt, b, stride, padding, act, dp)
        got = fast_cp.conv2d_maxpool_backward(dp, win, p, x, wt, stride, padding, act)
        assert all(np.array_equal(g, r, equal_nan=True) for g, r in zip(got, want, strict=True))


@pytest.mark.parametrize("case", [POOL_CASES[1], POOL_CASES[4]], ids=["blocked", "winograd"])
def test_training_kernels_give_the_same_bits_at_every_thread_count(case):
    x, wt, b, stride, padding = pool_case(case, seed=5)
    x = np.concatenate([x] * 5)  # enough samples for several tasks
    before = fastnet.get_num_threads()
    results = []
    try:
        for count in (1, 2, 3):
            fastnet.set_num_threads(count)
            p, win = fast_cp.conv2d_maxpool_train_forward(x, wt, b, stride, padding, "relu")
            dp = np.cos(np.arange(p.size, dtype=p.dtype)).reshape(p.shape)
            results.append((p, win, *fast_cp.conv2d_maxpool_backward(dp, win, p, x, wt, stride, padding, "relu")))
    finally:
        fastnet.set_num_threads(before)
    for other in results[1:]:
        assert all(np.array_equal(a, b_) for a, b_ in zip(results[0], other, strict=True))


@pytest.mark.parametrize("kernels", [fast_cp, ref_cp], ids=["fast", "reference"])
def test_training_kernel_errors(kernels):
    x, wt, b, stride, padding = pool_case(POOL_CASES[1])
    with pytest.raises(ValueError, match="relu"):
        kernels.conv2d_maxpool_train_forward(x, wt, b, stride, padding, "tanh")
    p, win = kernels.conv2d_maxpool_train_forward(x, wt, b, stride, padding, "relu")
    with pytest.raises(ValueError, match="relu"):
        kernels.conv2d_maxpool_backward(p, win, p, x, wt, stride, padding, "tanh")
    with pytest.raises(ValueError, match=r"pooled shape \(3, 16, 5, 5\)"):
        kernels.conv2d_maxpool_backward(p[:, :, :4], win, p, x, wt, stride, padding, "relu")
    with pytest.raises(ValueError, match=r"pooled shape"):
        kernels.conv2d_maxpool_backward(p, win[:2], p, x, wt, stride, padding, "relu")
    with pytest.raises(ValueError, match=r"positions 0..3, got 4"):
        kernels.conv2d_maxpool_backward(p, np.full_like(win, 4), p, x, wt, stride, padding, "relu")


def test_a_fused_layer_keeps_the_pooled_output_and_its_winners_only():
    conv, pool = L.Conv2D(6, 16, 5), L.MaxPool2D(2)
    x = np.random.default_rng(6).standard_normal((4, 6, 14, 14)).astype(np.float32)
    out, ctx = conv._forward(x, True, ("relu", 0.0), pool)
    full = 4 * 16 * 10 * 10 * 4  # bytes of the unpooled float32 output
    kept = [a for a in ctx if isinstance(a, np.ndarray) and a is not x]
    assert out.shape == (4, 16, 5, 5)
    assert sum(a.nbytes for a in kept) == full // 4 + full // 16  # the pooled output, one byte per window
    dx = conv._backward(ctx, np.ones_like(out), True)
    assert dx.shape == x.shape
    with pytest.raises(ValueError, match=r"MaxPool2D.*backward: expected dout of shape \(4, 16, 5, 5\)"):
        conv._backward(ctx, np.ones((4, 16, 10, 10), np.float32), True)
