"""Graph models: float64 gradient checks of whole graphs on both backends, fast == numpy,
shared layers, nesting, Sequential == Model, fusion at compile, train_step, activations."""

import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L
from fastnet import losses, optim

F64 = np.float64


# ---- graphs used by several tests (float64, small) ------------------------------------------------
def residual():
    x = fn.Input((2, 5, 5))
    h = L.ReLU()(L.BatchNorm2d(2, dtype=F64)(L.Conv2D(2, 2, 3, padding=1, dtype=F64)(x)))
    h = L.Conv2D(2, 2, 3, padding=1, dtype=F64)(h)
    h = L.ReLU()(L.Add()([h, x]))
    return fn.Model(x, L.Dense(2, 3, dtype=F64)(L.GlobalAvgPool2D()(h))), (2, 5, 5)


def concatenate():
    x = fn.Input((2, 4, 4))
    a = L.Conv2D(2, 3, 1, dtype=F64)(x)
    b = L.Tanh()(L.Conv2D(2, 2, 3, padding=1, dtype=F64)(x))
    h = L.Concatenate(axis=1)([a, b])
    return fn.Model(x, L.Dense(5, 3, dtype=F64)(L.GlobalAvgPool2D()(h))), (2, 4, 4)


def multiply():
    x = fn.Input((6,))
    gate = L.Sigmoid()(L.Dense(6, 4, dtype=F64)(x))
    value = L.Dense(6, 4, dtype=F64)(x)
    return fn.Model(x, L.Dense(4, 3, dtype=F64)(L.Multiply()([gate, value]))), (6,)


def shared_twice():
    shared = L.Dense(5, 5, dtype=F64)
    x = fn.Input((5,))
    h = shared(L.Tanh()(shared(x)))  # the same weights applied twice in a row
    return fn.Model(x, L.Dense(5, 3, dtype=F64)(h)), (5,)


def nested():
    bx = fn.Input((4,))
    block = fn.Model(bx, L.Add()([L.Dense(4, 4, dtype=F64)(L.Tanh()(L.Dense(4, 4, dtype=F64)(bx))), bx]), name="block")
    x = fn.Input((6,))
    h = block(block(L.Dense(6, 4, dtype=F64)(x)))  # a nested model, used twice
    return fn.Model(x, L.Dense(4, 3, dtype=F64)(h)), (6,)


GRAPHS = {"residual": residual, "concatenate": concatenate, "multiply": multiply, "shared": shared_twice}
GRAPHS["nested"] = nested


def batch(shape, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)), rng.integers(0, 3, n)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_gradcheck(backend, name):
    fn.seed(1)
    model, shape = GRAPHS[name]()
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = batch(shape)
    res = fn.gradcheck.check_model(model, x, y)
    assert res.ok and res.max_error < 1e-6, res
    assert "x" in res.errors  # the input gradient flows through every branch


