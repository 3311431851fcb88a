"""Mini-batches for training: :class:`DataLoader` (seeded shuffling, background prefetch)
and the input checks ``fit`` runs before training starts."""

from __future__ import annotations

import math
import queue
import threading

import numpy as np

from . import random as _random
from .transforms import Compose, Normalize, RandomFlip, RandomShift, Transform, apply  # noqa: F401

_CHUNK = 1 << 20  # elements per NaN/inf scan step: a memory-mapped file is read in pieces


def check_arrays(x, y=None, num_classes: int | None = None, where: str = "data") -> None:
    """Raise ValueError for inputs that cannot be trained on.

    Checks: ``x`` is an array with a batch axis (ndim >= 2) and at least one sample;
    ``y`` has the same length and is (N,) class ids or (N, K) targets; no NaN/inf in
    float ``x`` or ``y``; with ``num_classes``, integer labels lie in ``[0, num_classes)``
    and (N, K) targets have ``K == num_classes``.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"{where}: x must be a numpy array, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{where}: x must have shape (N, features...) with ndim >= 2, got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{where}: x has no samples (shape {x.shape})")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{where}: x must be numeric, got dtype {x.dtype}")
    _check_finite(x, f"{where}: x")
    if y is None:
        return
    if not hasattr(y, "shape"):
        raise ValueError(f"{where}: y must be a numpy array, got {type(y).__name__}")
    if len(y) != len(x):
        raise ValueError(f"{where}: x and y lengths differ: x has {len(x)} samples, y has {len(y)}")
    if y.ndim not in (1, 2):
        raise ValueError(f"{where}: y must have shape (N,) class ids or (N, classes), got shape {y.shape}")
    _check_finite(y, f"{where}: y")
    if num_classes is not None:
        if y.ndim == 1:
            if y.dtype.kind not in "iu":
                raise ValueError(f"{where}: class-id labels must be integers, got dtype {y.dtype}")
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= num_classes:
                bad = lo if lo < 0 else hi
                raise ValueError(f"{where}: label {bad} outside [0, {num_classes}) (num_classes={num_classes})")
        elif y.shape[1] != num_classes:
            raise ValueError(f"{where}: y has {y.shape[1]} columns, expected num_classes={num_classes}")


def _check_finite(a, what):
    if a.dtype.kind != "f":
        return
    flat = a.reshape(-1)
    for i in range(0, flat.size, _CHUNK):
        block = flat[i : i + _CHUNK]
        if not np.isfinite(block).all():
            j = i + int(np.argmin(np.isfinite(block)))
            idx = np.unravel_index(j, a.shape)
            raise ValueError(
                f"{what} contains NaN or inf (first at sample {idx[0]}, index {tuple(int(k) for k in idx)})"
            )


class _Error:
    """Carries a worker exception (with its traceback) to the consumer."""

    def __init__(self, exc):
        self.exc = exc


_DONE = object()


class DataLoader:
    """Iterate over ``(xb, yb)`` mini-batches of arrays, shuffled afresh each epoch.

    Interface used by ``Sequential.fit`` (and anyone else):

    - ``for xb, yb in loader`` yields one epoch of batches (``yb`` is None when ``y`` is None);
    - ``len(loader)`` is the number of batches per epoch, ``loader.num_samples`` the number
      of samples, ``loader.batch_size`` the batch size;
    - ``loader.set_epoch(e)`` makes the next pass use epoch ``e``'s permutation. Each pass
      otherwise advances the epoch by one, so plain repeated iteration also reshuffles.

    Parameters
    ----------
    x, y : arrays with the same first dimension (``np.load(..., mmap_mode="r")`` works: only
        the rows of each batch are read). ``y`` may be None.
    batch_size : samples per batch; the last batch is shorter unless ``drop_last``.
    shuffle : permute the samples each epoch. The permutation of epoch ``e`` comes from
        ``np.random.default_rng([seed, e])``: resuming at epoch ``k`` with ``set_epoch(k)``
        reproduces the batches of an uninterrupted run.
    transform : applied to each ``xb`` (a :class:`fastnet.transforms.Transform` gets a seeded
        generator too), e.g. ``Compose([RandomShift(2), Normalize(0.1307, 0.3081, scale=1/255)])``.
    dtype : if given, ``xb`` is converted to it (e.g. float32 from uint8 files).
    prefetch : batches prepared ahead by a background thread (0: no thread). The thread
        only slices, copies and runs the transform with NumPy; an exception in it is
        re-raised in the loop with its original traceback. Stopping early (``break``)
        or ``close()`` ends the thread.
    seed : the shuffling seed. None: while ``fit`` trains on the loader it shuffles with the
        model's ``shuffle_seed`` (saved with the model, so a resumed ``fit`` repeats the batches);
        used on its own, it draws a seed from ``fastnet.random`` at first use (so ``fastnet.seed``
        makes it reproducible).
    num_classes : if given, labels are checked to lie in ``[0, num_classes)``.
    check : run :func:`check_arrays` now (length mismatch, rank, NaN/inf, label range).

    Within a batch, samples are in increasing index order (contiguous reads from memory-mapped files).
    """

    def __init__(
        self,
        x,
        y=None,
        batch_size: int = 32,
        shuffle: bool = True,
        drop_last: bool = False,
        transform=None,
        prefetch: int = 2,
        seed=None,
        dtype=None,
        num_classes=None,
        check: bool = True,
    ):
        if not hasattr(x, "shape"):
            x = np.asarray(x)
        if y is not None and not hasattr(y, "shape"):
            y = np.asarray(y)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an int >= 0, got {prefetch!r}")
        if transform is not None and not callable(transform):
            raise ValueError(f"DataLoader: transform must be callable, got {transform!r}")
        if check:
            check_arrays(x, y, num_classes, where="DataLoader")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if self.drop_last and len(x) < self.batch_size:
            raise ValueError(
                f"DataLoader: drop_last=True with batch_size {self.batch_size} > {len(x)} samples would give no batch"
            )
        self.transform = transform
        self.prefetch = int(prefetch)
        self.dtype = None if dtype is None else np.dtype(dtype)
        self._seed = None if seed is None else int(seed)
        self.seed_given = seed is not None
        self.epoch = 0
        self._active: list = []  # (stop event, thread) of running prefetchers

    # ---- the interface fit uses -------------------------------------------------------------
    @property
    def seed(self) -> int:
        """The shuffling seed (see the class docstring for ``seed=None``)."""
        if self._seed is None:
            self._seed = int(_random.generator().integers(0, 2**63 - 1))
        return self._seed

    def follow_seed(self, seed: int) -> None:
        """``fit`` passes the model's shuffle seed; only a loader created with ``seed=None`` takes it."""
        if not self.seed_given:
            self._seed = int(seed)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        n = self.num_samples / self.batch_size
        return int(n) if self.drop_last else math.ceil(n)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation and augmentation for the next pass."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        if self.prefetch == 0:
            return self._batches(epoch)
        return self._prefetched(epoch)

    # ---- batch production -------------------------------------------------------------------
    def order(self, epoch: int) -> np.ndarray:
        """The sample order of epoch ``epoch`` (a permutation, or 0..N-1 without shuffle)."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_samples)

    def _batches(self, epoch):
        idx = self.order(epoch)
        aug_rng = np.random.default_rng([self.seed, int(epoch), 1])  # a stream of its own
        for b in range(len(self)):
            sel = np.sort(idx[b * self.batch_size : (b + 1) * self.batch_size])
            # A contiguous range is a slice (a view), anything else a fancy-index copy.
            if not self.shuffle:
                sel = slice(int(sel[0]), int(sel[-1]) + 1)
            xb = np.array(self.x[sel], dtype=self.dtype, copy=True)
            yb = None if self.y is None else np.array(self.y[sel], copy=True)
            if self.transform is not None:
                xb = apply(self.transform, xb, aug_rng)
            yield xb, yb

    def _prefetched(self, epoch):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item):
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def worker():
            try:
                for item in self._batches(epoch):
                    if not put(item):
                        return
            except BaseException as e:  # handed to the consumer, which re-raises it
                put(_Error(e))
                return
            put(_DONE)

        thread = threading.Thread(target=worker, name=f"fastnet-DataLoader-epoch{epoch}", daemon=True)
        entry = (stop, thread)
        self._active.append(entry)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, _Error):
                    raise item.exc  # the exception keeps the worker's traceback frames
                yield item
        finally:
            self._stop(entry)

    def _stop(self, entry):
        stop, thread = entry
        stop.set()
        thread.join()
        if entry in self._active:
            self._active.remove(entry)

    # ---- cleanup -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every prefetch thread this loader started (safe to call twice)."""
        for entry in list(self._active):
            self._stop(entry)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (
            f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, prefetch={self.prefetch}, seed={self._seed})"
        )
