"""Losses: values against formulas written here, float64 gradient checks of every loss and
reduction, integer vs one-hot targets, label smoothing, stability, errors, config."""

import json

import numpy as np
import pytest

from fastnet import losses
from fastnet._kernels import kernel
from fastnet.gradcheck import check_loss

REDUCTIONS = ("mean", "sum", "batchmean")
SHAPES = [(1, 3), (4, 5), (7, 2), (3, 11)]


def _onehot(ids, c, dtype=np.float64):
    out = np.zeros((len(ids), c), dtype=dtype)
    out[np.arange(len(ids)), ids] = 1
    return out


def _log_softmax(x):
    # written out independently of the kernel: log(exp(x_j) / sum_k exp(x_k))
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


# ---- values against explicit formulas ------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_value_and_grad(backend, rng, reduction):
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss = losses.MSE(reduction=reduction)
    div = {"mean": 12, "sum": 1, "batchmean": 4}[reduction]
    assert loss.forward(pred, target) == pytest.approx(np.sum((pred - target) ** 2) / div, rel=1e-12)
    np.testing.assert_allclose(loss.backward(), 2 * (pred - target) / div, rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softmax_ce_value(backend, rng, reduction):
    logits, ids = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    loss = losses.SoftmaxCrossEntropy(reduction=reduction)
    total = -_log_softmax(logits)[np.arange(5), ids].sum()
    div = 1 if reduction == "sum" else 5  # one loss per sample: mean == batchmean
    assert loss.forward(logits, ids) == pytest.approx(total / div, rel=1e-12)
    p = np.exp(_log_softmax(logits))
    np.testing.assert_allclose(loss.backward(), (p - _onehot(ids, 4)) / div, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_value(backend, rng, from_logits, reduction):
    x = rng.standard_normal((3, 4))
    p = 1 / (1 + np.exp(-x))
    t = rng.random((3, 4))
    loss = losses.BinaryCrossEntropy(from_logits=from_logits, reduction=reduction)
    total = -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p))
    div = {"mean": 12, "sum": 1, "batchmean": 3}[reduction]
    assert loss.forward(x if from_logits else p, t) == pytest.approx(total / div, rel=1e-10)


def test_quadratic_loss_is_the_course_labs(backend, rng):
    # The lab: loss = sum((x - onehot)^2) / N / 2, backward = (x - onehot) / N, and its dense
    # layer divides by N again: lab_lr=True folds that second 1/N into backward.
    x, ids = rng.random((6, 4)), rng.integers(0, 4, 6)
    y = _onehot(ids, 4)
    lab = losses.QuadraticLoss()
    assert lab.forward(x, ids) == pytest.approx(np.sum(np.square(x - y)) / 6 / 2, rel=1e-12)
    np.testing.assert_allclose(lab.backward(), (x - y) / 6 / 6, rtol=1e-12)
    np.testing.assert_allclose(lab.backward(), (x - y) / 6 / 6, rtol=1e-12)  # a second call does not rescale
    true = losses.QuadraticLoss(lab_lr=False)
    true.forward(x, ids)
    np.testing.assert_allclose(true.backward(), (x - y) / 6, rtol=1e-12)
    half = losses.MSE(reduction="batchmean", half=True)
    assert half.forward(x, ids) == pytest.approx(lab.forward(x, ids), rel=1e-12)
    np.testing.assert_allclose(half.backward(), (x - y) / 6, rtol=1e-12)


# ---- gradient checks ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_mse(backend, rng, shape, reduction):
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    check_loss(losses.MSE(reduction=reduction), pred, target).assert_ok()
    check_loss(losses.MSE(reduction=reduction, half=True), pred, rng.integers(0, shape[1], shape[0])).assert_ok()


def test_gradcheck_mse_on_images(backend, rng):
    pred, target = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 5, 4))
    check_loss(losses.MSE(), pred, target).assert_ok()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_bce(backend, rng, shape, reduction):
    ids = rng.integers(0, shape[1], shape[0])
    soft = rng.random(shape)
    logits = rng.standard_normal(shape) * 2
    probs = rng.uniform(0.05, 0.95, shape)
    for target in (ids, soft):
        check_loss(losses.BinaryCrossEntropy(from_logits=True, reduction=reduction), logits, target).assert_ok()
        check_loss(losses.BinaryCrossEntropy(reduction=reduction), probs, target).assert_ok()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_gradcheck_softmax_ce(backend, rng, shape, reduction, ls):
    logits = rng.standard_normal(shape) * 3
    ids = rng.integers(0, shape[1], shape[0])
    soft = rng.random(shape)
    soft /= soft.sum(axis=1, keepdims=True)
    for target in (ids, soft):
        check_loss(losses.SoftmaxCrossEntropy(label_smoothing=ls, reduction=reduction), logits, target).assert_ok()


