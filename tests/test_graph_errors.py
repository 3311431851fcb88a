"""Malformed graphs fail when the model is built or loaded, with a ValueError naming the layers."""

import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L


def test_add_shape_mismatch_names_the_layers():
    x = fn.Input((4, 6, 6))
    a, b = L.Conv2D(4, 8, 3, padding=1, name="wide")(x), L.Conv2D(4, 4, 3, padding=1, name="narrow")(x)
    with pytest.raises(
        ValueError, match=r"Add: inputs must all have the same shape, got \(8, 6, 6\), \(4, 6, 6\) .*wide.*narrow"
    ):
        L.Add()([a, b])


def test_concatenate_mismatch_and_bad_axis():
    a, b = fn.Input((4, 6, 6)), fn.Input((4, 5, 6))
    with pytest.raises(ValueError, match=r"Concatenate: inputs must match on every axis but axis 1"):
        L.Concatenate(axis=1)([a, b])
    assert L.Concatenate(axis=2)([a, b]).shape == (4, 11, 6)
    with pytest.raises(ValueError, match=r"axis 5 is out of range for inputs of rank 4"):
        L.Concatenate(axis=5)([a, b])


def test_layer_shape_error_raised_when_called():
    x = fn.Input((7,))
    with pytest.raises(ValueError, match=r"Dense: expected input shape \(N, 5\).*building the graph: Dense called on"):
        L.Dense(5, 2)(x)


def test_list_to_a_single_input_layer_and_back():
    x = fn.Input((3,))
    with pytest.raises(ValueError, match="ReLU: takes one input, got a list of 2"):
        L.ReLU()([x, x])
    with pytest.raises(ValueError, match="Add: takes a list of inputs, got one"):
        L.Add()(x)


def test_disconnected_output():
    x, other = fn.Input((3,)), fn.Input((3,), name="stray")
    out = L.Add()([L.Dense(3, 3)(x), other])
    with pytest.raises(ValueError, match=r"disconnected output: .* depends on input stray \(3,\), which is not among"):
        fn.Model(x, out)


def test_input_no_output_depends_on():
    x1, x2 = fn.Input((3,)), fn.Input((3,), name="unused")
    with pytest.raises(ValueError, match=r"no output depends on input 'unused'"):
        fn.Model([x1, x2], L.Dense(3, 2)(x1))


def test_two_layers_with_one_name():
    x = fn.Input((3,))
    with pytest.raises(ValueError, match=r"two different layers are named 'fc'"):
        fn.Model(x, L.Dense(3, 3, name="fc")(L.Dense(3, 3, name="fc")(x)))


def test_inputs_must_be_inputs():
    x = fn.Input((3,))
    h = L.Dense(3, 3)(x)
    with pytest.raises(ValueError, match="inputs\\[0\\] is the output of Dense, not a fastnet.Input"):
        fn.Model(h, L.ReLU()(h))
    with pytest.raises(TypeError, match="outputs must be a symbolic tensor"):
        fn.Model(x, np.zeros(3))


def _config(nodes, outputs=(("node", 1),)):
    """A graph config with two Dense layers a, b and the given nodes (what a saved file holds)."""
    layers = [
        {"class": "Dense", "config": {"in_features": 3, "out_features": 3}, "name": n, "lr_mult": 1.0}
        for n in ("a", "b")
    ]
    return {
        "name": "crafted",
        "layers": layers,
        "inputs": [{"name": "input", "shape": [3]}],
        "nodes": [{"layer": layer, "inputs": [list(r) for r in refs]} for layer, refs in nodes],
        "outputs": [list(r) for r in outputs],
    }


def test_config_round_trip_builds_the_same_graph():
    model = fn.Model.from_config(_config([("a", [("input", 0)]), ("b", [("node", 0)])]))
    assert list(model.named_layers()) == ["a", "b"] and model.input_shape == (3,)
    assert model.forward(np.zeros((2, 3), np.float32)).shape == (2, 3)


def test_config_cycle():
    cfg = _config([("a", [("node", 1)]), ("b", [("node", 0)])])
    with pytest.raises(ValueError, match=r"the graph has a cycle: a -> b -> a"):
        fn.Model.from_config(cfg)


def test_config_output_used_before_it_is_computed():
    cfg = _config([("a", [("node", 1)]), ("b", [("input", 0)])], outputs=[("node", 0)])
    with pytest.raises(ValueError, match=r"node 0 \(a\) uses the output of node 1 \(b\) before it is computed"):
        fn.Model.from_config(cfg)


def test_config_unknown_layer_name():
    cfg = _config([("a", [("input", 0)]), ("nope", [("node", 0)])])
    with pytest.raises(ValueError, match=r"node 1 names an unknown layer 'nope'; layers of this model: \['a', 'b'\]"):
        fn.Model.from_config(cfg)


def test_config_disconnected_node_and_bad_refs():
    cfg = _config([("a", [("input", 0)]), ("b", [("input", 0)])], outputs=[("node", 0)])
    with pytest.raises(ValueError, match=r"node 1 \(b\) is disconnected: no output depends on it"):
        fn.Model.from_config(cfg)
    with pytest.raises(ValueError, match=r"refers to \('node', 9\), which is no input or node"):
        fn.Model.from_config(_config([("a", [("input", 0)]), ("b", [("node", 9)])]))


def test_config_shape_mismatch_at_load():
    cfg = _config([("a", [("input", 0)]), ("b", [("node", 0)])])
    cfg["inputs"][0]["shape"] = [4]
    with pytest.raises(ValueError, match=r"node 0 \(a\) does not fit its inputs: a: expected input shape \(N, 3\)"):
        fn.Model.from_config(cfg)


def test_wrong_input_at_run_time():
    x = fn.Input((3,))
    model = fn.Model(x, L.Dense(3, 2)(x))
    with pytest.raises(ValueError, match=r"model: input 'input' expects shape \(N, 3\), got \(2, 4\)"):
        model.forward(np.zeros((2, 4), np.float32))
    x1, x2 = fn.Input((3,)), fn.Input((3,))
    twin = fn.Model([x1, x2], L.Add()([x1, x2]))
    with pytest.raises(ValueError, match="expected a list of 2 input arrays, got ndarray"):
        twin.forward(np.zeros((2, 3), np.float32))


def test_backward_before_forward_in_a_graph():
    x = fn.Input((3,))
    model = fn.Model(x, L.ReLU()(L.Dense(3, 2)(x)))
    with pytest.raises(RuntimeError, match="model.backward called before forward"):
        model.backward(np.zeros((2, 2), np.float32))
    model.forward(np.zeros((2, 3), np.float32), training=False)  # eval keeps nothing
    with pytest.raises(RuntimeError, match="ReLU.backward called before forward"):
        model.backward(np.zeros((2, 2), np.float32))
