"""Elementwise sum of a list of same-shape arrays (the Add layer, a model's fan-out gradient
sums), plain NumPy. ``act="relu"`` is Add fused with a following ReLU: ``max(sum, 0)``."""

import numpy as np

from .activations import check_fused_act

__all__ = ["add_forward"]


def check_terms(xs, where: str):
    """At least 2 float arrays of one shape and dtype (no broadcasting), else a ValueError naming ``where``."""
    if not isinstance(xs, (list, tuple)) or len(xs) < 2:
        raise ValueError(f"{where}: expected a list of at least 2 arrays, got {type(xs).__name__}")
    xs = [np.asarray(x) for x in xs]
    if len({(x.shape, x.dtype) for x in xs}) != 1:
        got = ", ".join(f"{x.dtype}{x.shape}" for x in xs)
        raise ValueError(f"{where}: the arrays must have one shape and dtype, got {got}")
    if xs[0].dtype.kind != "f":
        raise ValueError(f"{where}: expected float arrays, got {xs[0].dtype}")
    return xs


def add_forward(xs, act=None):
    """``((xs[0] + xs[1]) + xs[2]) + ...``, in that order; then the fused activation."""
    relu = check_fused_act(act, "add_forward")
    xs = check_terms(xs, "add_forward")
    y = xs[0] + xs[1]
    for x in xs[2:]:
        y = y + x
    return np.maximum(y, 0) if relu else y
