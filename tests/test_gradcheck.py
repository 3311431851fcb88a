"""The gradient checker itself: passes correct gradients, catches wrong ones and says where."""

import numpy as np
import pytest

from fastnet import gradcheck
from fastnet.gradcheck import GradcheckResult, check_function, check_layer, check_loss, check_model
from fastnet.layers import Dense, Layer


def test_relative_error_formula():
    # below 1 the error is absolute, above it relative to the larger magnitude
    assert gradcheck.relative_error(0.5, 0.25) == pytest.approx(0.25)
    assert gradcheck.relative_error(100.0, 99.0) == pytest.approx(0.01)
    assert gradcheck.relative_error(-3.0, 3.0) == pytest.approx(2.0)


def test_check_function_passes_on_correct_gradient(rng):
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal(5)

    def f():
        return np.sum(np.sin(a)) * np.sum(b**2)

    def grads():
        return {"a": np.cos(a) * np.sum(b**2), "b": 2 * b * np.sum(np.sin(a))}

    res = check_function(f, {"a": a, "b": b}, grads)
    assert res.ok, str(res)
    assert res.max_error < 1e-8
    assert res.modes == {"a": "elementwise", "b": "elementwise"}


def test_check_function_restores_inputs(rng):
    a = rng.standard_normal((4, 3))
    before = a.copy()
    check_function(lambda: np.sum(a**3), {"a": a}, {"a": 3 * a**2})
    np.testing.assert_array_equal(a, before)


def test_check_function_reports_worst_element(rng):
    a = rng.standard_normal((3, 5))
    g = 2 * a
    g[2, 1] += 0.5  # the one wrong entry
    res = check_function(lambda: np.sum(a**2), {"a": a}, {"a": g})
    assert not res.ok
    assert res.worst == "a"
    assert res.index == (2, 1)
    assert res.numeric == pytest.approx(2 * a[2, 1], abs=1e-6)
    assert res.analytic == pytest.approx(2 * a[2, 1] + 0.5)
    assert res.max_error == pytest.approx(gradcheck.relative_error(res.numeric, res.analytic))
    with pytest.raises(AssertionError, match=r"FAILED.*\n.*worst: a\[2, 1\]"):
        res.assert_ok()


def test_directional_mode_for_large_tensors(rng):
    a = rng.standard_normal(3000)
    good = check_function(lambda: np.sum(np.tanh(a)), {"a": a}, {"a": 1 - np.tanh(a) ** 2}, directions=5)
    assert good.ok, str(good)
    assert good.modes["a"] == "5 directions"
    g = 1 - np.tanh(a) ** 2
    g[1234] += 1.0  # a single wrong entry among 3000 still shows up along random directions
    bad = check_function(lambda: np.sum(np.tanh(a)), {"a": a}, {"a": g}, directions=5)
    assert not bad.ok
    assert bad.worst == "a" and bad.index.startswith("direction ")
    assert bad.max_error > 1e-4


def test_nan_gradient_fails(rng):
    a = rng.standard_normal(4)
    g = 2 * a
    g[1] = np.nan
    res = check_function(lambda: np.sum(a**2), {"a": a}, {"a": g})
    assert not res.ok
    assert res.index == (1,)


class _WrongDense(Dense):
    """Dense with a deliberately broken weight gradient at one entry."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["weight"][1, 2] *= 1.5
        return dx


def test_check_layer_catches_wrong_param_gradient(rng):
    layer = _WrongDense(4, 3, dtype=np.float64)
    res = check_layer(layer, rng.standard_normal((5, 4)))
    assert not res.ok
    assert res.worst == "weight" and res.index == (1, 2)
    assert res.errors["x"] < 1e-6 and res.errors["bias"] < 1e-6
    assert "weight" in str(res) and "over tolerance" in str(res)


def test_check_layer_passes_dense_and_leaves_it_unchanged(rng):
    layer = Dense(6, 5, dtype=np.float64)
    layer.params["bias"][...] = rng.standard_normal(5)
    before = {k: v.copy() for k, v in layer.params.items()}
    x = rng.standard_normal((3, 6))
    x_before = x.copy()
    res = check_layer(layer, x)
    assert res.ok, str(res)
    assert set(res.errors) == {"x", "weight", "bias"}
    for k, v in before.items():
        np.testing.assert_array_equal(layer.params[k], v)
    np.testing.assert_array_equal(x, x_before)


class _RandomScale(Layer):
    """y = x * s with s drawn from the layer's generator at every forward (a Dropout-like layer)."""

    def __init__(self):
        super().__init__()
        self.rng = np.random.default_rng(7)
        self._s = None

    def forward(self, x, training=None):
        self._s = self.rng.uniform(0.5, 2.0, size=x.shape)
        return x * self._s

    def backward(self, dout):
        return dout * self._s


