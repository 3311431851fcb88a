"""Per-batch transforms for :class:`fastnet.data.DataLoader`: normalisation and seeded augmentation.

A transform is called as ``t(xb, rng)`` on a whole batch and returns the new batch;
``rng`` is the loader's per-epoch generator, so augmentation is reproducible from
the loader's seed and epoch. They use plain NumPy only (they run in the prefetch thread).
Random transforms work on images ``(N, C, H, W)`` or ``(N, H, W)``; for flat
``(N, H*W*C)`` batches pass ``image_shape=(C, H, W)`` or ``(H, W)``.
"""

from __future__ import annotations

import numpy as np


class Transform:
    """Base class: subclasses implement ``__call__(self, x, rng)``."""

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply ``transforms`` in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise ValueError(f"Compose: every transform must be callable, got {t!r}")

    def __call__(self, x, rng):
        for t in self.transforms:
            x = apply(t, x, rng)
        return x


class Normalize(Transform):
    """``(x * scale - mean) / std`` in ``dtype`` (float32 default).

    ``mean``/``std`` are scalars or per-channel sequences (broadcast over axis 1 of
    NCHW batches). ``scale`` maps raw pixels first, e.g. ``1/255`` for uint8 images.
    """

    def __init__(self, mean=0.0, std=1.0, scale: float = 1.0, dtype=np.float32):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if np.any(self.std <= 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"Normalize: std must be finite and > 0, got {std!r}")
        if not np.all(np.isfinite(self.mean)):
            raise ValueError(f"Normalize: mean must be finite, got {mean!r}")
        self.scale = float(scale)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"Normalize: dtype must be a float type, got {self.dtype}")

    def __call__(self, x, rng=None):
        x = np.asarray(x, dtype=self.dtype)
        mean, std = self.mean.astype(self.dtype), self.std.astype(self.dtype)
        if mean.ndim == 1 or std.ndim == 1:  # per channel: (C,) -> (1, C, 1, 1...)
            if x.ndim < 2:
                raise ValueError(f"Normalize: per-channel mean/std need (N, C, ...) batches, got shape {x.shape}")
            shape = (1, -1) + (1,) * (x.ndim - 2)
            mean, std = mean.reshape(shape), std.reshape(shape)
        return (x * self.dtype.type(self.scale) - mean) / std


def _images(x, image_shape, where):
    """View a batch as (N, ..., H, W); returns the view and a function restoring the input shape."""
    if image_shape is not None:
        return x.reshape((len(x),) + tuple(image_shape)), (lambda y: y.reshape(x.shape))
    if x.ndim < 3:
        raise ValueError(
            f"{where}: expected image batches (N, H, W) or (N, C, H, W), got shape {x.shape}; "
            f"pass image_shape= for flat batches"
        )
    return x, (lambda y: y)


class RandomShift(Transform):
    """Translate each image by a random integer offset in ``[-max_shift, max_shift]`` (h and w),
    filling the uncovered border with ``fill``."""

    def __init__(self, max_shift=2, fill=0, image_shape=None):
        ms = (max_shift, max_shift) if np.isscalar(max_shift) else tuple(max_shift)
        if len(ms) != 2 or any(int(m) != m or m < 0 for m in ms):
            raise ValueError(f"RandomShift: max_shift must be an int >= 0 or a pair of them, got {max_shift!r}")
        self.max_shift = (int(ms[0]), int(ms[1]))
        self.fill = fill
        self.image_shape = None if image_shape is None else tuple(image_shape)

    def __call__(self, x, rng):
        imgs, restore = _images(np.asarray(x), self.image_shape, "RandomShift")
        mh, mw = self.max_shift
        dh = rng.integers(-mh, mh + 1, size=len(imgs))
        dw = rng.integers(-mw, mw + 1, size=len(imgs))
        out = np.full_like(imgs, self.fill)
        H, W = imgs.shape[-2:]
        for i in range(len(imgs)):  # a slice copy per sample: cheap next to a training step
            a, b = dh[i], dw[i]
            out[i, ..., max(a, 0) : H + min(a, 0), max(b, 0) : W + min(b, 0)] = imgs[
                i, ..., max(-a, 0) : H + min(-a, 0), max(-b, 0) : W + min(-b, 0)
            ]
        return restore(out)


class RandomFlip(Transform):
    """Mirror each image left-right with probability ``p`` (horizontal flip)."""

    def __init__(self, p: float = 0.5, image_shape=None):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.image_shape = None if image_shape is None else tuple(image_shape)

    def __call__(self, x, rng):
        imgs, restore = _images(np.asarray(x), self.image_shape, "RandomFlip")
        flip = rng.random(len(imgs)) < self.p
        out = imgs.copy()
        out[flip] = imgs[flip][..., ::-1]
        return restore(out)


def apply(t, x, rng):
    """Call a fastnet :class:`Transform` with the generator, a plain function with the batch only."""
    return t(x, rng) if isinstance(t, Transform) else t(x)
