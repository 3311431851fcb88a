"""Pooling kernels in Cython (``_pool.pyx``): one OpenMP ``prange`` over the N*C planes.

NCHW is already the best layout here: a plane is contiguous, windows stay in cache, and
backward scatters only inside the plane its thread owns, so no atomics are needed. The team
size comes from ``parallel.omp_threads``: serial below ``config.OMP_MIN_ELEMENTS`` input
elements (thread wake-up would dominate) and in any thread but the main one.
Ties in max-pool: the first maximum in row-major window order wins (see the .pyx docstring).
Max-pool forward is branch-free, with an SSE2 float32 path for 2x2 windows of stride 2 (the
.pyx docstring says why and what it measured).
"""

from __future__ import annotations

import numpy as np

from .. import parallel
from ._extension import load
from ._window import as_float as _float
from ._window import window_geometry

_ext = load("_pool")

__all__ = [
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "global_avgpool2d_forward",
    "global_avgpool2d_backward",
]


def maxpool2d_forward(x, kernel, stride, padding):
    x = _float(x)
    N, C = x.shape[:2]
    kh, kw, sh, sw, ph, pw, oh, ow = window_geometry(x.shape, kernel, stride, padding, "pool")
    y = np.empty((N, C, oh, ow), dtype=x.dtype)
    argmax = np.empty((N, C, oh, ow), dtype=np.int64)
    _ext.maxpool_forward_into(x, y, argmax, kh, kw, sh, sw, ph, pw, parallel.omp_threads(x.size))
    return y, argmax


def maxpool2d_backward(dy, argmax, x_shape):
    dy = _float(dy)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    if argmax.shape != dy.shape:
        raise ValueError(f"maxpool2d_backward: argmax shape {argmax.shape} != dy shape {dy.shape}")
    dx = np.empty(tuple(int(s) for s in x_shape), dtype=dy.dtype)
    _ext.maxpool_backward_into(dy, argmax, dx, parallel.omp_threads(dx.size))
    return dx


def maxpool2x2_winners(x):
    """(y, win): the 2x2 stride-2 max-pool of x and each window's winner, uint8 0..3 in row-major order
    (the tie rule of ``maxpool2d_forward``). For ``conv_pool.py``'s training path; not a registry kernel."""
    x = _float(x)
    N, C, H, W = x.shape
    y = np.empty((N, C, H // 2, W // 2), dtype=x.dtype)
    win = np.empty(y.shape, dtype=np.uint8)
    _ext.maxpool2x2_winners_into(x, y, win, parallel.omp_threads(x.size))
    return y, win


def unpool2x2(dy, win, p, relu, x_shape):
    """dx of shape ``x_shape``: the gradient of ``maxpool2x2_winners`` from dy, masked by ``p > 0`` (the
    pooled output) when ``relu``. For ``conv_pool.py``'s training path; not a registry kernel."""
    dy = _float(dy)
    dx = np.empty(tuple(int(s) for s in x_shape), dtype=dy.dtype)
    p = _float(p, dy.dtype) if relu else dy
    _ext.unpool2x2_into(dy, np.ascontiguousarray(win, dtype=np.uint8), p, relu, dx, parallel.omp_threads(dx.size))
    return dx


def avgpool2d_forward(x, kernel, stride, padding):
    x = _float(x)
    N, C = x.shape[:2]
    kh, kw, sh, sw, ph, pw, oh, ow = window_geometry(x.shape, kernel, stride, padding, "pool")
    y = np.empty((N, C, oh, ow), dtype=x.dtype)
    _ext.avgpool_forward_into(x, y, kh, kw, sh, sw, ph, pw, parallel.omp_threads(x.size))
    return y


def avgpool2d_backward(dy, x_shape, kernel, stride, padding):
    dy = _float(dy)
    x_shape = tuple(int(s) for s in x_shape)
    kh, kw, sh, sw, ph, pw, oh, ow = window_geometry(x_shape, kernel, stride, padding, "pool")
    if dy.shape != (*x_shape[:2], oh, ow):
        raise ValueError(f"avgpool2d_backward: dy must have shape {(*x_shape[:2], oh, ow)}, got {dy.shape}")
    dx = np.empty(x_shape, dtype=dy.dtype)
    _ext.avgpool_backward_into(dy, dx, kh, kw, sh, sw, ph, pw, parallel.omp_threads(dx.size))
    return dx


def global_avgpool2d_forward(x):
    x = _float(x)
    y = np.empty(x.shape[:2], dtype=x.dtype)
    _ext.global_avg_forward_into(x, y, parallel.omp_threads(x.size))
    return y


def global_avgpool2d_backward(dy, x_shape):
    dy = _float(dy)
    dx = np.empty(tuple(int(s) for s in x_shape), dtype=dy.dtype)
    _ext.global_avg_backward_into(dy, dx, parallel.omp_threads(dx.size))
    return dx