def test_check_layer_replays_random_generators(rng):
    res = check_layer(_RandomScale(), rng.standard_normal((3, 4)))
    assert res.ok, str(res)


def test_refuses_float32(rng):
    layer = Dense(3, 2)  # float32
    with pytest.raises(ValueError, match=r"check_layer\(Dense\): x is float32; numeric gradients need float64"):
        check_layer(layer, rng.standard_normal((2, 3)).astype(np.float32))
    with pytest.raises(ValueError, match=r"weight is float32"):
        check_layer(layer, rng.standard_normal((2, 3)))
    a = np.ones(3, dtype=np.float32)
    res = check_function(lambda: float(np.sum(a * a)), {"a": a}, {"a": 2 * a}, eps=1e-2, tol=1e-2, allow_float32=True)
    assert res.ok, str(res)


def test_bad_arguments():
    a = np.ones(3)
    with pytest.raises(ValueError, match="eps must be a positive"):
        check_function(lambda: 0.0, {"a": a}, {"a": a}, eps=0)
    with pytest.raises(ValueError, match="directions must be a positive int"):
        check_function(lambda: 0.0, {"a": a}, {"a": a}, directions=0)
    with pytest.raises(ValueError, match=r"no analytic gradient for 'a'"):
        check_function(lambda: 0.0, {"a": a}, {"b": a})
    with pytest.raises(ValueError, match=r"gradient of 'a' has shape \(2,\), expected \(3,\)"):
        check_function(lambda: 0.0, {"a": a}, {"a": np.ones(2)})
    with pytest.raises(ValueError, match=r"must return a scalar, got shape \(3,\)"):
        check_function(lambda: a * 2, {"a": a}, {"a": a})


class _HalfSquare:
    """0.5 * sum((pred - target)^2) with a switchable bug in backward."""

    def __init__(self, bug=False):
        self.bug = bug

    def forward(self, pred, target):
        self._d = pred - target
        return 0.5 * float(np.sum(self._d**2))

    def backward(self):
        return self._d * (1.1 if self.bug else 1.0)


def test_check_loss(rng):
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert check_loss(_HalfSquare(), pred, target).ok
    res = check_loss(_HalfSquare(bug=True), pred, target)
    assert not res.ok and res.worst == "pred"


class _TinyModel:
    """The minimal model interface check_model needs."""

    def __init__(self, layers, loss):
        self.layers, self.loss = layers, loss

    def forward(self, x, training=None):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout


def test_check_model(rng):
    model = _TinyModel([Dense(5, 4, dtype=np.float64), Dense(4, 2, dtype=np.float64)], _HalfSquare())
    x, y = rng.standard_normal((3, 5)), rng.standard_normal((3, 2))
    res = check_model(model, x, y)
    assert res.ok, str(res)
    assert set(res.errors) == {"x", "0.weight", "0.bias", "1.weight", "1.bias"}
    broken = _TinyModel([Dense(5, 4, dtype=np.float64), _WrongDense(4, 3, dtype=np.float64)], _HalfSquare())
    res = check_model(broken, x, rng.standard_normal((3, 3)))
    assert not res.ok
    assert res.worst == "1.weight" and res.index == (1, 2)


def test_check_model_with_random_and_normalising_layers(rng):
    from fastnet.layers import BatchNorm1d, Dropout, Tanh

    model = _TinyModel(
        [
            Dense(5, 6, dtype=np.float64),
            BatchNorm1d(6, dtype=np.float64),
            Tanh(),
            Dropout(0.5),
            Dense(6, 2, dtype=np.float64),
        ],
        _HalfSquare(),
    )
    running = model.layers[1].buffers["running_mean"].copy()
    res = check_model(model, rng.standard_normal((4, 5)), rng.standard_normal((4, 2)))
    assert res.ok, str(res)
    assert {"4.weight", "1.weight", "1.bias"} <= set(res.errors)
    np.testing.assert_array_equal(model.layers[1].buffers["running_mean"], running)


def test_result_is_readable():
    res = GradcheckResult(
        ok=True,
        max_error=1e-9,
        worst="x",
        index=(0, 1),
        numeric=1.0,
        analytic=1.0,
        errors={"x": 1e-9},
        modes={"x": "elementwise"},
    )
    text = str(res)
    assert text.startswith("gradcheck passed") and "x[0, 1]" in text
    assert res.assert_ok() is res
