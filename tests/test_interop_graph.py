"""Graph models through the interop formats: ONNX (Add, Multiply, Concatenate, shared layers, nested
models, several inputs and outputs) == predict to 1e-5 in ONNX Runtime; safetensors under dotted names
that a PyTorch module with the same attribute names loads; TensorBoard histograms by dotted name."""

from __future__ import annotations

import numpy as np
import pytest
from _interop_models import randomise_statistics

import fastnet as fn
from fastnet import layers as L

ATOL = 1e-5


def residual():
    x = fn.Input((2, 6, 6))
    h = L.ReLU()(L.BatchNorm2d(2)(L.Conv2D(2, 2, 3, padding=1)(x)))
    h = L.Conv2D(2, 2, 3, padding=1)(h)
    h = L.ReLU()(L.Add()([h, x]))
    return fn.Model(x, L.Dense(2, 3)(L.GlobalAvgPool2D()(h)))


def concatenate():
    x = fn.Input((2, 5, 5))
    a = L.Conv2D(2, 3, 1)(x)
    b = L.Tanh()(L.Conv2D(2, 2, 3, padding=1)(x))
    h = L.Concatenate(axis=1)([a, b])
    flat = L.Flatten()(L.MaxPool2D(2)(h))
    side = L.Dense(50, 4, activation="relu")(L.Flatten()(x))
    return fn.Model(x, L.Dense(5 * 2 * 2 + 4, 3)(L.Concatenate(axis=-1)([flat, side])))


def multiply():
    x = fn.Input((6,))
    gate = L.Sigmoid()(L.Dense(6, 4)(x))
    value = L.Dense(6, 4)(x)
    third = L.Tanh()(L.Dense(6, 4)(x))
    return fn.Model(x, L.Dense(4, 3)(L.Multiply()([gate, value, third])))


def shared_twice():
    shared = L.Dense(5, 5)
    x = fn.Input((5,))
    h = shared(L.Tanh()(shared(x)))  # the same weights applied twice in a row
    return fn.Model(x, L.Dense(5, 3)(h))


def nested():
    bx = fn.Input((4,))
    block = fn.Model(bx, L.Add()([L.Dense(4, 4)(L.GELU()(L.Dense(4, 4)(bx))), bx]), name="block")
    x = fn.Input((6,))
    h = block(block(L.Dense(6, 4)(x)))  # a nested model, used twice
    return fn.Model(x, L.Dense(4, 3)(h))


def sequential_holding_a_model():
    bx = fn.Input((8,))
    block = fn.Model(bx, L.Add()([L.Dense(8, 8)(L.ReLU()(L.BatchNorm1d(8)(bx))), bx]), name="res")
    return fn.Sequential([L.Dense(5, 8), block, L.Dropout(0.5), L.Dense(8, 3)])


def two_inputs():
    a, b = fn.Input((4,), name="left"), fn.Input((1, 5, 5), name="right")
    h = L.Flatten()(L.AvgPool2D(2, stride=1)(b))
    return fn.Model([a, b], L.Dense(4 + 16, 3)(L.Concatenate()([L.Dense(4, 4)(a), h])))


GRAPHS = {
    "residual": (residual, [(2, 6, 6)]),
    "concatenate": (concatenate, [(2, 5, 5)]),
    "multiply": (multiply, [(6,)]),
    "shared": (shared_twice, [(5,)]),
    "nested": (nested, [(6,)]),
    "sequential_holding_a_model": (sequential_holding_a_model, [(5,)]),
    "two_inputs": (two_inputs, [(4,), (1, 5, 5)]),
}


def built(name, loss="softmax_cross_entropy"):
    fn.seed(0)
    build, shapes = GRAPHS[name]
    model = build()
    randomise_statistics_deep(model)
    if loss is not None:
        model.compile(optimizer="adam", loss=loss)  # compile fuses Dense/Conv2D + activation: export must not care
    return model, shapes


def randomise_statistics_deep(model):
    rng = np.random.default_rng(7)
    holder = fn.Sequential(list(model.named_layers().values()))  # only to reuse the helper on every leaf
    randomise_statistics(holder, rng)


def inputs(shapes, n, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((n, *s)).astype(np.float32) for s in shapes]
    return xs if len(xs) > 1 else xs[0]


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_models_export_to_onnx(tmp_path, name):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, shapes = built(name)
    proto = fn.export_onnx(model, tmp_path / "g.onnx", input_shape=shapes if len(shapes) > 1 else shapes[0])
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == model.input_names
    for n in (1, 7):
        x = inputs(shapes, n, seed=n)
        feed = dict(zip(names, x if isinstance(x, list) else [x], strict=True))
        np.testing.assert_allclose(session.run(None, feed)[0], model.predict(x), rtol=0, atol=ATOL)
    initializers = {t.name for t in proto.graph.initializer}
    assert set(model.state_dict()) <= initializers  # parameters under their state_dict names
    if name in ("shared", "nested"):  # one copy of shared weights, however many calls
        assert len([t for t in initializers if t.endswith(".weight")]) == len(
            [k for k in model.state_dict() if k.endswith(".weight")]
        )


