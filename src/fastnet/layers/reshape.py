"""Shape-only layers: Flatten and Reshape (no arithmetic, a view when the input is contiguous)."""

from __future__ import annotations

import numpy as np

from .base import Layer


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), e.g. NCHW feature maps into a Dense layer."""

    def _forward(self, x, training):
        x = self._check_input(x)
        if x.ndim < 2:
            raise ValueError(
                f"{self.name}: expected an input with a batch axis and at least one more, (N, ...), got shape {x.shape}"
            )
        return x.reshape(x.shape[0], -1), x.shape  # shape only: cheap to keep in any mode

    def _backward(self, shape, dout, need_dx):
        dout = self._check_grad(dout, (shape[0], int(np.prod(shape[1:]))))
        return dout.reshape(shape)

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)


class Reshape(Layer):
    """Reshape each sample to ``shape`` (the batch axis is kept); one entry may be -1."""

    def __init__(self, shape, name: str | None = None):
        super().__init__(name)
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (shape,)
        if (
            not isinstance(shape, (tuple, list))
            or not shape
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape)
            or any(s == 0 or s < -1 for s in shape)
            or sum(s == -1 for s in shape) > 1
        ):
            raise ValueError(
                f"{self.name}: shape must be a non-empty tuple of positive ints with at most one -1, got {shape!r}"
            )
        self.shape = tuple(int(s) for s in shape)

    def output_shape(self, input_shape):
        size = int(np.prod(input_shape))
        known = int(np.prod([s for s in self.shape if s != -1]))
        if -1 in self.shape:
            if size % known:
                raise ValueError(
                    f"{self.name}: cannot reshape a sample of shape {tuple(input_shape)} "
                    f"({size} elements) to {self.shape}"
                )
            return tuple(size // known if s == -1 else s for s in self.shape)
        if known != size:
            raise ValueError(
                f"{self.name}: cannot reshape a sample of shape {tuple(input_shape)} "
                f"({size} elements) to {self.shape} ({known} elements)"
            )
        return self.shape

    def _forward(self, x, training):
        x = self._check_input(x)
        return x.reshape((x.shape[0],) + self.output_shape(x.shape[1:])), x.shape

    def _backward(self, shape, dout, need_dx):
        dout = self._check_grad(dout, (shape[0],) + self.output_shape(shape[1:]))
        return dout.reshape(shape)

    def get_config(self):
        return {"shape": list(self.shape)}
