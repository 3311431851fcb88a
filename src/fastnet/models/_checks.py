"""Argument checks shared by the model builders: one clear ValueError naming the builder."""

from __future__ import annotations

import numpy as np


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_positive_ints(values: tuple, name: str, where: str) -> tuple:
    if not values or not all(_is_int(v) and v >= 1 for v in values):
        raise ValueError(f"{where}: {name} must be positive ints, got {values!r}")
    return tuple(int(v) for v in values)


def check_image_shape(shape, where: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of one image sample (``(H, W)`` means one channel)."""
    if not isinstance(shape, (tuple, list)) or len(shape) not in (2, 3):
        raise ValueError(f"{where}: input_shape must be (C, H, W) or (H, W) of one image, got {shape!r}")
    shape = check_positive_ints(tuple(shape), "input_shape", where)
    return shape if len(shape) == 3 else (1, *shape)


def check_classes(num_classes, where: str) -> int:
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(f"{where}: num_classes must be a positive int, got {num_classes!r}")
    return int(num_classes)
