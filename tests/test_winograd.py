"""Winograd F(2x2, 3x3): the NumPy twin against the im2col reference, the fast path against both,
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
from fastnet._kernels import config, workspace
from fastnet._kernels.fast import conv as fast_conv
from fastnet._kernels.fast import winograd as fast_wino
from fastnet._kernels.reference import conv as ref_conv
from fastnet._kernels.reference import winograd as ref_wino
from fastnet.gradcheck import check_layer
from fastnet.layers import Conv2D

# (n, c, f, h, w, padding): batch 1, odd sizes (tiles overhanging the bottom/right edge), C != F,
# padding 0, 1, 2 and mixed, few and 16/32/64 channels
SHAPES = [
    (1, 1, 1, 3, 3, (0, 0)),
    (1, 3, 5, 7, 9, (1, 1)),
    (2, 4, 3, 6, 5, (0, 0)),
    (3, 2, 6, 5, 8, (2, 2)),
    (2, 5, 2, 4, 7, (1, 2)),
    (1, 16, 16, 9, 11, (1, 1)),
    (3, 32, 16, 7, 6, (0, 1)),
    (2, 16, 64, 5, 5, (2, 0)),
    (2, 64, 32, 4, 9, (1, 1)),
]
ACTS = [None, "relu"]


def _case(shape, dtype, seed=0):
    return conv_case(*shape[:5], 3, 3, dtype, seed)


@pytest.fixture(autouse=True)
def _no_blocked(monkeypatch):
    """float32 layers with few channels go to the blocked kernels first (tests/test_blocked_conv.py); these tests
    are about Winograd's rule and kernels."""
    monkeypatch.setattr(config, "BLOCKED_MAX_CF", None)


