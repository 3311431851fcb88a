"""A convolution and the 2x2 stride-2 max-pool after it: plain NumPy (the ground truth).

Each is, by definition, the unfused kernels one after the other:

- ``conv2d_maxpool_forward`` (inference): ``maxpool2d(act(conv2d(x)))``'s values;
- ``conv2d_maxpool_train_forward``: those values and, for each window, its winner 0..3 in row-major
  order: where in the window ``maxpool2d_forward``'s argmax points;
- ``conv2d_maxpool_backward``: the pool's backward (the gradient to the winner, 0 elsewhere), the
  ReLU's (``* (y > 0)``, and y is the pooled output at the winner), then ``conv2d_backward``.

The fast twins (``fast/conv_pool.py``) pool in the convolution's output pass instead, so the full-size
output and its gradient need not be kept, and must give the same values.
"""

import numpy as np

from ..geometry import FUSED_MAXPOOL
from .activations import check_fused_act
from .conv import conv2d_backward, conv2d_forward, out_size
from .pool import maxpool2d_forward

__all__ = ["conv2d_maxpool_forward", "conv2d_maxpool_train_forward", "conv2d_maxpool_backward"]


def conv2d_maxpool_forward(x, w, b, stride, padding, act=None):
    """(N, F, OH // 2, OW // 2): the 2x2 stride-2 max-pool of ``conv2d_forward(x, w, b, stride, padding, act)``."""
    return maxpool2d_forward(conv2d_forward(x, w, b, stride, padding, act=act), *FUSED_MAXPOOL)[0]


def conv2d_maxpool_train_forward(x, w, b, stride, padding, act=None):
    """``(p, win)``: p = ``conv2d_maxpool_forward(...)``; win (uint8, p's shape) each window's winner 0..3."""
    y = conv2d_forward(x, w, b, stride, padding, act=act)
    p, argmax = maxpool2d_forward(y, *FUSED_MAXPOOL)
    row, col = np.divmod(argmax, y.shape[3])  # the flat index in y's plane
    return p, ((row % 2) * 2 + col % 2).astype(np.uint8)


def conv2d_maxpool_backward(dp, win, p, x, w, stride, padding, act=None, need_dx=True):
    """``(dx or None, dw, db)`` of ``conv2d_maxpool_train_forward`` from the pooled gradient ``dp``."""
    relu = check_fused_act(act, "conv2d_maxpool")
    x, w = np.asarray(x), np.asarray(w)
    N, F = x.shape[0], w.shape[0]
    oh = out_size(x.shape[2], w.shape[2], stride[0], padding[0])
    ow = out_size(x.shape[3], w.shape[3], stride[1], padding[1])
    pooled = (N, F, oh // 2, ow // 2)
    if np.shape(dp) != pooled or np.shape(win) != pooled or np.shape(p) != pooled:
        raise ValueError(
            f"conv2d_maxpool_backward: dp, win and p must have the pooled shape {pooled}, "
            f"got {np.shape(dp)}, {np.shape(win)} and {np.shape(p)}"
        )
    if np.size(win) and int(np.max(win)) > 3:
        raise ValueError(f"conv2d_maxpool_backward: win holds window positions 0..3, got {int(np.max(win))}")
    dp = np.asarray(dp, dtype=x.dtype)
    g = dp * (np.asarray(p) > 0) if relu else dp
    onehot = np.asarray(win)[..., None] == np.arange(4)  # (N, F, PH, PW, 4)
    windows = np.where(onehot, g[..., None], 0).astype(x.dtype)  # (N, F, PH, PW, [row 0: 0 1, row 1: 2 3])
    dy = np.zeros((N, F, oh, ow), dtype=x.dtype)
    ph, pw = pooled[2:]
    dy[:, :, : 2 * ph, : 2 * pw] = (
        windows.reshape(N, F, ph, pw, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, F, 2 * ph, 2 * pw)
    )
    return conv2d_backward(dy, x, w, stride, padding, need_dx=need_dx)
