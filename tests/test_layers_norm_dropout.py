"""BatchNorm1d/2d and Dropout: gradient checks, train/eval behaviour, running statistics, seeding, errors."""

import json

import numpy as np
import pytest
from _fused import FusedRelu

import fastnet
from fastnet import layers as L
from fastnet.gradcheck import check_layer


def randomise_affine(layer, rng):
    layer.params["weight"][...] = rng.uniform(0.5, 1.5, layer.num_features)
    layer.params["bias"][...] = rng.standard_normal(layer.num_features)
    return layer


# ---- BatchNorm ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 1), (3, 5), (7, 3), (4, 2, 3)], ids=str)
def test_batchnorm1d_gradcheck(backend, shape, rng):
    layer = randomise_affine(L.BatchNorm1d(shape[1], dtype=np.float64), rng)
    check_layer(layer, rng.standard_normal(shape) * 2 + 1).assert_ok()


@pytest.mark.parametrize("shape", [(1, 3, 3, 5), (2, 1, 4, 4), (3, 2, 5, 3)], ids=str)
def test_batchnorm2d_gradcheck(backend, shape, rng):
    layer = randomise_affine(L.BatchNorm2d(shape[1], dtype=np.float64), rng)
    check_layer(layer, rng.standard_normal(shape) * 2 + 1).assert_ok()


def test_batchnorm2d_train_statistics_and_running_update_by_hand(backend, rng):
    x = rng.standard_normal((4, 3, 2, 5)) * 3 + 2
    layer = randomise_affine(L.BatchNorm2d(3, momentum=0.2, dtype=np.float64), rng)
    y = layer.forward(x, training=True)
    m = 4 * 2 * 5
    for c in range(3):
        xc = x[:, c]
        mean, var = xc.sum() / m, ((xc - xc.sum() / m) ** 2).sum() / m
        expect = (xc - mean) / np.sqrt(var + 1e-5) * layer.params["weight"][c] + layer.params["bias"][c]
        np.testing.assert_allclose(y[:, c], expect, rtol=1e-12, atol=1e-12)
        # PyTorch: running stats start at (0, 1) and use the unbiased variance
        assert layer.buffers["running_mean"][c] == pytest.approx(0.8 * 0 + 0.2 * mean, rel=1e-12)
        assert layer.buffers["running_var"][c] == pytest.approx(0.8 * 1 + 0.2 * var * m / (m - 1), rel=1e-12)


def test_batchnorm1d_eval_uses_running_stats(backend, rng):
    layer = randomise_affine(L.BatchNorm1d(4, momentum=1.0, dtype=np.float64), rng)
    x_train = rng.standard_normal((6, 4)) * 2 - 1
    layer.forward(x_train, training=True)  # momentum 1: running stats = this batch's (unbiased var)
    np.testing.assert_allclose(layer.buffers["running_mean"], x_train.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["running_var"], x_train.var(axis=0, ddof=1), rtol=1e-12)
    x = rng.standard_normal((3, 4))
    before = layer.state_dict()
    y_eval = layer.eval().forward(x)
    expect = (x - x_train.mean(axis=0)) / np.sqrt(x_train.var(axis=0, ddof=1) + 1e-5) * layer.params[
        "weight"
    ] + layer.params["bias"]
    np.testing.assert_allclose(y_eval, expect, rtol=1e-12)
    for k, v in before.items():  # eval changes no statistics
        np.testing.assert_array_equal(layer.state_dict()[k], v)
    # train mode normalises with the batch instead: a different answer
    y_train = layer.forward(x, training=True)
    np.testing.assert_allclose(y_train.mean(axis=0), layer.params["bias"], atol=1e-12)
    assert not np.allclose(y_train, y_eval)