def test_gradcheck_single_column_binary(backend, rng):
    # (N, 1) sigmoid output with 0/1 integer targets: the targets are values, not class ids.
    logits, t = rng.standard_normal((5, 1)), rng.integers(0, 2, 5)
    check_loss(losses.BinaryCrossEntropy(from_logits=True), logits, t).assert_ok()
    check_loss(losses.BinaryCrossEntropy(from_logits=True), logits[:, 0].copy(), t).assert_ok()


# ---- targets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: losses.MSE(),
        lambda: losses.MSE(reduction="batchmean", half=True),
        lambda: losses.QuadraticLoss(),
        lambda: losses.BinaryCrossEntropy(),
        lambda: losses.BinaryCrossEntropy(from_logits=True),
        lambda: losses.SoftmaxCrossEntropy(),
        lambda: losses.SoftmaxCrossEntropy(label_smoothing=0.1),
    ],
)
def test_integer_ids_equal_one_hot(backend, rng, make):
    pred = rng.uniform(0.05, 0.95, (6, 5))
    ids = rng.integers(0, 5, 6)
    a, b = make(), make()
    assert a.forward(pred, ids) == pytest.approx(b.forward(pred, _onehot(ids, 5)), rel=1e-12)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-12)
    for int_dtype in (np.uint8, np.int32):
        c = make()
        assert c.forward(pred, ids.astype(int_dtype)) == pytest.approx(a.forward(pred, ids), rel=1e-12)
    column = make()  # Keras-style sparse labels as a column (N, 1)
    assert column.forward(pred, ids[:, None]) == pytest.approx(a.forward(pred, ids), rel=1e-12)


def test_label_smoothing_formula(backend, rng):
    logits, ids = rng.standard_normal((4, 6)), rng.integers(0, 6, 4)
    ls = 0.3
    smooth = (1 - ls) * _onehot(ids, 6) + ls / 6
    expected = -(smooth * _log_softmax(logits)).sum() / 4
    loss = losses.SoftmaxCrossEntropy(label_smoothing=ls)
    assert loss.forward(logits, ids) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(loss.backward(), (np.exp(_log_softmax(logits)) - smooth) / 4, rtol=1e-10, atol=1e-14)
    # the same smoothing applies to probability targets
    assert losses.SoftmaxCrossEntropy(label_smoothing=ls).forward(logits, _onehot(ids, 6)) == pytest.approx(expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(backend, rng, dtype):
    pred = rng.standard_normal((3, 4)).astype(dtype)
    ids = rng.integers(0, 4, 3)
    for loss in (losses.MSE(), losses.BinaryCrossEntropy(from_logits=True), losses.SoftmaxCrossEntropy()):
        value = loss.forward(pred, ids)
        assert type(value) is float
        g = loss.backward()
        assert g.dtype == dtype and g.shape == pred.shape


# ---- stability -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_are_finite(backend, dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=dtype)
    ids = np.array([1, 1])  # row 0 is badly wrong, row 1 right
    sce = losses.SoftmaxCrossEntropy(reduction="sum")
    assert sce.forward(logits, ids) == pytest.approx(2e4, rel=1e-6)
    g = sce.backward()
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, [[1, -1, 0], [0, 0, 0]], atol=1e-6)
    bce = losses.BinaryCrossEntropy(from_logits=True, reduction="sum")
    assert bce.forward(logits, _onehot(ids, 3)) == pytest.approx(2e4 + np.log(2) + 5 + np.log1p(np.exp(-5)), rel=1e-6)
    assert np.isfinite(bce.backward()).all()


def test_bce_probs_clipped(backend):
    probs = np.array([[0.0, 1.0]])
    loss = losses.BinaryCrossEntropy(eps=1e-7, reduction="sum")
    value = loss.forward(probs, np.array([[1.0, 0.0]]))
    assert value == pytest.approx(-2 * np.log(1e-7), rel=1e-6)
    assert np.isfinite(loss.backward()).all()


# ---- link ------------------------------------------------------------------------------------------
def test_link(backend, rng):
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(losses.SoftmaxCrossEntropy().link(x), np.exp(_log_softmax(x)), rtol=1e-12)
    np.testing.assert_allclose(losses.BinaryCrossEntropy(from_logits=True).link(x), 1 / (1 + np.exp(-x)), rtol=1e-12)
    assert losses.BinaryCrossEntropy().link(x) is x
    assert losses.MSE().link(x) is x


