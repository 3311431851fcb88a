"""Symbolic tensors: how a graph of layers is written (Keras's functional API).

``fastnet.Input(shape)`` gives a :class:`SymbolicTensor`; calling a layer on it (or on a list of
them, for merge layers) records a :class:`Node` and returns the node's output tensor, whose
``shape`` comes from ``layer.output_shape`` (so a shape error is raised right there, naming the
layer). Nothing is computed. ``fastnet.Model(inputs, outputs)`` then collects the nodes between
its inputs and outputs (``fastnet.graph_build``) and runs them.

This module imports nothing from fastnet, so ``fastnet.layers.base`` can use it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SymbolicTensor", "Node", "Input", "is_symbolic", "call_symbolic"]


class SymbolicTensor:
    """A placeholder for one array in a graph: ``shape`` is one sample's shape (no batch axis).

    ``node`` is the :class:`Node` that computes it, or None for a model input made by ``Input``.
    """

    def __init__(self, shape: tuple, node: Node | None = None, name: str | None = None):
        self.shape = tuple(shape)
        self.node = node
        self.name = name

    def __repr__(self):
        source = self.name if self.node is None else f"output of {self.node.layer.name}"
        return f"SymbolicTensor(shape={self.shape}, {source})"


class Node:
    """One call of a layer in a graph: the layer, its input tensors and its output tensor."""

    def __init__(self, layer, inputs: list[SymbolicTensor], as_list: bool, output_shape: tuple):
        self.layer = layer
        self.inputs = inputs
        self.as_list = as_list  # the layer was called on a list (merge layers, multi-input models)
        self.output = SymbolicTensor(output_shape, self)


def _check_shape(shape) -> tuple:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
        d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0) for d in shape
    ):
        raise ValueError(f"Input: shape must be a tuple of positive ints (one sample, no batch axis), got {shape!r}")
    return tuple(None if d is None else int(d) for d in shape)


def Input(shape, name: str | None = None) -> SymbolicTensor:  # noqa: N802  (Keras's spelling)
    """A model input of per-sample ``shape`` (no batch axis), e.g. ``Input((1, 28, 28))``."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"Input: name must be a str, got {type(name).__name__}")
    return SymbolicTensor(_check_shape(shape), None, name)


def is_symbolic(x) -> bool:
    """True for a SymbolicTensor or a non-empty list/tuple made only of them."""
    if isinstance(x, SymbolicTensor):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(t, SymbolicTensor) for t in x)


def describe(tensor: SymbolicTensor) -> str:
    """``"Conv2D (16, 28, 28)"``: where a tensor comes from and its shape, for error messages."""
    source = (tensor.name or "Input") if tensor.node is None else tensor.node.layer.name
    return f"{source} {tensor.shape}"


def call_symbolic(layer, x) -> SymbolicTensor:
    """Record ``layer(x)`` for symbolic ``x``; raise ValueError naming the layer on a shape error."""
    as_list = isinstance(x, (list, tuple))
    inputs = list(x) if as_list else [x]
    if as_list and not layer.takes_list:
        raise ValueError(
            f"{layer.name}: takes one input, got a list of {len(inputs)} ({', '.join(map(describe, inputs))}); "
            "merge them first with Add, Multiply or Concatenate"
        )
    if not as_list and layer.takes_list:
        raise ValueError(f"{layer.name}: takes a list of inputs, got one ({describe(x)})")
    shapes = [t.shape for t in inputs]
    try:
        out = layer.output_shape(shapes if as_list else shapes[0])
    except ValueError as e:
        raise ValueError(
            f"{e} (building the graph: {layer.name} called on {', '.join(map(describe, inputs))})"
        ) from None
    return Node(layer, inputs, as_list, tuple(out)).output
