"""``save_weights`` / ``load_weights``: a model's tensors in a safetensors file, PyTorch style.

Names and layouts are those of the equivalent PyTorch module, so the file is a PyTorch
``state_dict`` (``safetensors.torch.load_file`` gives one ``model.load_state_dict`` accepts) and a
PyTorch ``state_dict`` saved with ``safetensors.torch.save_file`` loads here:

- layer ``i`` of a Sequential is module ``i`` of an ``nn.Sequential`` (one torch module per
  fastnet layer; parameter-free layers such as ReLU or Flatten keep their index too);
- ``Dense`` <-> ``nn.Linear``: ``i.weight`` is (out, in), the transpose of fastnet's (in, out);
- ``Conv2D`` <-> ``nn.Conv2d``: ``i.weight`` is OIHW in both;
- ``BatchNorm1d/2d`` <-> ``nn.BatchNorm1d/2d``: ``weight``, ``bias``, ``running_mean``,
  ``running_var`` and ``num_batches_tracked`` (int64 scalar). fastnet does not count
  BatchNorm updates: it writes the optimizer's step count (0 without an optimizer) and ignores
  the value on load (PyTorch only reads it when ``momentum=None``).

safetensors holds raw tensors only (no code, no pickle); the library checks the header
against the file size before anything is read, and every name, shape and dtype is checked
here before any weight of the model changes.
"""

from __future__ import annotations

import numpy as np

from .. import layers as L
from ._files import check_path, write_bytes_atomic
from ._naming import named_layers, natural_order
from ._optional import require

BATCHNORMS = (L.BatchNorm1d, L.BatchNorm2d)
COUNTER = "num_batches_tracked"
_FLOAT_CODES = {"F16", "F32", "F64"}
_INT_CODES = {"I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}


def _transposed(layer, key: str) -> bool:
    return type(layer) is L.Dense and key == "weight"  # nn.Linear stores (out, in)


def to_torch_layout(layer, key: str, array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array.T if _transposed(layer, key) else array)


def torch_shape(layer, key: str, shape: tuple) -> tuple:
    return tuple(reversed(shape)) if _transposed(layer, key) else tuple(shape)


def _targets(model) -> dict[str, tuple]:
    """name -> (layer, key, the model's array) for every parameter and buffer."""
    out = {}
    for prefix, layer in named_layers(model):
        for key, arr in {**layer.params, **layer.buffers}.items():
            out[f"{prefix}.{key}"] = (layer, key, arr)
    return out


def _counters(model) -> list[str]:
    return [f"{prefix}.{COUNTER}" for prefix, layer in named_layers(model) if isinstance(layer, BATCHNORMS)]


def torch_state(model) -> dict[str, np.ndarray]:
    """The model's tensors under PyTorch names and layouts (what ``save_weights`` writes)."""
    tensors = {name: to_torch_layout(layer, key, arr) for name, (layer, key, arr) in _targets(model).items()}
    steps = int(getattr(getattr(model, "optimizer", None), "iterations", 0) or 0)
    for name in _counters(model):
        tensors[name] = np.array(steps, dtype=np.int64)
    return tensors


def save_weights(model, path) -> None:
    """Write the model's parameters and buffers to ``path`` (safetensors, atomic), under PyTorch
    names and layouts (see the module docstring). Needs ``fastnet[safetensors]``."""
    path = check_path(path, "save_weights")
    st = require("safetensors.numpy", "save_weights")
    from .. import __version__

    data = st.save(torch_state(model), metadata={"format": "pt", "producer": f"fastnet {__version__}"})
    write_bytes_atomic(path, data)


def _read_header(path: str) -> dict[str, tuple[str, tuple]]:
    """name -> (dtype code, shape) of every tensor, without reading the data."""
    safetensors = require("safetensors", "load_weights")
    try:
        with safetensors.safe_open(path, framework="numpy") as f:
            return {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape())) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # safetensors' own error type: a damaged or foreign file
        raise ValueError(f"load_weights: {path} is not a readable safetensors file: {e}") from None


def _problems(model, header: dict, strict: bool) -> list[str]:
    targets, counters = _targets(model), set(_counters(model))
    missing = [n for n in targets if n not in header]  # the model's order
    unexpected = natural_order(n for n in header if n not in targets and n not in counters)
    shapes, dtypes = [], []
    for name in natural_order(header):
        code, shape = header[name]
        if name in counters:
            if code not in _INT_CODES or shape not in ((), (1,)):
                dtypes.append(f"{name}: expected an integer scalar, got {code} {shape}")
        elif name in targets:
            layer, key, arr = targets[name]
            want = torch_shape(layer, key, arr.shape)
            if shape != want:
                shapes.append(f"{name}: file {shape}, model expects {want}")
            if code not in _FLOAT_CODES:
                dtypes.append(f"{name}: expected float16/32/64, got {code}")
    problems = []
    if strict and missing:
        problems.append(f"missing {missing}")
    if strict and unexpected:
        problems.append(f"unexpected {unexpected}")
    if shapes:
        problems.append(f"shape mismatches [{'; '.join(shapes)}] (PyTorch layouts: Linear weight is (out, in))")
    if dtypes:
        problems.append(f"bad dtypes [{'; '.join(dtypes)}]")
    return problems


def load_weights(model, path, strict: bool = True):
    """Copy the tensors of a safetensors file into ``model`` in place and return the model.

    The file uses PyTorch names and layouts (see the module docstring): one written by
    ``save_weights`` or by ``safetensors.torch.save_file(torch_model.state_dict(), path)``.
    ``strict=True`` requires exactly the model's names (``num_batches_tracked`` may be absent);
    shapes must always match. Every problem is listed in one ValueError and then nothing is
    changed. Values are cast to each parameter's dtype. Needs ``fastnet[safetensors]``.
    """
    path = check_path(path, "load_weights")
    header = _read_header(path)
    problems = _problems(model, header, bool(strict))
    if problems:
        raise ValueError(f"load_weights: {path} does not match the model: " + "; ".join(problems))
    safetensors = require("safetensors", "load_weights")
    targets = _targets(model)
    values = {}
    with safetensors.safe_open(path, framework="numpy") as f:
        for name in header:
            if name in targets:
                layer, key, _ = targets[name]
                value = f.get_tensor(name)
                values[name] = value.T if _transposed(layer, key) else value
    for name, value in values.items():  # all read: now change the model
        targets[name][2][...] = value  # in place: optimizer state keeps pointing at the same arrays
    return model
