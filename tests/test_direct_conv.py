"""Direct convolution (stride 1, a short im2col inner dimension C*KH*KW): the fast path against the im2col reference,
the same bits at every thread count, the dispatch rule, and a gradient check through it."""

import numpy as np
import pytest
from _conv_checks import (
    assert_fast_matches_reference,
    assert_relu_keeps_nan,
    assert_same_at_every_thread_count,
    close,
    conv_case,
    record_calls,
)
from _fused import FusedRelu  # a Conv2D called as a compiled model's fused Conv2D+ReLU node

import fastnet
from fastnet._kernels import config
from fastnet._kernels.fast import conv as fast_conv
from fastnet._kernels.fast import direct as fast_direct
from fastnet._kernels.fast import winograd as fast_wino
from fastnet._kernels.reference import conv as ref_conv
from fastnet.gradcheck import check_layer
from fastnet.layers import Conv2D

# (n, c, f, h, w, kh, kw, padding): batch 1, odd and non-square sizes and kernels, padding 0 / 1 / 2
# and mixed, 1-3 input channels, the first layers of LeNet-5, the Keras CNN and ResNet-20
SHAPES = [
    (1, 1, 1, 3, 3, 3, 3, (0, 0)),
    (1, 1, 6, 28, 28, 5, 5, (2, 2)),
    (2, 1, 32, 28, 28, 3, 3, (0, 0)),
    (3, 1, 16, 9, 11, 3, 3, (1, 1)),
    (2, 3, 5, 7, 6, 2, 4, (1, 2)),
    (1, 2, 3, 5, 8, 5, 1, (2, 0)),
    (9, 1, 4, 6, 5, 1, 1, (0, 0)),
]
ACTS = [None, "relu"]


@pytest.fixture(autouse=True)
def _no_blocked(monkeypatch):
    """float32 layers go to the blocked kernels first (tests/test_blocked_conv.py); these tests are about the
    Numba passes, which still run float64 (and float32 where the blocked kernels are switched off)."""
    monkeypatch.setattr(config, "BLOCKED_MAX_CF", None)


def _case(shape, dtype, seed=0):
    return conv_case(*shape[:7], dtype, seed)


@pytest.fixture
def direct_calls(monkeypatch):
    """Records the calls that reach the direct kernels, so a test knows it exercised them."""
    return record_calls(monkeypatch, fast_direct)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_direct_equals_reference(direct_calls, shape, act, dtype):
    x, wt, b, rng = _case(shape, dtype, seed=1)
    assert_fast_matches_reference(x, wt, b, shape[7], act, rng)
    assert direct_calls == ["conv2d_forward", "conv2d_backward", "conv2d_backward"]


def test_relu_keeps_nan_and_masks_like_the_reference(direct_calls):
    x, wt, b, rng = _case((2, 1, 4, 6, 5, 3, 3, (1, 1)), np.float32)
    x[0, 0, 2, 3] = np.nan
    y = assert_relu_keeps_nan(x, wt, b)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, _, db = fast_conv.conv2d_backward(dy, x, wt, (1, 1), (1, 1), "relu", y)
    np.testing.assert_allclose(db, (dy * (y > 0)).sum(axis=(0, 2, 3)), rtol=1e-5)  # 0 where y is NaN or <= 0


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n", [1, 37])  # one task; several tasks with a short last one
def test_direct_is_the_same_at_every_thread_count(keep_threads, act, n):
    x, wt, b, _ = _case((n, 1, 8, 13, 11, 5, 3, (2, 1)), np.float32, seed=3)
    assert fast_direct.applies(1, (5, 3), (1, 1))
    assert_same_at_every_thread_count(x, wt, b, (2, 1), act)


@pytest.mark.parametrize(
    "c, f, k, s, expected",
    [
        (1, 6, 5, 1, True),  # LeNet-5's first layer (K = 25)
        (1, 32, 3, 1, True),  # the Keras CNN's first layer (K = 9)
        (3, 16, 3, 1, True),  # an RGB first layer (K = 27)
        (1, 16, 3, 2, False),  # stride 2: im2col
        (6, 16, 5, 1, False),  # LeNet-5's second layer (K = 150): im2col
        (4, 16, 3, 1, False),  # K = 36
    ],
)
def test_dispatch_takes_direct_only_for_a_short_k_and_stride_1(direct_calls, c, f, k, s, expected):
    x, wt, b, _ = _case((2, c, f, 12, 12, k, k, (1, 1)), np.float32)
    y = fast_conv.conv2d_forward(x, wt, b, (s, s), (1, 1))
    grads = fast_conv.conv2d_backward(np.ones_like(y), x, wt, (s, s), (1, 1))
    assert direct_calls == (["conv2d_forward", "conv2d_backward"] if expected else [])
    close(y, ref_conv.conv2d_forward(x, wt, b, (s, s), (1, 1)), np.float32)
    for g, r in zip(grads, ref_conv.conv2d_backward(np.ones_like(y), x, wt, (s, s), (1, 1)), strict=True):
        close(g, r, np.float32)


def test_direct_comes_before_winograd(direct_calls, monkeypatch):
    """A one-channel 3x3 layer Winograd would also take (its limits lowered) goes to the direct kernel."""
    monkeypatch.setattr(config, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(config, "WINOGRAD_MIN_OUTPUT", 1)
    assert fast_wino.applies(1, 8, (3, 3), (1, 1), (10, 10))
    x, wt, b, _ = _case((2, 1, 8, 10, 10, 3, 3, (1, 1)), np.float32)
    fast_conv.conv2d_forward(x, wt, b, (1, 1), (1, 1))
    assert direct_calls == ["conv2d_forward"]


@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_layer_gradcheck_through_direct(direct_calls, relu):
    fastnet.seed(0)
    with fastnet.use_backend("fast"):
        layer = Conv2D(2, 3, (3, 2), padding=(1, 0), dtype=np.float64)
        x = np.random.default_rng(6).standard_normal((2, 2, 5, 4))
        if relu:  # the fused node of a compiled model: Conv2D called with its ReLU
            layer = FusedRelu(layer)
        result = check_layer(layer, x)
    result.assert_ok()
    assert result.max_error < 1e-6
    assert "conv2d_backward" in direct_calls
