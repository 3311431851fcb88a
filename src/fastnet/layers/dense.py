"""Fully connected layer, optionally with its activation fused into the same kernel call."""

from __future__ import annotations

import numpy as np

from .._kernels import ops
from .activations import FUSABLE_ACTIVATIONS, check_activation, check_alpha
from .base import Layer, check_dtype, positive_int
from .init import check_init, init_weight


class Dense(Layer):
    """``y = act(x @ weight + bias)`` with ``weight`` of shape (in_features, out_features).

    The weight is stored input-major (Keras's layout) so the forward pass is one
    row-major GEMM. ``init`` is "he" (default, for ReLU nets) or "glorot".

    ``activation`` (Keras style): None (linear), "relu", "leaky_relu" (slope ``alpha``),
    "sigmoid", "tanh" or "gelu"; it is computed by the fused ``dense_act`` kernels and is
    part of the layer's config.

    Fusion: a model's ``compile`` may merge a following activation layer into this one (a rewrite
    of the model's node list, see ``fastnet.graph_build``); the layer itself keeps no fusion state.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str = "he",
        activation: str | None = None,
        alpha: float = 0.01,
        dtype=np.float32,
        name: str | None = None,
    ):
        super().__init__(name)
        self.in_features = positive_int(in_features, "in_features", self.name)
        self.out_features = positive_int(out_features, "out_features", self.name)
        self.dtype = check_dtype(dtype, self.name)
        self.init = check_init(init, self.name)
        self.activation = check_activation(activation, self.name)
        self.alpha = check_alpha(alpha, self.name)
        self.use_bias = bool(bias)
        self.params["weight"] = init_weight(
            (self.in_features, self.out_features), self.in_features, self.out_features, self.init, self.dtype
        )
        if self.use_bias:
            self.params["bias"] = np.zeros(self.out_features, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._zero_bias = np.zeros(self.out_features, dtype=self.dtype)

    def accepts_activation(self, activation):
        return self.activation is None and activation in FUSABLE_ACTIVATIONS

    # ---- forward / backward ----------------------------------------------------------------
    def _forward(self, x, training, activation=None):
        """``activation``: an ``(name, alpha)`` pair a model fused into this call, or None."""
        x = self._check_input(x, ndim=2, shape_tail=(self.in_features,), dtype=self.dtype)
        w, b = self.params["weight"], self.params.get("bias", self._zero_bias)
        act, alpha = (self.activation, self.alpha) if activation is None else activation
        if act is None:
            y, z = ops.dense_forward(x, w, b), None
        else:
            y, z = ops.dense_act_forward(x, w, b, act, alpha)
        # keep x (for dW), and y, z when the activation's gradient needs them
        return y, ((x, None if act is None else y, z, act, alpha) if training else None)

    def _backward(self, ctx, dout, need_dx):
        x, y, z, act, alpha = ctx
        dout = self._check_grad(dout, (x.shape[0], self.out_features)).astype(self.dtype, copy=False)
        if act is None:
            dx, dw, db = ops.dense_backward(dout, x, self.params["weight"], need_dx=need_dx)
        else:
            dx, dw, db = ops.dense_act_backward(dout, x, self.params["weight"], y, z, act, alpha, need_dx=need_dx)
        self.grads["weight"] += dw
        if self.use_bias:
            self.grads["bias"] += db
        return dx

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            raise ValueError(
                f"{self.name}: expected input shape (N, {self.in_features}), got per-sample shape {tuple(input_shape)}"
            )
        return (self.out_features,)

    def get_config(self):
        cfg = {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.use_bias,
            "init": self.init,
            "activation": self.activation,
        }
        if self.activation == "leaky_relu":
            cfg["alpha"] = self.alpha
        cfg["dtype"] = self.dtype.name
        return cfg
