"""Conv2D by Winograd F(2x2, 3x3) for stride-1 3x3 layers: 16 GEMMs per chunk, 2.25x fewer products.

The algorithm and its plain NumPy twin are in ``reference/winograd.py``; this is the same
arithmetic, cut and scheduled like ``fast/conv.py`` (which dispatches here, see :func:`applies`):

- the weights go to the Winograd domain once per call, ``U (16, F, C) = G g G^T``;
- the batch is cut into sample chunks (a function of the shapes only), each one task of
  ``_kernels/tasks.py`` run end to end on its thread's ``workspace`` in cache-sized passes: the input tiles
  ``V (16, C, m*T) = B^T d B`` (Numba, ``_winograd_tiles.py``), the 16 GEMMs
  ``M[xi] = U[xi] @ V[xi]`` (one ``np.matmul`` over the stack: a single-threaded BLAS call per xi),
  and the output transform ``A^T M A`` written straight to NCHW with the bias (and ReLU) added;
- backward: ``dM = A dY A^T`` (ReLU's mask and the db part in the same pass),
  ``dU += dM @ V^T`` (one part per task, its passes added in order, the parts summed in task
  order: the same bits at any thread count), ``dV = U^T @ dM`` written over V, and
  ``dx = B dV B^T`` overlap-added into NCHW;
  ``dW = G^T dU G`` once at the end. ``need_dx=False`` skips dV and dx.

Memory: the scratch is V and M (dM in backward), 16 * (C + F) * T * itemsize bytes per sample,
T = ceil(OH/2) * ceil(OW/2) tiles: e.g. 32->32 on 14x14 in float32, 196 KiB (im2col's
(9*C + F) * OH * OW * itemsize: 245 KiB), plus one (16, F, C) dU part per task. Passes stay within
the workspace limit like ``conv.py`` and under ``config.WINOGRAD_CHUNK_BYTES`` (cache-sized).

Accuracy, float32, max |error| / max |float64 reference| (batch 32, He-scaled weights, 2026-12-01):

    layer               Winograd: y / dx / dW        im2col: y / dx / dW
    16->16 28x28 pad 1  2.1e-7 / 2.1e-7 / 2.4e-7     5.7e-7 / 1.7e-7 / 3.3e-7
    32->32 14x14 pad 1  2.6e-7 / 2.1e-7 / 2.2e-7     6.3e-7 / 1.6e-7 / 3.7e-7
    64->64 7x7 pad 1    3.5e-7 / 3.3e-7 / 3.6e-7     5.3e-7 / 2.3e-7 / 3.9e-7
    32->64 26x26 pad 0  2.6e-7 / 3.8e-7 / 4.1e-7     7.0e-7 / 2.0e-7 / 3.5e-7

F(2x2, 3x3)'s transforms only add and halve, so it stays at im2col's level (U and dW are computed
in float64); the equivalence tests hold it to the same 1e-4 as im2col. The speed measurements and the
dispatch rule are in ``config.py`` beside ``WINOGRAD_MIN_CHANNELS``.
"""

from __future__ import annotations

import numpy as np

from .. import config, tasks, workspace
from ..reference.winograd import tiles, weight_grad, weight_transform
from . import _winograd_tiles as tiles_  # the module: Numba globals here would hide np.matmul from step_hooks

__all__ = ["applies", "conv2d_forward", "conv2d_backward"]


def applies(C: int, F: int, kernel, stride, out_hw) -> bool:
    """True when ``fast/conv.py`` sends this convolution here: 3x3, stride 1, and the shapes where
    it was measured to beat im2col (``config.WINOGRAD_MIN_CHANNELS``, ``config.WINOGRAD_MIN_OUTPUT``)."""
    return (
        tuple(kernel) == (3, 3)
        and tuple(stride) == (1, 1)
        and config.WINOGRAD_MIN_CHANNELS is not None
        and min(C, F) >= config.WINOGRAD_MIN_CHANNELS
        and min(out_hw) >= config.WINOGRAD_MIN_OUTPUT
    )


