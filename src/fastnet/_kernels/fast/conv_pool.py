"""A convolution and the 2x2 stride-2 max-pool after it, for inference (twin of ``reference/conv_pool.py``).

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
"""

from __future__ import annotations

from ..geometry import FUSED_MAXPOOL
from ..reference.activations import check_fused_act
from . import blocked, conv, pool, winograd
from ._window import window_geometry

__all__ = ["conv2d_maxpool_forward"]


def conv2d_maxpool_forward(x, w, b, stride, padding, act=None):
    relu = check_fused_act(act, "conv2d_maxpool")
    x, w, b, (kh, kw, sh, sw, ph, pw, oh, ow) = conv.forward_operands(x, w, b, stride, padding)
    N, C = x.shape[:2]
    F = w.shape[0]
    window_geometry((N, F, oh, ow), *FUSED_MAXPOOL, "pool")  # the pool's own error when the output is too small
    use = conv.engine(C, F, (kh, kw), (sh, sw), (ph, pw), x.dtype, (oh, ow))  # as unfused: the same engine
    if use == "blocked":
        return blocked.conv2d_forward(x, w, b, (ph, pw), (oh, ow), relu, pool=True)
    if use == "winograd":
        return winograd.conv2d_forward(x, w, b, (ph, pw), relu, pool=True)
    y = conv.conv2d_forward(x, w, b, stride, padding, act=act)
    return pool.maxpool2d_forward(y, *FUSED_MAXPOOL)[0]
