"""Conv2D: Cython im2col/col2im + single-threaded BLAS GEMMs, parallel over sample chunks.

The batch is cut into chunks of whole samples (``_plan``: cache-sized, at least
``config.CONV_MIN_CHUNKS`` of them, a function of the shapes only). Each chunk is one task of
``_kernels/tasks.py``: a thread takes a chunk and runs it end to end (im2col, GEMM, layout pass,
col2im) on its own workspace, so the threads never wait for each other inside a layer and a
descheduled thread holds back one chunk; inside a task every kernel is serial. Backward keeps one
dW and db part per chunk and sums them in chunk order: the result is the same at any thread count.
A batch of one chunk (e.g. batch 1) runs in the calling thread with parallel passes and GEMM blocks.

float32 stride-1 layers with few enough channels (``blocked.applies``: all of LeNet-5, ResNet-20's stride-1
layers) go first to register-blocked direct kernels (``fast/blocked.py``), and strided layers whose kernel is no
larger than the stride (ResNet-20's 1x1 shortcuts) to them by stride phases (``fast/strided.py``); then
stride-1 layers with a short im2col inner dimension C*KH*KW (``direct.applies``: the first layer of an image net)
to a direct convolution (``fast/direct.py``), and stride-1 3x3 layers with enough channels and outputs
(``winograd.applies``) to Winograd F(2x2, 3x3) (``fast/winograd.py``); all use the same chunking and
determinism, and the rules and their measurements are in ``config.py``. im2col stays the general path.

Two layouts inside a chunk, picked by the number of filters F (``config.STACKED_MAX_FILTERS``):

"wide" (F >= 16, e.g. 32->64 3x3): the columns are the contract's ``cols (K, m*P)``, K = C*KH*KW
rows ordered (c, kh, kw), m*P columns ordered (n, oh, ow).

- forward ``out (F, m*P) = W (F, K) @ cols``: one GEMM per chunk; one pass moves ``out`` to NCHW
  (each (n, f) row of P values is a contiguous copy) and adds the bias (and ReLU) in the same pass.
- backward: dy goes pixel-major once, ``dyp (m*P, F)`` (ReLU's mask applied in that pass);
  ``dW^T += cols @ dyp`` and ``dcols = W^T @ dyp^T`` (transposes are BLAS flags, not copies);
  dcols overwrites cols, so backward needs no more scratch than forward; col2im scatters it to NCHW.

"stacked" (F < 16, e.g. LeNet's 1->6 5x5): sample-major columns ``(m, K, P)`` and one
``(F, K) @ (K, P)`` GEMM per sample, writing NCHW directly. A GEMM with only a few output rows
over a very wide matrix is memory-bound and was measured ~20x slower in OpenBLAS than the same
work split per sample.

``act="relu"`` (Conv2D fused with a following ReLU): forward applies max(., 0) in the pass that
adds the bias, so y is written once; backward masks dy with ``y > 0`` in the pass that already
copies dy into the GEMM layout. No extra full-size array.

Memory: the scratch comes from ``workspace`` (per thread) and takes (K + F) * P * itemsize bytes
per sample (+ F*K per sample for dW in the stacked path); chunks stay under the workspace limit
(64 MiB by default; ``fastnet._kernels.workspace``), or one sample if a single sample needs more.
The tunables (``STACKED_MAX_FILTERS``, the chunk sizes) and their measurements are in ``config.py``.
"""

from __future__ import annotations

import numpy as np

from .. import config, parallel, tasks, workspace
from ..reference.activations import check_fused_act
from . import blocked, direct, gemm, strided, winograd
from ._extension import load
from ._window import as_float as _float
from ._window import window_geometry

_ext = load("_im2col")

__all__ = ["conv2d_forward", "conv2d_backward", "im2col", "col2im"]


def im2col(x, kernel, stride, padding):
    x = _float(x)
    N, C = x.shape[:2]
    kh, kw, sh, sw, ph, pw, oh, ow = window_geometry(x.shape, kernel, stride, padding, "conv")
    cols = np.empty((C * kh * kw, N * oh * ow), dtype=x.dtype)
    _ext.im2col_into(x, cols, kh, kw, sh, sw, ph, pw, parallel.omp_threads(cols.size))
    return cols


