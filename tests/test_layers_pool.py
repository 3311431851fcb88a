"""Pooling layers and kernels: reference vs naive loops, ties, gradients, errors, dtypes."""

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fastnet._kernels import kernel
from fastnet._kernels.reference import pool as ref
from fastnet.gradcheck import check_layer
from fastnet.layers import AvgPool2D, GlobalAvgPool2D, MaxPool2D

SETTINGS = settings(max_examples=25, derandomize=True, deadline=None)


# ---- the obvious loop implementations -------------------------------------------------------
def out_hw(h, w, k, s, p):
    return (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1


def naive_maxpool(x, k, s, p):
    """Max over the real elements of each window; strict `>` keeps the first maximum."""
    n, c, h, w = x.shape
    oh, ow = out_hw(h, w, k, s, p)
    y, arg = np.zeros((n, c, oh, ow)), np.zeros((n, c, oh, ow), np.int64)
    for i in range(n):
        for ch in range(c):
            for a in range(oh):
                for b in range(ow):
                    best, where = -np.inf, -1
                    for u in range(k[0]):
                        for v in range(k[1]):
                            r, q = a * s[0] - p[0] + u, b * s[1] - p[1] + v
                            if 0 <= r < h and 0 <= q < w and (where < 0 or x[i, ch, r, q] > best):
                                best, where = x[i, ch, r, q], r * w + q
                    y[i, ch, a, b], arg[i, ch, a, b] = best, where
    return y, arg


def naive_maxpool_backward(dy, arg, x_shape):
    dx = np.zeros(x_shape)
    n, c, h, w = x_shape
    for i, ch, a, b in np.ndindex(*dy.shape):
        r, q = divmod(int(arg[i, ch, a, b]), w)
        dx[i, ch, r, q] += dy[i, ch, a, b]
    return dx


def naive_avgpool(x, k, s, p):
    n, c, h, w = x.shape
    oh, ow = out_hw(h, w, k, s, p)
    y = np.zeros((n, c, oh, ow))
    for i, ch, a, b in np.ndindex(n, c, oh, ow):
        for u in range(k[0]):
            for v in range(k[1]):
                r, q = a * s[0] - p[0] + u, b * s[1] - p[1] + v
                if 0 <= r < h and 0 <= q < w:
                    y[i, ch, a, b] += x[i, ch, r, q] / (k[0] * k[1])
    return y


def naive_avgpool_backward(dy, x_shape, k, s, p):
    n, c, h, w = x_shape
    dx = np.zeros(x_shape)
    for i, ch, a, b in np.ndindex(*dy.shape):
        for u in range(k[0]):
            for v in range(k[1]):
                r, q = a * s[0] - p[0] + u, b * s[1] - p[1] + v
                if 0 <= r < h and 0 <= q < w:
                    dx[i, ch, r, q] += dy[i, ch, a, b] / (k[0] * k[1])
    return dx


@st.composite
def pool_cases(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, min(2, k[0] // 2))), draw(st.integers(0, min(2, k[1] // 2))))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    assume(h + 2 * p[0] >= k[0] and w + 2 * p[1] >= k[1])
    # integers in a small range: many ties, which the first-maximum rule must settle
    ties = draw(st.booleans())
    return (n, c, h, w), k, s, p, ties


def _input(shape, ties, seed=0):
    r = np.random.default_rng(seed)
    return r.integers(-2, 3, shape).astype(np.float64) if ties else r.standard_normal(shape)


EXPLICIT = [  # x shape, kernel, stride, padding
    ((1, 1, 5, 5), (3, 2), (2, 2), (1, 1)),
    ((2, 3, 7, 6), (1, 5), (1, 2), (0, 2)),
    ((3, 2, 6, 9), (3, 3), (3, 1), (1, 0)),
    ((1, 2, 4, 4), (2, 2), (2, 2), (0, 0)),
    ((2, 1, 5, 7), (2, 3), (1, 1), (1, 1)),  # overlapping windows
]


# ---- (1) kernels vs loops --------------------------------------------------------------------
@SETTINGS
@given(pool_cases())
def test_reference_pooling_matches_loops(case):
    xs, k, s, p, ties = case
    x = _input(xs, ties)
    y, arg = ref.maxpool2d_forward(x, k, s, p)
    want_y, want_arg = naive_maxpool(x, k, s, p)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(arg, want_arg)
    assert arg.dtype == np.int64
    dy = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_allclose(
        ref.maxpool2d_backward(dy, arg, xs), naive_maxpool_backward(dy, arg, xs), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(ref.avgpool2d_forward(x, k, s, p), naive_avgpool(x, k, s, p), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        ref.avgpool2d_backward(dy, xs, k, s, p), naive_avgpool_backward(dy, xs, k, s, p), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("xs, k, s, p", EXPLICIT)
@pytest.mark.parametrize("ties", [False, True])
def test_kernels_match_loops_on_explicit_cases(backend, xs, k, s, p, ties):
    x = _input(xs, ties, seed=2)
    y, arg = kernel("maxpool2d_forward")(x, k, s, p)
    want_y, want_arg = naive_maxpool(x, k, s, p)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(arg, want_arg)
    dy = np.random.default_rng(3).standard_normal(y.shape)
    np.testing.assert_allclose(
        kernel("maxpool2d_backward")(dy, arg, xs), naive_maxpool_backward(dy, arg, xs), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        kernel("avgpool2d_forward")(x, k, s, p), naive_avgpool(x, k, s, p), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        kernel("avgpool2d_backward")(dy, xs, k, s, p), naive_avgpool_backward(dy, xs, k, s, p), rtol=1e-12, atol=1e-14
    )


def test_global_avgpool_kernels(backend):
    x = np.random.default_rng(4).standard_normal((2, 3, 5, 4))
    y = kernel("global_avgpool2d_forward")(x)
    np.testing.assert_allclose(y, [[x[i, c].sum() / 20 for c in range(3)] for i in range(2)], rtol=1e-12)
    dy = np.random.default_rng(5).standard_normal((2, 3))
    dx = kernel("global_avgpool2d_backward")(dy, x.shape)
    assert dx.shape == x.shape and dx.flags.c_contiguous
    np.testing.assert_allclose(dx, np.repeat(dy / 20, 20).reshape(x.shape), rtol=1e-12)


# ---- ties and padding: the rules stated in docs/KERNELS.md ----------------------------------
def test_all_zero_input_gives_gradient_to_first_element_of_each_window_only(backend):
    x = np.zeros((1, 1, 4, 4))
    y, arg = kernel("maxpool2d_forward")(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(arg[0, 0], [[0, 2], [8, 10]])
    dx = kernel("maxpool2d_backward")(np.ones_like(y), arg, x.shape)
    want = np.zeros((4, 4))
    want[::2, ::2] = 1
    np.testing.assert_array_equal(dx[0, 0], want)  # one element per window, never all four


def test_overlapping_windows_add_their_gradients(backend):
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0  # the centre is the max of all four 2x2 windows
    y, arg = kernel("maxpool2d_forward")(x, (2, 2), (1, 1), (0, 0))
    np.testing.assert_array_equal(arg, np.full((1, 1, 2, 2), 4))
    dx = kernel("maxpool2d_backward")(np.full_like(y, 1.5), arg, x.shape)
    assert dx[0, 0, 1, 1] == 6.0 and dx.sum() == 6.0


def test_padding_never_wins_even_against_minus_inf(backend):
    x = np.full((1, 1, 3, 3), -np.inf)
    y, arg = kernel("maxpool2d_forward")(x, (3, 3), (2, 2), (1, 1))
    assert np.all(y == -np.inf)
    # windows start at rows/cols -1 and 1: their first real elements are (0,0), (0,1), (1,0), (1,1)
    np.testing.assert_array_equal(arg[0, 0], [[0, 1], [3, 4]])


def test_nan_propagates_and_points_at_the_first_nan(backend):
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = x[0, 0, 1, 1] = np.nan
    y, arg = kernel("maxpool2d_forward")(x, (2, 2), (2, 2), (0, 0))
    assert np.isnan(y[0, 0, 0, 0]) and arg[0, 0, 0, 0] == 4
    np.testing.assert_array_equal(y[0, 0].ravel()[1:], [7, 13, 15])


def test_avgpool_counts_padding_as_zero(backend):
    x = np.ones((1, 1, 2, 2))
    y = kernel("avgpool2d_forward")(x, (2, 2), (2, 2), (1, 1))
    np.testing.assert_allclose(y[0, 0], np.full((2, 2), 0.25))


# ---- (2) gradient checks -----------------------------------------------------------------------
def _distinct(shape, seed):
    """Values 0.1 apart in random order: no ties, and no max changes under a 1e-6 step."""
    r = np.random.default_rng(seed)
    return (r.permutation(int(np.prod(shape))) * 0.1 - 1.0).reshape(shape)


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize(
    "xs, args",
    [
        ((1, 2, 5, 4), dict(kernel_size=(3, 2), stride=2, padding=1)),
        ((2, 3, 6, 7), dict(kernel_size=(1, 5), stride=(1, 2), padding=(0, 2))),
        ((3, 1, 5, 5), dict(kernel_size=2, stride=1)),  # overlapping windows
        ((2, 2, 4, 6), dict(kernel_size=2)),  # stride defaults to the kernel
    ],
)
def test_pool_gradcheck(backend, cls, xs, args):
    result = check_layer(cls(**args), _distinct(xs, seed=6))
    result.assert_ok()
    assert result.max_error < 1e-6


@pytest.mark.parametrize("xs", [(1, 1, 1, 1), (2, 3, 5, 4)])
def test_global_avgpool_gradcheck(backend, xs):
    result = check_layer(GlobalAvgPool2D(), np.random.default_rng(7).standard_normal(xs))
    result.assert_ok()
    assert result.max_error < 1e-6


# ---- (3) errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_pool_argument_errors(cls):
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"{name}: padding \(2, 1\) must be at most half the kernel size \(3, 3\)"):
        cls(3, padding=(2, 1))
    with pytest.raises(ValueError, match=rf"{name}: padding \(1, 1\) must be at most half the kernel size \(1, 1\)"):
        cls(1, padding=1)
    with pytest.raises(ValueError, match=rf"{name}: kernel_size must be >= 1, got 0"):
        cls(0)
    with pytest.raises(ValueError, match=rf"{name}: stride must be >= 1, got \(1, 0\)"):
        cls(2, stride=(1, 0))
    with pytest.raises(ValueError, match=rf"{name}: padding must be >= 0, got -1"):
        cls(2, padding=-1)


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_pool_input_errors(cls):
    name = cls.__name__
    layer = cls((4, 2), padding=(1, 0))
    with pytest.raises(
        ValueError,
        match=rf"{name}: kernel \(4, 2\) is larger than the padded input \(3, 5\) "
        rf"\(input shape \(2, 3, 1, 5\), padding \(1, 0\)\)",
    ):
        layer.forward(np.zeros((2, 3, 1, 5), np.float32))
    with pytest.raises(ValueError, match=rf"{name}: kernel \(4, 2\) is larger than the padded input"):
        layer.output_shape((3, 1, 5))
    with pytest.raises(ValueError, match=rf"{name}: expected a 4-d input \(N, \?, \?, \?\), got shape \(3, 8, 8\)"):
        layer.forward(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=rf"{name}: expected float32 or float64 input, got int64"):
        layer.forward(np.zeros((1, 1, 8, 8), np.int64))
    with pytest.raises(RuntimeError, match=rf"{name}.backward called before forward"):
        layer.backward(np.zeros((1, 1, 2, 4), np.float32))
    layer.forward(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(
        ValueError, match=rf"{name}.backward: expected dout of shape \(1, 1, 2, 4\), got \(1, 1, 4, 4\)"
    ):
        layer.backward(np.zeros((1, 1, 4, 4), np.float32))


def test_global_avgpool_errors():
    layer = GlobalAvgPool2D()
    with pytest.raises(
        ValueError, match=r"GlobalAvgPool2D: expected a 4-d input \(N, \?, \?, \?\), got shape \(2, 3\)"
    ):
        layer.forward(np.zeros((2, 3), np.float32))
    layer.forward(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(
        ValueError, match=r"GlobalAvgPool2D.backward: expected dout of shape \(2, 3\), got \(2, 3, 1, 1\)"
    ):
        layer.backward(np.zeros((2, 3, 1, 1), np.float32))
    with pytest.raises(ValueError, match=r"GlobalAvgPool2D: expected a sample shape \(C, H, W\), got \(3,\)"):
        layer.output_shape((3,))


# ---- (4) dtype, shapes, state, config -----------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "layer", [MaxPool2D(3, stride=2, padding=1), AvgPool2D((2, 3), stride=(1, 2)), GlobalAvgPool2D()], ids=repr
)
def test_layers_preserve_dtype_and_shapes(backend, layer, dtype):
    x = np.random.default_rng(8).standard_normal((2, 3, 7, 8)).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype and y.flags.c_contiguous
    assert y.shape == (2, *layer.output_shape((3, 7, 8)))
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == dtype and dx.shape == x.shape
    assert layer.params == {} and layer.num_params() == 0


def test_layer_outputs_match_loops():
    x = _input((2, 3, 7, 8), ties=True, seed=9)
    np.testing.assert_array_equal(
        MaxPool2D(3, stride=2, padding=1).forward(x), naive_maxpool(x, (3, 3), (2, 2), (1, 1))[0]
    )
    np.testing.assert_allclose(
        AvgPool2D((2, 3), stride=(1, 2)).forward(x), naive_avgpool(x, (2, 3), (1, 2), (0, 0)), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(GlobalAvgPool2D().forward(x), x.mean(axis=(2, 3)), rtol=1e-12)


def test_maxpool_keeps_indices_not_input_and_nothing_in_eval():
    layer = MaxPool2D(2)
    x = np.zeros((1, 1, 4, 4), np.float32)
    layer.forward(x)
    argmax, x_shape = layer._ctx  # the per-call context: indices and a shape, not the input
    assert argmax.shape == (1, 1, 2, 2) and x_shape == x.shape
    eval_layer = MaxPool2D(2).eval()
    eval_layer.forward(x)
    with pytest.raises(RuntimeError, match="before forward"):
        eval_layer.backward(np.zeros((1, 1, 2, 2), np.float32))


def test_pool_config_repr_and_default_stride():
    layer = MaxPool2D(2)
    assert layer.stride == (2, 2)
    assert layer.get_config() == {"kernel_size": 2, "stride": 2, "padding": 0}
    assert repr(layer) == "MaxPool2D(kernel_size=2, stride=2, padding=0)"
    odd = AvgPool2D((3, 2), stride=(1, 2), padding=(1, 0))
    config = json.loads(json.dumps(odd.get_config()))
    again = AvgPool2D.from_config(config)
    assert (again.kernel_size, again.stride, again.padding) == ((3, 2), (1, 2), (1, 0))
    assert GlobalAvgPool2D().get_config() == {} and repr(GlobalAvgPool2D()) == "GlobalAvgPool2D()"
    assert GlobalAvgPool2D().output_shape((5, 7, 7)) == (5,)
    assert MaxPool2D(2).output_shape((4, None, 7)) == (4, None, 3)
