"""Activation layers: float64 gradient checks on both backends, kernel values, errors, config."""

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import norm

from fastnet import layers as L
from fastnet._kernels import kernel
from fastnet.gradcheck import check_layer

SHAPES = [(1, 1), (1, 7), (3, 5), (2, 3, 4), (2, 3, 5, 3)]


def away_from_zero(rng, shape):
    """Random values with |x| >= 0.1, so ReLU-type kinks are never within eps of a point."""
    u = rng.standard_normal(shape)
    return np.sign(u) * (0.1 + np.abs(u))


ACTIVATIONS = [L.ReLU, lambda: L.LeakyReLU(0.2), L.Sigmoid, L.Tanh, L.GELU, L.Softmax]
IDS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax"]


@pytest.mark.parametrize("make", ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gradcheck(backend, make, shape, rng):
    check_layer(make(), away_from_zero(rng, shape)).assert_ok()


@pytest.mark.parametrize("make", ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_and_backward_shape(backend, make, dtype, rng):
    layer = make()
    x = rng.standard_normal((4, 6)).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype and y.shape == x.shape
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == dtype and dx.shape == x.shape


def test_reference_values_against_independent_formulas(rng):
    x = rng.standard_normal((5, 7)) * 3
    np.testing.assert_allclose(kernel("relu_forward", "numpy")(x), np.where(x > 0, x, 0))
    np.testing.assert_allclose(kernel("leaky_relu_forward", "numpy")(x, 0.2), np.where(x > 0, x, 0.2 * x))
    np.testing.assert_allclose(kernel("sigmoid_forward", "numpy")(x), expit(x), rtol=1e-14)
    np.testing.assert_allclose(kernel("gelu_forward", "numpy")(x), x * norm.cdf(x), rtol=1e-12, atol=1e-15)
    y = kernel("softmax_forward", "numpy")(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(y, np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True), rtol=1e-13)


def test_stable_for_extreme_inputs(backend):
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = L.Sigmoid().forward(x)
        p = L.Softmax().forward(x)
    np.testing.assert_allclose(s, [[0, expit(-50.0), 0.5, 1, 1]], atol=1e-7)
    assert np.all(np.isfinite(p)) and p[0, -1] == pytest.approx(1.0)


def test_relu_gradient_at_zero_is_zero(backend):
    layer = L.ReLU()
    layer.forward(np.array([[-1.0, 0.0, 2.0]]), training=True)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


def test_keeps_only_what_backward_needs(rng):
    x = rng.standard_normal((2, 3))
    relu, gelu = L.ReLU(), L.GELU()
    y = relu.forward(x, training=True)
    assert relu._ctx is y  # the output, not the input
    gelu.forward(x, training=True)
    assert gelu._ctx is x or np.shares_memory(gelu._ctx, x)
    fresh = L.Tanh()
    fresh.forward(x, training=False)
    assert fresh._ctx is None  # eval keeps nothing


def test_errors(rng):
    layer = L.ReLU()
    with pytest.raises(ValueError, match=r"ReLU: expected a numpy array, got list"):
        layer.forward([1.0, 2.0])
    with pytest.raises(ValueError, match=r"ReLU: expected float32 or float64 input, got int64"):
        layer.forward(np.arange(4).reshape(2, 2))
    with pytest.raises(ValueError, match=r"Sigmoid: got an empty batch, shape \(0, 3\)"):
        L.Sigmoid().forward(np.zeros((0, 3)))
    with pytest.raises(RuntimeError, match=r"Tanh.backward called before forward"):
        L.Tanh().backward(np.ones((2, 2)))
    layer.forward(rng.standard_normal((2, 3)), training=True)
    with pytest.raises(ValueError, match=r"ReLU.backward: expected dout of shape \(2, 3\), got \(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"LeakyReLU: alpha must be a finite float >= 0, got -0.1"):
        L.LeakyReLU(-0.1)
    with pytest.raises(ValueError, match=r"LeakyReLU: alpha must be a float >= 0, got 'x'"):
        L.LeakyReLU("x")


def test_config_repr_and_fusable():
    leaky = L.LeakyReLU(0.3)
    assert leaky.get_config() == {"alpha": 0.3}
    assert repr(leaky) == "LeakyReLU(alpha=0.3)"
    assert type(leaky).from_config(leaky.get_config()).alpha == 0.3
    assert repr(L.GELU()) == "GELU()" and L.GELU().get_config() == {}
    assert L.ReLU().fusable == ("relu", 0.0) and leaky.fusable == ("leaky_relu", 0.3)
    assert L.Softmax().fusable is None
    assert L.Tanh().output_shape((3, 4)) == (3, 4) and L.Tanh().num_params() == 0