# ---- errors ----------------------------------------------------------------------------------------
def test_label_out_of_range():
    pred = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: label 4 out of range \[0, 4\)"):
        losses.SoftmaxCrossEntropy().forward(pred, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"MSE: label -1 out of range \[0, 4\)"):
        losses.MSE().forward(pred, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy: label 7 out of range"):
        losses.BinaryCrossEntropy().forward(pred + 0.5, np.array([0, 7, 1]))


def test_wrong_target_shape():
    pred = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected 3 class ids .* got target shape \(2,\)"):
        losses.SoftmaxCrossEntropy().forward(pred, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected target of shape \(3,\) .* got \(3, 5\)"):
        losses.SoftmaxCrossEntropy().forward(pred, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"MSE: expected a target with 3 rows .* got target shape \(4, 4\)"):
        losses.MSE().forward(pred, np.zeros((4, 4)))
    with pytest.raises(
        ValueError,
        match=r"MSE: expected target of shape \(3,\) with integer class ids or of pred's "
        r"shape \(3, 4\), got \(3,\) \(float64\)",
    ):
        losses.MSE().forward(pred, np.zeros(3))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: expected logits of shape \(N, C\), got \(3, 4, 1\)"):
        losses.SoftmaxCrossEntropy().forward(np.zeros((3, 4, 1)), np.zeros(3, dtype=int))


def test_bad_pred():
    with pytest.raises(ValueError, match=r"MSE: pred contains NaN or inf"):
        losses.MSE().forward(np.array([[1.0, np.nan]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: pred contains NaN"):
        losses.SoftmaxCrossEntropy().forward(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(ValueError, match=r"MSE: expected float32 or float64 pred, got int64"):
        losses.MSE().forward(np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"MSE: expected pred as a numpy array, got list"):
        losses.MSE().forward([[1.0]], np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy: expected probabilities in \[0, 1\] \(use from_logits"):
        losses.BinaryCrossEntropy().forward(np.array([[2.0]]), np.array([[1.0]]))
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy: targets must lie in \[0, 1\]"):
        losses.BinaryCrossEntropy(from_logits=True).forward(np.array([[2.0]]), np.array([[3.0]]))
    with pytest.raises(ValueError, match=r"MSE: target contains NaN"):
        losses.MSE().forward(np.zeros((1, 2)), np.array([[np.nan, 0.0]]))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"MSE: reduction must be one of .*got 'avg'"):
        losses.MSE(reduction="avg")
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: label_smoothing must be in \[0, 1\), got 1.0"):
        losses.SoftmaxCrossEntropy(label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy: eps must be in \(0, 0.5\), got 0.0"):
        losses.BinaryCrossEntropy(eps=0.0)
    with pytest.raises(RuntimeError, match=r"MSE.backward called before forward"):
        losses.MSE().backward()
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'"):
        losses.get("hinge")
    with pytest.raises(ValueError, match=r"unknown loss class 'Nope'"):
        losses.from_config({"class_name": "Nope", "config": {}})


# ---- get / config ------------------------------------------------------------------------------------
def test_get_and_config_round_trip():
    assert isinstance(losses.get("mse"), losses.MSE)
    assert isinstance(losses.get("binary_cross_entropy"), losses.BinaryCrossEntropy)
    assert isinstance(losses.get("softmax_cross_entropy"), losses.SoftmaxCrossEntropy)
    assert isinstance(losses.get("categorical_crossentropy"), losses.SoftmaxCrossEntropy)
    assert isinstance(losses.get("quadratic"), losses.QuadraticLoss)
    obj = losses.SoftmaxCrossEntropy(label_smoothing=0.1, reduction="sum")
    assert losses.get(obj) is obj
    for loss in (
        obj,
        losses.MSE("batchmean", half=True),
        losses.BinaryCrossEntropy(True, 1e-6, "sum"),
        losses.QuadraticLoss(lab_lr=False),
    ):
        cfg = json.loads(json.dumps(loss.get_config()))
        again = losses.from_config(cfg)
        assert type(again) is type(loss) and again.get_config() == loss.get_config()
        assert repr(again) == repr(loss)
    assert losses.get("mse").name == "mse"
    assert losses.get("softmax_cross_entropy").name == "softmax_cross_entropy"


# ---- the loss kernels: fast twin against the NumPy reference -----------------------------------------
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-4), (np.float64, 1e-10)])
def test_loss_kernels_fast_equals_reference(rng, dtype, rtol):
    logits = (rng.standard_normal((9, 7)) * 4).astype(dtype)
    ids = rng.integers(0, 7, 9).astype(np.int64)
    soft = rng.random((9, 7)).astype(dtype)
    probs = rng.uniform(0.01, 0.99, (9, 7)).astype(dtype)
    calls = [
        ("softmax_cross_entropy", (logits, ids, 0.0)),
        ("softmax_cross_entropy", (logits, ids, 0.1)),
        ("softmax_cross_entropy", (logits, soft, 0.1)),
        ("sigmoid_bce_with_logits", (logits, soft)),
        ("bce_on_probs", (probs, soft, 1e-7)),
        ("mse", (logits, soft)),
    ]
    for name, args in calls:
        ref_loss, ref_grad = kernel(name, "numpy")(*args)
        fast_loss, fast_grad = kernel(name, "fast")(*args)
        assert fast_loss == pytest.approx(ref_loss, rel=rtol), name
        assert fast_grad.dtype == dtype, name
        np.testing.assert_allclose(fast_grad, ref_grad, rtol=rtol, atol=rtol * 1e-2, err_msg=name)