def _plan(N, C, F, T, itemsize):
    """(samples per task, samples per pass): a task is about ceil(N / ``config.CONV_MIN_CHUNKS``)
    samples (the tasks the thread team shares, and the dU parts summed in order), run as passes of
    V and M within ``config.WINOGRAD_CHUNK_BYTES`` (cache-sized) and the workspace limit. Both
    depend on the shapes only, as in conv.py, so the results do not depend on the thread count."""
    per_sample = 16 * (C + F) * T * itemsize
    sub = min(workspace.chunk_size(N, per_sample), max(1, config.WINOGRAD_CHUNK_BYTES // per_sample))
    step = max(sub, tasks.per_task(N, config.CONV_MIN_CHUNKS))
    return step - step % sub if step > sub else step, sub


def conv2d_forward(x, w, b, padding, relu, pool=False):
    """y (N, F, OH, OW) of a stride-1 3x3 convolution; x, w, b C-contiguous of one float dtype.
    ``pool``: the 2x2 stride-2 max-pool of y, (N, F, OH // 2, OW // 2), one value per output tile."""
    N, C, H, W = x.shape
    F = w.shape[0]
    ph, pw = int(padding[0]), int(padding[1])
    oh, ow, th, tw = tiles(H, W, (ph, pw))
    T = th * tw
    u = weight_transform(w)
    y = np.empty((N, F, oh // 2, ow // 2) if pool else (N, F, oh, ow), dtype=x.dtype)
    output = tiles_.output_tiles_pool if pool else tiles_.output_tiles
    step, sub = _plan(N, C, F, T, x.dtype.itemsize)

    def chunk(i):  # one task: samples i*step .. , end to end, in passes of ``sub`` samples
        for n0 in range(i * step, min(N, (i + 1) * step), sub):
            m = min(sub, N - n0)
            v, mm = workspace.take(x.dtype, (16, C, m * T), (16, F, m * T))
            tiles_.input_tiles(x[n0 : n0 + m], ph, pw, th, tw, v)
            np.matmul(u, v, out=mm)
            output(mm, b, relu, th, tw, y[n0 : n0 + m])

    tasks.run(chunk, -(-N // step))
    return y


def conv2d_backward(dy, x, w, padding, relu, y, need_dx):
    """(dx or None, dw, db); ``y`` is the forward output when ``relu`` (its mask), else ignored."""
    N, C, H, W = x.shape
    F = w.shape[0]
    ph, pw = int(padding[0]), int(padding[1])
    _, _, th, tw = tiles(H, W, (ph, pw))
    T = th * tw
    dt = x.dtype
    u = weight_transform(w)
    ut = u.transpose(0, 2, 1)  # U^T per xi: a BLAS transpose flag, not a copy
    dx = np.empty_like(x) if need_dx else None
    step, sub = _plan(N, C, F, T, dt.itemsize)
    n_chunks = -(-N // step)
    du_parts = np.zeros((n_chunks, 16, F, C), dtype=dt)
    db_parts = np.zeros((n_chunks, F), dtype=dt)
    mask = y if relu else dy  # output_grad_tiles reads it only when relu

    def task(i):  # one task: its samples in passes of ``sub``, their dU and db added in pass order
        for n0 in range(i * step, min(N, (i + 1) * step), sub):
            m = min(sub, N - n0)
            v, dm, du, db = workspace.take(dt, (16, C, m * T), (16, F, m * T), (16, F, C), (F,))
            tiles_.input_tiles(x[n0 : n0 + m], ph, pw, th, tw, v)
            tiles_.output_grad_tiles(dy[n0 : n0 + m], mask[n0 : n0 + m], relu, th, tw, dm, db)
            np.matmul(dm, v.transpose(0, 2, 1), out=du)
            du_parts[i] += du
            db_parts[i] += db
            if dx is not None:
                np.matmul(ut, dm, out=v)  # dV overwrites V (no longer needed): forward's memory bound holds
                tiles_.input_grad_tiles(v, ph, pw, th, tw, dx[n0 : n0 + m])

    tasks.run(task, n_chunks)
    return dx, weight_grad(du_parts.sum(axis=0), w.shape, dt), db_parts.sum(axis=0)
