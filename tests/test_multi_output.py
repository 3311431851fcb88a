"""Models with several outputs: a loss per output (list, dict or one for all), loss_weights,
per-output logs and metrics, gradient checks, save/load, ONNX links, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L
from fastnet import losses
from fastnet._kernels.registry import use_backend

F64 = np.float64


def two_heads(dtype=np.float32):
    """A shared trunk with a 3-class head ``cls`` and a 1-value regression head ``reg``."""
    x = fn.Input((6,))
    h = L.Tanh()(L.Dense(6, 8, dtype=dtype)(x))
    cls = L.Dense(8, 3, name="cls", dtype=dtype)(h)
    reg = L.Dense(8, 1, name="reg", dtype=dtype)(h)
    return fn.Model(x, [cls, reg], name="two_heads")


def data(rng, n=64, dtype=np.float32):
    x = rng.standard_normal((n, 6)).astype(dtype)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0), (2.0 * x[:, 2:3]).astype(dtype)


def test_predict_returns_one_array_per_output(rng):
    x = fn.Input((4,))
    h = L.Dense(4, 3)(x)
    model = fn.Model(x, [h, L.ReLU()(h)])
    xs = rng.standard_normal((5, 4)).astype(np.float32)
    a, b = model.predict(xs, batch_size=2)
    np.testing.assert_allclose(b, np.maximum(a, 0), rtol=1e-6)
    assert model.output_names == ["dense", "relu"]


def test_output_names_of_a_shared_layer_are_distinct():
    shared = L.Dense(3, 2, name="head")
    x1, x2 = fn.Input((3,)), fn.Input((3,))
    assert fn.Model([x1, x2], [shared(x1), shared(x2)]).output_names == ["head", "head_1"]


@pytest.mark.parametrize(
    "spec",
    [
        ["softmax_cross_entropy", "mse"],
        {"reg": "mse", "cls": "softmax_cross_entropy"},
    ],
)
def test_loss_per_output_is_the_weighted_sum(rng, spec):
    model = two_heads().compile("sgd", loss=spec, loss_weights={"cls": 1.0, "reg": 0.25}, metrics={"cls": "accuracy"})
    x, yc, yr = data(rng)
    logs = model.evaluate(x, [yc, yr], return_dict=True)
    assert list(logs) == ["loss", "cls_loss", "reg_loss", "cls_accuracy"]
    pc, pr = model.forward(x, training=False)
    ce, mse = losses.SoftmaxCrossEntropy().forward(pc, yc), losses.MSE().forward(pr, yr)
    np.testing.assert_allclose([logs["cls_loss"], logs["reg_loss"]], [ce, mse], rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], ce + 0.25 * mse, rtol=1e-5)
    assert logs["cls_accuracy"] == pytest.approx(np.mean(pc.argmax(1) == yc))
    assert model.evaluate(x, [yc, yr]) == [logs[k] for k in logs]  # the list is in the logs' order


def test_one_loss_is_used_for_every_output(rng):
    model = two_heads()
    model.compile("sgd", loss="mse")
    assert [type(x) for x in model.loss.losses] == [losses.MSE, losses.MSE]
    assert model.loss.losses[0] is not model.loss.losses[1]  # a loss keeps its forward's state: one each
    x, _, yr = data(rng)
    hist = model.fit(x, [np.zeros((len(x), 3), np.float32), yr], epochs=2, batch_size=16, verbose=0)
    assert {"loss", "cls_loss", "reg_loss"} <= set(hist.history)


def test_fit_trains_both_heads_and_weight_zero_leaves_a_head_alone(rng):
    model = two_heads().compile("sgd", loss=["softmax_cross_entropy", "mse"], loss_weights=[1.0, 0.0])
    x, yc, yr = data(rng)
    reg_before = model.state_dict()["reg.weight"].copy()
    cls_before = model.state_dict()["cls.weight"].copy()
    hist = model.fit(x, [yc, yr], epochs=3, batch_size=16, validation_split=0.25, verbose=0)
    assert "val_reg_loss" in hist.history
    np.testing.assert_array_equal(model.state_dict()["reg.weight"], reg_before)  # no gradient reached it
    assert not np.array_equal(model.state_dict()["cls.weight"], cls_before)
    assert hist.history["cls_loss"][-1] < hist.history["cls_loss"][0]


def test_train_on_batch_takes_a_list_of_targets(rng):
    model = two_heads().compile("adam", loss=["softmax_cross_entropy", "mse"])
    x, yc, yr = data(rng, 16)
    first = model.train_on_batch(x, [yc, yr])
    for _ in range(20):
        last = model.train_on_batch(x, [yc, yr])
    assert last < first
    with pytest.raises(ValueError, match="same number of samples|different lengths"):
        model.train_on_batch(x, [yc, yr[:5]])


@pytest.mark.parametrize("backend", ["numpy", "fast"])
def test_gradients_of_a_two_output_graph(rng, backend):
    with use_backend(backend):
        model = two_heads(F64).compile("sgd", loss=["softmax_cross_entropy", "mse"], loss_weights=[1.0, 0.7])
        x, yc, yr = data(rng, 5, F64)
        result = fn.gradcheck.check_model(model, x, [yc, yr])
    assert result.ok, result
    assert {"cls.weight", "reg.weight", "x"} <= set(result.errors)


def test_save_load_continues_identically(rng, tmp_path):
    fn.seed(3)
    model = two_heads().compile("adam", loss=["softmax_cross_entropy", "mse"], loss_weights=[1.0, 0.5],
                                metrics={"cls": ["accuracy"]})  # fmt: skip
    x, yc, yr = data(rng)
    model.fit(x, [yc, yr], epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "m.npz")
    again = fn.load(tmp_path / "m.npz")
    assert again.loss.weights == [1.0, 0.5] and again.loss.names == ["cls", "reg"]
    assert [m.name for m in again.metrics] == ["cls_accuracy"]
    a = model.fit(x, [yc, yr], epochs=2, initial_epoch=1, batch_size=16, verbose=0).history
    b = again.fit(x, [yc, yr], epochs=2, initial_epoch=1, batch_size=16, verbose=0).history
    assert a == b
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v, err_msg=k)


def test_onnx_export_applies_each_outputs_link(rng, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = two_heads().compile("sgd", loss=["softmax_cross_entropy", "mse"])
    x = rng.standard_normal((7, 6)).astype(np.float32)
    fn.export_onnx(model, tmp_path / "m.onnx")
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    for g, want in zip(got, model.predict(x), strict=True):  # softmax on cls, identity on reg
        np.testing.assert_allclose(g, want, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(loss=["mse"]), "has 1 entries but the model has 2 outputs"),
        (dict(loss={"cls": "mse", "nope": "mse"}), r"unknown outputs \['nope'\]"),
        (dict(loss={"cls": "mse"}), r"no loss for outputs \['reg'\]"),
        (dict(loss="mse", loss_weights=[1.0]), "loss_weights has 1 entries"),
        (dict(loss="mse", loss_weights=[1.0, -1.0]), "finite numbers >= 0"),
        (dict(loss=["mse", losses.MSE(reduction="sum")]), "the same reduction"),
        (dict(loss="mse", metrics={"other": ["accuracy"]}), r"unknown outputs \['other'\]"),
    ],
)
def test_bad_compile_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        two_heads().compile("sgd", **kwargs)


def test_bad_targets_and_loaders_are_refused(rng):
    model = two_heads().compile("sgd", loss=["softmax_cross_entropy", "mse"])
    x, yc, yr = data(rng)
    with pytest.raises(ValueError, match=r"2 outputs \['cls', 'reg'\]; pass y as a list of 2 arrays"):
        model.fit(x, yc, verbose=0)
    with pytest.raises(ValueError, match=r"output 'cls'.*class ids in \[0, 3\)"):
        model.fit(x, [yc + 5, yr], verbose=0)
    with pytest.raises(ValueError, match="a DataLoader yields one target array"):
        model.fit(fn.DataLoader(x, yc, batch_size=8), verbose=0)


def test_single_output_model_refuses_loss_weights():
    x = fn.Input((3,))
    model = fn.Model(x, L.Dense(3, 2)(x))
    with pytest.raises(ValueError, match="loss_weights is for a model with several outputs"):
        model.compile("sgd", loss="mse", loss_weights=[1.0])
    assert isinstance(model.compile("sgd", loss=["mse"]).loss, losses.MSE)  # a list of one is that loss
