"""Fully connected layer."""
from __future__ import annotations

import numpy as np

from .._kernels import ops
from .base import Layer, check_dtype, positive_int
from .init import check_init, init_weight


class Dense(Layer):
    """``y = x @ weight + bias`` with ``weight`` of shape (in_features, out_features).

    The weight is stored input-major (Keras's layout) so the forward pass is one
    row-major GEMM. ``init`` is "he" (default, for ReLU nets) or "glorot".
    When a model places an activation right after this layer, ``Sequential`` may
    fuse it in (``fused_activation``), computing both in one kernel call.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "he",
                 dtype=np.float32, name: str | None = None):
        super().__init__(name)
        self.in_features = positive_int(in_features, "in_features", self.name)
        self.out_features = positive_int(out_features, "out_features", self.name)
        self.dtype = check_dtype(dtype, self.name)
        self.init = check_init(init, self.name)
        self.use_bias = bool(bias)
        self.params["weight"] = init_weight((self.in_features, self.out_features), self.in_features,
                                            self.out_features, self.init, self.dtype)
        if self.use_bias:
            self.params["bias"] = np.zeros(self.out_features, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._zero_bias = np.zeros(self.out_features, dtype=self.dtype)
        self._x = None

    def forward(self, x, training=None):
        x = self._check_input(x, ndim=2, shape_tail=(self.in_features,), dtype=self.dtype)
        if self._mode(training):
            self._x = x
        return ops.dense_forward(x, self.params["weight"], self.params.get("bias", self._zero_bias))

    def backward(self, dout):
        self._require_forward(self._x)
        dout = self._check_grad(dout, (self._x.shape[0], self.out_features))
        dx, dw, db = ops.dense_backward(dout, self._x, self.params["weight"])
        self.grads["weight"][...] = dw
        if self.use_bias:
            self.grads["bias"][...] = db
        return dx

    def output_shape(self, input_shape):
        return (self.out_features,)

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.use_bias,
                "init": self.init, "dtype": self.dtype.name}
