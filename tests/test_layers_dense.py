"""Dense: gradient checks (linear, every fused activation, no bias), fusion, errors, config."""

import json

import numpy as np
import pytest

import fastnet
from fastnet import layers as L
from fastnet.gradcheck import check_layer

ACTS = [None, "relu", "leaky_relu", "sigmoid", "tanh", "gelu"]


def away_from_zero(rng, shape):
    u = rng.standard_normal(shape)
    return np.sign(u) * (0.1 + np.abs(u))


def make_dense(rng, i, o, **kw):
    layer = L.Dense(i, o, dtype=np.float64, **kw)
    if "bias" in layer.params:
        layer.params["bias"][...] = rng.standard_normal(o) * 0.5  # zeros would hide bias bugs
    return layer


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (1, 5, 3), (4, 7, 2), (3, 2, 9)])
def test_gradcheck(backend, act, n, i, o, rng):
    layer = make_dense(rng, i, o, activation=act, alpha=0.2)
    # ReLU kinks: keep every pre-activation away from 0 by checking that the one at x is not tiny
    x = away_from_zero(rng, (n, i))
    z = x @ layer.params["weight"] + layer.params["bias"]
    if act in ("relu", "leaky_relu") and np.min(np.abs(z)) < 1e-3:
        pytest.skip("pre-activation too close to the ReLU kink for a central difference")
    check_layer(layer, x).assert_ok()


def test_gradcheck_no_bias_large_uses_directions(backend, rng):
    layer = make_dense(rng, 60, 50, bias=False, activation="tanh")
    res = check_layer(layer, rng.standard_normal((3, 60)), directions=8)
    assert res.ok, str(res)
    assert set(res.errors) == {"x", "weight"} and res.modes["weight"] == "8 directions"


@pytest.mark.parametrize(
    "act_layer", [L.ReLU(), L.LeakyReLU(0.3), L.Sigmoid(), L.Tanh(), L.GELU()], ids=lambda a: type(a).__name__
)
def test_fuse_equals_dense_then_activation(backend, act_layer, rng):
    fastnet.seed(3)
    plain = L.Dense(6, 4, dtype=np.float64)
    fastnet.seed(3)
    fused = L.Dense(6, 4, dtype=np.float64)
    assert fused.accepts_activation(act_layer.fusable[0])
    x, dy = rng.standard_normal((5, 6)), rng.standard_normal((5, 4))
    y_ref = act_layer.forward(plain.forward(x, training=True), training=True)
    dx_ref = plain.backward(act_layer.backward(dy))
    # what a compiled model's fused node does: pass the activation to this call only
    y, ctx = fused._forward(x, True, activation=act_layer.fusable)
    dx = fused._backward(ctx, dy, True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    for k in plain.grads:
        np.testing.assert_allclose(fused.grads[k], plain.grads[k], rtol=1e-12, atol=1e-12)
    # fusion is no layer state: the config describes the linear layer and a plain call stays linear
    assert fused.get_config()["activation"] is None and "fused" not in repr(fused)
    np.testing.assert_allclose(fused.forward(x), plain.forward(x), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64(backend, dtype, rng):
    layer = L.Dense(3, 2, activation="sigmoid", dtype=dtype)
    y = layer.forward(rng.standard_normal((4, 3)).astype(dtype), training=True)
    assert y.dtype == dtype and y.shape == (4, 2)
    assert layer.backward(np.ones_like(y)).dtype == dtype
    assert layer.grads["weight"].dtype == dtype


def test_errors(rng):
    layer = L.Dense(4, 3)
    with pytest.raises(ValueError, match=r"Dense: expected input shape \(N, 4\), got \(2, 5\)"):
        layer.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"Dense: expected a 2-d input \(N, 4\), got shape \(2, 2, 4\)"):
        layer.forward(np.zeros((2, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Dense: expected input dtype float32 \(the layer's dtype\), got float64"):
        layer.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"Dense: activation must be None or one of .*got 'softmax'"):
        L.Dense(4, 3, activation="softmax")
    with pytest.raises(ValueError, match=r"Dense: out_features must be a positive int, got 0"):
        L.Dense(4, 0)
    with pytest.raises(ValueError, match=r"Dense: alpha must be a finite float >= 0, got -1.0"):
        L.Dense(4, 3, activation="leaky_relu", alpha=-1.0)
    assert not L.Dense(4, 3, activation="relu").accepts_activation("tanh")  # has its own: nothing to fuse
    assert not L.Dense(4, 3).accepts_activation("softmax")
    with pytest.raises(ValueError, match=r"Dense: expected input shape \(N, 4\), got per-sample shape \(5,\)"):
        layer.output_shape((5,))
    layer.forward(np.zeros((2, 4), np.float32), training=True)
    with pytest.raises(ValueError, match=r"Dense.backward: expected dout of shape \(2, 3\), got \(2, 4\)"):
        layer.backward(np.zeros((2, 4), np.float32))


def test_config_round_trip_and_repr():
    fastnet.seed(0)
    layer = L.Dense(5, 3, bias=False, init="glorot", activation="leaky_relu", alpha=0.05, dtype=np.float64)
    cfg = json.loads(json.dumps(layer.get_config()))
    again = L.Dense.from_config(cfg)
    assert again.get_config() == layer.get_config()
    assert cfg == {
        "in_features": 5,
        "out_features": 3,
        "bias": False,
        "init": "glorot",
        "activation": "leaky_relu",
        "alpha": 0.05,
        "dtype": "float64",
    }
    assert repr(layer).startswith("Dense(in_features=5, out_features=3, bias=False")
    assert layer.output_shape((5,)) == (3,)
    assert layer.num_params() == 15
