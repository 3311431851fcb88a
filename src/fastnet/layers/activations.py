"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh, Softmax (last axis) and GELU (exact erf form).

Each keeps only what its backward needs: the output (ReLU, LeakyReLU, Sigmoid, Tanh,
Softmax) or the input (GELU). Any float dtype passes through unchanged.

The elementwise ones can be fused by a model's ``compile`` into a preceding ``Dense`` (ReLU also
into a ``Conv2D``): ``layer.fusable`` gives the ``(activation, alpha)`` pair the fused kernels
take (Softmax is not fusable).
"""

from __future__ import annotations

import math

import numpy as np

from .._kernels import ops
from .base import Layer

# Names the fused dense kernels understand (docs/KERNELS.md, dense_act_forward).
FUSABLE_ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu")


def check_alpha(alpha, where: str) -> float:
    """LeakyReLU slope: a finite float >= 0 (backward reads the branch from the output's sign,
    which needs alpha >= 0)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: alpha must be a float >= 0, got {alpha!r}")
    alpha = float(alpha)
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"{where}: alpha must be a finite float >= 0, got {alpha!r}")
    return alpha


def check_activation(activation, where: str):
    """None (or "linear") -> None; otherwise one of FUSABLE_ACTIVATIONS."""
    if activation is None or activation == "linear":
        return None
    if activation not in FUSABLE_ACTIVATIONS:
        raise ValueError(f"{where}: activation must be None or one of {FUSABLE_ACTIVATIONS}, got {activation!r}")
    return activation


class _Activation(Layer):
    """Shared plumbing: check input, run the kernel, keep output (or input) for backward."""

    keeps = "output"  # or "input"

    def _forward(self, x, training):
        x = self._check_input(x)
        y = self._apply(x)
        return y, ((y if self.keeps == "output" else x) if training else None)

    def _backward(self, saved, dout, need_dx):
        dout = self._check_grad(dout, saved.shape).astype(saved.dtype, copy=False)
        return self._gradient(dout, saved)

    @property
    def fusable(self):
        """``(activation, alpha)`` for the fused Dense/Conv2D kernels, or None when not fusable."""
        return None

    def _apply(self, x):
        raise NotImplementedError

    def _gradient(self, dout, saved):
        raise NotImplementedError


class ReLU(_Activation):
    """``max(x, 0)``; the gradient at 0 is 0."""

    def _apply(self, x):
        return ops.relu_forward(x)

    def _gradient(self, dout, y):
        return ops.relu_backward(dout, y)

    @property
    def fusable(self):
        return ("relu", 0.0)


class LeakyReLU(_Activation):
    """``x`` for ``x > 0``, ``alpha * x`` otherwise (alpha >= 0, default 0.01)."""

    def __init__(self, alpha: float = 0.01, name: str | None = None):
        super().__init__(name)
        self.alpha = check_alpha(alpha, self.name)

    def _apply(self, x):
        return ops.leaky_relu_forward(x, self.alpha)

    def _gradient(self, dout, y):
        return ops.leaky_relu_backward(dout, y, self.alpha)

    @property
    def fusable(self):
        return ("leaky_relu", self.alpha)

    def get_config(self):
        return {"alpha": self.alpha}


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""

    def _apply(self, x):
        return ops.sigmoid_forward(x)

    def _gradient(self, dout, y):
        return ops.sigmoid_backward(dout, y)

    @property
    def fusable(self):
        return ("sigmoid", 0.0)


class Tanh(_Activation):
    """Hyperbolic tangent."""

    def _apply(self, x):
        return ops.tanh_forward(x)

    def _gradient(self, dout, y):
        return ops.tanh_backward(dout, y)

    @property
    def fusable(self):
        return ("tanh", 0.0)


class GELU(_Activation):
    """``x * Phi(x)`` with the exact normal CDF (erf form, PyTorch's default)."""

    keeps = "input"

    def _apply(self, x):
        return ops.gelu_forward(x)

    def _gradient(self, dout, x):
        return ops.gelu_backward(dout, x)

    @property
    def fusable(self):
        return ("gelu", 0.0)


class Softmax(_Activation):
    """Softmax over the last axis (numerically stable). For classification prefer a linear
    output with ``SoftmaxCrossEntropy``, which fuses both and is more accurate."""

    def _apply(self, x):
        return ops.softmax_forward(x)

    def _gradient(self, dout, y):
        return ops.softmax_backward(dout, y)
