"""2-D convolution layer (NCHW)."""

from __future__ import annotations

import numpy as np

from .._kernels import ops
from .._kernels.geometry import window_out
from .base import Layer, check_dtype, pair, positive_int
from .init import check_init, init_weight


def conv_out_shape(
    where: str, hw: tuple, kernel: tuple, stride: tuple, padding: tuple, input_shape: tuple
) -> tuple[int, int]:
    """(OH, OW) of a sliding window; ValueError naming the layer and shapes if the kernel
    does not fit in the padded input. Shared by convolution and pooling layers."""
    if hw[0] is None or hw[1] is None:  # partial shape (model summary): unknown stays unknown
        return tuple(
            None if d is None else conv_out_shape(where, (d, d), (k, k), (s, s), (p, p), input_shape)[0]
            for d, k, s, p in zip(hw, kernel, stride, padding, strict=True)
        )
    padded = (hw[0] + 2 * padding[0], hw[1] + 2 * padding[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(
            f"{where}: kernel {kernel} is larger than the padded input {padded} "
            f"(input shape {tuple(input_shape)}, padding {padding})"
        )
    return (window_out(hw[0], kernel[0], stride[0], padding[0]), window_out(hw[1], kernel[1], stride[1], padding[1]))


def compact(p: tuple[int, int]):
    """A pair as an int when both sides match, else a list: short repr, JSON round-trip."""
    return p[0] if p[0] == p[1] else list(p)


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every DL library) over NCHW input.

    ``weight`` has shape (out_channels, in_channels, KH, KW) and ``bias`` (out_channels,).
    ``kernel_size``, ``stride`` and ``padding`` are an int or an (h, w) pair; padding
    is zeros on both sides. The output is (N, out_channels, OH, OW) with
    ``OH = (H + 2*ph - KH) // sh + 1``. Only the input is kept for backward: the
    im2col columns are recomputed there, they are KH*KW times larger.

    Fusion: a model's ``compile`` may merge a following ``ReLU`` into this layer; the kernels then
    apply it in the pass that adds the bias (and mask the gradient in the pass that reorders it),
    so no separate full-size pass or array is needed. The layer itself keeps no fusion state.
    """

    # Activations the conv kernels can apply themselves (``act`` in docs/KERNELS.md, conv.py).
    fusable_activations = ("relu",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        init: str = "he",
        dtype=np.float32,
        name: str | None = None,
    ):
        super().__init__(name)
        self.in_channels = positive_int(in_channels, "in_channels", self.name)
        self.out_channels = positive_int(out_channels, "out_channels", self.name)
        self.kernel_size = pair(kernel_size, "kernel_size", self.name)
        self.stride = pair(stride, "stride", self.name)
        self.padding = pair(padding, "padding", self.name, minimum=0)
        self.dtype = check_dtype(dtype, self.name)
        self.init = check_init(init, self.name)
        self.use_bias = bool(bias)
        kh, kw = self.kernel_size
        fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
        self.params["weight"] = init_weight(
            (self.out_channels, self.in_channels, kh, kw), fan_in, fan_out, self.init, self.dtype
        )
        if self.use_bias:
            self.params["bias"] = np.zeros(self.out_channels, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._zero_bias = np.zeros(self.out_channels, dtype=self.dtype)

    def _out_hw(self, input_shape) -> tuple[int, int]:
        return conv_out_shape(
            self.name, tuple(input_shape[-2:]), self.kernel_size, self.stride, self.padding, input_shape
        )

    def accepts_pool(self, pool) -> bool:
        """Whether a model may fuse the pooling layer ``pool`` (which follows this layer, or its fused
        ReLU) into this one at compile: a MaxPool2D of the window the kernels pool in their output pass."""
        return bool(getattr(pool, "fusable_into_conv", False))

    def _forward(self, x, training, activation=None, pool=None):
        """``activation``: ``("relu", alpha)`` when a model fused a ReLU into this call, or None.
        ``pool``: the MaxPool2D layer a model fused after it (see ``accepts_pool``), or None. The
        kernels pool in their output pass; in training they also give each window's winner, which
        backward needs with the pooled output (the full-size output is not kept)."""
        x = self._check_input(x, ndim=4, shape_tail=(None, None, None), dtype=self.dtype)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.name}: expected input with {self.in_channels} channels "
                f"(N, {self.in_channels}, H, W), got shape {x.shape}"
            )
        out_hw = self._out_hw(x.shape)
        b = self.params.get("bias", self._zero_bias)
        act = self._fused_act(activation)
        if pool is not None:
            pool._out_hw((x.shape[0], self.out_channels, *out_hw))  # the pool's own error for too small an output
            if not training:
                return ops.conv2d_maxpool_forward(x, self.params["weight"], b, self.stride, self.padding, act=act), None
            p, win = ops.conv2d_maxpool_train_forward(x, self.params["weight"], b, self.stride, self.padding, act=act)
            return p, (x, p, act, pool, win)
        if act is None:  # the 5-argument call: the kernel contract without ``act``
            y = ops.conv2d_forward(x, self.params["weight"], b, self.stride, self.padding)
        else:
            y = ops.conv2d_forward(x, self.params["weight"], b, self.stride, self.padding, act=act)
        # only the input is kept (the columns are recomputed); the output too when fused
        return y, ((x, None if act is None else y, act, None, None) if training else None)

    def _backward(self, ctx, dout, need_dx):
        x, y, act, pool, win = ctx
        w = self.params["weight"]
        if pool is not None:  # y is the pooled output; the pool's gradient is the kernels' input
            dout = pool._check_grad(dout, y.shape)
            dx, dw, db = ops.conv2d_maxpool_backward(
                dout, win, y, x, w, self.stride, self.padding, act=act, need_dx=need_dx
            )
        else:
            dout = self._check_grad(dout, (x.shape[0], self.out_channels, *self._out_hw(x.shape)))
            if act is None:
                dx, dw, db = ops.conv2d_backward(dout, x, w, self.stride, self.padding, need_dx=need_dx)
            else:
                dx, dw, db = ops.conv2d_backward(dout, x, w, self.stride, self.padding, act=act, y=y, need_dx=need_dx)
        self.grads["weight"] += dw
        if self.use_bias:
            self.grads["bias"] += db
        return dx

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] not in (None, self.in_channels):
            raise ValueError(
                f"{self.name}: expected a sample shape ({self.in_channels}, H, W), got {tuple(input_shape)}"
            )
        return (self.out_channels, *self._out_hw(input_shape))

    def get_config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": compact(self.kernel_size),
            "stride": compact(self.stride),
            "padding": compact(self.padding),
            "bias": self.use_bias,
            "init": self.init,
            "dtype": self.dtype.name,
        }
