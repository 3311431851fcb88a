"""Pooling layers (NCHW): max, average and global average. No parameters."""

from __future__ import annotations

from .._kernels import ops
from .._kernels.geometry import FUSED_MAXPOOL
from .base import Layer, pair
from .conv import compact, conv_out_shape


class _Pool2D(Layer):
    """Shared arguments and checks of MaxPool2D and AvgPool2D.

    ``stride`` defaults to ``kernel_size``. ``padding`` may be at most half the
    kernel on each axis (PyTorch's rule): more would give windows made only of padding.
    """

    def __init__(self, kernel_size, stride=None, padding=0, name: str | None = None):
        super().__init__(name)
        self.kernel_size = pair(kernel_size, "kernel_size", self.name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", self.name)
        self.padding = pair(padding, "padding", self.name, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(
                f"{self.name}: padding {self.padding} must be at most half the kernel size {self.kernel_size}"
            )

    def _out_hw(self, input_shape) -> tuple[int, int]:
        return conv_out_shape(
            self.name, tuple(input_shape[-2:]), self.kernel_size, self.stride, self.padding, input_shape
        )

    def _check(self, x):
        x = self._check_input(x, ndim=4, shape_tail=(None, None, None))
        self._out_hw(x.shape)
        return x

    def _check_dout(self, dout, x_shape):
        n, c = x_shape[:2]
        return self._check_grad(dout, (n, c, *self._out_hw(x_shape)))

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expected a sample shape (C, H, W), got {tuple(input_shape)}")
        return (input_shape[0], *self._out_hw(input_shape))

    def get_config(self):
        return {
            "kernel_size": compact(self.kernel_size),
            "stride": compact(self.stride),
            "padding": compact(self.padding),
        }


class MaxPool2D(_Pool2D):
    """Max over each window. Padding acts as -inf. Ties: the first maximum in
    row-major window order gets the whole gradient (never split or duplicated).
    Keeps the int64 argmax indices for backward, not the input."""

    @property
    def fusable_into_conv(self) -> bool:
        """Whether a model's compile may run this pool inside the Conv2D before it: a 2x2 window of
        stride 2 without padding, the one the convolution kernels pool in their output pass."""
        return (self.kernel_size, self.stride, self.padding) == FUSED_MAXPOOL

    def _forward(self, x, training):
        x = self._check(x)
        y, argmax = ops.maxpool2d_forward(x, self.kernel_size, self.stride, self.padding)
        return y, ((argmax, x.shape) if training else None)

    def _backward(self, ctx, dout, need_dx):
        argmax, x_shape = ctx
        return ops.maxpool2d_backward(self._check_dout(dout, x_shape), argmax, x_shape)


class AvgPool2D(_Pool2D):
    """Mean over each window; padding counts as zeros (PyTorch's count_include_pad=True)."""

    def _forward(self, x, training):
        x = self._check(x)
        y = ops.avgpool2d_forward(x, self.kernel_size, self.stride, self.padding)
        return y, (x.shape if training else None)

    def _backward(self, x_shape, dout, need_dx):
        dout = self._check_dout(dout, x_shape)
        return ops.avgpool2d_backward(dout, x_shape, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool2D(Layer):
    """Mean over H and W: (N, C, H, W) -> (N, C)."""

    def _forward(self, x, training):
        x = self._check_input(x, ndim=4, shape_tail=(None, None, None))
        return ops.global_avgpool2d_forward(x), (x.shape if training else None)

    def _backward(self, x_shape, dout, need_dx):
        dout = self._check_grad(dout, x_shape[:2])
        return ops.global_avgpool2d_backward(dout, x_shape)

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expected a sample shape (C, H, W), got {tuple(input_shape)}")
        return (input_shape[0],)
