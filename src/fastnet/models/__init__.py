"""Ready-made networks: ``mlp``, ``lenet5`` and ``small_cnn``.

Every builder takes one sample's ``input_shape`` and ``num_classes`` and returns an uncompiled model;
``build(name, input_shape, num_classes)`` maps the command line's names (``mlp``, ``lenet``, ``cnn``)
to them.
"""

from __future__ import annotations

from .classic import lenet5, mlp, small_cnn

__all__ = ["mlp", "lenet5", "small_cnn", "build", "NAMES"]

NAMES = ("mlp", "lenet", "cnn")


def build(name: str, input_shape, num_classes: int):
    """The model a short name stands for: ``mlp``, ``lenet`` (or ``lenet5``), ``cnn`` (``small_cnn``).
    ValueError for anything else."""
    simple = {"mlp": mlp, "lenet": lenet5, "lenet5": lenet5, "cnn": small_cnn, "small_cnn": small_cnn}
    if name in simple:
        return simple[name](input_shape=input_shape, num_classes=num_classes)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(NAMES)}")
