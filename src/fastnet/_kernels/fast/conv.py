"""Conv2D: Cython im2col/col2im (OpenMP) + one BLAS GEMM per batch chunk.

Layout, and why: for a chunk of ``m`` samples the columns are ``cols (K, m*P)`` with
K = C*KH*KW rows ordered (c, kh, kw) and m*P columns ordered (n, oh, ow) -- the contract's
im2col layout. Then

- forward  ``out (F, m*P) = W (F, K) @ cols``: one large GEMM for the whole chunk (BLAS is most
  efficient on one big product, not m small per-sample ones); a single OpenMP pass moves
  ``out`` to NCHW (each (f, n) row of P values is one contiguous copy) and adds the bias in
  the same pass, so there is no separate transpose or bias sweep.
- backward: the NCHW upstream gradient is copied once to ``dyT (F, m*P)``; then
  ``dW += dyT @ cols.T`` and ``dcols = W.T @ dyT`` -- two GEMMs, transposes handled by BLAS
  flags, no copies -- and ``dcols`` is written over ``cols`` (no longer needed), so backward
  needs no more scratch memory than forward. col2im scatters it back to NCHW.
- batch 1: the GEMM output is already NCHW and dy needs no reshuffle; both copies are skipped.

Memory: cols + out (or cols + dyT) come from ``workspace`` and use (K + F) * P * itemsize bytes
per sample; the batch is processed in chunks so that stays under the workspace limit
(64 MiB by default, see ``fastnet._kernels.workspace``). Threads: im2col/col2im and the
layout copies run on ``fastnet.threads.get_num_threads()`` OpenMP threads, serially below
``PARALLEL_MIN_ELEMENTS``; the GEMMs use BLAS's own threads (set by the same switch).
"""
from __future__ import annotations

import numpy as np

from .. import workspace
from .._jit import PARALLEL_MIN_ELEMENTS
from ...threads import get_num_threads
from ._extension import load

_ext = load("_im2col")

__all__ = ["conv2d_forward", "conv2d_backward", "im2col", "col2im"]


def _threads(work: int) -> int:
    return 1 if work < PARALLEL_MIN_ELEMENTS else get_num_threads()


def _geometry(x_shape, kernel, stride, padding):
    _, _, H, W = x_shape
    kh, kw = int(kernel[0]), int(kernel[1])
    sh, sw = int(stride[0]), int(stride[1])
    ph, pw = int(padding[0]), int(padding[1])
    oh = (H + 2 * ph - kh) // sh + 1
    ow = (W + 2 * pw - kw) // sw + 1
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or ph < 0 or pw < 0 or oh < 1 or ow < 1:
        raise ValueError(
            f"conv geometry: kernel {kernel}, stride {stride}, padding {padding} do not fit input {tuple(x_shape)}"
        )
    return kh, kw, sh, sw, ph, pw, oh, ow


def _float(a, dtype=None):
    """C-contiguous float32/float64 array (``dtype`` forces the dtype of a partner array)."""
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def im2col(x, kernel, stride, padding):
    x = _float(x)
    N, C = x.shape[:2]
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x.shape, kernel, stride, padding)
    cols = np.empty((C * kh * kw, N * oh * ow), dtype=x.dtype)
    _ext.im2col_into(x, cols, kh, kw, sh, sw, ph, pw, _threads(cols.size))
    return cols


def col2im(cols, x_shape, kernel, stride, padding):
    cols = _float(cols)
    x_shape = tuple(int(s) for s in x_shape)
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x_shape, kernel, stride, padding)
    dx = np.empty(x_shape, dtype=cols.dtype)
    _ext.col2im_into(cols, dx, kh, kw, sh, sw, ph, pw, _threads(cols.size))
    return dx


def conv2d_forward(x, w, b, stride, padding):
    x = _float(x)
    dt = x.dtype
    w = _float(w, dt)
    b = _float(b, dt)
    N, C = x.shape[:2]
    F = w.shape[0]
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x.shape, w.shape[2:], stride, padding)
    K, P = C * kh * kw, oh * ow
    w2 = w.reshape(F, K)
    y = np.empty((N, F, oh, ow), dtype=dt)
    y3 = y.reshape(N, F, P)
    step = workspace.chunk_size(N, (K + F) * P * dt.itemsize)
    for n0 in range(0, N, step):
        m = min(step, N - n0)
        if m == 1:
            (cols,) = workspace.take(dt, (K, P))
            _ext.im2col_into(x[n0:n0 + 1], cols, kh, kw, sh, sw, ph, pw, _threads(cols.size))
            np.matmul(w2, cols, out=y3[n0])
            y3[n0] += b[:, None]
        else:
            cols, out = workspace.take(dt, (K, m * P), (F, m * P))
            _ext.im2col_into(x[n0:n0 + m], cols, kh, kw, sh, sw, ph, pw, _threads(cols.size))
            np.matmul(w2, cols, out=out)
            _ext.fnp_to_nfp_bias(out, b, y3[n0:n0 + m], _threads(out.size))
    return y


def conv2d_backward(dy, x, w, stride, padding):
    x = _float(x)
    dt = x.dtype
    w = _float(w, dt)
    dy = _float(dy, dt)
    N, C, H, W = x.shape
    F = w.shape[0]
    kh, kw, sh, sw, ph, pw, oh, ow = _geometry(x.shape, w.shape[2:], stride, padding)
    K, P = C * kh * kw, oh * ow
    if dy.shape != (N, F, oh, ow):
        raise ValueError(f"conv2d_backward: dy must have shape {(N, F, oh, ow)}, got {dy.shape}")
    w2 = w.reshape(F, K)
    dy3 = dy.reshape(N, F, P)
    dx = np.empty_like(x)
    dw = np.zeros((F, K), dtype=dt)
    dw_part = np.empty((F, K), dtype=dt)
    db = np.zeros(F, dtype=dt)
    step = workspace.chunk_size(N, (K + F) * P * dt.itemsize)
    for n0 in range(0, N, step):
        m = min(step, N - n0)
        if m == 1:
            (cols,) = workspace.take(dt, (K, P))
            dyt = dy3[n0]
        else:
            cols, dyt = workspace.take(dt, (K, m * P), (F, m * P))
            _ext.nfp_to_fnp(dy3[n0:n0 + m], dyt, _threads(dyt.size))
        nt = _threads(cols.size)
        _ext.im2col_into(x[n0:n0 + m], cols, kh, kw, sh, sw, ph, pw, nt)
        np.matmul(dyt, cols.T, out=dw_part)
        dw += dw_part
        db += dyt.sum(axis=1)
        np.matmul(w2.T, dyt, out=cols)  # dcols overwrites cols: forward's memory bound holds
        _ext.col2im_into(cols, dx[n0:n0 + m], kh, kw, sh, sw, ph, pw, nt)
    return dx, dw.reshape(w.shape), db
