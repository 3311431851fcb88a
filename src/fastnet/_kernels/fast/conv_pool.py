"""A convolution and the 2x2 stride-2 max-pool after it, fused (twin of ``reference/conv_pool.py``).

The engines whose output pass sees the finished output block take the pool into that pass, so the
full-size output (LeNet-5's first layer: 4.8 MB at batch 256, the Keras CNN's second: 38 MB) is
never written nor read back, and no argmax is kept:

- the blocked direct kernels (``blocked.py``): the pass that adds the bias to a sample's output
  planes writes the pooled planes instead (``bc_bias_pool``);
- Winograd F(2x2, 3x3) (``winograd.py``): each 2x2 output tile is exactly one pool window (tiles
  start at the output's origin), so the output transform writes one value per tile.

The values are those of the unfused kernels bit for bit: the bias is added to each of the four
before their max and the ReLU after it (rounding is monotonic), and a NaN wins its window as in
the pool kernel. Every other engine runs the convolution, then the pool kernel.

Training (``conv2d_maxpool_train_forward`` / ``conv2d_maxpool_backward``) keeps the pooled output and
each window's winner (uint8, 0..3: a sixteenth of the full-size output where the pool layer kept an int64
argmax and the ReLU the full output). On the blocked kernels the forward writes both in the output pass,
and the backward builds each sample's full-size gradient (the winner gets the pool's gradient, masked by
pooled output > 0 for the ReLU) in the kernel's own scratch: the full-size output and its gradient never
exist as arrays. Other engines run the convolution, ``pool.maxpool2x2_winners``, then ``pool.unpool2x2``
and the convolution's backward without the ReLU (the mask is already applied). Gradients equal the
unfused layers' bit for bit: the same winners, the same masked gradient, the same kernels after it.
"""

from __future__ import annotations

import numpy as np

from ..geometry import FUSED_MAXPOOL
from ..reference.activations import check_fused_act
from . import blocked, conv, pool, winograd
from ._window import as_float as _float
from ._window import window_geometry

__all__ = ["conv2d_maxpool_forward", "conv2d_maxpool_train_forward", "conv2d_maxpool_backward"]


def _forward_plan(x, w, b, stride, padding, act):
    """``(relu, x, w, b, padding, out_hw, engine)`` of a fused forward call: the operands checked and converted,
    the pool's own error when the output has no 2x2 window, and the engine the unfused convolution would take."""
    relu = check_fused_act(act, "conv2d_maxpool")
    x, w, b, (kh, kw, sh, sw, ph, pw, oh, ow) = conv.forward_operands(x, w, b, stride, padding)
    N, C = x.shape[:2]
    F = w.shape[0]
    window_geometry((N, F, oh, ow), *FUSED_MAXPOOL, "pool")
    use = conv.engine(C, F, (kh, kw), (sh, sw), (ph, pw), x.dtype, (oh, ow))
    return relu, x, w, b, (ph, pw), (oh, ow), use


def conv2d_maxpool_forward(x, w, b, stride, padding, act=None):
    relu, x, w, b, (ph, pw), (oh, ow), use = _forward_plan(x, w, b, stride, padding, act)
    if use == "blocked":
        return blocked.conv2d_forward(x, w, b, (ph, pw), (oh, ow), relu, pool=True)
    if use == "winograd":
        return winograd.conv2d_forward(x, w, b, (ph, pw), relu, pool=True)
    y = conv.conv2d_forward(x, w, b, stride, padding, act=act)
    return pool.maxpool2d_forward(y, *FUSED_MAXPOOL)[0]


def conv2d_maxpool_train_forward(x, w, b, stride, padding, act=None):
    """``(p, win)``: p as ``conv2d_maxpool_forward``, win (uint8, shaped as p) each window's winner, 0..3 in
    row-major order: the argmax ``maxpool2d_forward`` would give, within its window."""
    relu, x, w, b, padding_hw, out_hw, use = _forward_plan(x, w, b, stride, padding, act)
    if use == "blocked":
        return blocked.conv2d_forward(x, w, b, padding_hw, out_hw, relu, pool=True, winners=True)
    return pool.maxpool2x2_winners(conv.conv2d_forward(x, w, b, stride, padding, act=act))


def conv2d_maxpool_backward(dp, win, p, x, w, stride, padding, act=None, need_dx=True):
    """``(dx or None, dw, db)`` of ``conv2d_maxpool_train_forward`` from the pooled gradient dp; ``win``
    and ``p`` are that call's outputs (p is read only for the ReLU's mask)."""
    relu = check_fused_act(act, "conv2d_maxpool")
    x = _float(x)
    w = _float(w, x.dtype)
    kh, kw, sh, sw, ph, pw, oh, ow = window_geometry(x.shape, w.shape[2:], stride, padding, "conv")
    N, C = x.shape[:2]
    F = w.shape[0]
    pooled = (N, F, oh // 2, ow // 2)
    dp = _float(dp, x.dtype)
    if dp.shape != pooled or np.shape(win) != pooled or np.shape(p) != pooled:
        raise ValueError(
            f"conv2d_maxpool_backward: dp, win and p must have the pooled shape {pooled}, "
            f"got {dp.shape}, {np.shape(win)} and {np.shape(p)}"
        )
    win = np.ascontiguousarray(win, dtype=np.uint8)
    if win.size and int(win.max()) > 3:
        raise ValueError(f"conv2d_maxpool_backward: win holds window positions 0..3, got {int(win.max())}")
    p = _float(p, x.dtype)
    # a small plane goes the unfused way (conv.py splits its backward), so fused and unfused give the same bits
    if conv.engine(C, F, (kh, kw), (sh, sw), (ph, pw), x.dtype, (oh, ow)) == "blocked" and not (
        blocked.gemm_weight_gradient(oh, ow)
    ):
        return blocked.conv2d_backward(dp, x, w, (ph, pw), relu, p, need_dx, win=win)
    dy = pool.unpool2x2(dp, win, p, relu, (N, F, oh, ow))
    return conv.conv2d_backward(dy, x, w, stride, padding, need_dx=need_dx)
