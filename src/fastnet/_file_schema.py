"""The schema of a saved model file, checked in full before anything is built.

``read_model_file(path)`` opens the archive (``_npz_reader``: zip directory and ``.npy`` headers
checked before data), parses ``config`` and checks its structure and types, every layer against the
layer registry (``validate_layer_spec``, reusable for nested layers), the loss/optimizer/metric names
against theirs, the random-generator states against an allowlist of bit generators, every declared
parameter shape against the stored array's header shape and a cap on declared parameter counts, and
that the archive holds only the members the config accounts for. Only then are the arrays read.
Every failure is a ``ValueError`` naming the file and the field.

Nothing here calls anything named by the file: class names are looked up in fastnet's registries,
bit-generator names in ``BIT_GENERATORS``.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from ._npz_reader import NpzArchive

__all__ = [
    "read_model_file",
    "validate_layer_spec",
    "validate_layer_list",
    "declared_elements",
    "declared_shapes",
    "BIT_GENERATORS",
    "MEMBER_PREFIXES",
    "PARAM_SHAPES",
    "MAX_PARAMS",
]

MAX_CONFIG_BYTES = 64 << 20
MAX_LAYERS = 100_000
MAX_PARAMS = 1 << 31  # declared parameter + buffer elements of one file
MAX_UNTABLED_INT = 1 << 16  # config ints of a layer class whose parameter shapes are not in PARAM_SHAPES
# Top-level member prefixes a model file may hold (other features that save arrays add theirs here).
MEMBER_PREFIXES = ("model/", "optimizer/")
BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.Philox)}
BIT_GENERATORS.update({cls.__name__: cls for cls in (np.random.SFC64, np.random.MT19937)})
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MODEL_CLASSES = ("Sequential", "Model")  # layer entries that nest a whole model


def _pair(v, field, err):
    if isinstance(v, list) and len(v) == 2:
        return tuple(_int(x, field, err, minimum=1) for x in v)
    return (_int(v, field, err, minimum=1),) * 2


def _int(v, field, err, minimum=0, maximum=None):
    if type(v) is not int or v < minimum or (maximum is not None and v > maximum):
        raise err(f"{field} must be an int >= {minimum}, got {v!r}")
    return v


def _dense(cfg, err, where):
    i, o = (
        _int(cfg.get("in_features"), f"{where}.in_features", err, 1),
        _int(cfg.get("out_features"), f"{where}.out_features", err, 1),
    )
    return {"weight": (i, o), **({"bias": (o,)} if cfg.get("bias", True) else {})}


def _conv(cfg, err, where):
    c_in = _int(cfg.get("in_channels"), f"{where}.in_channels", err, 1)
    c_out = _int(cfg.get("out_channels"), f"{where}.out_channels", err, 1)
    kh, kw = _pair(cfg.get("kernel_size"), f"{where}.kernel_size", err)
    return {"weight": (c_out, c_in, kh, kw), **({"bias": (c_out,)} if cfg.get("bias", True) else {})}


def _norm(cfg, err, where):
    c = _int(cfg.get("num_features"), f"{where}.num_features", err, 1)
    return {"weight": (c,), "bias": (c,), "running_mean": (c,), "running_var": (c,)}


# class name -> config -> {array name: shape}: the arrays a layer allocates, known before building it.
PARAM_SHAPES = {"Dense": _dense, "Conv2D": _conv, "BatchNorm1d": _norm, "BatchNorm2d": _norm}


def declared_shapes(cls_name: str, cfg: dict, err, where: str):
    """The parameter/buffer shapes layer class ``cls_name`` with ``cfg`` will allocate, or None when
    the class is not in ``PARAM_SHAPES`` (then its config ints are bounded by ``MAX_UNTABLED_INT``)."""
    fn = PARAM_SHAPES.get(cls_name)
    if fn is not None:
        return fn(cfg, err, where)
    for key, v in cfg.items():
        for x in v if isinstance(v, list) else [v]:
            if type(x) is int and abs(x) > MAX_UNTABLED_INT:
                raise err(f"{where}.{key} = {x} exceeds the limit {MAX_UNTABLED_INT} for a {cls_name} config")
    return None


def _json_value(v, depth=0) -> bool:
    if depth > 200:
        return False
    if v is None or isinstance(v, (bool, int, str)):
        return True
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, list):
        return all(_json_value(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _json_value(x, depth + 1) for k, x in v.items())
    return False


def _check_config_dict(v, field, err):
    if not isinstance(v, dict) or not all(isinstance(k, str) and _IDENT.match(k) for k in v):
        raise err(f"{field} must be a dict of keyword arguments, got {type(v).__name__}")
    if not _json_value(v):
        raise err(f"{field} holds values that are not finite numbers, strings, lists or dicts")
    return v


def _check_generators(states, field, err):
    if not isinstance(states, dict):
        raise err(f"{field} must be a dict, got {type(states).__name__}")
    for attr, state in states.items():
        f = f"{field}.{attr}"
        if not isinstance(attr, str) or not _IDENT.match(attr):
            raise err(f"{f}: not an attribute name")
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if not isinstance(name, str) or name not in BIT_GENERATORS:
            got = state.get("bit_generator") if isinstance(state, dict) else state
            raise err(f"{f}.bit_generator must be one of {sorted(BIT_GENERATORS)}, got {got!r}")
        if not _json_value(state) or len(json.dumps(state)) > 100_000:
            raise err(f"{f}: not a bit-generator state")
        try:  # set it on a fresh generator: numpy checks the state's structure and types
            BIT_GENERATORS[state["bit_generator"]]().state = state
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise err(f"{f}: invalid {state['bit_generator']} state ({type(e).__name__}: {e})") from None


def validate_layer_spec(spec, field: str, err) -> tuple[str, dict, dict | None]:
    """Check one saved layer entry (``{"class", "config", "name", "lr_mult", "training",
    "generators"}``) against the layer registry, recursing into a nested model's layer entries;
    returns (class name, config, declared shapes or None, the nested entries' results or None).
    ``err(message)`` makes the ValueError (it names the file); ``field`` names the entry, e.g. ``layers[3]``.
    """
    from .layers.base import LAYER_CLASSES

    if not isinstance(spec, dict):
        raise err(f"{field} must be a dict, got {type(spec).__name__}")
    cls_name = spec.get("class")
    known = sorted(n for n in LAYER_CLASSES if not n.startswith("_"))  # "_Pool2D" etc. are base classes
    if not isinstance(cls_name, str) or cls_name not in known:
        raise err(f"{field}.class: unknown layer class {cls_name!r}; known classes: {known}")
    cfg = _check_config_dict(spec.get("config", {}), f"{field}.config", err)
    if not isinstance(spec.get("name", ""), str):
        raise err(f"{field}.name must be a string")
    lr = spec.get("lr_mult", 1.0)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
        raise err(f"{field}.lr_mult must be a finite number >= 0, got {lr!r}")
    if not isinstance(spec.get("training", True), bool):
        raise err(f"{field}.training must be true or false")
    _check_generators(spec.get("generators", {}), f"{field}.generators", err)
    if cls_name in MODEL_CLASSES:  # a nested model: its config holds its own layer entries
        return cls_name, cfg, None, validate_layer_list(cfg.get("layers"), f"{field}.config.layers", err)
    return cls_name, cfg, declared_shapes(cls_name, cfg, err, f"{field}.config"), None


def validate_layer_list(specs, field: str, err) -> list:
    """Check a list of layer entries (a Sequential's ``layers``, a graph's ``layers``, or a nested
    model's); returns ``validate_layer_spec``'s tuple for each."""
    if not isinstance(specs, list) or len(specs) > MAX_LAYERS:
        raise err(f"{field} must be a list of at most {MAX_LAYERS} layer entries")
    return [validate_layer_spec(s, f"{field}[{i}]", err) for i, s in enumerate(specs)]


def declared_elements(checked) -> int:
    """Parameter + buffer elements a checked layer list will allocate (nested models included)."""
    total = 0
    for _, _, shapes, nested in checked:
        total += declared_elements(nested) if nested is not None else 0
        total += sum(math.prod(shape) for shape in (shapes or {}).values())
    return total


def _check_registered(spec, field, registry, err, optional=False):
    if spec is None and optional:
        return
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) or spec["class_name"] not in registry:
        got = spec.get("class_name") if isinstance(spec, dict) else spec
        raise err(f"{field}.class_name must be one of {sorted(registry)}, got {got!r}")
    _check_config_dict(spec.get("config", {}), f"{field}.config", err)


def _check_compile(c, err):
    from . import losses, metrics
    from .optim import OPTIMIZER_CLASSES

    if c is None:
        return
    if not isinstance(c, dict):
        raise err(f"compile must be a dict or null, got {type(c).__name__}")
    _check_registered(c.get("loss"), "compile.loss", losses.LOSS_CLASSES, err)
    _check_registered(c.get("optimizer"), "compile.optimizer", OPTIMIZER_CLASSES, err, optional=True)
    names = c.get("metrics", [])
    if isinstance(names, dict):  # several outputs: {output name: [metric names]}
        if not all(isinstance(k, str) and isinstance(v, list) for k, v in names.items()):
            raise err(f"compile.metrics must map output names to lists of metric names, got {names!r}")
        names = [n for v in names.values() for n in v]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise err(f"compile.metrics must be a list of metric names, got {names!r}")
    for n in names:
        try:
            metrics.get(n)
        except (ValueError, TypeError) as e:
            raise err(f"compile.metrics: {e}") from None
    if not isinstance(c.get("fused", False), bool):
        raise err("compile.fused must be true or false")


def _check_top(config, err):
    from .serialization import FORMAT_NAME, FORMAT_VERSION, GRAPH_FORMAT_NAME

    if not isinstance(config, dict):
        raise err(f"config must be a JSON object, got {type(config).__name__}")
    if config.get("format") not in (FORMAT_NAME, GRAPH_FORMAT_NAME) or not isinstance(config.get("format"), str):
        raise err(f"is not a fastnet model file (config.format {config.get('format')!r}, expected {FORMAT_NAME!r})")
    if config.get("format_version") != FORMAT_VERSION or type(config.get("format_version")) is not int:
        raise err(
            f"has model format version {config.get('format_version')!r} (config.format_version, written by fastnet "
            f"{config.get('fastnet_version')}); this fastnet reads version {FORMAT_VERSION}"
        )
    if not isinstance(config.get("name", ""), (str, type(None))):
        raise err("config.name must be a string")
    for key in ("shuffle_seed", "epochs_trained"):
        v = config.get(key)
        if v is not None:
            _int(v, f"config.{key}", err, 0, 2**64)
    shape = config.get("input_shape")
    if shape is not None and (not isinstance(shape, list) or len(shape) > 32):
        raise err(f"config.input_shape must be a list of ints or null, got {shape!r}")
    for s in shape or []:
        _int(s, "config.input_shape[]", err, 0, 2**40)
    rec = config.get("preprocessing")
    if rec is not None:
        r = rec.get("range") if isinstance(rec, dict) else None
        ok = isinstance(r, list) and len(r) == 2 and all(type(v) in (int, float) and math.isfinite(v) for v in r)
        div = rec.get("divisor") if ok else None
        ok = ok and (div is None or (type(div) in (int, float) and 0 < div < math.inf))
        ok = ok and isinstance(rec.get("source_dtype", ""), str) and isinstance(rec.get("layout") or "", str)
        if not ok or not _json_value(rec):
            raise err(f"config.preprocessing must be a record with a finite [min, max] range, got {rec!r}")
    if config["format"] == GRAPH_FORMAT_NAME:
        graph = config.get("graph")
        if not isinstance(graph, dict) or not _json_value(graph):
            raise err(f"config.graph must be a graph config (a JSON object), got {type(graph).__name__}")
    _check_compile(config.get("compile"), err)


def _check_arrays(archive, config, specs, declared: int, err) -> list[str]:
    """Declared shapes vs stored headers (exactly for a Sequential's own layers, in total for nested
    and graph models); returns the members to read."""
    if declared > MAX_PARAMS:
        raise err(f"config declares {declared} parameter elements, more than the limit {MAX_PARAMS}")
    stored_total, model_shapes = 0, {}
    for name in archive.members:
        if name == "config":
            continue
        if not name.startswith(MEMBER_PREFIXES):
            raise err(
                f"has unexpected member {name + '.npy'!r} (a model file holds config, {', '.join(MEMBER_PREFIXES)})"
            )
        if name.startswith("model/"):
            stored_total += math.prod(archive.header(name).shape)
            idx, _, key = name[len("model/") :].partition(".")
            if idx.isdigit():
                model_shapes[(int(idx), key)] = name
    for i, (cls_name, _, shapes, _) in enumerate(specs):
        if shapes is None:
            continue
        stored = {k for (j, k) in model_shapes if j == i}
        if stored != set(shapes):
            raise err(
                f"layers[{i}] ({cls_name}) has stored arrays {sorted(stored)}, its config declares {sorted(shapes)}"
            )
        for key, shape in shapes.items():
            hdr = archive.header(model_shapes[(i, key)])
            if tuple(hdr.shape) != tuple(shape):
                raise err(
                    f"layers[{i}] ({cls_name}) config declares {key} of shape {tuple(shape)}, "
                    f"the stored array {model_shapes[(i, key)]!r} has shape {tuple(hdr.shape)}"
                )
    if declared > stored_total:  # checked before building, so a lying config allocates nothing
        raise err(
            f"config declares {declared} parameter elements but the file stores only {stored_total}: "
            "its layers do not match its arrays"
        )
    wanted = []
    for name in archive.members:
        if name == "config":
            continue
        hdr = archive.header(name)
        if hdr.dtype.kind not in "biuf":
            raise err(f"member {name!r} has dtype {hdr.dtype}, expected numbers")
        if name.startswith("optimizer/"):
            _check_optimizer_member(name, hdr, archive, err)
        wanted.append(name)
    return wanted


def _check_optimizer_member(name, hdr, archive, err):
    key = name[len("optimizer/") :]
    if key in ("iterations", "lr") or key.startswith("step/"):
        if hdr.shape != ():
            raise err(f"member {name!r} must be a scalar, has shape {hdr.shape}")
        return
    _, _, param = key.partition("/")
    target = "model/" + param
    if not param or target not in archive.members:
        raise err(f"member {name!r} is optimizer state of no stored parameter")
    if archive.header(target).shape != hdr.shape:
        raise err(f"member {name!r} has shape {hdr.shape}, its parameter {target!r} {archive.header(target).shape}")


def read_model_file(path):
    """``(config, arrays)`` of a model file after the whole file passed the schema (see module doc)."""
    with NpzArchive(path) as archive:
        err = archive.error
        info = archive.members.get("config")
        if info is None:
            raise err("is not a fastnet model file (it has no 'config' entry)")
        if info.file_size > MAX_CONFIG_BYTES:
            raise err(f"config member is {info.file_size} bytes, more than the limit {MAX_CONFIG_BYTES}")
        hdr = archive.header("config")
        if hdr.dtype.kind != "U" or hdr.shape != ():
            raise err(f"config must be a 0-d unicode array, got {hdr.dtype} of shape {hdr.shape}")
        try:
            config = json.loads(str(archive.read("config")[()]))
        except (ValueError, RecursionError) as e:
            raise err(f"config is not JSON ({type(e).__name__}: {e})") from None
        _check_top(config, err)
        if config["format"] == "fastnet.Model":  # serialization.GRAPH_FORMAT_NAME
            graph_specs = validate_layer_list(config["graph"].get("layers"), "graph.layers", err)
            declared, specs = declared_elements(graph_specs), []
        else:
            specs = validate_layer_list(config.get("layers"), "layers", err)
            declared = declared_elements(specs)
        names = _check_arrays(archive, config, specs, declared, err)
        arrays = {name: archive.read(name) for name in names}
    return config, arrays