@pytest.mark.parametrize("kind,shape", [(L.BatchNorm1d, (6, 3)), (L.BatchNorm2d, (3, 2, 4, 5))], ids=str)
def test_batchnorm_fused_relu_gradcheck_and_equals_bn_then_relu(backend, kind, shape, rng):
    """BatchNorm called as a compiled model's fused BatchNorm+ReLU node: a float64 gradient check,
    and the same output, input gradient and parameter gradients as BatchNorm then ReLU."""
    x = rng.standard_normal(shape) * 2 + 1
    fused = FusedRelu(randomise_affine(kind(shape[1], dtype=np.float64), rng))
    check_layer(fused, x).assert_ok()
    plain, relu = kind(shape[1], dtype=np.float64), L.ReLU()
    plain.load_state_dict(fused.layer.state_dict())
    y = fused.forward(x)
    np.testing.assert_allclose(y, relu.forward(plain.forward(x, training=True), training=True), atol=1e-12)
    assert (y == 0).any() and (y > 0).any()
    dy = rng.standard_normal(shape)
    np.testing.assert_allclose(fused.backward(dy), plain.backward(relu.backward(dy)), atol=1e-12)
    for k in ("weight", "bias"):
        np.testing.assert_allclose(fused.grads[k], plain.grads[k], atol=1e-12)
    for k, v in plain.state_dict().items():  # the running statistics moved the same way
        np.testing.assert_allclose(fused.layer.state_dict()[k], v, atol=1e-12)
    np.testing.assert_allclose(fused.forward(x, training=False), np.maximum(plain.forward(x, training=False), 0))


def test_batchnorm_fuses_only_relu():
    layer = L.BatchNorm2d(2)
    assert layer.accepts_activation("relu") and not layer.accepts_activation("sigmoid")
    with pytest.raises(ValueError, match=r"BatchNorm2d: can fuse only \('relu',\), got 'tanh'"):
        layer._forward(np.zeros((2, 2, 3, 3), np.float32), True, activation=("tanh", 0.0))


def test_batchnorm_running_stats_updated_in_place_and_gradcheck_restores_them(rng):
    layer = L.BatchNorm1d(3, dtype=np.float64)
    rm = layer.buffers["running_mean"]
    layer.forward(rng.standard_normal((5, 3)) + 4, training=True)
    assert layer.buffers["running_mean"] is rm and np.all(rm > 0)
    snapshot = layer.state_dict()
    check_layer(layer, rng.standard_normal((5, 3))).assert_ok()
    for k, v in snapshot.items():
        np.testing.assert_array_equal(layer.state_dict()[k], v)


def test_batchnorm_float32(backend, rng):
    layer = L.BatchNorm2d(2)
    y = layer.forward(rng.standard_normal((3, 2, 4, 4)).astype(np.float32), training=True)
    assert y.dtype == np.float32 and layer.buffers["running_var"].dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-3)
    assert layer.backward(np.ones_like(y)).dtype == np.float32


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 3 channels on axis 1, got shape \(2, 4, 5, 5\)"):
        L.BatchNorm2d(3).forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a \(N, C, H, W\) input, got shape \(2, 3\)"):
        L.BatchNorm2d(3).forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected a \(N, C\) or \(N, C, L\) input, got shape \(2,\)"):
        L.BatchNorm1d(3).forward(np.zeros(2, np.float32))
    with pytest.raises(
        ValueError,
        match=r"BatchNorm1d: training needs more than 1 value per channel, "
        r"got input shape \(1, 3\)",
    ):
        L.BatchNorm1d(3).forward(np.zeros((1, 3), np.float32), training=True)
    with pytest.raises(
        ValueError, match=r"BatchNorm1d: expected input dtype float32 \(the layer's dtype\), got float64"
    ):
        L.BatchNorm1d(3).forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"BatchNorm1d: momentum must be a float in \[0, 1\], got 1.5"):
        L.BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match=r"BatchNorm2d: eps must be a positive float, got 0"):
        L.BatchNorm2d(3, eps=0)
    with pytest.raises(ValueError, match=r"BatchNorm1d: num_features must be a positive int, got 0"):
        L.BatchNorm1d(0)
    with pytest.raises(RuntimeError, match=r"BatchNorm1d.backward called before forward"):
        L.BatchNorm1d(3).backward(np.zeros((2, 3), np.float32))


