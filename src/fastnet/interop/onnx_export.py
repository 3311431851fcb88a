"""``export_onnx``: write a fastnet model as an ONNX file whose output equals ``model.predict``.

The graph is built with the ``onnx`` package's helpers (``pip install 'fastnet[onnx]'``),
checked with ``onnx.checker`` (full check, with shape inference) and written atomically.
Its input is ``"input"`` with a dynamic batch axis, its output ``"output"``; the loss's link is
part of the graph, so a model trained with ``softmax_cross_entropy`` outputs probabilities,
exactly as ``predict`` does.
"""

from __future__ import annotations

import numpy as np

from .._kernels.dtypes import FLOAT_DTYPES
from ..losses import BinaryCrossEntropy, Loss, SoftmaxCrossEntropy
from ._files import check_path, write_bytes_atomic
from ._optional import require
from .onnx_graph import OnnxGraph
from .onnx_layers import activation, converter_for, supported_layers

DEFAULT_OPSET = 17  # ONNX Runtime >= 1.11, onnxruntime-web, TensorRT 8.5+ all run it
MIN_OPSET = 13  # Softmax over one axis (not "flatten then softmax") needs 13
OUTPUT_NAME, BATCH_DIM = "output", "batch"


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


def emit_model(g: OnnxGraph, model, inputs: list[str], prefix: str = "") -> list[str]:
    """Append the nodes of ``model`` (a Sequential or a graph Model) and return its output names.

    The model's unfused plan is walked in run order, so every activation layer is a node of its
    own (compile's Dense/Conv2D fusion is a runtime detail). A nested model is walked in place.
    Parameters are named by their state_dict keys (``"3.weight"``, ``"block.conv2d.weight"``); a
    shared layer's parameters are one initializer, named after its first call.
    """
    from ..model import Model

    plan = model._current_plan(False)
    values = list(inputs) + [None] * (plan.n_values - plan.n_inputs)
    for step in plan.steps:
        key = f"{prefix}{step.name}"
        ins = [values[i] for i in step.inputs]
        if isinstance(step.layer, Model):
            (out,) = emit_model(g, step.layer, ins, f"{key}.")
        else:
            convert = converter_for(step.layer)
            if convert is None:
                raise ValueError(
                    f"export_onnx: layer {key} ({type(step.layer).__name__} {step.layer.name!r}) has no ONNX "
                    f"converter; supported layers: {', '.join(supported_layers())}"
                )
            out = convert(g, step.layer, ins, key)
        values[step.out] = out
    return [values[i] for i in plan.outputs]


def _check_shape(shape, where: str) -> tuple:
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(
            f"export_onnx: {where} must be a tuple of positive ints (one sample, no batch axis), got {shape!r}"
        )
    return tuple(int(d) for d in shape)


def _input_shapes(model, input_shape) -> list[tuple]:
    """One shape per model input (a model with several inputs takes a list of shapes)."""
    n = model.num_inputs  # (builds a Sequential's chain, which sets input_names)
    shape = input_shape if input_shape is not None else model.input_shape
    if shape is None or (n > 1 and any(s is None for s in shape)) or (n == 1 and None in tuple(shape)):
        raise ValueError(
            "export_onnx: the model's input shape is unknown (it has not seen data yet, or an Input has a None "
            "dimension); pass input_shape=(C, H, W) or (features,), one sample without the batch axis "
            "(a list of them for several inputs)"
        )
    if n == 1:
        return [_check_shape(shape, "input_shape")]
    if not isinstance(shape, (tuple, list)) or len(shape) != n:
        raise ValueError(f"export_onnx: the model has {n} inputs; input_shape must be a list of {n} shapes")
    return [_check_shape(s, f"input_shape[{i}]") for i, s in enumerate(shape)]


def output_names(n: int) -> list[str]:
    return [OUTPUT_NAME if i == 0 else f"{OUTPUT_NAME}_{i}" for i in range(n)]


def _graph_dtype(model, dtype) -> np.dtype:
    if dtype is None:
        return np.dtype(model.dtype)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"export_onnx: dtype must be None, float32 or float64, got {dtype!r}")
    return dt


def build_onnx(model, opset: int = DEFAULT_OPSET, input_shape=None, dtype=None):
    """The checked ``onnx.ModelProto`` of ``model`` (what ``export_onnx`` writes)."""
    from ..model import Model

    onnx = require("onnx", "export_onnx")
    opset = _check_opset(onnx, opset)
    if not isinstance(model, Model):
        raise TypeError(f"export_onnx: expected a fastnet model (Sequential or Model), got {type(model).__name__}")
    shapes = _input_shapes(model, input_shape)
    dtype = _graph_dtype(model, dtype)
    # One eval-mode sample through fastnet itself: a shape mismatch is reported by the layer
    # that sees it, and the output shapes are declared in the graph.
    probe = [np.zeros((1, *s), dtype=model.dtype) for s in shapes]
    outs = model.forward(probe if len(probe) > 1 else probe[0], training=False)
    out_shapes = [o.shape[1:] for o in (outs if isinstance(outs, list) else [outs])]
    # predict applies the loss's link to every output (each output's own loss with several outputs)
    per_output = getattr(model.loss, "losses", None)
    links = [link_activation(x) for x in per_output] if per_output else [link_activation(model.loss)] * len(out_shapes)

    g = OnnxGraph(onnx, dtype, opset)
    in_names, out_names = list(model.input_names), output_names(len(out_shapes))
    for name in in_names + out_names:
        g.fresh(name)
    ys = emit_model(g, model, in_names)
    for i, (y, name, link) in enumerate(zip(ys, out_names, links, strict=True)):
        if link is not None:
            y = activation(g, link, 0.0, y, f"link_{i}" if i else "link")
        g.op("Identity", [y], name, output=name)

    h = onnx.helper
    graph = h.make_graph(
        g.nodes,
        model.name,
        [h.make_tensor_value_info(n, g.elem_type, [BATCH_DIM, *s]) for n, s in zip(in_names, shapes, strict=True)],
        [h.make_tensor_value_info(n, g.elem_type, [BATCH_DIM, *s]) for n, s in zip(out_names, out_shapes, strict=True)],
        initializer=g.initializers,
    )
    opsets = [h.make_opsetid("", opset)]
    proto = h.make_model(
        graph,
        opset_imports=opsets,
        ir_version=h.find_min_ir_version_for(opsets),  # the oldest IR that has this opset: widest runtime support
        producer_name="fastnet",
        producer_version=_version(),
        doc_string=f"fastnet model {model.name!r}; outputs = model.predict (link: {link or 'identity'})",
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path, opset: int = DEFAULT_OPSET, input_shape=None, dtype=None):
    """Write ``model`` to ``path`` as ONNX (opset ``opset``, default 17) and return the ModelProto.

    The graph takes ``"input"`` of shape ``(batch, *input_shape)`` with a dynamic batch axis and
    returns ``"output"``, equal to ``model.predict(input)`` (the loss's softmax/sigmoid link
    included). A graph model keeps its input names and has outputs ``output``, ``output_1``, ...
    ``input_shape`` (one sample, no batch axis; a list for several inputs) defaults to
    ``model.input_shape``. Sequential and graph models (Add, Multiply, Concatenate, shared
    layers, nested models) are exported alike.
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
