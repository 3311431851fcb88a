"""Fully connected layer, optionally with its activation fused into the same kernel call."""

from __future__ import annotations

import numpy as np

from .._kernels import ops
from .activations import check_activation, check_alpha
from .base import Layer, check_dtype, positive_int
from .init import check_init, init_weight


class Dense(Layer):
    """``y = act(x @ weight + bias)`` with ``weight`` of shape (in_features, out_features).

    The weight is stored input-major (Keras's layout) so the forward pass is one
    row-major GEMM. ``init`` is "he" (default, for ReLU nets) or "glorot".

    ``activation`` (Keras style): None (linear), "relu", "leaky_relu" (slope ``alpha``),
    "sigmoid", "tanh" or "gelu"; it is computed by the fused ``dense_act`` kernels and is
    part of the layer's config.

    Fusion by a model: when an activation layer follows a linear Dense, a model may call
    ``dense.fuse(*act_layer.fusable)`` and then skip that activation layer's forward and
    backward; ``dense.unfuse()`` undoes it. A fused activation is runtime state only: it is
    not in ``get_config`` (the activation layer itself is saved), and ``fused_activation``
    tells which one is active.
    """

    # backward(dout, input_grad=False) skips the input gradient (see Sequential.backward)
    can_skip_input_grad = True

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
        self._fused = None  # (activation, alpha) set by fuse()
        self._x = self._y = self._z = None

    # ---- fusion ---------------------------------------------------------------------------
    def fuse(self, activation: str, alpha: float = 0.01):
        """Compute ``activation`` inside this layer from now on (see the class docstring). Returns self."""
        act = check_activation(activation, f"{self.name}.fuse")
        if act is None:
            raise ValueError(f"{self.name}.fuse: activation must be one of the fusable names, got {activation!r}")
        if self.activation is not None or self._fused is not None:
            raise ValueError(
                f"{self.name}.fuse: layer already has activation "
                f"{self.activation or self._fused[0]!r}; cannot fuse {act!r}"
            )
        self._fused = (act, check_alpha(alpha, f"{self.name}.fuse"))
        self._x = self._y = self._z = None
        return self

    def unfuse(self):
        """Drop a fused activation (the layer is linear again unless built with ``activation=``)."""
        self._fused = None
        self._x = self._y = self._z = None
        return self

    @property
    def fused_activation(self):
        """Name of the activation fused by ``fuse()``, or None."""
        return None if self._fused is None else self._fused[0]

    def _act(self):
        if self.activation is not None:
            return self.activation, self.alpha
        return self._fused if self._fused is not None else (None, 0.0)

    # ---- forward / backward ----------------------------------------------------------------
    def forward(self, x, training=None):
        x = self._check_input(x, ndim=2, shape_tail=(self.in_features,), dtype=self.dtype)
        w, b = self.params["weight"], self.params.get("bias", self._zero_bias)
        act, alpha = self._act()
        if act is None:
            y, z = ops.dense_forward(x, w, b), None
        else:
            y, z = ops.dense_act_forward(x, w, b, act, alpha)
        if self._mode(training):
            self._x, self._y, self._z = x, (None if act is None else y), z
        return y

    def backward(self, dout, input_grad: bool = True):
        """Fill ``grads`` and return the gradient w.r.t. the input; with ``input_grad=False``
        (a model's first layer in training) skip that GEMM and return None."""
        self._require_forward(self._x)
        dout = self._check_grad(dout, (self._x.shape[0], self.out_features)).astype(self.dtype, copy=False)
        act, alpha = self._act()
        if act is None:
            dx, dw, db = ops.dense_backward(dout, self._x, self.params["weight"], need_dx=input_grad)
        else:
            dx, dw, db = ops.dense_act_backward(
                dout, self._x, self.params["weight"], self._y, self._z, act, alpha, need_dx=input_grad
            )
        self.grads["weight"][...] = dw
        if self.use_bias:
            self.grads["bias"][...] = db
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

    def __repr__(self):
        text = super().__repr__()
        return text if self._fused is None else f"{text[:-1]}, fused={self._fused[0]!r})"
