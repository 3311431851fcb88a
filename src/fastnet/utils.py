"""Data helpers: one-hot labels, train/validation split, feature scaling.

Scaling functions return ``(scaled, stats)``; pass ``stats`` back to scale test data with the
statistics fitted on the training data:

>>> x_train_s, stats = standardize(x_train)
>>> x_test_s, _ = standardize(x_test, stats=stats)
"""

from __future__ import annotations

import numpy as np

from . import random as _random

__all__ = ["to_categorical", "train_val_split", "standardize", "minmax_scale"]


def _int_labels(y, where: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{where}: y must be a 1-d array of class ids, got shape {arr.shape}")
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise ValueError(
                f"{where}: y must hold integer class ids, got non-integer values "
                f"(e.g. {arr[~(np.isfinite(arr) & (arr == np.round(arr)))][0]!r})"
            )
        return arr.astype(np.int64)
    raise ValueError(f"{where}: y must hold integer class ids, got dtype {arr.dtype}")


def to_categorical(y, num_classes: int | None = None, dtype=np.float32) -> np.ndarray:
    """One-hot encode class ids ``y`` (shape (N,) or (N, 1)) into an (N, num_classes) float32 array.

    ``num_classes`` defaults to ``max(y) + 1``; ids outside [0, num_classes) raise a ValueError.
    """
    labels = _int_labels(y, "to_categorical")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be a positive int, got {num_classes!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"to_categorical: labels must be in [0, {num_classes}), got labels from "
            f"{int(labels.min())} to {int(labels.max())}"
        )
    out = np.zeros((labels.size, int(num_classes)), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def train_val_split(x, y, val_fraction: float = 0.2, stratify: bool = False, seed: int | None = None):
    """Shuffle and split into ``(x_train, y_train), (x_val, y_val)``.

    ``stratify=True`` keeps each class's share equal in both parts (``y`` must then be class ids
    or one-hot rows). ``seed=None`` draws from ``fastnet.random`` so ``fastnet.seed`` controls it.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"train_val_split: x and y must have the same number of samples, got shapes {x.shape} and {y.shape}"
        )
    frac = float(val_fraction)
    if not (0.0 < frac < 1.0):
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction!r}")
    n = x.shape[0]
    rng = np.random.default_rng(seed) if seed is not None else _random.spawn()
    if stratify:
        labels = y.argmax(axis=1) if (y.ndim == 2 and y.shape[1] > 1) else _int_labels(y, "train_val_split")
        val_idx = []
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            val_idx.append(members[: int(round(len(members) * frac))])
        val_idx = np.sort(np.concatenate(val_idx)) if val_idx else np.array([], dtype=np.int64)
        mask = np.zeros(n, dtype=bool)
        mask[val_idx] = True
        train_idx = rng.permutation(np.flatnonzero(~mask))
        val_idx = rng.permutation(val_idx)
    else:
        perm = rng.permutation(n)
        n_val = int(round(n * frac))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError(
            f"train_val_split: val_fraction={frac} of {n} samples leaves {len(train_idx)} for training "
            f"and {len(val_idx)} for validation; both need at least one"
        )
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])


def _float(x, where):
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: x must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: x contains NaN or inf")
    return arr


def standardize(x, axis=0, stats: dict | None = None, eps: float = 1e-7):
    """Scale to zero mean and unit variance; returns ``(scaled, {"mean", "std"})``.

    ``axis=0`` fits per feature (columns); ``axis=None`` fits one mean/std over everything
    (images). Constant features are left centred (std taken as 1). Integer input becomes float32.
    """
    arr = _float(x, "standardize")
    if stats is None:
        mean = arr.mean(axis=axis, keepdims=True)
        std = arr.std(axis=axis, keepdims=True)
        std = np.where(std < eps, 1.0, std).astype(arr.dtype)
        stats = {"mean": mean.astype(arr.dtype), "std": std}
    elif not isinstance(stats, dict) or not {"mean", "std"} <= set(stats):
        raise ValueError(
            "standardize: stats must be the dict returned by a previous standardize call (keys 'mean' and 'std')"
        )
    try:
        out = (arr - stats["mean"]) / stats["std"]
    except ValueError as e:
        raise ValueError(
            f"standardize: x of shape {arr.shape} does not fit stats of shape {np.shape(stats['mean'])}: {e}"
        ) from None
    return out.astype(arr.dtype, copy=False), stats


def minmax_scale(x, feature_range=(0.0, 1.0), axis=0, stats: dict | None = None):
    """Scale linearly so the fitted minimum maps to ``feature_range[0]`` and the maximum to
    ``feature_range[1]``; returns ``(scaled, {"min", "max", "feature_range"})``. Constant features map
    to the lower end. ``axis=None`` fits one min/max over everything (uint8 images -> [0, 1])."""
    arr = _float(x, "minmax_scale")
    if stats is None:
        lo, hi = (float(v) for v in feature_range)
        if not hi > lo:
            raise ValueError(f"minmax_scale: feature_range must be (low, high) with high > low, got {feature_range!r}")
        stats = {
            "min": arr.min(axis=axis, keepdims=True).astype(arr.dtype),
            "max": arr.max(axis=axis, keepdims=True).astype(arr.dtype),
            "feature_range": (lo, hi),
        }
    elif not isinstance(stats, dict) or not {"min", "max", "feature_range"} <= set(stats):
        raise ValueError(
            "minmax_scale: stats must be the dict returned by a previous minmax_scale call "
            "(keys 'min', 'max', 'feature_range')"
        )
    lo, hi = stats["feature_range"]
    span = stats["max"] - stats["min"]
    span = np.where(span == 0, 1, span)
    try:
        out = (arr - stats["min"]) / span * (hi - lo) + lo
    except ValueError as e:
        raise ValueError(
            f"minmax_scale: x of shape {arr.shape} does not fit stats of shape {np.shape(stats['min'])}: {e}"
        ) from None
    return out.astype(arr.dtype, copy=False), stats
