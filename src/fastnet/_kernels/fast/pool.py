"""Pooling kernels in Cython (``_pool.pyx``): one OpenMP ``prange`` over the N*C planes.

NCHW is already the best layout here: a plane is contiguous, windows stay in cache, and
backward scatters only inside the plane its thread owns, so no atomics are needed. Planes
run serially below ``PARALLEL_MIN_ELEMENTS`` input elements (thread wake-up would dominate).
Ties in max-pool: the first maximum in row-major window order wins (see the .pyx docstring).
"""
from __future__ import annotations

import numpy as np

from .._jit import PARALLEL_MIN_ELEMENTS
from ...threads import get_num_threads
from ._extension import load

_ext = load("_pool")

__all__ = [
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "global_avgpool2d_forward",
    "global_avgpool2d_backward",
]


def _threads(work: int) -> int:
    return 1 if work < PARALLEL_MIN_ELEMENTS else get_num_threads()


def _float(a, dtype=None):
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def _geometry(x_shape, kernel, stride, padding):
    _, _, H, W = x_shape
    kh, kw = int(kernel[0]), int(kernel[1])
    sh, sw = int(stride[0]), int(stride[1])
    ph, pw = int(padding[0]), int(padding[1])
    oh = (H + 2 * ph - kh) // sh + 1
    ow = (W + 2 * pw - kw) // sw + 1
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or ph < 0 or pw < 0 or oh < 1 or ow < 1:
        raise ValueError(
            f"pool geometry: kernel {kernel}, stride {stride}, padding {padding} do not fit input {tuple(x_shape)}"
        )
    return kh, kw, sh, sw, ph, pw, oh, ow


def maxpool2d_forward(x, kernel, stride, padding):
    x = _float(x)
    N, C = x.shape[:2]
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x.shape, kernel, stride, padding)
    y = np.empty((N, C, oh, ow), dtype=x.dtype)
    argmax = np.empty((N, C, oh, ow), dtype=np.int64)
    _ext.maxpool_forward_into(x, y, argmax, kh, kw, sh, sw, ph, pw, _threads(x.size))
    return y, argmax


def maxpool2d_backward(dy, argmax, x_shape):
    dy = _float(dy)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    if argmax.shape != dy.shape:
        raise ValueError(f"maxpool2d_backward: argmax shape {argmax.shape} != dy shape {dy.shape}")
    dx = np.empty(tuple(int(s) for s in x_shape), dtype=dy.dtype)
    _ext.maxpool_backward_into(dy, argmax, dx, _threads(dx.size))
    return dx


def avgpool2d_forward(x, kernel, stride, padding):
    x = _float(x)
    N, C = x.shape[:2]
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x.shape, kernel, stride, padding)
    y = np.empty((N, C, oh, ow), dtype=x.dtype)
    _ext.avgpool_forward_into(x, y, kh, kw, sh, sw, ph, pw, _threads(x.size))
    return y


def avgpool2d_backward(dy, x_shape, kernel, stride, padding):
    dy = _float(dy)
    x_shape = tuple(int(s) for s in x_shape)
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x_shape, kernel, stride, padding)
    if dy.shape != (*x_shape[:2], oh, ow):
        raise ValueError(f"avgpool2d_backward: dy must have shape {(*x_shape[:2], oh, ow)}, got {dy.shape}")
    dx = np.empty(x_shape, dtype=dy.dtype)
    _ext.avgpool_backward_into(dy, dx, kh, kw, sh, sw, ph, pw, _threads(dx.size))
    return dx


def global_avgpool2d_forward(x):
    x = _float(x)
    y = np.empty(x.shape[:2], dtype=x.dtype)
    _ext.global_avg_forward_into(x, y, _threads(x.size))
    return y


def global_avgpool2d_backward(dy, x_shape):
    dy = _float(dy)
    dx = np.empty(tuple(int(s) for s in x_shape), dtype=dy.dtype)
    _ext.global_avg_backward_into(dy, dx, _threads(dx.size))
    return dx
