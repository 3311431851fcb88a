"""Save and load a model (``Sequential`` or graph ``Model``) as one ``.npz`` file, without pickle.

Layout of the archive:

- ``config``: a 0-d unicode array holding JSON: format name and version, fastnet version, the
  architecture, the compile settings (loss config, metric names, optimizer config) the model's
  shuffle seed and ``epochs_trained`` (so ``fit(..., initial_epoch=model.epochs_trained)``
  resumes exactly), ``fit_state`` (the states of stateful callbacks, ``fastnet._resume``). A
  ``Sequential`` (format ``fastnet.Sequential``) stores its ``layers`` (class name, ``get_config()``,
  name, ``lr_mult``, the state of any random generator the layer owns, e.g. Dropout's); a graph
  (format ``fastnet.Model``) stores its ``graph`` (fastnet._graph_config).
- ``model/<dotted name>``: every parameter and buffer (``0.weight``, ``block.conv2d.weight``).
- ``optimizer/<key>``: the optimizer's ``state_dict()``.

The file is written to a temporary file in the same directory and renamed over the target,
so a crash mid-save leaves any previous file intact (``fastnet._atomic_write``: the next save of
the same target removes a killed writer's temporary file; the mode respects the umask).
"""

from __future__ import annotations

import json
import os

import numpy as np

from . import _compile_outputs, _resume

__all__ = ["save_model", "load", "FORMAT_NAME", "GRAPH_FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "fastnet.Sequential"
GRAPH_FORMAT_NAME = "fastnet.Model"  # same version and layout; "graph" replaces "layers"
FORMAT_VERSION = 1


def _fastnet_version() -> str:
    import fastnet

    return getattr(fastnet, "__version__", "unknown")


def _generator_states(layer) -> dict:
    """JSON-able bit-generator states of every numpy Generator a layer keeps as an attribute."""
    out = {}
    for attr, value in vars(layer).items():
        if isinstance(value, np.random.Generator):
            out[attr] = value.bit_generator.state
    return out


def _restore_generators(layer, states: dict, field: str = "generators", path: str | None = None) -> None:
    """Put saved generator states back; only onto attributes that already hold a Generator, and only
    with bit generators from the schema's allowlist (never a name looked up in numpy.random)."""
    from ._file_schema import BIT_GENERATORS

    for attr, state in states.items():
        gen = getattr(layer, attr, None)
        if not isinstance(gen, np.random.Generator):
            where = f"load: {path!r} {field}" if path is not None else field
            raise ValueError(f"{where}.{attr}: {type(layer).__name__} has no random generator {attr!r}")
        bit_gen = BIT_GENERATORS[state["bit_generator"]]()
        bit_gen.state = state
        setattr(layer, attr, np.random.Generator(bit_gen))


def model_config(model) -> dict:
    """The JSON document stored under ``config``."""
    from .sequential import Sequential

    layers = []
    for layer in model.layers if isinstance(model, Sequential) else []:
        layers.append(
            {
                "class": type(layer).__name__,
                "config": layer.get_config(),
                "name": layer.name,
                "lr_mult": float(layer.lr_mult),
                "training": bool(layer.training),
                "generators": _generator_states(layer),
            }
        )
    compiled = None
    if model.loss is not None:
        compiled = {
            "loss": model.loss.get_config(),
            "metrics": _compile_outputs.metrics_config(model),
            "optimizer": model.optimizer.get_config() if model.optimizer is not None else None,
            "fused": bool(model._fuse),
        }
    doc = {
        "format": FORMAT_NAME if isinstance(model, Sequential) else GRAPH_FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fastnet_version": _fastnet_version(),
        "name": model.name,
        "shuffle_seed": model.shuffle_seed,
        "epochs_trained": int(model.epochs_trained),
        "input_shape": list(model._input_shape) if model._input_shape is not None else None,
        "layers": layers,
        "compile": compiled,
        "preprocessing": getattr(model, "preprocessing", None),  # fastnet.preprocessing record
        _resume.CONFIG_KEY: _resume.for_save(model),
    }
    if not isinstance(model, Sequential):
        doc["graph"] = model.get_config()
    return doc


def _write_npz(fileobj, arrays: dict) -> None:
    """Write the archive (a separate function so tests can simulate a failure mid-save)."""
    np.savez(fileobj, **arrays)


def save_model(model, path) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring for the layout)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"save: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    try:
        text = json.dumps(model_config(model))
    except TypeError as e:
        raise ValueError(
            f"save: the model's config is not JSON-serialisable ({e}); a layer's get_config() "
            "must return plain numbers, strings, lists and dicts"
        ) from None
    arrays = {"config": np.array(text)}
    for key, value in model.state_dict().items():
        arrays[f"model/{key}"] = value
    if model.optimizer is not None:
        for key, value in model.optimizer.state_dict().items():
            arrays[f"optimizer/{key}"] = np.asarray(value)
    for key, value in arrays.items():
        if value.dtype == object:
            raise ValueError(f"save: {key} has dtype object; only numeric arrays can be saved without pickle")

    from ._atomic_write import atomic_write

    atomic_write(path, lambda f: _write_npz(f, arrays))


