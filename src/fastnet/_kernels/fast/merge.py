"""Elementwise sum, compiled (twin of ``reference/merge.py``): the Add layer (with a fused
ReLU, one pass instead of a sum and a ReLU pass) and a model's fan-out gradient sums."""

import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit
from ..config import BLOCK
from ..reference.activations import check_fused_act
from ..reference.merge import check_terms

__all__ = ["add_forward"]


@jit
def _add_block(a, b, y, relu, s, e):
    zero = y.dtype.type(0.0)
    if relu:
        for i in range(s, e):
            v = a[i] + b[i]
            y[i] = zero if v < zero else v  # NaN propagates, as np.maximum
    else:
        for i in range(s, e):
            y[i] = a[i] + b[i]


@jit
def _add_serial(a, b, y, relu):
    _add_block(a, b, y, relu, 0, a.shape[0])


@pjit
def _add_parallel(a, b, y, relu):
    n = a.shape[0]
    for k in prange((n + BLOCK - 1) // BLOCK):
        _add_block(a, b, y, relu, k * BLOCK, min(n, (k + 1) * BLOCK))


def add_forward(xs, act=None):
    relu = check_fused_act(act, "add_forward")
    xs = [np.ascontiguousarray(x) for x in check_terms(xs, "add_forward")]
    y = np.empty_like(xs[0])
    acc, yf = xs[0].reshape(-1), y.reshape(-1)
    for k, x in enumerate(xs[1:]):  # the reference's order: ((x0 + x1) + x2) + ...
        last = k == len(xs) - 2
        args = (acc, x.reshape(-1), yf, relu and last)
        parallel.run(yf.shape[0], config.MEMORY_BOUND_MIN, _add_serial, _add_parallel, args)
        acc = yf
    return y
