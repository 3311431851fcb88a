"""Inverted dropout, compiled (twin of ``reference/dropout.py``).

``dropout_mask`` hashes each element's flat index with the layer's per-step key (SplitMix64,
see the twin), in parallel blocks: every element depends only on ``(key, i)``, so the mask is
the twin's bit for bit at any thread count. ``dropout_forward``/``backward`` apply
``x * (mask * scale)`` in one pass, without materialising ``mask * scale``.
"""

import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit
from ..config import BLOCK
from ..reference.dropout import GAMMA, MIX1, MIX2, check_mask_args, threshold

__all__ = ["dropout_forward", "dropout_backward", "dropout_mask"]

_GAMMA, _MIX1, _MIX2 = np.uint64(GAMMA), np.uint64(MIX1), np.uint64(MIX2)


@jit
def _splitmix(key, i):
    """SplitMix64's output number ``i`` (from 1) from state ``key``. All arithmetic is uint64: a signed
    operand would make Numba compute in floats."""
    z = key + np.uint64(i) * _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@jit
def _mask_block(key, start, cut, mask):
    """mask[j] for flat index start + j (start even): hash ``(start + j) // 2 + 1`` gives two elements."""
    n = mask.shape[0]
    pair0 = start // 2
    for j in range(n // 2):
        z = _splitmix(key, pair0 + j + 1)
        mask[2 * j] = np.uint8((z >> np.uint64(32)) >= cut)
        mask[2 * j + 1] = np.uint8((z & np.uint64(0xFFFFFFFF)) >= cut)
    if n % 2:  # an odd last element takes the high half of the next hash
        mask[n - 1] = np.uint8((_splitmix(key, pair0 + n // 2 + 1) >> np.uint64(32)) >= cut)


@jit
def _mask_serial(key, cut, mask):
    _mask_block(key, 0, cut, mask)


@pjit
def _mask_parallel(key, cut, mask):
    n = mask.shape[0]
    for k in prange((n + BLOCK - 1) // BLOCK):
        s = k * BLOCK
        _mask_block(key, s, cut, mask[s : min(n, s + BLOCK)])


def dropout_mask(key, shape, p):
    k, shape, n = check_mask_args(key, shape, p)
    mask = np.empty(n, np.uint8)
    parallel.run(n, config.DROPOUT_MIN, _mask_serial, _mask_parallel, (k, np.uint64(threshold(p)), mask))
    return mask.reshape(shape)


@jit
def _apply_block(x, mask, scale, y):
    for i in range(x.shape[0]):
        # mask * scale first, like the reference: x * 0 stays NaN for non-finite x.
        y[i] = x[i] * (mask[i] * scale)


@jit
def _apply_serial(x, mask, scale, y):
    _apply_block(x, mask, scale, y)


@pjit
def _apply_parallel(x, mask, scale, y):
    n = x.shape[0]
    for k in prange((n + BLOCK - 1) // BLOCK):
        s = k * BLOCK
        e = min(n, s + BLOCK)
        _apply_block(x[s:e], mask[s:e], scale, y[s:e])


def _apply(x, mask, scale, where):
    x = np.ascontiguousarray(x)
    mask = np.ascontiguousarray(mask)
    if mask.shape != x.shape:
        raise ValueError(f"{where}: mask shape must equal the input shape {x.shape}, got {mask.shape}")
    if mask.dtype.kind not in "bu":
        mask = mask.astype(np.uint8)
    y = np.empty_like(x)
    xf, mf, yf = x.reshape(-1), mask.reshape(-1), y.reshape(-1)
    s = x.dtype.type(scale)
    parallel.run(xf.shape[0], config.DROPOUT_MIN, _apply_serial, _apply_parallel, (xf, mf, s, yf))
    return y


def dropout_forward(x, mask, scale):
    return _apply(x, mask, scale, "dropout_forward")


def dropout_backward(dy, mask, scale):
    return _apply(dy, mask, scale, "dropout_backward")