def _read(path):
    """(config dict, arrays dict) after the whole file passed the schema (``fastnet._file_schema``)."""
    from ._file_schema import read_model_file

    return read_model_file(path)


def _build_layers(config: dict, path: str):
    from .layers.base import LAYER_CLASSES

    layers = []
    for i, spec in enumerate(config["layers"]):
        cls = LAYER_CLASSES[spec["class"]]  # the schema checked the name against the registry
        try:
            layer = cls.from_config(dict(spec.get("config", {})))
        except _BUILD_ERRORS as e:
            raise ValueError(
                f"load: {path!r} layer {i} ({spec['class']}) cannot be rebuilt from its config "
                f"{spec.get('config')}: {e}"
            ) from None
        layer.name = spec.get("name", layer.name)
        layer.lr_mult = float(spec.get("lr_mult", 1.0))
        if "training" in spec:  # absent for a nested model: its layers carry their own mode
            layer.train(bool(spec["training"]))
        _restore_generators(layer, spec.get("generators", {}), f"layers[{i}].generators", path)
        layers.append(layer)
    return layers


# What a constructor may raise on a config the schema let through (types are checked, values are the classes' own).
_BUILD_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, ZeroDivisionError)


def load(path):
    """Rebuild a model saved by ``model.save``: same graph, layers, weights, buffers and, if it was
    compiled, the same loss, metrics and optimizer with its state, so ``fit`` or
    ``train_on_batch`` continue exactly where the saved model was. Never unpickles anything.
    """
    from . import random as _random
    from .model import Model, Sequential

    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"load: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    config, arrays = _read(path)

    # Building layers draws initial weights from the global generator; loading must not
    # change the user's random stream, so restore it afterwards.
    gen = _random.generator()
    saved_state = gen.bit_generator.state
    try:
        if config["format"] == GRAPH_FORMAT_NAME:
            try:
                model = Model.from_config(config.get("graph"))
            except _BUILD_ERRORS as e:
                raise ValueError(f"load: {path!r} holds a graph that cannot be rebuilt: {e}") from None
        else:
            model = Sequential(_build_layers(config, path), name=config.get("name"))
    finally:
        gen.bit_generator.state = saved_state

    model.shuffle_seed = config.get("shuffle_seed")
    model.epochs_trained = int(config.get("epochs_trained") or 0)
    model._loaded_fit_state = _resume.check(config.get(_resume.CONFIG_KEY), path)
    if config.get("input_shape") is not None:
        model._input_shape = tuple(config["input_shape"])
    model.preprocessing = config.get("preprocessing")
    weights = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        model.load_state_dict(weights, strict=True)
    except ValueError as e:
        raise ValueError(f"load: {path!r} weights do not match its architecture: {e}") from None

    compiled = config.get("compile")
    if compiled is not None:
        from . import losses as _losses
        from . import optim as _optim

        try:
            where = f"load: {path!r}"
            loss = _compile_outputs.resolve_loss(model, _losses.from_config(compiled["loss"]), None, where)
            metrics = _compile_outputs.resolve_metrics(model, compiled.get("metrics", []), where)
            optimizer = _optim.from_config(compiled["optimizer"]) if compiled.get("optimizer") is not None else None
            if optimizer is not None:
                opt_state = {k[len("optimizer/") :]: v for k, v in arrays.items() if k.startswith("optimizer/")}
                optimizer.load_state_dict(opt_state)
        except _BUILD_ERRORS as e:
            raise ValueError(f"load: {path!r} compile settings cannot be rebuilt: {e}") from None
        model.loss, model.metrics, model.optimizer = loss, metrics, optimizer
        if compiled.get("fused", False):
            model.fuse()
    return model
