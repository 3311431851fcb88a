"""Inverted dropout, compiled (twin of ``reference/dropout.py``).

The layer draws the keep-mask from its own seeded NumPy Generator (so results are
deterministic and identical on both backends); this kernel only applies
``x * (mask * scale)`` in one pass, without materialising ``mask * scale``.
"""

import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit
from ..config import BLOCK

__all__ = ["dropout_forward", "dropout_backward"]


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
