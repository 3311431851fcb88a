"""The user's own data: an ``.npz`` file or in-memory arrays, checked and split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._format import check_split, dataset_divisor, format_images, format_labels


def _check_finite(x, where):
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{where}: contains NaN or inf")


def load_npz(path, *, normalize: bool = False, flatten: bool = False, dtype=np.float32, scale: float | None = None):
    """Load ``x_train, y_train[, x_val, y_val], x_test, y_test`` from an ``.npz`` file.

    Returns ``((x_train, y_train), (x_test, y_test))``, or three pairs
    ``(train, val, test)`` when the file holds ``x_val``/``y_val``. ``normalize=True``
    converts images to ``dtype``, divided by ``scale`` (default: fastnet's one rule, decided
    from ``x_train`` for every split: 0/1 integer images kept, other 8-bit images / 255, float
    data unchanged; see ``fastnet.preprocessing``) and adds the channel axis to (N, H, W)
    images; ``flatten=True`` gives (N, features). Arrays are read with
    ``allow_pickle=False``; a missing array or a length mismatch is a ValueError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_npz: file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:
        raise ValueError(f"load_npz: cannot read {path} as an .npz of arrays ({type(e).__name__}: {e})") from None
    splits = ["train", "val", "test"] if "x_val" in arrays or "y_val" in arrays else ["train", "test"]
    need = [f"{a}_{s}" for s in splits for a in ("x", "y")]
    missing = [k for k in need if k not in arrays]
    if missing:
        raise ValueError(
            f"load_npz: {path} lacks arrays {missing} (has {sorted(arrays)}); "
            f"expected x_train, y_train, x_test, y_test and optionally x_val, y_val"
        )
    out = []
    sc = 1.0
    if normalize:
        try:
            sc = float(scale) if scale is not None else dataset_divisor(arrays["x_train"])
        except ValueError as e:
            raise ValueError(f"load_npz {path} x_train: {e}") from None
    for s in splits:
        x, y = arrays[f"x_{s}"], arrays[f"y_{s}"]
        check_split(x, y, f"load_npz {path} {s}")
        _check_finite(x, f"load_npz {path} x_{s}")
        out.append((format_images(x, normalize=normalize, flatten=flatten, scale=sc, dtype=dtype), format_labels(y)))
    return tuple(out)


def from_arrays(x, y, *, validation_split: float = 0.0, test_split: float = 0.0, shuffle: bool = True, seed=None):
    """Check ``x``/``y`` and split them into train[, validation][, test] pairs.

    Returns a tuple of ``(x, y)`` pairs: train, then validation if ``validation_split > 0``,
    then test if ``test_split > 0`` (fractions of all samples). With ``shuffle`` the samples
    are permuted first by a generator seeded with ``seed`` (or drawn from ``fastnet.random``).
    """
    x, y = np.asarray(x), np.asarray(y)
    check_split(x, y, "from_arrays")
    _check_finite(x, "from_arrays x")
    for name, frac in (("validation_split", validation_split), ("test_split", test_split)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"from_arrays: {name} must be in [0, 1), got {frac!r}")
    n = len(x)
    n_val, n_test = int(round(n * validation_split)), int(round(n * test_split))
    if n - n_val - n_test < 1 or (validation_split > 0 and n_val == 0) or (test_split > 0 and n_test == 0):
        raise ValueError(
            f"from_arrays: {n} samples cannot be split into validation_split={validation_split} "
            f"and test_split={test_split} with at least one sample in each part"
        )
    if shuffle:
        if seed is None:
            from .. import random as _random

            rng = _random.spawn()
        else:
            rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        x, y = x[order], y[order]
    y = format_labels(y)
    cut1, cut2 = n - n_val - n_test, n - n_test
    parts = [(x[:cut1], y[:cut1])]
    if n_val:
        parts.append((x[cut1:cut2], y[cut1:cut2]))
    if n_test:
        parts.append((x[cut2:], y[cut2:]))
    return tuple(parts)