def test_batchnorm_state_config_and_shape():
    layer = L.BatchNorm2d(4, eps=1e-3, momentum=0.05, dtype=np.float64)
    assert set(layer.params) == {"weight", "bias"} and set(layer.buffers) == {"running_mean", "running_var"}
    assert set(layer.state_dict()) == {"weight", "bias", "running_mean", "running_var"}
    cfg = json.loads(json.dumps(layer.get_config()))
    assert L.BatchNorm2d.from_config(cfg).get_config() == cfg
    assert repr(layer) == "BatchNorm2d(num_features=4, eps=0.001, momentum=0.05, dtype='float64')"
    assert layer.output_shape((4, 7, 7)) == (4, 7, 7) and layer.num_params() == 8
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected per-sample shape starting with 4 channels"):
        layer.output_shape((3, 7, 7))


# ---- Dropout ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 5), (3, 7), (2, 3, 5, 3)], ids=str)
def test_dropout_gradcheck(backend, shape, rng):
    check_layer(L.Dropout(0.4), rng.standard_normal(shape)).assert_ok()


def test_dropout_eval_is_identity_and_p0_is_identity(backend, rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_array_equal(L.Dropout(0.5).eval().forward(x), x)
    np.testing.assert_array_equal(L.Dropout(0.5).forward(x, training=False), x)
    zero = L.Dropout(0.0)
    np.testing.assert_array_equal(zero.forward(x, training=True), x)
    np.testing.assert_array_equal(zero.backward(x * 2), x * 2)


def test_dropout_mask_and_scaling(backend, rng):
    layer = L.Dropout(0.25)
    x = np.ones((200, 500))
    y = layer.forward(x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75)  # inverted dropout: survivors scaled
    assert abs(kept.mean() - 0.75) < 0.01  # 1e5 Bernoulli draws: sd 0.0014
    assert abs(y.mean() - 1.0) < 0.015  # expectation preserved
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(dy), np.where(kept, dy / 0.75, 0))


def test_dropout_same_seed_same_mask(backend):
    x = np.ones((8, 16), np.float32)
    fastnet.seed(11)
    a = L.Dropout(0.5)
    m1, m2 = a.forward(x, training=True), a.forward(x, training=True)
    fastnet.seed(11)
    b = L.Dropout(0.5)
    np.testing.assert_array_equal(b.forward(x, training=True), m1)
    np.testing.assert_array_equal(b.forward(x, training=True), m2)
    assert not np.array_equal(m1, m2)  # a fresh mask every step


def test_dropout_freeze_mask(backend):
    layer = L.Dropout(0.5)
    x = np.ones((6, 10))
    first = layer.forward(x, training=True)
    layer.freeze_mask = True
    np.testing.assert_array_equal(layer.forward(x * 3, training=True), first * 3)
    layer.freeze_mask = False
    assert not np.array_equal(layer.forward(x, training=True), first)


def test_dropout_errors_and_config():
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=rf"Dropout: p must be in \[0, 1\), got {bad}"):
            L.Dropout(bad)
    with pytest.raises(ValueError, match=r"Dropout: p must be a float in \[0, 1\), got 'half'"):
        L.Dropout("half")
    with pytest.raises(ValueError, match=r"Dropout: expected float32 or float64 input, got int64"):
        L.Dropout(0.5).forward(np.ones((2, 2), np.int64))
    with pytest.raises(RuntimeError, match=r"Dropout.backward called before forward"):
        L.Dropout(0.5).backward(np.ones((2, 2)))
    layer = L.Dropout(0.3)
    layer.forward(np.ones((2, 3)), training=True)
    with pytest.raises(ValueError, match=r"Dropout.backward: expected dout of shape \(2, 3\), got \(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    assert layer.get_config() == {"p": 0.3} and repr(layer) == "Dropout(p=0.3)"
    assert layer.num_params() == 0 and layer.output_shape((3, 4)) == (3, 4)
