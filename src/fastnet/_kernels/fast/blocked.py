"""Register-blocked direct convolution: stride-1 float32 layers, forward, dW, db and dx without im2col.

im2col copies every input pixel KH*KW times and BLAS then packs those columns once more; for
LeNet-5's 6->16 5x5 layer that copying took 2-3 times the GEMM itself. The kernels here
(``_blocked_conv.h``, C with GCC vector extensions, one build per instruction set chosen at run
time) read the padded input planes in place instead: a block of 8 filters x 32 output positions
(AVX-512) stays in vector registers while every tap ``(c, i, j)`` adds ``w[f, c, i, j] * x[c, q + i*Wp + j]``,
so each FMA costs a broadcast weight and a shared vector load, not a load and a store of the
output as in the per-tap passes of ``fast/direct.py``. dx is the same kernel on the bordered
(ReLU-masked) dy with the weights transposed and flipped; dW keeps vector partial sums per
(filter, tap) over each plane.

Scheduling and determinism follow ``fast/direct.py``: sample chunks that depend on the shapes only,
one task each; one dW and db part per chunk, summed in chunk order. Scratch per task (the C side's
own allocations, not the workspace): one sample's padded planes and output forward; for
backward a group of samples packed for dW (``config.BLOCKED_GROUP_BYTES``, at least one sample) and
one sample's bordered dy and dx planes. The dispatch rule and its
measurements are in ``config.py`` (``BLOCKED_MAX_CF``); the ground truth is the im2col reference
(``reference/conv.py``), which ``tests/test_blocked_conv.py`` compares against.
"""

from __future__ import annotations

import numpy as np

from .. import config, tasks
from ._extension import load

_ext = load("_blocked_conv")

__all__ = ["applies", "conv2d_forward", "conv2d_backward", "gemm_weight_gradient", "input_gradient", "isa"]


def isa() -> str:
    """The micro-kernel build in use: "avx512", "avx2" or "base" (the best this CPU runs)."""
    return _ext.isa()


def applies(C: int, F: int, kernel, stride, padding, dtype, winograd: bool = False) -> bool:
    """True when ``fast/conv.py`` sends this convolution here (forward and backward alike): float32, stride 1,
    padding below the kernel size (dx's border is ``KH - 1 - ph``), and at most ``config.BLOCKED_MAX_CF`` input
    times output channels (None: never), or at most ``config.BLOCKED_WINOGRAD_CF`` of them for a layer that
    Winograd would also take (``winograd``): with more channels its GEMMs win. Never where the extension was built
    without the kernels (a compiler other than GCC or Clang)."""
    widest = config.BLOCKED_MAX_CF
    if widest is not None and winograd:
        widest = min(widest, config.BLOCKED_WINOGRAD_CF)
    kh, kw = int(kernel[0]), int(kernel[1])
    return (
        widest is not None
        and _ext.available()
        and np.dtype(dtype) == np.float32
        and tuple(stride) == (1, 1)
        and 0 <= int(padding[0]) < kh
        and 0 <= int(padding[1]) < kw
        and C * F <= widest  # noqa: SIM300 (C*F against its limit reads better)
    )


def gemm_weight_gradient(oh: int, ow: int) -> bool:
    """True when a blocked layer with an OH x OW output takes its weight gradient from im2col's GEMM instead
    (``config.BLOCKED_GEMM_DW_MAX_OUTPUT``): on small planes the kernels' per-plane partial sums are short."""
    most = config.BLOCKED_GEMM_DW_MAX_OUTPUT
    return most is not None and oh * ow <= most


def input_gradient(dy, w, padding, x_shape):
    """dx alone, as ``conv2d_backward`` computes it: the forward kernel on dy (ReLU's mask already applied) bordered
    by (KH-1-ph, KW-1-pw), with the weights transposed (C <-> F) and flipped. dy, w C-contiguous float32."""
    C, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    wt = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    border = (kh - 1 - int(padding[0]), kw - 1 - int(padding[1]))
    return conv2d_forward(dy, wt, np.zeros(C, dtype=np.float32), border, tuple(x_shape[2:]), False)


def _padded_rows(a2):
    """``a2`` (r, k) with zero rows appended up to a multiple of the kernels' register block."""
    rows, block = a2.shape[0], _ext.block()
    out = np.zeros((-(-rows // block) * block, a2.shape[1]), dtype=np.float32)
    out[:rows] = a2
    return out


def conv2d_forward(x, w, b, padding, out_hw, relu, pool=False, winners=False):
    """y (N, F, OH, OW) of a stride-1 convolution; x, w, b C-contiguous float32. ``pool``: the 2x2
    stride-2 max-pool of y, (N, F, OH // 2, OW // 2), pooled in the output pass (``conv_pool.py``);
    ``winners`` (with ``pool``, for training): ``(y, win)``, win uint8 shaped as y, each window's winner
    0..3 in row-major order (the pool kernel's argmax)."""
    N, F = x.shape[0], w.shape[0]
    kh, kw = w.shape[2], w.shape[3]
    ph, pw = int(padding[0]), int(padding[1])
    wp = _padded_rows(w.reshape(F, -1))
    oh, ow = out_hw
    y = np.empty((N, F, oh // 2, ow // 2) if pool else (N, F, oh, ow), dtype=np.float32)
    win = np.empty(y.shape, dtype=np.uint8) if winners else None
    parts = tasks.chunks(N, config.CONV_MIN_CHUNKS)

    def chunk(i):
        s = parts[i]
        _ext.forward(x[s], wp, b, kh, kw, ph, pw, relu, y[s], pool, None if win is None else win[s])

    tasks.run(chunk, len(parts))
    return y if win is None else (y, win)


def conv2d_backward(dy, x, w, padding, relu, y, need_dx, win=None):
    """(dx or None, dw, db); ``y`` is the forward output when ``relu`` (its mask), else ignored.
    ``win``: the layer's output went through a fused 2x2 stride-2 max-pool (``conv2d_forward(...,
    winners=True)``): dy is the pool's gradient, y the pooled output and win its winners, all three
    (N, F, OH // 2, OW // 2); the full-size gradient is built per sample in the kernel's scratch."""
    N, C = x.shape[:2]
    F, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    ph, pw = int(padding[0]), int(padding[1])
    parts = tasks.chunks(N, config.CONV_MIN_CHUNKS)
    dw_parts = np.zeros((len(parts), F, C * kh * kw), dtype=np.float32)
    db_parts = np.zeros((len(parts), F), dtype=np.float32)
    # dx is the correlation of the bordered dy with w transposed (C <-> F) and flipped (unread without dx)
    w2 = _padded_rows(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1].reshape(C, -1)) if need_dx else w.reshape(F, -1)
    dx = np.empty_like(x) if need_dx else x[:0]
    mask = y if relu else dy  # read only when relu

    def task(i):
        s = parts[i]
        dxs = dx[s] if need_dx else dx
        _ext.backward(
            dy[s],
            mask[s],
            relu,
            x[s],
            kh,
            kw,
            ph,
            pw,
            dw_parts[i],
            db_parts[i],
            w2,
            dxs,
            need_dx,
            config.BLOCKED_GROUP_BYTES,
            None if win is None else win[s],
        )

    tasks.run(task, len(parts))
    dw = dw_parts.sum(axis=0).reshape(w.shape)
    return (dx if need_dx else None), dw, db_parts.sum(axis=0)
