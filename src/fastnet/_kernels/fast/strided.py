"""Strided float32 convolutions on the stride-1 blocked kernels, by splitting the input into its stride phases.

A stride-(sh, sw) convolution reads padded input row ``sh*oh + i`` for tap row i. Written ``i = sh*i2 + a``
(``a < sh``), that is row ``oh + i2`` of phase a: the padded input's rows a, a + sh, a + 2*sh, ... So the
layer is a stride-1 convolution over the phases stacked as channels, phase-major ``(a, b, c)``, with a
``ceil(KH/sh) x ceil(KW/sw)`` kernel whose taps past the original kernel are zero (im2col, the general
path, copies every input pixel KH*KW times and ran ResNet-20's stride-2 layers at 8-36% of the GEMM rate).
A 3x3 stride-2 layer becomes a 2x2 stride-1 layer on 4C channels: 16 taps for 9, 1.78x the FLOPs, and
measured no faster than im2col (``config.STRIDED_PHASES``), so the dispatch sends only kernels no larger than
the stride here. Phases a >= KH (b >= KW) hold no tap and are left out, so ResNet-20's 1x1 stride-2 shortcuts
are a subsample and then a 1x1 layer on the blocked kernels, with no extra FLOPs.

Backward rebuilds the phases from x (no state between calls), runs the blocked backward on them, scatters
the phases' gradient back to dx (each input pixel lies in one phase at most: copies, no sums; pixels no
window reads get 0) and gathers the real taps of dW. The sums are the blocked kernels': the same at every
thread count. The ground truth is the im2col reference, ``tests/test_strided_conv.py``.
"""

from __future__ import annotations

import numpy as np

from .. import config, tasks
from . import blocked

__all__ = ["applies", "conv2d_forward", "conv2d_backward"]


