"""Winograd F(2x2, 3x3) convolution, plain NumPy: the ground truth for the fast transforms.

A stride-1 3x3 convolution computes each 2x2 block of outputs from a 4x4 block of the padded
input. Winograd's minimal filtering (Lavin & Gray, 2015) does it with 16 products instead of 36:

    Y = A^T [ (G g G^T) * (B^T d B) ] A      (* elementwise over the 4x4 "Winograd domain")

with g a 3x3 filter, d a 4x4 input tile and the constant matrices below. Summed over input
channels, the 16 elementwise products become 16 GEMMs ``M[xi] = U[xi] @ V[xi]``, xi = (i, j)
of the 4x4 domain, U = G g G^T shaped (16, F, C), V = B^T d B shaped (16, C, tiles). Tiles sit
at stride 2 over the padded input (they overlap by 2); tiles overhanging the bottom/right edge
read zeros and their outputs beyond OH/OW are cropped.

The backward pass is the exact gradient of these linear maps (so it equals the convolution's):
dM = A dY A^T, dU = dM @ V^T, dW = G^T dU G, dV = U^T @ dM, dx = B dV B^T overlap-added.
Shapes (NCHW) and arguments as in ``reference/conv.py``; ``stride`` must be (1, 1) and the
kernel 3x3.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..geometry import window_out

__all__ = ["BT", "G", "AT", "tiles", "weight_transform", "weight_grad", "conv2d_forward", "conv2d_backward"]

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def tiles(h, w, padding):
    """(OH, OW, tile rows, tile columns) of a stride-1 3x3 convolution over an h x w input."""
    oh, ow = window_out(h, 3, 1, padding[0]), window_out(w, 3, 1, padding[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"winograd: a 3x3 kernel with padding {padding} does not fit input {h}x{w}")
    return oh, ow, -(-oh // 2), -(-ow // 2)


def _check(w, stride):
    if w.shape[2:] != (3, 3) or tuple(stride) != (1, 1):
        raise ValueError(f"winograd: needs a 3x3 kernel at stride 1, got kernel {w.shape[2:]}, stride {stride}")


def weight_transform(w):
    """U = G g G^T for every (f, c): (16, F, C), in w's dtype."""
    f, c = w.shape[:2]
    u = np.einsum("ai,fcij,bj->abfc", G, w, G)
    return np.ascontiguousarray(u.reshape(16, f, c), dtype=w.dtype)


def weight_grad(du, w_shape, dtype):
    """dW = G^T dU G (the adjoint of :func:`weight_transform`), shaped ``w_shape``."""
    f, c = w_shape[:2]
    return np.einsum("ai,abfc,bj->fcij", G, du.reshape(4, 4, f, c), G).astype(dtype, copy=False)


def _input_tiles(x, padding, th, tw):
    """V = B^T d B for every tile: (16, C, N*th*tw), columns ordered (n, tile row, tile column)."""
    n, c, h, w = x.shape
    ph, pw = padding
    xp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    xp[:, :, ph : ph + h, pw : pw + w] = x
    s = xp.strides
    d = as_strided(xp, (n, c, th, tw, 4, 4), (s[0], s[1], 2 * s[2], 2 * s[3], s[2], s[3]), writeable=False)
    v = np.einsum("ai,nctuij,bj->abcntu", BT, d, BT)
    return v.reshape(16, c, n * th * tw)


def conv2d_forward(x, w, b, stride, padding, act=None):
    _check(w, stride)
    n, _, h, wd = x.shape
    f = w.shape[0]
    oh, ow, th, tw = tiles(h, wd, padding)
    m = weight_transform(w) @ _input_tiles(x, padding, th, tw)  # (16, F, N*T)
    yt = np.einsum("ai,ijfntu,bj->nftaub", AT, m.reshape(4, 4, f, n, th, tw), AT)
    y = yt.reshape(n, f, 2 * th, 2 * tw)[:, :, :oh, :ow] + b.reshape(1, f, 1, 1)
    if act == "relu":
        y = np.maximum(y, 0)
    return np.ascontiguousarray(y, dtype=x.dtype)


def conv2d_backward(dy, x, w, stride, padding, act=None, y=None, need_dx=True):
    _check(w, stride)
    n, c, h, wd = x.shape
    f = w.shape[0]
    oh, ow, th, tw = tiles(h, wd, padding)
    if act == "relu":
        dy = dy * (y > 0)
    db = dy.sum(axis=(0, 2, 3)).astype(w.dtype, copy=False)
    g = np.zeros((n, f, 2 * th, 2 * tw), dtype=dy.dtype)  # the cropped outputs get no gradient
    g[:, :, :oh, :ow] = dy
    g = g.reshape(n, f, th, 2, tw, 2)
    dm = np.einsum("ai,nftaub,bj->ijfntu", AT, g, AT).reshape(16, f, n * th * tw)  # A dY A^T
    v = _input_tiles(x, padding, th, tw)
    dw = weight_grad(dm @ v.transpose(0, 2, 1), w.shape, w.dtype)
    if not need_dx:
        return None, dw, db
    dv = weight_transform(w).transpose(0, 2, 1) @ dm  # (16, C, N*T)
    dd = np.einsum("ai,abcntu,bj->nctuij", BT, dv.reshape(4, 4, c, n, th, tw), BT)  # B dV B^T
    ph, pw = padding
    dxp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=dd.dtype)
    for i in range(4):  # tiles overlap by 2: add each of the 16 tile positions as one strided slice
        for j in range(4):
            dxp[:, :, i : i + 2 * th : 2, j : j + 2 * tw : 2] += dd[..., i, j]
    return np.ascontiguousarray(dxp[:, :, ph : ph + h, pw : pw + wd], dtype=x.dtype), dw, db
