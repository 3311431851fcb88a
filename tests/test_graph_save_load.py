"""Save/load of graph models: graph, shared layers, nested models, weights, optimizer state; then
training continues bit-identically."""

import json

import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L
from fastnet import optim


def build():
    """Shared Dense used twice, a nested block model, a residual Add and a Concatenate."""
    bx = fn.Input((6,))
    block = fn.Model(bx, L.Add()([L.Dense(6, 6)(L.ReLU()(L.Dense(6, 6)(bx))), bx]), name="block")
    x = fn.Input((6,))
    shared = L.Dense(6, 6, name="shared")
    h = shared(L.Tanh()(shared(x)))
    h = L.Concatenate(axis=1)([block(h), L.Dropout(0.2)(h)])
    return fn.Model(x, L.Dense(12, 3)(L.BatchNorm1d(12)(h)), name="graph")


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def test_round_trip_then_training_continues_bit_identically(tmp_path):
    x, y = data()
    fn.seed(0)
    model = build()
    model.compile(optimizer=optim.Adam(lr=0.01), loss="softmax_cross_entropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "g.npz")
    again = fn.load(tmp_path / "g.npz")

    assert type(again) is fn.Model and again.name == "graph"
    assert list(again.named_layers()) == list(model.named_layers())
    assert again.fusions() == model.fusions() != []
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v, err_msg=k)
    shared = again.get_layer("shared")
    assert sum(step.layer is shared for step in again._current_plan(False).steps) == 2  # still one layer, used twice
    assert again.get_layer("block").get_layer("dense") is not None
    np.testing.assert_array_equal(again.predict(x), model.predict(x))

    model.fit(x, y, epochs=2, batch_size=16, initial_epoch=1, verbose=0)
    again.fit(x, y, epochs=2, batch_size=16, initial_epoch=again.epochs_trained, verbose=0)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v, err_msg=k)


def test_saved_graph_config_is_plain_json(tmp_path):
    fn.seed(0)
    model = build()
    model.save(tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz", allow_pickle=False) as f:
        cfg = json.loads(str(f["config"][()]))
        keys = set(f.files)
    assert cfg["format"] == "fastnet.Model"
    graph = cfg["graph"]
    assert [e["name"] for e in graph["layers"]][:3] == ["shared", "tanh", "block"]
    assert [n["layer"] for n in graph["nodes"]][:3] == ["shared", "tanh", "shared"]
    block = next(e for e in graph["layers"] if e["name"] == "block")
    assert block["class"] == "Model" and block["config"]["inputs"][0]["shape"] == [6]
    assert "model/block.dense.weight" in keys and "model/batchnorm1d.running_var" in keys


def test_sequential_with_a_nested_model_round_trips(tmp_path):
    bx = fn.Input((4, 5, 5))
    block = fn.Model(bx, L.ReLU()(L.Add()([L.Conv2D(4, 4, 3, padding=1)(bx), bx])), name="block1")
    seq = fn.Sequential([L.Conv2D(1, 4, 3, padding=1), block, L.GlobalAvgPool2D(), L.Dense(4, 2)])
    x = np.random.default_rng(0).standard_normal((3, 1, 5, 5)).astype(np.float32)
    seq.compile(optimizer="sgd", loss="softmax_cross_entropy")
    seq.save(tmp_path / "s.npz")
    again = fn.load(tmp_path / "s.npz")
    assert type(again) is fn.Sequential and isinstance(again[1], fn.Model) and again[1].name == "block1"
    assert "1.conv2d.weight" in again.state_dict()
    np.testing.assert_array_equal(again.predict(x), seq.predict(x))


def test_unknown_layer_name_in_a_file(tmp_path):
    fn.seed(0)
    model = build()
    model.save(tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    cfg = json.loads(str(arrays["config"][()]))
    cfg["graph"]["nodes"][0]["layer"] = "ghost"
    arrays["config"] = np.array(json.dumps(cfg))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"cannot be rebuilt: .*node 0 names an unknown layer 'ghost'"):
        fn.load(tmp_path / "bad.npz")


def test_sharing_across_nesting_levels_is_refused_at_save(tmp_path):
    shared = L.Dense(3, 3)
    bx = fn.Input((3,))
    inner = fn.Model(bx, shared(bx), name="inner")
    x = fn.Input((3,))
    outer = fn.Model(x, shared(inner(x)))
    with pytest.raises(ValueError, match=r"layer 'Dense' is used both in 'model.inner' and in 'model'; a saved"):
        outer.save(tmp_path / "x.npz")