def test_several_outputs_each_get_the_link(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    x = fn.Input((4,))
    h = L.Dense(4, 6, activation="tanh")(x)
    model = fn.Model(x, [L.Dense(6, 3)(h), L.Dense(6, 2)(h)])
    model.loss = fn.losses.SoftmaxCrossEntropy()
    fn.export_onnx(model, tmp_path / "two.onnx")
    session = ort.InferenceSession(str(tmp_path / "two.onnx"))
    assert [o.name for o in session.get_outputs()] == ["output", "output_1"]
    data = np.random.default_rng(0).random((7, 4), dtype=np.float32)
    for got, want in zip(session.run(None, {"input": data}), model.predict(data), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_unsupported_layer_inside_a_nested_model_is_named(tmp_path):
    pytest.importorskip("onnx")

    class Doubler(L.Layer):
        def _forward(self, x, training):
            return 2 * x, None

    bx = fn.Input((3,))
    block = fn.Model(bx, Doubler(name="twice")(L.Dense(3, 3)(bx)), name="block")
    x = fn.Input((3,))
    model = fn.Model(x, block(x))
    with pytest.raises(ValueError, match=r"layer block\.twice \(Doubler 'twice'\) has no ONNX converter"):
        fn.export_onnx(model, tmp_path / "u.onnx")


def test_graph_weights_round_trip_under_dotted_names(tmp_path):
    pytest.importorskip("safetensors")
    source, shapes = built("nested")
    fn.save_weights(source, tmp_path / "w.safetensors")
    target, _ = built("nested")
    for p in target.parameters():
        p[...] = 0
    fn.load_weights(target, tmp_path / "w.safetensors")
    x = inputs(shapes, 5)
    np.testing.assert_array_equal(target.predict(x), source.predict(x))
    from safetensors.numpy import load_file

    names = set(load_file(str(tmp_path / "w.safetensors")))
    assert names == set(source.state_dict())
    assert any(n.startswith("block.") for n in names)


def test_graph_weights_load_into_a_pytorch_module_with_the_same_names(tmp_path):
    pytest.importorskip("safetensors")
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file
    from torch import nn

    x = fn.Input((6,))
    h = L.ReLU()(L.BatchNorm1d(8, name="bn")(L.Dense(6, 8, name="fc1")(x)))
    h = L.Add()([L.Dense(8, 8, name="fc2")(h), h])
    model = fn.Model(x, L.Dense(8, 3, name="head")(h))
    randomise_statistics_deep(model)

    class Torch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.bn, self.fc2, self.head = (
                nn.Linear(6, 8),
                nn.BatchNorm1d(8),
                nn.Linear(8, 8),
                nn.Linear(8, 3),
            )

        def forward(self, v):
            h = torch.relu(self.bn(self.fc1(v)))
            return self.head(self.fc2(h) + h)

    module = Torch().eval()
    fn.save_weights(model, tmp_path / "fastnet.safetensors")
    module.load_state_dict(load_file(str(tmp_path / "fastnet.safetensors")), strict=True)
    data = np.random.default_rng(1).random((7, 6), dtype=np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(data)).numpy(), model.predict(data), rtol=0, atol=ATOL)
    # and back: torch's weights into a fresh fastnet graph
    torch.manual_seed(5)
    other = Torch()
    other.train()
    with torch.no_grad():
        other(torch.rand(16, 6))  # move the running statistics
    other.eval()
    save_file(other.state_dict(), str(tmp_path / "torch.safetensors"))
    fn.load_weights(model, tmp_path / "torch.safetensors")
    with torch.no_grad():
        np.testing.assert_allclose(other(torch.from_numpy(data)).numpy(), model.predict(data), rtol=0, atol=ATOL)


def test_tensorboard_histograms_use_dotted_names(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    model, shapes = built("nested")
    x = inputs(shapes, 16)
    model.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0, callbacks=[fn.callbacks.TensorBoard(tmp_path)])
    tags = {
        v.tag
        for path in tmp_path.glob("events.out.tfevents.*")
        for event in EventFileLoader(str(path)).Load()
        for v in event.summary.value
    }
    assert {f"weights/{k}" for k in model.params} <= tags
    assert {f"gradients/{k}" for k in model.params} <= tags
