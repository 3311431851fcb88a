"""Elementwise activations, plain NumPy. Backward uses the saved output where it can
(ReLU, sigmoid, tanh), so a layer keeps one array, not two."""

from math import sqrt

import numpy as np

# The activations the conv, BatchNorm and Add kernels apply themselves (``act=``: a model's
# compile fused the activation layer after them); None is none.
FUSED_ACTIVATIONS = (None, "relu")


def check_fused_act(act, where: str) -> bool:
    """True for ``act="relu"``, False for None; anything else is a ValueError naming ``where``."""
    if act not in FUSED_ACTIVATIONS:
        raise ValueError(f"{where}: act must be None or 'relu', got {act!r}")
    return act == "relu"


__all__ = [
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "gelu_forward",
    "gelu_backward",
    "softmax_forward",
    "softmax_backward",
    "act_forward",
    "act_backward_from_output",
]


def relu_forward(x):
    return np.maximum(x, 0)


def relu_backward(dy, y):
    return dy * (y > 0)


def leaky_relu_forward(x, alpha):
    return np.where(x > 0, x, x * x.dtype.type(alpha))


def leaky_relu_backward(dy, y, alpha):
    # y > 0 exactly when x > 0 (alpha > 0), so the output tells the branch.
    return np.where(y > 0, dy, dy * dy.dtype.type(alpha))


def sigmoid_forward(x):
    # exp of a non-positive number only: never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(dy, y):
    return dy * y * (1 - y)


def tanh_forward(x):
    return np.tanh(x)


def tanh_backward(dy, y):
    return dy * (1 - y * y)


def _erf(x):
    from scipy.special import erf  # scipy is a numpy-stack staple; used only by the reference GELU

    return erf(x)


def gelu_forward(x):
    return (0.5 * x * (1 + _erf(x / sqrt(2)))).astype(x.dtype, copy=False)


def gelu_backward(dy, x):
    cdf = 0.5 * (1 + _erf(x / sqrt(2)))
    pdf = np.exp(-0.5 * x * x) / sqrt(2 * np.pi)
    return (dy * (cdf + x * pdf)).astype(dy.dtype, copy=False)


def softmax_forward(x):
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dy, y):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def act_forward(z, act, alpha):
    if act == "relu":
        return relu_forward(z)
    if act == "leaky_relu":
        return leaky_relu_forward(z, alpha)
    if act == "sigmoid":
        return sigmoid_forward(z)
    if act == "tanh":
        return tanh_forward(z)
    if act == "gelu":
        return gelu_forward(z)
    raise ValueError(f"unknown activation {act!r}")


def act_backward_from_output(dy, y, z, act, alpha):
    if act == "relu":
        return relu_backward(dy, y)
    if act == "leaky_relu":
        return leaky_relu_backward(dy, y, alpha)
    if act == "sigmoid":
        return sigmoid_backward(dy, y)
    if act == "tanh":
        return tanh_backward(dy, y)
    if act == "gelu":
        return gelu_backward(dy, z)
    raise ValueError(f"unknown activation {act!r}")
