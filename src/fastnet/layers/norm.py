"""Batch normalisation over (N, C) and (N, C, H, W) inputs, with PyTorch's names and running statistics."""

from __future__ import annotations

import math

import numpy as np

from .._kernels import ops
from .base import Layer, check_dtype, positive_int


def _positive_float(value, name, where):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(float(value))
        or float(value) <= 0
    ):
        raise ValueError(f"{where}: {name} must be a positive float, got {value!r}")
    return float(value)


class _BatchNorm(Layer):
    """Shared BatchNorm logic; subclasses set the accepted ranks.

    Training: normalise with the batch mean and biased variance per channel, then update
    ``running_mean``/``running_var`` in place with ``momentum`` (PyTorch's convention:
    ``running = (1 - momentum) * running + momentum * batch``, the variance unbiased).
    Eval: normalise with the running statistics. ``weight`` (gamma) starts at 1, ``bias``
    (beta) at 0.

    Fusion: a model's ``compile`` may merge a following ``ReLU`` into this layer; the kernels
    apply it in the pass that writes the output and mask the gradient in backward's passes.
    """

    ranks: tuple = ()

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, dtype=np.float32, name: str | None = None
    ):
        super().__init__(name)
        self.num_features = positive_int(num_features, "num_features", self.name)
        self.eps = _positive_float(eps, "eps", self.name)
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, (int, float, np.integer, np.floating))
            or not 0.0 <= float(momentum) <= 1.0
        ):
            raise ValueError(f"{self.name}: momentum must be a float in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.dtype = check_dtype(dtype, self.name)
        c = self.num_features
        self.params["weight"] = np.ones(c, dtype=self.dtype)
        self.params["bias"] = np.zeros(c, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.buffers["running_mean"] = np.zeros(c, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(c, dtype=self.dtype)

    def _as3d(self, x):
        if x.ndim not in self.ranks:
            dims = " or ".join({2: "(N, C)", 3: "(N, C, L)", 4: "(N, C, H, W)"}[r] for r in self.ranks)
            raise ValueError(f"{self.name}: expected a {dims} input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{self.name}: expected {self.num_features} channels on axis 1, got shape {x.shape}")
        return x.reshape(x.shape[0], self.num_features, -1)

    # Activations the BatchNorm kernels can apply in their output pass (a model's compile fuses them).
    fusable_activations = ("relu",)

    def _forward(self, x, training, activation=None):
        """``activation``: ``("relu", alpha)`` when a model fused a following ReLU into this call."""
        x = self._check_input(x, dtype=self.dtype)
        x3 = self._as3d(x)
        act = self._fused_act(activation)
        gamma, beta = self.params["weight"], self.params["bias"]
        if not training:
            y3 = ops.batchnorm_forward_eval(
                x3, gamma, beta, self.buffers["running_mean"], self.buffers["running_var"], self.eps, act=act
            )
            return y3.reshape(x.shape), None
        m = x3.shape[0] * x3.shape[2]
        if m < 2:
            raise ValueError(f"{self.name}: training needs more than 1 value per channel, got input shape {x.shape}")
        y3, mean, var, inv_std = ops.batchnorm_forward_train(x3, gamma, beta, self.eps, act=act)
        mom = self.momentum
        # in place: optimizers and saved references keep pointing at the same arrays
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        rm *= 1 - mom
        rm += mom * mean
        rv *= 1 - mom
        rv += (mom * m / (m - 1)) * var
        # the input, not xhat, is kept (backward recomputes xhat); the output too when fused (its mask)
        return y3.reshape(x.shape), (x.shape, x3, mean, inv_std, act, None if act is None else y3)

    def _backward(self, ctx, dout, need_dx):
        shape, x3, mean, inv_std, act, y3 = ctx
        dout = self._check_grad(dout, shape).astype(self.dtype, copy=False)
        dx3, dgamma, dbeta = ops.batchnorm_backward(
            dout.reshape(x3.shape), x3, mean, self.params["weight"], inv_std, act=act, y3=y3
        )
        self.grads["weight"] += dgamma
        self.grads["bias"] += dbeta
        return dx3.reshape(shape)

    def output_shape(self, input_shape):
        if len(input_shape) + 1 not in self.ranks or input_shape[0] != self.num_features:
            raise ValueError(
                f"{self.name}: expected per-sample shape starting with {self.num_features} "
                f"channels and rank {[r - 1 for r in self.ranks]}, got {tuple(input_shape)}"
            )
        return tuple(input_shape)

    def get_config(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum, "dtype": self.dtype.name}


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features (or (N, C, L) sequences), per channel C."""

    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) feature maps, per channel C over N, H and W."""

    ranks = (4,)
