"""Max, average and global average pooling, plain NumPy (NCHW).

Max pooling: padding acts as -inf and never wins; ties go to the FIRST maximum in
row-major window order, and only that element receives gradient. The argmax is
an int64 flat index ``h*W + w`` into the unpadded input plane. A window holding a
NaN yields NaN and points at its first NaN. Average pooling counts padding as
zeros (PyTorch's ``count_include_pad=True``).
"""

import numpy as np

from .conv import _pad, out_size, windows

__all__ = [
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "global_avgpool2d_forward",
    "global_avgpool2d_backward",
]


def _geometry(x_shape, kernel, stride, padding):
    _, _, h, w = x_shape
    return (out_size(h, kernel[0], stride[0], padding[0]), out_size(w, kernel[1], stride[1], padding[1]))


def maxpool2d_forward(x, kernel, stride, padding):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = _geometry(x.shape, kernel, stride, padding)
    xp = _pad(x, padding, value=-np.inf)
    # (N, C, OH, OW, KH*KW): one window per row, row-major window order.
    win = windows(xp, kernel, stride, oh, ow).transpose(0, 1, 4, 5, 2, 3).reshape(n, c, oh, ow, kh * kw)
    y = win.max(axis=-1)
    # Row/column of every window element in the unpadded plane.
    rows = (np.arange(oh) * sh - ph)[:, None, None, None] + np.arange(kh)[None, None, :, None]
    cols = (np.arange(ow) * sw - pw)[None, :, None, None] + np.arange(kw)[None, None, None, :]
    rows, cols = np.broadcast_arrays(rows, cols)  # (OH, OW, KH, KW)
    rows, cols = rows.reshape(oh, ow, kh * kw), cols.reshape(oh, ow, kh * kw)
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    # First real element equal to the max (padding excluded, so an all -inf window
    # still points inside the input); np.argmax on booleans returns the first True.
    hit = ((win == y[..., None]) | np.isnan(win)) & valid
    k = hit.argmax(axis=-1)  # (N, C, OH, OW)
    flat = (rows * w + cols)[np.arange(oh)[:, None], np.arange(ow)[None, :], k]
    return np.ascontiguousarray(y, dtype=x.dtype), flat.astype(np.int64, copy=False)


def maxpool2d_backward(dy, argmax, x_shape):
    n, c, h, w = x_shape
    plane = h * w
    # Offset each plane's indices so one bincount scatter-adds everything
    # (overlapping windows that pick the same element add up).
    idx = (argmax.reshape(n * c, -1) + (np.arange(n * c, dtype=np.int64) * plane)[:, None]).ravel()
    dx = np.bincount(idx, weights=dy.ravel(), minlength=n * c * plane)
    return dx.reshape(x_shape).astype(dy.dtype, copy=False)


def avgpool2d_forward(x, kernel, stride, padding):
    oh, ow = _geometry(x.shape, kernel, stride, padding)
    win = windows(_pad(x, padding), kernel, stride, oh, ow)  # (N, C, KH, KW, OH, OW)
    y = win.sum(axis=(2, 3)) / (kernel[0] * kernel[1])
    return np.ascontiguousarray(y, dtype=x.dtype)


def avgpool2d_backward(dy, x_shape, kernel, stride, padding):
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = _geometry(x_shape, kernel, stride, padding)
    g = dy / (kh * kw)
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += g
    return np.ascontiguousarray(dxp[:, :, ph : ph + h, pw : pw + w])


def global_avgpool2d_forward(x):
    return x.mean(axis=(2, 3), dtype=x.dtype)


def global_avgpool2d_backward(dy, x_shape):
    n, c, h, w = x_shape
    g = (dy / (h * w)).astype(dy.dtype, copy=False)
    return np.ascontiguousarray(np.broadcast_to(g[:, :, None, None], x_shape))
