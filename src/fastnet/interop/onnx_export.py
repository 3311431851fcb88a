"""``export_onnx``: write a fastnet model as an ONNX file whose output equals ``model.predict``.

The graph is built with the ``onnx`` package's helpers (``pip install 'fastnet[onnx]'``),
checked with ``onnx.checker`` (full check, with shape inference) and written atomically.
Its input is ``"input"`` with a dynamic batch axis, its output ``"output"``; the loss's link is
part of the graph, so a model trained with ``softmax_cross_entropy`` outputs probabilities,
exactly as ``predict`` does.
"""

from __future__ import annotations

import numpy as np

from ..losses import BinaryCrossEntropy, Loss, SoftmaxCrossEntropy
from ._files import check_path, write_bytes_atomic
from ._naming import refuse_graph
from ._optional import require
from .onnx_graph import OnnxGraph
from .onnx_layers import converter_for, supported_layers

DEFAULT_OPSET = 17  # ONNX Runtime >= 1.11, onnxruntime-web, TensorRT 8.5+ all run it
MIN_OPSET = 13  # Softmax over one axis (not "flatten then softmax") needs 13
INPUT_NAME, OUTPUT_NAME, BATCH_DIM = "input", "output", "batch"


def _check_opset(onnx, opset) -> int:
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"export_onnx: opset must be an int, got {type(opset).__name__}")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= int(opset) <= newest:
        raise ValueError(
            f"export_onnx: opset must be in [{MIN_OPSET}, {newest}] (the installed onnx knows up to {newest}), "
            f"got {opset}"
        )
    return int(opset)


def link_activation(loss) -> str | None:
    """The activation ``predict`` applies after the network for ``loss`` (None: identity)."""
    if loss is None or type(loss).link is Loss.link:
        return None
    if type(loss) is SoftmaxCrossEntropy:
        return "softmax"
    if type(loss) is BinaryCrossEntropy:
        return "sigmoid" if loss.from_logits else None
    raise ValueError(
        f"export_onnx: the loss {type(loss).__name__} defines its own link(), which has no ONNX converter; "
        "export the model without a loss (model.loss = None) and apply the link yourself"
    )


def emit_layers(g: OnnxGraph, model, inputs: list[str], prefix: str = "") -> list[str]:
    """Append the nodes of ``model`` (a Sequential: a chain of layers) and return its outputs.

    Parameters are named by their state_dict keys (``"3.weight"``), under ``prefix`` for a
    model nested in another one.
    """
    x = inputs[0]
    for i, layer in enumerate(model.layers):
        key = f"{prefix}{i}"
        convert = converter_for(layer)
        if convert is None:
            raise ValueError(
                f"export_onnx: layer {key} ({type(layer).__name__} {layer.name!r}) has no ONNX converter; "
                f"supported layers: {', '.join(supported_layers())}"
            )
        x = convert(g, layer, [x], key)
    return [x]


def _input_shape(model, input_shape) -> tuple:
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            "export_onnx: the model's input shape is unknown (it has not seen data yet); "
            "pass input_shape=(C, H, W) or (features,), one sample without the batch axis"
        )
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(f"export_onnx: input_shape must be a tuple of positive ints (no batch axis), got {shape!r}")
    return tuple(int(d) for d in shape)


def _graph_dtype(model, dtype) -> np.dtype:
    if dtype is None:
        return np.dtype(model.dtype)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"export_onnx: dtype must be None, float32 or float64, got {dtype!r}")
    return dt


def build_onnx(model, opset: int = DEFAULT_OPSET, input_shape=None, dtype=None):
    """The checked ``onnx.ModelProto`` of ``model`` (what ``export_onnx`` writes)."""
    onnx = require("onnx", "export_onnx")
    opset = _check_opset(onnx, opset)
    if not hasattr(model, "layers") or not hasattr(model, "predict"):
        raise TypeError(f"export_onnx: expected a fastnet model, got {type(model).__name__}")
    refuse_graph(model)
    shape = _input_shape(model, input_shape)
    dtype = _graph_dtype(model, dtype)
    # One eval-mode sample through fastnet itself: a shape mismatch is reported by the layer
    # that sees it, and the output's shape is declared in the graph.
    out_shape = model.forward(np.zeros((1, *shape), dtype=model.dtype), training=False).shape[1:]
    link = link_activation(model.loss)

    g = OnnxGraph(onnx, dtype, opset)
    g.fresh(INPUT_NAME)
    g.fresh(OUTPUT_NAME)
    (y,) = emit_layers(g, model, [INPUT_NAME])
    if link is not None:
        from .onnx_layers import activation

        y = activation(g, link, 0.0, y, "link")
    g.op("Identity", [y], "output", output=OUTPUT_NAME)

    h = onnx.helper
    graph = h.make_graph(
        g.nodes,
        model.name,
        [h.make_tensor_value_info(INPUT_NAME, g.elem_type, [BATCH_DIM, *shape])],
        [h.make_tensor_value_info(OUTPUT_NAME, g.elem_type, [BATCH_DIM, *out_shape])],
        initializer=g.initializers,
    )
    opsets = [h.make_opsetid("", opset)]
    proto = h.make_model(
        graph,
        opset_imports=opsets,
        ir_version=h.find_min_ir_version_for(opsets),  # the oldest IR that has this opset: widest runtime support
        producer_name="fastnet",
        producer_version=_version(),
        doc_string=f"fastnet model {model.name!r}; output = model.predict (link: {link or 'identity'})",
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path, opset: int = DEFAULT_OPSET, input_shape=None, dtype=None):
    """Write ``model`` to ``path`` as ONNX (opset ``opset``, default 17) and return the ModelProto.

    The graph takes ``"input"`` of shape ``(batch, *input_shape)`` with a dynamic batch axis and
    returns ``"output"``, equal to ``model.predict(input)`` (the loss's softmax/sigmoid link
    included). ``input_shape`` (one sample, no batch axis) defaults to ``model.input_shape``.
    Every layer runs in eval mode: BatchNorm uses its running statistics, Dropout is the
    identity. ``dtype`` (default: the model's) sets the graph's float type; ONNX Runtime's CPU
    convolution and pooling run float32 only, so export a float64 conv net with
    ``dtype="float32"``. An unsupported layer raises ValueError naming it. Needs ``fastnet[onnx]``.
    """
    path = check_path(path, "export_onnx")
    proto = build_onnx(model, opset=opset, input_shape=input_shape, dtype=dtype)
    write_bytes_atomic(path, proto.SerializeToString())
    return proto


def _version() -> str:
    from .. import __version__

    return __version__
