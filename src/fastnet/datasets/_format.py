"""Shared output options of every dataset loader: raw uint8, or float in NCHW / flat layout."""

from __future__ import annotations

import numpy as np

from ..preprocessing import pixel_divisor, scale_images


def check_split(x, y, where: str) -> None:
    """The shape checks every loaded split must pass."""
    if x.ndim < 2:
        raise ValueError(f"{where}: images must have shape (N, ...), got {x.shape}")
    if y.ndim not in (1, 2):
        raise ValueError(f"{where}: labels must have shape (N,) or (N, classes), got {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{where}: {len(x)} images but {len(y)} labels")


def format_images(x: np.ndarray, *, normalize: bool, flatten: bool, scale: float, dtype) -> np.ndarray:
    """Apply the loaders' ``normalize``/``flatten`` options to images of shape (N, H, W).

    - neither: the stored array, e.g. uint8 (N, H, W)
    - ``flatten``: (N, H*W), same dtype
    - ``normalize``: ``dtype`` (float32 default) divided by ``scale`` (the dataset's divisor from
      :func:`dataset_divisor`), NCHW (N, 1, H, W), or (N, H*W) with ``flatten``
    """
    if normalize:
        x = scale_images(x, scale, dtype)
        if not flatten and x.ndim == 3:
            x = x[:, None, :, :]
    if flatten:
        x = x.reshape(len(x), -1)
    return np.ascontiguousarray(x)


def dataset_divisor(x_train: np.ndarray) -> float:
    """The divisor of a whole dataset: fastnet's one rule (``fastnet.preprocessing.pixel_divisor``)
    applied to its training images, so every split of it, however it was loaded, is scaled alike."""
    return pixel_divisor(x_train)


def format_labels(y: np.ndarray) -> np.ndarray:
    """Integer class ids as int64 (what the losses and metrics expect)."""
    if y.ndim == 1 and y.dtype.kind in "ui":
        return y.astype(np.int64)
    return y
