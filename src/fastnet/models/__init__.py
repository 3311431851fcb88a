"""Ready-made networks: ``mlp``, ``lenet5``, ``small_cnn``, ``resnet`` and ``plain``.

Every builder takes one sample's ``input_shape`` and ``num_classes`` and returns an uncompiled model;
``build(name, input_shape, num_classes)`` maps the command line's names (``mlp``, ``lenet``, ``cnn``,
``resnet20``, ``plain20``, ...) to them.
"""

from __future__ import annotations

import re

from .classic import lenet5, mlp, small_cnn
from .resnet import plain, resnet

__all__ = ["mlp", "lenet5", "small_cnn", "resnet", "plain", "build", "NAMES"]

NAMES = ("mlp", "lenet", "cnn", "resnet<depth>", "plain<depth>")


def build(name: str, input_shape, num_classes: int):
    """The model a short name stands for: ``mlp``, ``lenet`` (or ``lenet5``), ``cnn`` (``small_cnn``),
    ``resnet<depth>`` / ``plain<depth>`` with depth 6n + 2 (``resnet20``, ``plain56``, ...).
    ValueError for anything else."""
    simple = {"mlp": mlp, "lenet": lenet5, "lenet5": lenet5, "cnn": small_cnn, "small_cnn": small_cnn}
    if name in simple:
        return simple[name](input_shape=input_shape, num_classes=num_classes)
    match = re.fullmatch(r"(resnet|plain)(\d+)", name)
    if match is None:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(NAMES)} (depth 6n + 2, e.g. resnet20)")
    builder = resnet if match[1] == "resnet" else plain
    return builder(depth=int(match[2]), input_shape=input_shape, num_classes=num_classes)