@pytest.fixture
def everywhere(monkeypatch):
    """Every stride-1 3x3 convolution goes through Winograd, however few channels or outputs."""
    monkeypatch.setattr(config, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(config, "WINOGRAD_MIN_OUTPUT", 1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", ACTS)
def test_numpy_winograd_equals_reference_conv(shape, act):
    x, wt, b, rng = _case(shape, np.float64)
    p = shape[5]
    y = ref_wino.conv2d_forward(x, wt, b, (1, 1), p, act)
    y_ref = ref_conv.conv2d_forward(x, wt, b, (1, 1), p, act)
    close(y, y_ref, np.float64)
    dy = rng.standard_normal(y.shape)
    got = ref_wino.conv2d_backward(dy, x, wt, (1, 1), p, act, y)
    want = ref_conv.conv2d_backward(dy, x, wt, (1, 1), p, act, y_ref)
    for g, r in zip(got, want, strict=True):
        close(g, r, np.float64)
    dx, dw, db = ref_wino.conv2d_backward(dy, x, wt, (1, 1), p, act, y, need_dx=False)
    assert dx is None
    close(dw, want[1], np.float64)
    close(db, want[2], np.float64)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_winograd_equals_references(everywhere, shape, act, dtype):
    x, wt, b, rng = _case(shape, dtype, seed=1)
    p = shape[5]
    y = assert_fast_matches_reference(x, wt, b, p, act, rng)
    if dtype == np.float64:  # the twin of the same algorithm: the same tiles, to rounding
        close(y, ref_wino.conv2d_forward(x, wt, b, (1, 1), p, act), dtype)


def test_relu_keeps_nan_and_masks_like_the_reference(everywhere):
    x, wt, b, _ = _case((2, 3, 4, 6, 5, (1, 1)), np.float32)
    x[0, 1, 2, 3] = np.nan
    assert_relu_keeps_nan(x, wt, b)


@pytest.mark.parametrize("chunk_bytes", [1, 1 << 14, 1 << 30])  # one sample per pass .. the whole task in one
def test_passes_and_workspace_limit_do_not_change_the_result(monkeypatch, chunk_bytes):
    shape = (11, 16, 24, 9, 10, (1, 1))
    x, wt, b, rng = _case(shape, np.float64, seed=2)
    dy = rng.standard_normal((11, 24, 9, 10))
    monkeypatch.setattr(config, "WINOGRAD_CHUNK_BYTES", chunk_bytes)
    y = fast_conv.conv2d_forward(x, wt, b, (1, 1), (1, 1))
    close(y, ref_conv.conv2d_forward(x, wt, b, (1, 1), (1, 1)), np.float64)
    for g, r in zip(
        fast_conv.conv2d_backward(dy, x, wt, (1, 1), (1, 1)),
        ref_conv.conv2d_backward(dy, x, wt, (1, 1), (1, 1)),
        strict=True,
    ):
        close(g, r, np.float64)
    limit = workspace.get_workspace_limit()
    try:
        workspace.set_workspace_limit(1)  # below one sample: passes of one sample each
        close(fast_conv.conv2d_forward(x, wt, b, (1, 1), (1, 1)), y, np.float64)
    finally:
        workspace.set_workspace_limit(limit)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n", [1, 37])  # one task; several tasks with a short last one
def test_winograd_is_the_same_at_every_thread_count(keep_threads, monkeypatch, act, n):
    monkeypatch.setattr(config, "WINOGRAD_CHUNK_BYTES", 3 * 16 * 40 * 30 * 4)  # 3 samples a pass
    x, wt, b, _ = _case((n, 16, 24, 11, 9, (1, 1)), np.float32, seed=3)
    assert fast_wino.applies(16, 24, (3, 3), (1, 1), (11, 9))
    assert_same_at_every_thread_count(x, wt, b, (1, 1), act)


@pytest.mark.parametrize(
    "c, f, h, k, s, expected",
    [
        (16, 16, 10, 3, 1, True),  # a ResNet-style 3x3 stride-1 layer
        (32, 64, 26, 3, 1, True),  # M4's second convolution (padding 0 below)
        (16, 16, 10, 3, 2, False),  # stride 2
        (16, 16, 10, 5, 1, False),  # 5x5
        (1, 32, 28, 3, 1, False),  # M4's first layer: one input channel, measured slower
        (64, 64, 7, 3, 1, False),  # 7x7 outputs: tiles overhang a third, measured no faster
    ],
)
def test_dispatch_takes_winograd_only_where_it_wins(monkeypatch, c, f, h, k, s, expected):
    calls = record_calls(monkeypatch, fast_wino)
    p = 0 if h == 26 else k // 2
    x, wt, b, _ = _case((2, c, f, h, h, (p, p)), np.float32)
    wt = np.ascontiguousarray(np.resize(wt, (f, c, k, k)))
    y = fast_conv.conv2d_forward(x, wt, b, (s, s), (p, p))
    grads = fast_conv.conv2d_backward(np.ones_like(y), x, wt, (s, s), (p, p))
    assert calls == (["conv2d_forward", "conv2d_backward"] if expected else [])
    close(y, ref_conv.conv2d_forward(x, wt, b, (s, s), (p, p)), np.float32)
    for g, r in zip(grads, ref_conv.conv2d_backward(np.ones_like(y), x, wt, (s, s), (p, p)), strict=True):
        close(g, r, np.float32)


@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_layer_gradcheck_through_winograd(monkeypatch, relu):
    calls = []
    real = fast_wino.conv2d_backward
    monkeypatch.setattr(fast_wino, "conv2d_backward", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(config, "WINOGRAD_MIN_OUTPUT", 1)
    fastnet.seed(0)
    with fastnet.use_backend("fast"):
        layer = Conv2D(16, 16, 3, padding=1, dtype=np.float64)
        x = np.random.default_rng(6).standard_normal((2, 16, 5, 3))
        if relu:  # the fused node of a compiled model: Conv2D called with its ReLU
            layer = FusedRelu(layer)
        result = check_layer(layer, x)
    result.assert_ok()
    assert result.max_error < 1e-6
    assert calls
