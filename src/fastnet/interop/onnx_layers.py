"""ONNX converters for fastnet's layers: one function per layer class.

A converter ``f(g, layer, inputs, prefix) -> output`` appends the nodes computing ``layer`` in
eval mode (what ``predict`` runs) to the ``OnnxGraph`` ``g``; ``inputs`` are the names of the
layer's input tensors and ``prefix`` names its parameters (``"0"`` gives ``0.weight``, the
state_dict key). Layouts need no conversion: fastnet is NCHW like ONNX, and Dense keeps its
(in, out) weight, which is exactly ``Gemm``'s B.

The classes are matched exactly (not through subclasses): a subclass may compute something
else, so it must register its own converter with ``register``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import layers as L

CONVERTERS: dict[type, object] = {}


def register(layer_class: type):
    """Decorator: ``@register(MyLayer)`` makes ``export_onnx`` convert ``MyLayer`` with the function."""

    def wrap(fn):
        CONVERTERS[layer_class] = fn
        return fn

    return wrap


def converter_for(layer):
    return CONVERTERS.get(type(layer))


def supported_layers() -> list[str]:
    return sorted(cls.__name__ for cls in CONVERTERS)


# ---- activations (also used for Dense's built-in activation) -------------------------------------
def activation(g, name: str, alpha: float, x: str, hint: str) -> str:
    """Nodes for a fastnet activation name ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax")."""
    if name == "relu":
        return g.op("Relu", [x], hint)
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], hint, alpha=float(alpha))
    if name == "sigmoid":
        return g.op("Sigmoid", [x], hint)
    if name == "tanh":
        return g.op("Tanh", [x], hint)
    if name == "softmax":  # fastnet's softmax is over the last axis; opset >= 13 Softmax is per-axis
        return g.op("Softmax", [x], hint, axis=-1)
    if name == "gelu":
        if g.opset >= 20:
            return g.op("Gelu", [x], hint, approximate="none")
        # exact GELU before opset 20: x * 0.5 * (1 + erf(x / sqrt(2)))
        scaled = g.op("Mul", [x, g.scalar(f"{hint}.inv_sqrt2", 1.0 / math.sqrt(2.0))], f"{hint}/scaled")
        erf = g.op("Erf", [scaled], f"{hint}/erf")
        one_plus = g.op("Add", [erf, g.scalar(f"{hint}.one", 1.0)], f"{hint}/one_plus")
        half_x = g.op("Mul", [x, g.scalar(f"{hint}.half", 0.5)], f"{hint}/half_x")
        return g.op("Mul", [half_x, one_plus], hint)
    raise ValueError(f"export_onnx: activation {name!r} has no ONNX converter")


def _simple(layer_class, name):
    @register(layer_class)
    def convert(g, layer, inputs, prefix):
        return activation(g, name, getattr(layer, "alpha", 0.0), inputs[0], prefix)

    return convert


for _cls, _name in (
    (L.ReLU, "relu"),
    (L.LeakyReLU, "leaky_relu"),
    (L.Sigmoid, "sigmoid"),
    (L.Tanh, "tanh"),
    (L.GELU, "gelu"),
    (L.Softmax, "softmax"),
):
    _simple(_cls, _name)


# ---- parametrised layers -------------------------------------------------------------------------
@register(L.Dense)
def _dense(g, layer, inputs, prefix):
    # Only the configured activation is emitted: an activation fused by a model's compile is
    # still a layer of its own in the model and is converted there.
    w = g.param(layer, "weight", layer.params["weight"], f"{prefix}.weight")
    args = [inputs[0], w]
    if layer.use_bias:
        args.append(g.param(layer, "bias", layer.params["bias"], f"{prefix}.bias"))
    y = g.op("Gemm", args, prefix if layer.activation is None else f"{prefix}/linear")
    if layer.activation is None:
        return y
    return activation(g, layer.activation, layer.alpha, y, prefix)


def _pads(padding) -> list[int]:
    ph, pw = padding
    return [int(ph), int(pw), int(ph), int(pw)]  # ONNX: begins (H, W) then ends (H, W)


@register(L.Conv2D)
def _conv2d(g, layer, inputs, prefix):
    args = [inputs[0], g.param(layer, "weight", layer.params["weight"], f"{prefix}.weight")]
    if layer.use_bias:
        args.append(g.param(layer, "bias", layer.params["bias"], f"{prefix}.bias"))
    return g.op(
        "Conv",
        args,
        prefix,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=_pads(layer.padding),
        dilations=[1, 1],
        group=1,
    )


@register(L.BatchNorm1d)
@register(L.BatchNorm2d)
def _batchnorm(g, layer, inputs, prefix):
    # Eval mode: normalise with the running statistics (ONNX BatchNormalization's inference form).
    names = [g.param(layer, k, layer.params[k], f"{prefix}.{k}") for k in ("weight", "bias")]
    names += [g.param(layer, k, layer.buffers[k], f"{prefix}.{k}") for k in ("running_mean", "running_var")]
    return g.op("BatchNormalization", [inputs[0], *names], prefix, epsilon=float(layer.eps))


# ---- pooling -------------------------------------------------------------------------------------
@register(L.MaxPool2D)
def _maxpool(g, layer, inputs, prefix):
    # ONNX MaxPool ignores padded cells, which is fastnet's "padding acts as -inf".
    return g.op(
        "MaxPool",
        inputs[:1],
        prefix,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=_pads(layer.padding),
    )


@register(L.AvgPool2D)
def _avgpool(g, layer, inputs, prefix):
    return g.op(
        "AveragePool",
        inputs[:1],
        prefix,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=_pads(layer.padding),
        count_include_pad=1,  # fastnet (like PyTorch's default) averages padding as zeros
    )


@register(L.GlobalAvgPool2D)
def _global_avgpool(g, layer, inputs, prefix):
    pooled = g.op("GlobalAveragePool", inputs[:1], f"{prefix}/pool")  # (N, C, 1, 1)
    return g.op("Flatten", [pooled], prefix, axis=1)  # fastnet returns (N, C)


# ---- shape-only and eval-identity layers ---------------------------------------------------------
@register(L.Dropout)
def _dropout(g, layer, inputs, prefix):
    return g.op("Identity", inputs[:1], prefix)  # inverted dropout is the identity in eval mode


@register(L.Flatten)
def _flatten(g, layer, inputs, prefix):
    return g.op("Flatten", inputs[:1], prefix, axis=1)


@register(L.Reshape)
def _reshape(g, layer, inputs, prefix):
    # 0 copies the (dynamic) batch dimension; fastnet's -1 means the same as ONNX's.
    shape = g.const(f"{prefix}.shape", np.array([0, *layer.shape], dtype=np.int64))
    return g.op("Reshape", [inputs[0], shape], prefix)


# ---- merge layers (graph models) -----------------------------------------------------------------
@register(L.Add)
def _add(g, layer, inputs, prefix):
    return g.op("Sum", inputs, prefix)  # variadic, same shapes (fastnet's merges never broadcast)


@register(L.Multiply)
def _multiply(g, layer, inputs, prefix):
    y = inputs[0]
    for k, x in enumerate(inputs[1:], 1):
        y = g.op("Mul", [y, x], prefix if k == len(inputs) - 1 else f"{prefix}/mul{k}")
    return y


@register(L.Concatenate)
def _concatenate(g, layer, inputs, prefix):
    # fastnet counts the axis with the batch axis (Keras), as ONNX does; negative counts from the end
    return g.op("Concat", inputs, prefix, axis=int(layer.axis))