def _phase_kernel(kernel, stride):
    """``(kh2, kw2, nh, nw)``: the phases' kernel and how many phases hold a tap, per axis."""
    (kh, kw), (sh, sw) = kernel, stride
    return -(-kh // sh), -(-kw // sw), min(sh, kh), min(sw, kw)


def applies(C: int, F: int, kernel, stride, dtype) -> bool:
    """True when ``fast/conv.py`` sends this convolution here: a stride above 1, a kernel no larger than the stride
    (each phase then holds one tap: no zero taps, no extra FLOPs; with zero taps it did not pay, ``config.py``), and
    the phased stride-1 layer (``nh*nw*C`` channels, no padding) one that the blocked kernels take
    (``blocked.applies``); never with ``config.STRIDED_PHASES`` off. The module runs any kernel, and the tests
    run it so."""
    if not config.STRIDED_PHASES or tuple(stride) == (1, 1):
        return False
    if int(kernel[0]) > int(stride[0]) or int(kernel[1]) > int(stride[1]):
        return False
    kh2, kw2, nh, nw = _phase_kernel(kernel, stride)
    return blocked.applies(nh * nw * C, F, (kh2, kw2), (1, 1), (0, 0), dtype)


def _rows(size, pad, step, phase, length):
    """``(dst, src)`` slices along one axis: phase rows r (of ``length``) that hold input rows
    ``step*r + phase - pad`` inside ``0 .. size-1``, and those input rows; None when there are none."""
    r0 = max(0, -(-(pad - phase) // step))
    last = (size - 1 + pad - phase) // step  # the phase row of input row size-1 (not a window count)
    r1 = min(length, last + 1)
    if r1 <= r0:
        return None
    first = step * r0 + phase - pad
    return slice(r0, r1), slice(first, first + step * (r1 - r0 - 1) + 1, step)


def _plan(x_shape, kernel, stride, padding, out_hw):
    """The phased layer: its input shape (N, nh, nw, C, rows, cols) and, per phase in use, ``(a, b, dst, src)``
    with the slices that move pixels between x and the phase."""
    N, C, H, W = x_shape
    kh2, kw2, nh, nw = _phase_kernel(kernel, stride)
    rows, cols = out_hw[0] + kh2 - 1, out_hw[1] + kw2 - 1
    moves = []
    for a in range(nh):
        rs = _rows(H, padding[0], stride[0], a, rows)
        for b in range(nw):
            cs = _rows(W, padding[1], stride[1], b, cols)
            if rs is not None and cs is not None:
                moves.append((a, b, (rs[0], cs[0]), (rs[1], cs[1])))
    return (N, nh, nw, C, rows, cols), moves


def _phases(x, shape, moves):
    """x (N, C, H, W) as the phased input (N, nh*nw*C, rows, cols), built by sample chunks on fastnet's team."""
    N, nh, nw, C, rows, cols = shape
    whole = (slice(0, rows), slice(0, cols))
    covered = len(moves) == nh * nw and all(dst == whole for _, _, dst, _ in moves)
    xp = (np.empty if covered else np.zeros)(shape, dtype=x.dtype)  # a 1x1 stride-2 layer's one phase: no zeros
    parts = tasks.chunks(shape[0], config.CONV_MIN_CHUNKS)

    def chunk(i):
        s = parts[i]
        for a, b, dst, src in moves:
            xp[s, a, b, :, dst[0], dst[1]] = x[s, :, src[0], src[1]]

    tasks.run(chunk, len(parts))
    return xp.reshape(N, nh * nw * C, rows, cols)


def _phase_weights(w, stride):
    """w (F, C, KH, KW) as the phased layer's (F, nh*nw*C, kh2, kw2), zero where a phase tap lies past the kernel."""
    F, C, kh, kw = w.shape
    kh2, kw2, nh, nw = _phase_kernel((kh, kw), stride)
    wp = np.zeros((F, nh, nw, C, kh2, kw2), dtype=w.dtype)
    for a in range(nh):
        for b in range(nw):
            taps = w[:, :, a :: stride[0], b :: stride[1]]
            wp[:, a, b, :, : taps.shape[2], : taps.shape[3]] = taps
    return wp.reshape(F, nh * nw * C, kh2, kw2)


def conv2d_forward(x, w, b, stride, padding, out_hw, relu):
    """y (N, F, OH, OW); x, w, b C-contiguous float32."""
    shape, moves = _plan(x.shape, w.shape[2:], stride, padding, out_hw)
    xp = _phases(x, shape, moves)
    return blocked.conv2d_forward(xp, _phase_weights(w, stride), b, (0, 0), out_hw, relu)


def conv2d_backward(dy, x, w, stride, padding, relu, y, need_dx, backward):
    """(dx or None, dw, db); ``y`` is the forward output when ``relu`` (its mask), else ignored. ``backward``: the
    stride-1 backward of the phased layer on the blocked kernels, ``(dy, x, w, padding, relu, y, need_dx) ->
    (dx, dw, db)``: fast/conv.py passes its own, which splits a small plane's work with im2col (this module cannot
    import it: conv.py imports this one)."""
    out_hw = dy.shape[2:]
    shape, moves = _plan(x.shape, w.shape[2:], stride, padding, out_hw)
    xp = _phases(x, shape, moves)
    dxp, dwp, db = backward(dy, xp, _phase_weights(w, stride), (0, 0), relu, y, need_dx)
    F, C, kh, kw = w.shape
    nh, nw = shape[1], shape[2]
    dwp = dwp.reshape(F, nh, nw, C, dwp.shape[2], dwp.shape[3])
    dw = np.empty_like(w)
    for a in range(nh):
        for b in range(nw):
            taps = dw[:, :, a :: stride[0], b :: stride[1]]
            taps[...] = dwp[:, a, b, :, : taps.shape[2], : taps.shape[3]]
    if not need_dx:
        return None, dw, db
    dxp = dxp.reshape(shape)
    dx = np.zeros_like(x)
    for a, b, dst, src in moves:
        dx[:, :, src[0], src[1]] = dxp[:, a, b, :, dst[0], dst[1]]
    return dx, dw, db
