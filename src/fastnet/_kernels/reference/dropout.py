"""Inverted dropout, plain NumPy. The layer passes ``scale = 1 / (1 - p)``, so eval mode needs no rescaling.

The keep-mask (1 = keep) is a function of a 64-bit key and the element's flat index, not a
stream. SplitMix64's ``j+1``-th output from state ``key`` decides two elements: its high 32 bits
element ``2j``, its low 32 bits element ``2j+1``; an element keeps iff its 32 bits are at least
``threshold(p)``. SplitMix64 (Steele, Lea and Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014; the seeder of Java's SplittableRandom and of
xoshiro) passes BigCrush. Because each element depends only on ``(key, i)``, the compiled
twin computes the same mask in any order on any number of threads, bit for bit, and the
layer draws one key per step from its seeded generator instead of ``n`` floats (measured
2026-12-01: NumPy's ``random`` took 4-5 ms for the 1.2M-element mask of the Keras MNIST CNN).
"""

import math

import numpy as np

__all__ = ["dropout_forward", "dropout_backward", "dropout_mask"]

GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's state increment (2^64 / golden ratio, odd)
MIX1 = 0xBF58476D1CE4E5B9  # its two finalising multipliers
MIX2 = 0x94D049BB133111EB


def threshold(p: float) -> int:
    """The 32-bit cut: P(top 32 bits >= threshold) = 1 - p to within 2^-32."""
    return min(1 << 32, round(float(p) * 4294967296.0))


def check_mask_args(key, shape, p):
    """``(key as uint64, shape as a tuple, element count)``, or a ValueError naming what came."""
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= int(key) < 1 << 64:
        raise ValueError(f"dropout_mask: key must be an integer in [0, 2**64), got {key!r}")
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"dropout_mask: shape must have no negative sizes, got {shape}")
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout_mask: p must be in [0, 1), got {p!r}")
    return np.uint64(int(key)), shape, math.prod(shape)


def dropout_mask(key, shape, p):
    """A uint8 keep-mask of ``shape``: element ``i`` (C order) is 1 with probability ``1 - p``."""
    k, shape, n = check_mask_args(key, shape, p)
    pairs = -(-n // 2)  # one hash for every two elements
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2^64 by design
        z = k + np.arange(1, pairs + 1, dtype=np.uint64) * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        z ^= z >> np.uint64(31)
    bits = np.empty((z.shape[0], 2), np.uint64)
    bits[:, 0] = z >> np.uint64(32)
    bits[:, 1] = z & np.uint64(0xFFFFFFFF)
    return (bits.reshape(-1)[:n] >= np.uint64(threshold(p))).view(np.uint8).reshape(shape)


def dropout_forward(x, mask, scale):
    return x * (mask.astype(x.dtype) * x.dtype.type(scale))


def dropout_backward(dy, mask, scale):
    return dy * (mask.astype(dy.dtype) * dy.dtype.type(scale))
