"""Merge layers: combine a list of inputs into one (Add, Multiply, Concatenate). No parameters.

They take a list: ``L.Add()([h, x])`` on symbolic tensors in a graph, ``Add().forward([a, b])`` on
arrays. Shapes must match exactly (no broadcasting); a mismatch is a ValueError naming the layer
when the graph is built, and again at run time.
"""

from __future__ import annotations

import numpy as np

from .._kernels import ops
from .base import Layer


class _Merge(Layer):
    takes_list = True

    def _shapes_text(self, shapes):
        return ", ".join(str(tuple(s)) for s in shapes)

    def _check_list(self, xs):
        if not isinstance(xs, (list, tuple)) or len(xs) < 2:
            got = f"a list of {len(xs)}" if isinstance(xs, (list, tuple)) else type(xs).__name__
            raise ValueError(f"{self.name}: expected a list of at least 2 arrays, got {got}")
        xs = [self._check_input(x) for x in xs]
        if len({x.dtype for x in xs}) != 1:
            raise ValueError(f"{self.name}: inputs have different dtypes {[str(x.dtype) for x in xs]}")
        return xs

    def _check_shapes(self, shapes):
        if not isinstance(shapes, (list, tuple)) or len(shapes) < 2:
            raise ValueError(f"{self.name}: expected a list of at least 2 inputs, got {shapes!r}")
        return [tuple(s) for s in shapes]


class _Elementwise(_Merge):
    def output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        if len(set(shapes)) != 1:
            raise ValueError(f"{self.name}: inputs must all have the same shape, got {self._shapes_text(shapes)}")
        return shapes[0]

    def _check_same(self, xs):
        xs = self._check_list(xs)
        if len({x.shape for x in xs}) != 1:
            raise ValueError(
                f"{self.name}: inputs must all have the same shape, got {self._shapes_text(x.shape for x in xs)}"
            )
        return xs


class Add(_Elementwise):
    """Elementwise sum of its inputs (a residual connection: ``Add()([f(x), x])``).

    Fusion: a model's ``compile`` may merge a following ``ReLU`` (a ResNet block's last step):
    one pass writes ``max(sum, 0)`` and backward masks the gradient by that output."""

    fusable_activations = ("relu",)

    def _forward(self, xs, training, activation=None):
        xs = self._check_same(xs)
        act = self._fused_act(activation)
        y = ops.add_forward(xs, act=act)
        return y, (len(xs), y.shape, None if act is None else y)

    def _backward(self, ctx, dout, need_dx):
        n, shape, y = ctx
        dout = self._check_grad(dout, shape)
        if y is not None:  # fused ReLU
            dout = ops.relu_backward(dout, y)
        return [dout] * n  # the model sums into new arrays, never in place


class Multiply(_Elementwise):
    """Elementwise product of its inputs (gating). Keeps the inputs for backward."""

    def _forward(self, xs, training):
        xs = self._check_same(xs)
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y *= x
        return y, (xs if training else None)

    def _backward(self, xs, dout, need_dx):
        dout = self._check_grad(dout, xs[0].shape)
        grads = []
        for i in range(len(xs)):
            g = dout.copy()
            for j, x in enumerate(xs):
                if j != i:
                    g *= x
            grads.append(g)
        return grads


class Concatenate(_Merge):
    """Join inputs along ``axis``, counted with the batch axis as in Keras: ``axis=1`` is the
    channel axis of NCHW maps (or the feature axis of (N, F)); negative counts from the end."""

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis == 0:
            raise ValueError(f"{self.name}: axis must be a non-zero int (0 is the batch axis), got {axis!r}")
        self.axis = int(axis)

    def _sample_axis(self, ndim: int) -> int:
        """The axis within one sample (no batch axis) for inputs of per-sample rank ``ndim``."""
        axis = self.axis - 1 if self.axis > 0 else ndim + self.axis
        if not 0 <= axis < ndim:
            raise ValueError(f"{self.name}: axis {self.axis} is out of range for inputs of rank {ndim + 1}")
        return axis

    def output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        if len({len(s) for s in shapes}) != 1:
            raise ValueError(f"{self.name}: inputs must have the same rank, got {self._shapes_text(shapes)}")
        a = self._sample_axis(len(shapes[0]))
        rest = {s[:a] + s[a + 1 :] for s in shapes}
        if len(rest) != 1:
            raise ValueError(
                f"{self.name}: inputs must match on every axis but axis {self.axis}, got {self._shapes_text(shapes)}"
            )
        sizes = [s[a] for s in shapes]
        total = None if any(d is None for d in sizes) else sum(sizes)
        return shapes[0][:a] + (total,) + shapes[0][a + 1 :]

    def _forward(self, xs, training):
        xs = self._check_list(xs)
        self.output_shape([x.shape[1:] for x in xs])
        axis = self._sample_axis(xs[0].ndim - 1) + 1
        sizes = [x.shape[axis] for x in xs]
        return np.concatenate(xs, axis=axis), (axis, sizes, xs[0].shape[0])

    def _backward(self, ctx, dout, need_dx):
        axis, sizes, n = ctx
        if not isinstance(dout, np.ndarray) or dout.ndim <= axis or dout.shape[axis] != sum(sizes) or len(dout) != n:
            got = getattr(dout, "shape", type(dout).__name__)
            raise ValueError(f"{self.name}.backward: expected dout with {sum(sizes)} entries on axis {axis}, got {got}")
        return [np.ascontiguousarray(g) for g in np.split(dout, np.cumsum(sizes)[:-1], axis=axis)]

    def get_config(self):
        return {"axis": self.axis}
