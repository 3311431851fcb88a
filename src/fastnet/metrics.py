"""Classification metrics on NumPy arrays; each returns a Python float.

``pred`` is what the model outputs: class scores or probabilities (N, C), or one column
(N,) / (N, 1) of probabilities for a binary problem (thresholded at 0.5).
``target`` is integer class ids (N,), one-hot / probability rows (N, C), or 0/1 values for
the binary case.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["accuracy", "top_k_accuracy", "get"]


def _check(pred, target, who):
    if not isinstance(pred, np.ndarray) or pred.ndim not in (1, 2) or pred.shape[0] == 0:
        raise ValueError(
            f"{who}: expected pred of shape (N, C) or (N,) with N >= 1, "
            f"got {getattr(pred, 'shape', type(pred).__name__)}"
        )
    target = np.asarray(target)
    if target.shape[:1] != pred.shape[:1]:
        raise ValueError(
            f"{who}: expected a target with {pred.shape[0]} rows (pred shape {pred.shape}), "
            f"got target shape {target.shape}"
        )
    return target


def _class_ids(target, n_classes, who):
    """Integer ids (N,) from ids or from one-hot / probability rows (argmax)."""
    if target.ndim == 2 and target.shape[1] == n_classes:
        return target.argmax(axis=1)
    if target.ndim == 1 or (target.ndim == 2 and target.shape[1] == 1):
        ids = target.reshape(-1)
        if ids.dtype.kind == "f":
            if not np.all(ids == np.round(ids)):
                raise ValueError(f"{who}: expected integer class ids, got non-integer values in a {ids.dtype} target")
        elif ids.dtype.kind not in "iub":
            raise ValueError(f"{who}: expected integer class ids, got dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        if ids.min() < 0 or ids.max() >= n_classes:
            bad = ids.min() if ids.min() < 0 else ids.max()
            raise ValueError(f"{who}: label {bad} out of range [0, {n_classes})")
        return ids
    raise ValueError(f"{who}: expected target of shape (N,) or (N, {n_classes}), got {target.shape}")


def accuracy(pred, target) -> float:
    """Fraction of rows whose predicted class (argmax, or ``p > 0.5`` for one column) is the target's."""
    target = _check(pred, target, "accuracy")
    if pred.ndim == 1 or pred.shape[1] == 1:
        if target.size != pred.shape[0]:
            raise ValueError(f"accuracy: binary pred {pred.shape} needs one 0/1 target per row, got {target.shape}")
        predicted = pred.reshape(-1) > 0.5
        truth = target.reshape(-1) > 0.5
        return float(np.mean(predicted == truth))
    ids = _class_ids(target, pred.shape[1], "accuracy")
    return float(np.mean(pred.argmax(axis=1) == ids))


def top_k_accuracy(pred, target, k: int = 5) -> float:
    """Fraction of rows whose target class is among the ``k`` highest scores.

    Ties are generous (as ``tf.math.in_top_k``): a row counts when fewer than ``k`` classes
    score strictly higher than the target class.
    """
    target = _check(pred, target, "top_k_accuracy")
    if pred.ndim != 2:
        raise ValueError(f"top_k_accuracy: expected pred of shape (N, C), got {pred.shape}")
    n_classes = pred.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_classes:
        raise ValueError(f"top_k_accuracy: k must be an int in [1, {n_classes}] (the number of classes), got {k!r}")
    ids = _class_ids(target, n_classes, "top_k_accuracy")
    own = pred[np.arange(pred.shape[0]), ids]
    higher = (pred > own[:, None]).sum(axis=1)
    return float(np.mean(higher < k))


def _named(fn, name, counts=False):
    def metric(pred, target):
        return fn(pred, target)

    metric.name = metric.__name__ = name
    metric.__doc__ = fn.__doc__
    # a fraction of the samples: times the batch size it is an exact count, summed as such
    metric.counts = counts
    return metric


_TOP_K = re.compile(r"^(?:sparse_)?top_?(\d+)(?:_(?:categorical_)?acc(?:uracy)?)?$")


def get(identifier):
    """A metric callable ``f(pred, target) -> float`` with a ``.name``.

    Names: ``"accuracy"`` / ``"acc"`` (also Keras's ``"categorical_accuracy"``,
    ``"sparse_categorical_accuracy"``, ``"binary_accuracy"``), ``"top_5_accuracy"`` /
    ``"top5"`` / ``"top_k_accuracy"`` (k = 5). A callable is returned as is, given a
    ``.name`` from its ``__name__`` if it has none.
    """
    if callable(identifier):
        if not hasattr(identifier, "name"):
            try:
                identifier.name = getattr(identifier, "__name__", type(identifier).__name__)
            except AttributeError:  # e.g. a builtin: wrap it
                return _named(identifier, getattr(identifier, "__name__", "metric"))
        return identifier
    if isinstance(identifier, str):
        key = identifier.strip().lower()
        if key in ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy", "binary_accuracy"):
            return _named(accuracy, "accuracy", counts=True)
        if key == "top_k_accuracy":
            key = "top_5_accuracy"
        m = _TOP_K.match(key)
        if m:
            k = int(m.group(1))
            if k < 1:
                raise ValueError(f"metric {identifier!r}: k must be >= 1")
            return _named(lambda p, t, k=k: top_k_accuracy(p, t, k), f"top_{k}_accuracy", counts=True)
    raise ValueError(f"unknown metric {identifier!r}; expected a callable, 'accuracy' / 'acc' or 'top_<k>_accuracy'")