def test_two_inputs_gradcheck(backend):
    fn.seed(2)
    shared = L.Dense(4, 3, dtype=F64)
    x1, x2 = fn.Input((4,)), fn.Input((4,), name="right")
    out = L.Dense(6, 2, dtype=F64)(L.Concatenate()([shared(x1), L.Tanh()(shared(x2))]))
    twin = fn.Model([x1, x2], out)
    twin.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))]
    res = fn.gradcheck.check_model(twin, xs, rng.standard_normal((3, 2)))
    assert res.ok and res.max_error < 1e-6, res
    assert {"x0", "x1"} <= set(res.errors)
    assert twin.input_names == ["input", "right"]


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_fast_equals_numpy(name):
    fn.seed(3)
    model, shape = GRAPHS[name]()
    x, _ = batch(shape, n=5, seed=4)
    out = {}
    for backend in ("numpy", "fast"):
        with fn.use_backend(backend):
            y = model.forward(x, training=True)
            dx = model.backward(np.cos(y))
            out[backend] = [y, dx] + [g.copy() for g in model.grads.values()]
    for a, b in zip(out["fast"], out["numpy"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_shared_layer_gradient_is_the_sum_of_both_uses(rng):
    shared = L.Dense(3, 3, dtype=F64)
    x1, x2 = fn.Input((3,)), fn.Input((3,))
    twin = fn.Model([x1, x2], L.Add()([shared(x1), shared(x2)]))
    a, b, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    twin.forward([a, b], training=True)
    twin.backward(dy)
    # by hand: dW = a^T dy + b^T dy
    np.testing.assert_allclose(shared.grads["weight"], a.T @ dy + b.T @ dy, rtol=1e-12)
    np.testing.assert_allclose(shared.grads["bias"], 2 * dy.sum(axis=0), rtol=1e-12)
    assert list(twin.state_dict()) == ["dense.weight", "dense.bias"]  # one layer, one set of weights


def test_textbook_backward_fills_and_private_backward_adds(rng):
    layer = L.Dense(3, 2, dtype=F64)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x, training=True)
    layer.backward(dy)
    once = layer.grads["weight"].copy()
    layer.forward(x, training=True)
    layer.backward(dy)  # textbook: zero, then fill: the same as one call
    np.testing.assert_array_equal(layer.grads["weight"], once)
    _, ctx = layer._forward(x, True)
    layer._backward(ctx, dy, False)  # a model's call: adds
    np.testing.assert_allclose(layer.grads["weight"], 2 * once, rtol=1e-12)


def test_sequential_and_model_train_to_identical_weights():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)

    def layers():
        return [L.Conv2D(1, 4, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(36, 3)]

    fn.seed(7)
    seq = fn.Sequential(layers())
    fn.seed(7)
    ls = layers()
    t = inp = fn.Input((1, 6, 6))
    for layer in ls:
        t = layer(t)
    graph = fn.Model(inp, t)
    for m in (seq, graph):
        m.compile(optimizer=optim.Adam(lr=0.01), loss="softmax_cross_entropy", metrics=["accuracy"])
        fn.seed(11)
        m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert seq.shuffle_seed == graph.shuffle_seed
    for a, b in zip(seq.parameters(), graph.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(graph.state_dict()) == ["conv2d.weight", "conv2d.bias", "dense.weight", "dense.bias"]


def test_fusion_is_a_compile_rewrite_and_changes_no_result(rng):
    fn.seed(5)
    x = fn.Input((6,))
    d1, d2 = L.Dense(6, 5, dtype=F64), L.Dense(5, 3, dtype=F64)
    h = L.Tanh()(d1(x))
    branch = d2(h)
    out = L.Add()([L.Sigmoid()(branch), branch])  # d2's output has two consumers: not fused
    model = fn.Model(x, out)
    other = fn.Model(x, L.Tanh()(d1(x)))  # shares d1
    xs = rng.standard_normal((4, 6))
    before = model.forward(xs, training=True)
    model.backward(np.ones_like(before))
    grads_before = {k: g.copy() for k, g in model.grads.items()}
    model.compile(optimizer="sgd", loss="mse")
    assert model.fusions() == [("dense", "tanh")]
    assert other.fusions() == []  # the other model sharing d1 is not affected
    np.testing.assert_allclose(model.forward(xs, training=True), before, rtol=1e-12)
    model.backward(np.ones_like(before))
    for k, g in model.grads.items():
        np.testing.assert_allclose(g, grads_before[k], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(other.forward(xs), np.tanh(xs @ d1.params["weight"] + d1.params["bias"]), rtol=1e-12)
    assert fn.gradcheck.check_model(model, xs, rng.standard_normal((4, 3))).ok


@pytest.mark.parametrize("backend_name", ["fast", "numpy"])
def test_residual_block_fuses_batchnorm_relu_and_add_relu(backend_name, rng):
    """compile fuses BatchNorm+ReLU and Add+ReLU (a ResNet block's two fusions) as it fuses
    Conv2D+ReLU: the same forward (train and eval), the same gradients, a float64 gradient check."""
    fn.seed(3)
    model, shape = residual()
    xs = rng.standard_normal((3, *shape))
    with fn.use_backend(backend_name):
        start = {k: v.copy() for k, v in model.state_dict().items()}
        before = model.forward(xs, training=True)
        model.backward(np.ones_like(before))
        grads = {k: g.copy() for k, g in model.grads.items()}
        updated = {k: v.copy() for k, v in model.state_dict().items()}  # running statistics moved once
        evaluated = model.forward(xs, training=False)
        model.compile(optimizer="sgd", loss="mse")
        assert model.fusions() == [("batchnorm2d", "relu"), ("add", "relu_1")]
        model.load_state_dict(start)
        np.testing.assert_allclose(model.forward(xs, training=True), before, rtol=1e-12, atol=1e-14)
        for k, v in model.state_dict().items():
            np.testing.assert_allclose(v, updated[k], rtol=1e-12, atol=1e-14)
        model.backward(np.ones_like(before))
        for k, g in model.grads.items():
            np.testing.assert_allclose(g, grads[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(model.forward(xs, training=False), evaluated, rtol=1e-12, atol=1e-14)
        assert fn.gradcheck.check_model(model, xs, rng.standard_normal((3, 3))).ok


def test_sequential_holds_a_model_and_a_model_holds_a_sequential(rng):
    bx = fn.Input((4, 6, 6))
    h = L.BatchNorm2d(4)(L.Conv2D(4, 4, 3, padding=1, bias=False)(bx))
    block_model = fn.Model(bx, L.ReLU()(L.Add()([h, bx])), name="block1")
    seq = fn.Sequential([L.Conv2D(1, 4, 3, padding=1), block_model, L.GlobalAvgPool2D(), L.Dense(4, 3)])
    assert seq(rng.standard_normal((2, 1, 6, 6)).astype(np.float32)).shape == (2, 3)
    assert "1.conv2d.weight" in seq.state_dict() and "1.batchnorm2d.running_mean" in seq.state_dict()
    x = fn.Input((5,))
    tail = fn.Sequential([L.Dense(5, 4), L.ReLU()])
    model = fn.Model(x, L.Dense(4, 2, name="head")(tail(x)))
    assert list(model.state_dict()) == ["sequential.0.weight", "sequential.0.bias", "head.weight", "head.bias"]
    assert list(model.named_layers()) == ["sequential.0", "sequential.1", "head"]


def test_dotted_names_follow_given_names():
    bx = fn.Input((3,))
    block = fn.Model(bx, L.Dense(3, 3, name="conv1")(bx), name="block1")
    x = fn.Input((3,))
    model = fn.Model(x, block(x))
    assert list(model.state_dict()) == ["block1.conv1.weight", "block1.conv1.bias"]
    assert model.get_layer("block1") is block


def test_auto_names_are_unique_keras_style():
    x = fn.Input((4,))
    h = L.Dense(4, 4)(L.Dense(4, 4)(x))
    model = fn.Model(x, L.Dense(4, 2, name="dense_1")(L.ReLU()(h)))  # a given name is kept
    assert list(model.named_layers()) == ["dense", "dense_2", "relu", "dense_1"]
    renamed = L.Dense(4, 2)
    renamed.name = "fc"  # a name assigned after construction counts as given too
    assert list(fn.Model(x, renamed(x)).state_dict()) == ["fc.weight", "fc.bias"]


def test_train_step_is_the_override_point():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((24, 4)).astype(np.float32), rng.integers(0, 2, 24)

    class Counting(fn.Model):
        steps = 0

        def train_step(self, xb, yb):
            Counting.steps += 1
            logs = super().train_step(xb, yb)
            self.last_grad_norm = float(np.linalg.norm(self.get_layer("dense").grads["weight"]))
            return logs

    inp = fn.Input((4,))
    model = Counting(inp, L.Dense(4, 2)(inp))
    model.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert Counting.steps == 6 and set(hist.history) == {"loss", "accuracy"}
    assert model.last_grad_norm > 0  # callbacks and overrides read grads after a step
    logs = model.train_step(x[:8], y[:8])
    assert set(logs) == {"loss", "accuracy"} and isinstance(logs["loss"], float)


def test_activations_by_dotted_name(rng):
    model, shape = nested()
    x, _ = batch(shape)
    acts = model.activations(x)
    assert list(acts) == [
        "dense",
        "block.dense", "block.tanh", "block.dense_1", "block.add",
        "block:1.dense", "block:1.tanh", "block:1.dense_1", "block:1.add",  # the block's second call
        "dense_1",
    ]  # fmt: skip
    np.testing.assert_allclose(acts["dense_1"], model.forward(x, training=False), rtol=1e-12)


def test_two_input_model_fits_and_predicts(rng):
    x1, x2 = fn.Input((3,)), fn.Input((2,))
    model = fn.Model([x1, x2], L.Dense(5, 2)(L.Concatenate(axis=-1)([x1, x2])))
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    a, b = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    y = (a[:, 0] > 0).astype(int)
    hist = model.fit([a, b], y, epochs=2, batch_size=5, validation_split=0.2, verbose=0)
    assert "val_loss" in hist.history
    assert model.predict([a, b]).shape == (20, 2)
    assert model.train_on_batch([a[:4], b[:4]], y[:4]) > 0
    with pytest.raises(ValueError, match="the model has 2 inputs; pass x as a list"):
        model.fit(a, y, verbose=0)


def test_merge_layers_on_arrays(rng):
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    cat = L.Concatenate(axis=1)
    y = cat.forward([a, b], training=True)
    np.testing.assert_array_equal(y, np.concatenate([a, b], axis=1))
    da, db = cat.backward(np.arange(y.size, dtype=F64).reshape(y.shape))
    assert da.shape == a.shape and db.shape == b.shape
    assert L.Concatenate(axis=-2).output_shape([(3, 4), (5, 4)]) == (8, 4)
    np.testing.assert_array_equal(L.Multiply().forward([a, a]), a * a)
    with pytest.raises(ValueError, match=r"Add: inputs must all have the same shape, got \(2, 3, 4\), \(2, 5, 4\)"):
        L.Add().forward([a, b])
    with pytest.raises(ValueError, match="axis must be a non-zero int"):
        L.Concatenate(axis=0)


def test_issue_snippet_runs(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.random((16, 1, 28, 28), dtype=np.float32)  # small: the point is that it runs
    y_train = rng.integers(0, 10, 16)

    def block(x, c):
        h = L.ReLU()(L.BatchNorm2d(c)(L.Conv2D(c, c, 3, padding=1, bias=False)(x)))
        h = L.BatchNorm2d(c)(L.Conv2D(c, c, 3, padding=1, bias=False)(h))
        return L.ReLU()(L.Add()([h, x]))

    x = fn.Input((1, 28, 28))
    h = L.ReLU()(L.Conv2D(1, 16, 3, padding=1)(x))
    h = block(block(h, 16), 16)
    a, b = L.Conv2D(16, 8, 1)(h), L.Conv2D(16, 8, 3, padding=1)(h)
    h = L.Concatenate(axis=1)([a, b])
    out = L.Dense(16, 10)(L.GlobalAvgPool2D()(h))
    model = fn.Model(inputs=x, outputs=out, name="tiny_resnet")
    model.compile(
        optimizer=fn.optim.SGD(lr=0.1, momentum=0.9, weight_decay=5e-4),
        loss="softmax_cross_entropy",
        metrics=["accuracy"],
    )
    text = model.summary(print_fn=None)
    assert "Connected to" in text and "add_1 (Add)" in text and "conv2d_5, conv2d_6" in text
    hist = model.fit(x_train, y_train, epochs=1, batch_size=8, validation_split=0.25, verbose=0)
    assert np.isfinite(hist.history["loss"][0]) and "val_accuracy" in hist.history
    model.save(tmp_path / "tiny.npz")
    again = fn.load(tmp_path / "tiny.npz")  # the graph, weights and optimizer state; no pickle
    np.testing.assert_array_equal(again.predict(x_train[:4]), model.predict(x_train[:4]))
    assert again.optimizer.state_dict().keys() == model.optimizer.state_dict().keys()

    shared = L.Dense(64, 32)
    x1, x2 = fn.Input((64,)), fn.Input((64,))
    twin = fn.Model(inputs=[x1, x2], outputs=L.Add()([shared(x1), shared(x2)]))
    assert twin.num_params() == 64 * 32 + 32

    bx = fn.Input((16, 28, 28))
    block_model = fn.Model(bx, block(bx, 16))
    seq = fn.Sequential([L.Conv2D(1, 16, 3, padding=1), block_model, L.GlobalAvgPool2D(), L.Dense(16, 10)])
    seq.compile(optimizer="sgd", loss=losses.SoftmaxCrossEntropy())
    assert np.isfinite(seq.train_on_batch(x_train[:4], y_train[:4]))


@pytest.mark.parametrize(
    "layer, shapes",
    [
        (L.Add(), [(3, 4), (3, 4), (3, 4)]),
        (L.Multiply(), [(3, 2, 3), (3, 2, 3)]),
        (L.Concatenate(axis=1), [(3, 2, 4), (3, 5, 4)]),
        (L.Concatenate(axis=-1), [(3, 4), (3, 1)]),
    ],
    ids=["add3", "multiply", "concat1", "concat-1"],
)
def test_merge_layer_gradcheck(backend, layer, shapes):
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal(s) for s in shapes]
    out = layer.forward(xs, training=True)
    r = rng.standard_normal(out.shape)

    def f():
        return float(np.sum(layer.forward(xs, training=True) * r))

    def grads():
        f()
        return {f"x{i}": g for i, g in enumerate(layer.backward(r.copy()))}

    res = fn.gradcheck.check_function(f, {f"x{i}": x for i, x in enumerate(xs)}, grads)
    assert res.ok and res.max_error < 1e-8, res