def col2im(cols, x_shape, kernel, stride, padding):
    cols = _float(cols)
    x_shape = tuple(int(s) for s in x_shape)
    kh, kw, sh, sw, ph, pw, oh, ow = window_geometry(x_shape, kernel, stride, padding, "conv")
    dx = np.empty(x_shape, dtype=cols.dtype)
    _ext.col2im_into(cols, dx, kh, kw, sh, sw, ph, pw, parallel.omp_threads(cols.size))
    return dx


def _plan(N, F, K, P, itemsize):
    """(stacked?, samples per chunk) for this convolution. The chunks are the tasks the thread team
    shares (``tasks.run``), so they depend on the shapes only (never on the thread count: results
    do not either): at least ``config.CONV_MIN_CHUNKS`` of them when the batch allows, each small
    enough that the columns im2col writes are still in cache when the GEMM reads them (and dcols
    when col2im does), and within the workspace limit."""
    stacked = F < config.STACKED_MAX_FILTERS
    # stacked: cols (K, P) + dW part (F, K) + the ReLU-masked dy (F, P); wide: cols + out / dyp
    per_sample = ((K + F) * P + (F * K if stacked else 0)) * itemsize
    step = workspace.chunk_size(N, per_sample)
    cache_bytes = config.STACKED_CHUNK_BYTES if stacked else config.WIDE_CHUNK_BYTES
    step = min(step, max(1, cache_bytes // per_sample), tasks.per_task(N, config.CONV_MIN_CHUNKS))
    return stacked, step


def _relu(act) -> bool:
    return check_fused_act(act, "conv2d")


def engine(C, F, kernel, stride, padding, dtype, out_hw) -> str:
    """The engine that runs this convolution, forward and backward alike (and ``conv_pool.py``'s pooled forward):
    "blocked", "strided", "direct", "winograd" or "im2col", in that order of preference (the module docstring says
    why)."""
    wino = winograd.applies(C, F, kernel, stride, out_hw)
    if blocked.applies(C, F, kernel, stride, padding, dtype, wino):
        return "blocked"
    if strided.applies(C, F, kernel, stride, dtype):
        return "strided"
    if direct.applies(C, kernel, stride):
        return "direct"
    return "winograd" if wino else "im2col"


def forward_operands(x, w, b, stride, padding):
    """``(x, w, b, geometry)`` of a forward call: the arrays C-contiguous in x's float dtype, and
    ``window_geometry``'s ``(kh, kw, sh, sw, ph, pw, oh, ow)``."""
    x = _float(x)
    w = _float(w, x.dtype)
    b = _float(b, x.dtype)
    return x, w, b, window_geometry(x.shape, w.shape[2:], stride, padding, "conv")


def conv2d_forward(x, w, b, stride, padding, act=None):
    relu = _relu(act)
    x, w, b, (kh, kw, sh, sw, ph, pw, oh, ow) = forward_operands(x, w, b, stride, padding)
    dt = x.dtype
    N, C = x.shape[:2]
    F = w.shape[0]
    use = engine(C, F, (kh, kw), (sh, sw), (ph, pw), dt, (oh, ow))
    if use == "blocked":
        return blocked.conv2d_forward(x, w, b, (ph, pw), (oh, ow), relu)
    if use == "strided":
        return strided.conv2d_forward(x, w, b, (sh, sw), (ph, pw), (oh, ow), relu)
    if use == "direct":
        return direct.conv2d_forward(x, w, b, (ph, pw), (oh, ow), relu)
    if use == "winograd":
        return winograd.conv2d_forward(x, w, b, (ph, pw), relu)
    K, P = C * kh * kw, oh * ow
    w2 = w.reshape(F, K)
    y = np.empty((N, F, oh, ow), dtype=dt)
    y3 = y.reshape(N, F, P)
    stacked, step = _plan(N, F, K, P, dt.itemsize)

    def chunk(i):  # one task: samples n0 .. n0+m, end to end, into their own slice of y
        n0 = i * step
        m = min(step, N - n0)
        xs, ys = x[n0 : n0 + m], y3[n0 : n0 + m]
        if stacked:
            # per-sample GEMMs write NCHW directly; bias (and ReLU) added while y is in cache
            (cols,) = workspace.take(dt, (m * K, P))
            _ext.im2col_into(xs, cols, kh, kw, sh, sw, ph, pw, parallel.omp_threads(cols.size), True)
            np.matmul(w2, cols.reshape(m, K, P), out=ys)  # a BLAS call per sample, in C
            _ext.nfp_bias_(ys, b, parallel.omp_threads(ys.size), relu)
        else:
            cols, out = workspace.take(dt, (K, m * P), (F, m * P))
            _ext.im2col_into(xs, cols, kh, kw, sh, sw, ph, pw, parallel.omp_threads(cols.size))
            gemm.matmul(w2, cols, out)
            _ext.fnp_to_nfp_bias(out, b, ys, parallel.omp_threads(out.size), relu)

    tasks.run(chunk, -(-N // step))
    return y


def conv2d_backward(dy, x, w, stride, padding, act=None, y=None, need_dx=True):
    relu = _relu(act)
    x = _float(x)
    dt = x.dtype
    w = _float(w, dt)
    dy = _float(dy, dt)
    N, C, H, W = x.shape
    F = w.shape[0]
    kh, kw, sh, sw, ph, pw, oh, ow = window_geometry(x.shape, w.shape[2:], stride, padding, "conv")
    P = oh * ow
    if dy.shape != (N, F, oh, ow):
        raise ValueError(f"conv2d_backward: dy must have shape {(N, F, oh, ow)}, got {dy.shape}")
    y3 = None
    if relu:
        if y is None or np.shape(y) != dy.shape:
            raise ValueError("conv2d_backward: act='relu' needs the forward output y, shaped like dy")
        y3 = _float(y, dt).reshape(N, F, P)
    ys = None if y3 is None else y3.reshape(dy.shape)
    use = engine(C, F, (kh, kw), (sh, sw), (ph, pw), dt, (oh, ow))
    if use == "blocked":
        return _blocked_backward(dy, x, w, (ph, pw), relu, ys, need_dx)
    if use == "strided":
        return strided.conv2d_backward(dy, x, w, (sh, sw), (ph, pw), relu, ys, need_dx, _blocked_backward)
    if use == "direct":
        return direct.conv2d_backward(dy, x, w, (ph, pw), relu, ys, need_dx)
    if use == "winograd":
        return winograd.conv2d_backward(dy, x, w, (ph, pw), relu, ys, need_dx)
    return _im2col_backward(dy, y3, x, w, (kh, kw, sh, sw, ph, pw), need_dx)


def _blocked_backward(dy, x, w, padding, relu, ys, need_dx):
    """``(dx or None, dw, db)`` of a stride-1 layer the blocked kernels take; on a small plane
    (``config.BLOCKED_GEMM_DW_MAX_OUTPUT``) dx from the kernels and dW, db from im2col's GEMM."""
    if not blocked.gemm_weight_gradient(*dy.shape[2:]):
        return blocked.conv2d_backward(dy, x, w, padding, relu, ys, need_dx)
    # ReLU's mask once, as dy * (y > 0): inf * 0 is NaN, as in the kernels' own backward and the reference
    if relu:
        with np.errstate(invalid="ignore"):
            dy = dy * (ys > 0)
    dx = blocked.input_gradient(dy, w, padding, x.shape) if need_dx else None
    geometry = (w.shape[2], w.shape[3], 1, 1, int(padding[0]), int(padding[1]))
    return (dx,) + _im2col_backward(dy, None, x, w, geometry, False)[1:]


def _im2col_backward(dy, y3, x, w, geometry, need_dx):
    """``(dx or None, dw, db)`` on the im2col path; y3 (N, F, P) is the forward output when ReLU is fused, else None."""
    N, F, oh, ow = dy.shape
    kh, kw = geometry[:2]
    K, P = x.shape[1] * kh * kw, oh * ow
    dt = x.dtype
    w2 = w.reshape(F, K)
    dy3 = dy.reshape(N, F, P)
    # need_dx=False (a model's first layer in training): no dcols GEMM and no col2im
    dx = np.empty_like(x) if need_dx else None
    stacked, step = _plan(N, F, K, P, dt.itemsize)
    n_chunks = -(-N // step)
    # one dW and db part per chunk, summed in chunk order at the end: the same sums at any thread count
    dw_parts = np.empty((n_chunks, F, K) if stacked else (n_chunks, K, F), dtype=dt)  # wide: dW^T
    db_parts = np.empty((n_chunks, F), dtype=dt)
    chunk = _stacked_chunk if stacked else _wide_chunk

    def task(i):
        n0 = i * step
        m = min(step, N - n0)
        ys = None if y3 is None else y3[n0 : n0 + m]
        dxs = None if dx is None else dx[n0 : n0 + m]
        chunk(dy3[n0 : n0 + m], ys, x[n0 : n0 + m], w2, geometry, dw_parts[i], db_parts[i], dxs)

    tasks.run(task, n_chunks)
    dw = dw_parts.sum(axis=0)
    return dx, (dw if stacked else np.ascontiguousarray(dw.T)).reshape(w.shape), db_parts.sum(axis=0)


def _stacked_chunk(dys, ys, xs, w2, geometry, dw, db, dxs):
    """Backward of one chunk with per-sample GEMMs (few filters): dW, db parts and dx of its samples."""
    m, F, P = dys.shape
    K = w2.shape[1]
    dt = dys.dtype
    kh, kw, sh, sw, ph, pw = geometry
    if ys is not None:  # ReLU's input gradient, sample-major like dy
        cols, dwp, dz = workspace.take(dt, (m * K, P), (m, F, K), (m * F, P))
        _ext.nfp_to_fnp_relu(dys, ys, dz, parallel.omp_threads(dz.size))
        dys = dz.reshape(m, F, P)
    else:
        cols, dwp = workspace.take(dt, (m * K, P), (m, F, K))
    cols3 = cols.reshape(m, K, P)
    nt = parallel.omp_threads(cols.size)
    _ext.im2col_into(xs, cols, kh, kw, sh, sw, ph, pw, nt, True)
    np.matmul(dys, cols3.transpose(0, 2, 1), out=dwp)
    np.sum(dwp, axis=0, out=dw)
    np.sum(dys, axis=(0, 2), out=db)
    if dxs is not None:
        np.matmul(w2.T, dys, out=cols3)  # dcols overwrites cols
        _ext.col2im_into(cols, dxs, kh, kw, sh, sw, ph, pw, nt, True)


def _wide_chunk(dys, ys, xs, w2, geometry, dw, db, dxs):
    """Backward of one chunk with one GEMM over all its samples: dW (transposed, (K, F)), db parts
    and dx of its samples. dy goes pixel-major, ``dyp (m*P, F)``, so dW^T = cols @ dyp is a GEMM
    whose long dimension m*P is the inner one: 1.2-2x the rate of dy^T @ cols^T in a one-off
    single-thread probe of the bare GEMMs (2026-12-01; R20's 16-channel 3x3 layers 21 -> 40 GFLOP/s).
    The layer-level effect is in ``benchmarks/bench_kernels.py`` and ``benchmarks/step_profile.py``."""
    m, F, P = dys.shape
    K = w2.shape[1]
    dt = dys.dtype
    kh, kw, sh, sw, ph, pw = geometry
    cols, dyp = workspace.take(dt, (K, m * P), (m * P, F))
    _ext.nfp_to_npf(dys, ys, dyp, parallel.omp_threads(dyp.size))  # with ReLU's mask when ys is given
    nt = parallel.omp_threads(cols.size)
    _ext.im2col_into(xs, cols, kh, kw, sh, sw, ph, pw, nt)
    gemm.matmul(cols, dyp, dw)
    np.sum(dyp, axis=0, out=db)
    if dxs is not None:
        gemm.matmul(w2.T, dyp.T, cols)  # dcols overwrites cols: forward's memory bound holds
        _ext.col2im_into(cols, dxs, kh, kw, sh, sw, ph, pw, nt)
