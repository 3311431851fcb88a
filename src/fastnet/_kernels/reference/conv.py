"""2-D convolution, plain NumPy: im2col by stride tricks, then one GEMM.

Shapes (NCHW): x (N, C, H, W), w (F, C, KH, KW), b (F,), y (N, F, OH, OW) with
``OH = (H + 2*ph - KH) // sh + 1``. The column matrix is (C*KH*KW, N*OH*OW): rows
ordered (c, kh, kw) so ``w.reshape(F, -1)`` multiplies it directly, columns
ordered (n, oh, ow).
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..geometry import window_out
from .activations import check_fused_act

__all__ = ["conv2d_forward", "conv2d_backward", "im2col", "col2im"]


def out_size(size, k, s, p):
    """Output length of a sliding window; ValueError if the window does not fit."""
    n = window_out(size, k, s, p)
    if size + 2 * p < k:
        raise ValueError(f"kernel {k} larger than padded input {size + 2 * p}")
    return n


def _pad(x, padding, value=0):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def windows(xp, kernel, stride, oh, ow):
    """Read-only view (N, C, KH, KW, OH, OW) of the padded input: element
    [n, c, i, j, a, b] is xp[n, c, a*sh + i, b*sw + j]. No copy."""
    n, c, _, _ = xp.shape
    sn, sc, sh_, sw_ = xp.strides
    (kh, kw), (sh, sw) = kernel, stride
    return as_strided(xp, shape=(n, c, kh, kw, oh, ow), strides=(sn, sc, sh_, sw_, sh_ * sh, sw_ * sw), writeable=False)


def im2col(x, kernel, stride, padding):
    n, c, h, w = x.shape
    oh = out_size(h, kernel[0], stride[0], padding[0])
    ow = out_size(w, kernel[1], stride[1], padding[1])
    win = windows(_pad(x, padding), kernel, stride, oh, ow)
    # (C, KH, KW, N, OH, OW): the reshape makes the one real copy.
    return win.transpose(1, 2, 3, 0, 4, 5).reshape(c * kernel[0] * kernel[1], n * oh * ow)


def col2im(cols, x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh = out_size(h, kh, sh, ph)
    ow = out_size(w, kw, sw, pw)
    d = cols.reshape(c, kh, kw, n, oh, ow).transpose(3, 0, 1, 2, 4, 5)  # (N, C, KH, KW, OH, OW)
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    # One strided slice per kernel offset: overlapping windows add up, and each
    # slice assignment touches distinct positions, so `+=` is safe here.
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += d[:, :, i, j]
    return np.ascontiguousarray(dxp[:, :, ph : ph + h, pw : pw + w])


def conv2d_forward(x, w, b, stride, padding, act=None):
    check_fused_act(act, "conv2d")
    n = x.shape[0]
    f, _, kh, kw = w.shape
    cols = im2col(x, (kh, kw), stride, padding)
    oh = out_size(x.shape[2], kh, stride[0], padding[0])
    ow = out_size(x.shape[3], kw, stride[1], padding[1])
    y = w.reshape(f, -1) @ cols  # (F, N*OH*OW)
    y = y.reshape(f, n, oh, ow).transpose(1, 0, 2, 3) + b.reshape(1, f, 1, 1)
    if act == "relu":
        y = np.maximum(y, 0)
    return np.ascontiguousarray(y, dtype=x.dtype)


def conv2d_backward(dy, x, w, stride, padding, act=None, y=None, need_dx=True):
    check_fused_act(act, "conv2d")
    if act == "relu":
        if y is None or y.shape != dy.shape:
            raise ValueError("conv2d_backward: act='relu' needs the forward output y, shaped like dy")
        dy = dy * (y > 0)  # as relu_backward: gradient at 0 is 0
    f, _, kh, kw = w.shape
    # The columns are recomputed instead of cached: they are KH*KW times bigger than x.
    cols = im2col(x, (kh, kw), stride, padding)
    dy2 = dy.transpose(1, 0, 2, 3).reshape(f, -1)  # (F, N*OH*OW), columns (n, oh, ow)
    dw = (dy2 @ cols.T).reshape(w.shape)
    db = dy.sum(axis=(0, 2, 3))
    if not need_dx:  # a model's first layer in training: no input gradient needed
        return None, dw.astype(w.dtype, copy=False), db.astype(w.dtype, copy=False)
    dx = col2im(w.reshape(f, -1).T @ dy2, x.shape, (kh, kw), stride, padding)
    return dx.astype(x.dtype, copy=False), dw.astype(w.dtype, copy=False), db.astype(w.dtype, copy=False)
