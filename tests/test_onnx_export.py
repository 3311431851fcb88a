"""ONNX export: ONNX Runtime's output equals ``model.predict`` (float32, atol 1e-5) at batch 1 and 7."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from _interop_models import bn_dropout_avgpool, example_module, mlp, random_stack, randomise_statistics, warm_up

import fastnet as fn
from fastnet import layers as L
from fastnet import losses
from fastnet.interop import export_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ATOL = 1e-5  # float32 end to end; observed differences are ~1e-7 (summation order of the GEMMs)


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def assert_matches_predict(model, path, shape, batches=(1, 7), seed=0, **export_args):
    if model.input_shape is None:  # a conv net that has not seen data yet
        export_args.setdefault("input_shape", shape)
    proto = export_onnx(model, path, **export_args)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    rng = np.random.default_rng(seed)
    for n in batches:
        x = rng.random((n, *shape), dtype=np.float32).astype(model.dtype)
        expected = model.predict(x)
        got = run_onnx(path, x.astype(np.float32) if export_args.get("dtype") == "float32" else x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    return proto


def lenet_example():
    return example_module("mnist_cnn").lenet5()


def small_cnn_example():
    return example_module("mnist_cnn").small_cnn()


def letters_example(hidden):
    return example_module("letters_course_lab").build(hidden)


@pytest.mark.parametrize(
    ("build", "shape", "loss"),
    [
        (mlp, (784,), "softmax_cross_entropy"),
        (lenet_example, (1, 28, 28), "softmax_cross_entropy"),
        (small_cnn_example, (1, 28, 28), "softmax_cross_entropy"),
        (lambda: letters_example("sigmoid"), (289,), "quadratic"),
        (lambda: letters_example("relu"), (289,), "binary_cross_entropy"),
        (bn_dropout_avgpool, (1, 12, 12), "softmax_cross_entropy"),
    ],
    ids=["keras_book_mlp", "lenet5", "small_cnn", "letters_sigmoid", "letters_relu", "bn_dropout_avgpool"],
)
def test_example_models_match_predict(tmp_path, build, shape, loss):
    fn.seed(0)
    model = build()
    model.compile(optimizer="adam", loss=loss)  # compile fuses activations: the export must not care
    rng = np.random.default_rng(1)
    x = rng.random((16, *shape), dtype=np.float32)
    classes = model.forward(x[:1], training=False).shape[1]
    warm_up(model, x, rng.integers(0, classes, 16))
    assert_matches_predict(model, tmp_path / "m.onnx", shape)


@pytest.mark.parametrize("seed", range(12))
def test_random_stacks_of_every_layer_match_predict(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    model, shape = random_stack(rng)
    randomise_statistics(model, rng)
    assert_matches_predict(model, tmp_path / "r.onnx", shape, seed=seed, input_shape=shape)


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_stated_opset_and_gelu_before_and_after_opset_20(tmp_path, opset):
    model = fn.Sequential([L.Dense(5, 6, activation="gelu"), L.GELU(), L.Dense(6, 3)])
    proto = assert_matches_predict(model, tmp_path / "g.onnx", (5,), opset=opset)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]
    ops = {n.op_type for n in proto.graph.node}
    assert ("Gelu" in ops) == (opset >= 20)


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu", "sigmoid", "tanh", "gelu"])
def test_dense_builtin_activations(tmp_path, activation):
    model = fn.Sequential([L.Dense(4, 6, activation=activation, alpha=0.3), L.Dense(6, 2)])
    assert_matches_predict(model, tmp_path / "d.onnx", (4,))


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [(3, 1, 0), ((3, 2), (2, 1), (1, 2)), (1, 3, 0), ((2, 5), 2, (0, 2))]
)
def test_conv_any_stride_and_padding(tmp_path, kernel, stride, padding):
    model = fn.Sequential([L.Conv2D(2, 3, kernel, stride=stride, padding=padding), L.Flatten()])
    randomise_statistics(model, np.random.default_rng(0))
    assert_matches_predict(model, tmp_path / "c.onnx", (2, 9, 8))


@pytest.mark.parametrize("pool", [L.MaxPool2D, L.AvgPool2D])
@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, None, 0), (3, 2, 1), ((3, 2), 1, (1, 0))])
def test_pooling_with_padding_and_strides(tmp_path, pool, kernel, stride, padding):
    model = fn.Sequential([pool(kernel, stride=stride, padding=padding), L.Flatten()])
    assert_matches_predict(model, tmp_path / "p.onnx", (2, 7, 6))


@pytest.mark.parametrize(
    ("loss", "link_op"),
    [
        (losses.SoftmaxCrossEntropy(), "Softmax"),
        (losses.BinaryCrossEntropy(from_logits=True), "Sigmoid"),
        (losses.BinaryCrossEntropy(), None),
        (losses.MSE(), None),
        (None, None),
    ],
    ids=["softmax_ce", "bce_logits", "bce_probs", "mse", "no_loss"],
)
def test_loss_link_is_in_the_graph(tmp_path, loss, link_op):
    on_probabilities = isinstance(loss, losses.BinaryCrossEntropy) and not loss.from_logits
    model = fn.Sequential([L.Dense(4, 3), L.Sigmoid()] if on_probabilities else [L.Dense(4, 3)])
    model.loss = loss
    proto = assert_matches_predict(model, tmp_path / "l.onnx", (4,))
    last_ops = [n.op_type for n in proto.graph.node][-2:]
    if link_op is None:
        assert last_ops[0] in ("Gemm", "Sigmoid") and last_ops[1] == "Identity"
    else:
        assert last_ops == [link_op, "Identity"]


def test_batch_axis_is_dynamic_and_io_names_are_stated(tmp_path):
    model = fn.Sequential([L.Conv2D(1, 2, 3), L.Flatten(), L.Dense(2 * 4 * 4, 3)])
    proto = assert_matches_predict(model, tmp_path / "b.onnx", (1, 6, 6), batches=(1, 7, 33))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and out.name == "output"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 6, 6]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 3]


def test_model_methods_are_the_functions(tmp_path):
    fn.seed(0)
    model = fn.Sequential([L.Dense(4, 3), L.ReLU(), L.Dense(3, 2)])
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    proto = model.export_onnx(tmp_path / "m.onnx", opset=18)
    assert proto.opset_import[0].version == 18
    x = np.random.default_rng(0).random((7, 4), dtype=np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), model.predict(x), rtol=0, atol=ATOL)


def test_parameters_are_named_by_state_dict_keys(tmp_path):
    model = fn.Sequential([L.Dense(4, 5), L.BatchNorm1d(5), L.ReLU(), L.Dense(5, 2, bias=False)])
    proto = export_onnx(model, tmp_path / "n.onnx")
    names = {t.name for t in proto.graph.initializer}
    assert set(model.state_dict()) <= names
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(weights["0.weight"], model.layers[0].params["weight"])


def test_float64_models(tmp_path):
    model = fn.Sequential([L.Dense(3, 4, dtype=np.float64), L.Tanh(), L.Dense(4, 2, dtype=np.float64)])
    proto = assert_matches_predict(model, tmp_path / "f64.onnx", (3,))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    # ONNX Runtime's CPU Conv is float32 only: a float64 conv net exports as float32 on request
    conv = fn.Sequential([L.Conv2D(1, 2, 3, dtype=np.float64), L.Flatten()])
    proto = export_onnx(conv, tmp_path / "c32.onnx", input_shape=(1, 5, 5), dtype="float32")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = np.random.default_rng(0).random((2, 1, 5, 5))
    np.testing.assert_allclose(run_onnx(tmp_path / "c32.onnx", x.astype(np.float32)), conv.predict(x), atol=ATOL)


def test_unsupported_layer_is_named(tmp_path):
    class Doubler(L.Layer):
        def forward(self, x, training=None):
            return 2 * x

    model = fn.Sequential([L.Dense(3, 3), Doubler(name="twice")])
    with pytest.raises(ValueError, match=r"layer 1 \(Doubler 'twice'\) has no ONNX converter"):
        export_onnx(model, tmp_path / "u.onnx", input_shape=(3,))
    assert not (tmp_path / "u.onnx").exists()


def test_custom_loss_link_is_refused(tmp_path):
    class Scaled(losses.MSE):
        def link(self, pred):
            return 3 * pred

    model = fn.Sequential([L.Dense(3, 2)])
    model.loss = Scaled()
    with pytest.raises(ValueError, match="Scaled defines its own link"):
        export_onnx(model, tmp_path / "x.onnx")


def test_bad_arguments(tmp_path):
    conv = fn.Sequential([L.Conv2D(1, 2, 3), L.Flatten()])
    assert conv.input_shape is None
    with pytest.raises(ValueError, match="input shape is unknown"):
        export_onnx(conv, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="expected input with 1 channels"):
        export_onnx(conv, tmp_path / "x.onnx", input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="input_shape must be a tuple of positive ints"):
        export_onnx(conv, tmp_path / "x.onnx", input_shape=(1, 0, 8))
    dense = fn.Sequential([L.Dense(3, 2)])
    with pytest.raises(ValueError, match=r"opset must be in \[13, "):
        export_onnx(dense, tmp_path / "x.onnx", opset=9)
    with pytest.raises(TypeError, match="opset must be an int"):
        export_onnx(dense, tmp_path / "x.onnx", opset="17")
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        export_onnx(dense, 17)
    with pytest.raises(ValueError, match="dtype must be None, float32 or float64"):
        export_onnx(dense, tmp_path / "x.onnx", dtype="int8")
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes "import onnx" raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'fastnet\[onnx\]'"):
        export_onnx(fn.Sequential([L.Dense(3, 2)]), tmp_path / "x.onnx")
