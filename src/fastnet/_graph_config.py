"""The JSON description of a graph model, and rebuilding a model from it (no code is run).

A graph config is::

    {"name": "tiny_resnet",
     "layers": [{"name": "conv2d", "class": "Conv2D", "config": {...}, "lr_mult": 1.0,
                 "training": true, "generators": {}}, ...],          # each layer once, by unique name
     "inputs": [{"name": "input", "shape": [1, 28, 28]}],
     "nodes": [{"layer": "conv2d", "inputs": [["input", 0]], "list": false}, ...],  # in run order
     "outputs": [["node", 7]], "multi_input": false, "multi_output": false}

A ref is ``["input", i]`` or ``["node", j]``. A layer used twice appears once in ``layers`` and in
two nodes; a nested model is a layer whose config is its own graph config (``Sequential``: a
``{"name", "layers"}`` list). Rebuilding checks everything (unknown layer names and classes, refs,
cycles, shapes) and raises a ValueError naming the layers.
"""

from __future__ import annotations

from . import graph_build

__all__ = ["layer_entry", "build_layer", "graph_config", "build_graph_model"]


def layer_entry(layer, name: str | None = None) -> dict:
    """A layer as JSON: class, constructor config, name and the state that is not an array."""
    from .model import Model
    from .serialization import _generator_states

    entry = {
        "class": type(layer).__name__,
        "config": layer.get_config(),
        "name": layer.name if name is None else name,
        "lr_mult": float(layer.lr_mult),
    }
    if not isinstance(layer, Model):  # a nested model's layers carry their own
        entry["training"] = bool(layer.training)
        entry["generators"] = _generator_states(layer)
    return entry


def build_layer(spec, where: str):
    """Rebuild one layer from :func:`layer_entry`'s dict; ValueError for an unknown class or bad config."""
    from .layers.base import LAYER_CLASSES
    from .model import Model
    from .serialization import _restore_generators

    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a layer entry must be a dict, got {type(spec).__name__}")
    cls = LAYER_CLASSES.get(spec.get("class"))
    if cls is None:
        raise ValueError(f"{where}: unknown layer class {spec.get('class')!r}; known classes: {sorted(LAYER_CLASSES)}")
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{where} ({spec['class']}): config must be a dict, got {type(config).__name__}")
    try:
        layer = cls.from_config(dict(config))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where} ({spec['class']}) cannot be rebuilt from its config: {e}") from None
    name = spec.get("name", layer.name)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where} ({spec['class']}): name must be a non-empty str, got {name!r}")
    layer.name = name
    layer.auto_named = name == type(layer).__name__
    layer.lr_mult = float(spec.get("lr_mult", 1.0))
    if not isinstance(layer, Model):
        layer.train(bool(spec.get("training", True)))
        _restore_generators(layer, spec.get("generators", {}))
    return layer


def _check_sharing(model, owners: dict, path: str) -> None:
    """A config stores each model's layers separately: refuse a leaf shared across nesting levels."""
    from .model import Model

    for layer in model.layers:
        if isinstance(layer, Model):
            _check_sharing(layer, owners, f"{path}.{model._names[id(layer)]}")
        elif owners.setdefault(id(layer), path) != path:
            raise ValueError(
                f"save: layer {layer.name!r} is used both in {owners[id(layer)]!r} and in {path!r}; a saved "
                "file keeps each model's layers separately, so share whole nested models instead"
            )


def graph_config(model) -> dict:
    """The JSON config of a graph ``Model`` (see the module docstring)."""
    model._current_plan(False)
    _check_sharing(model, {}, model.name)
    layers = [layer_entry(layer, model._names[id(layer)]) for layer in model.layers]
    return {
        "name": model.name,
        "layers": layers,
        "inputs": [
            {"name": n, "shape": None if s is None else list(s)}
            for n, s in zip(model.input_names, model._input_shapes, strict=True)
        ],
        "nodes": [
            {"layer": model._names[id(layer)], "inputs": [list(r) for r in refs], "list": bool(as_list)}
            for layer, refs, as_list in model._nodes
        ],
        "outputs": [list(r) for r in model._out_refs],
        "multi_input": bool(model._multi_in),
        "multi_output": bool(model._multi_out),
    }


def _list(config, key, where) -> list:
    value = config.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{where}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _ref(r, where):
    if not (isinstance(r, list) and len(r) == 2 and isinstance(r[0], str) and isinstance(r[1], int)):
        raise ValueError(f'{where}: a reference must be ["input" or "node", index], got {r!r}')
    return (r[0], r[1])


def _shape(value, where):
    if value is None:
        return None
    if not isinstance(value, list) or not all(d is None or (isinstance(d, int) and d > 0) for d in value):
        raise ValueError(f"{where}: an input shape must be a list of positive ints, got {value!r}")
    return tuple(value)


def build_graph_model(config: dict, cls=None):
    """Rebuild a graph model from :func:`graph_config`'s dict, validating it on the way."""
    from .model import Model

    cls = cls or Model
    if not isinstance(config, dict):
        raise ValueError(f"Model.from_config: expected a dict, got {type(config).__name__}")
    name = config.get("name")
    where = f"model {name!r}"
    layers = {}
    for i, spec in enumerate(_list(config, "layers", where)):
        layer = build_layer(spec, f"{where} layer {i}")
        if layer.name in layers:
            raise ValueError(f"{where}: two layers are named {layer.name!r}")
        layers[layer.name] = layer
    inputs = _list(config, "inputs", where)
    if not inputs or not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in inputs):
        raise ValueError(f'{where}: \'inputs\' must be a non-empty list of {{"name", "shape"}} entries')
    input_names = [e["name"] for e in inputs]
    input_shapes = [_shape(e.get("shape"), f"{where} input {e['name']!r}") for e in inputs]
    nodes = []
    for j, entry in enumerate(_list(config, "nodes", where)):
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: node {j} must be a dict, got {type(entry).__name__}")
        layer = layers.get(entry.get("layer"))
        if layer is None:
            raise ValueError(
                f"{where}: node {j} names an unknown layer {entry.get('layer')!r}; "
                f"layers of this model: {sorted(layers)}"
            )
        refs = [_ref(r, f"{where} node {j} ({layer.name})") for r in _list(entry, "inputs", f"{where} node {j}")]
        nodes.append((layer, refs, bool(entry.get("list", len(refs) > 1))))
    outputs = [_ref(r, f"{where} output") for r in _list(config, "outputs", where)]
    graph_build.validate(input_names, nodes, outputs, where)
    output_shapes = _infer_shapes(input_shapes, nodes, outputs, where)
    model = cls.__new__(cls)
    model._init_model(name)
    model._set_graph(
        input_names, nodes, outputs, input_shapes, output_shapes, where,
        multi_in=bool(config.get("multi_input")), multi_out=bool(config.get("multi_output")),
    )  # fmt: skip
    return model


def _infer_shapes(input_shapes, nodes, outputs, where):
    """Every node's output shape from the input shapes (the checks a symbolic build does)."""
    shapes = {("input", i): s for i, s in enumerate(input_shapes)}
    for j, (layer, refs, as_list) in enumerate(nodes):
        ins = [shapes[r] for r in refs]
        if any(s is None for s in ins):
            shapes[("node", j)] = None
            continue
        try:
            shapes[("node", j)] = tuple(layer.output_shape(ins if as_list else ins[0]))
        except ValueError as e:
            raise ValueError(f"{where}: node {j} ({layer.name}) does not fit its inputs: {e}") from None
    return [shapes[r] for r in outputs]
