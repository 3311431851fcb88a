"""Direct convolution for stride-1 layers with few input channels: the first layer of an image net.

With one input channel (MNIST, Fashion-MNIST) im2col turns each pixel into KH*KW column entries
and hands BLAS a GEMM whose inner dimension is only C*KH*KW (9 or 25): most of the time goes to
writing and reading the columns, not to arithmetic. Here every output row is computed in place
instead, ``acc[f, :] += w[f, c, i, j] * x_padded[c, oh + i, j : j + OW]`` for each filter tap, with
loops that vectorise along the row (``_direct_planes.py``); backward does the same for dW (a dot
product of dy with each shifted input plane) and dx (the transposed correlation over a zero-bordered dy).

Scheduling and determinism follow ``fast/winograd.py``: the batch is cut into sample chunks (a
function of the shapes only, ``config.CONV_MIN_CHUNKS``), each one task of ``_kernels/tasks.py``;
backward keeps one dW and db part per chunk and sums them in chunk order, so the result is the same
at any thread count. Scratch is one padded sample and one output row per task (no workspace).

The dispatch rule (``config.DIRECT_MAX_K``) and its measurements are in ``config.py``; the
ground truth is the im2col reference (``reference/conv.py``), which ``tests/test_direct_conv.py``
compares against on odd shapes, padding and non-square kernels.
"""

from __future__ import annotations

import numpy as np

from .. import config, tasks
from . import _direct_planes as planes  # the module: Numba globals here would hide np.matmul from step_hooks

__all__ = ["applies", "conv2d_forward", "conv2d_backward"]


def applies(C: int, kernel, stride) -> bool:
    """True when ``fast/conv.py`` sends this convolution here: stride 1 and an im2col inner dimension
    ``C*KH*KW`` of at most ``config.DIRECT_MAX_K`` (None: never)."""
    k = config.DIRECT_MAX_K
    return tuple(stride) == (1, 1) and k is not None and C * int(kernel[0]) * int(kernel[1]) <= k


def conv2d_forward(x, w, b, padding, out_hw, relu):
    """y (N, F, OH, OW) of a stride-1 convolution; x, w, b C-contiguous of one float dtype."""
    N = x.shape[0]
    ph, pw = int(padding[0]), int(padding[1])
    y = np.empty((N, w.shape[0], *out_hw), dtype=x.dtype)
    parts = tasks.chunks(N, config.CONV_MIN_CHUNKS)

    def chunk(i):
        s = parts[i]
        planes.forward_planes(x[s], w, b, ph, pw, relu, y[s])

    tasks.run(chunk, len(parts))
    return y


def conv2d_backward(dy, x, w, padding, relu, y, need_dx):
    """(dx or None, dw, db); ``y`` is the forward output when ``relu`` (its mask), else ignored."""
    N = x.shape[0]
    F = w.shape[0]
    ph, pw = int(padding[0]), int(padding[1])
    parts = tasks.chunks(N, config.CONV_MIN_CHUNKS)
    dw_parts = np.empty((len(parts), *w.shape), dtype=x.dtype)
    db_parts = np.empty((len(parts), F), dtype=x.dtype)
    dx = np.empty_like(x) if need_dx else x[:0]  # without dx the kernel writes none (an empty array of x's type)
    mask = y if relu else dy  # read only when relu

    def task(i):
        s = parts[i]
        dxs = dx[s] if need_dx else dx
        planes.backward_planes(dy[s], mask[s], relu, x[s], w, ph, pw, need_dx, dw_parts[i], db_parts[i], dxs)

    tasks.run(task, len(parts))
    return (dx if need_dx else None), dw_parts.sum(axis=0), db_parts.sum(axis=0)
