"""A convolution and the 2x2 stride-2 max-pool after it, for inference: plain NumPy (the ground truth).

``conv2d_maxpool_forward`` is, by definition, ``maxpool2d(act(conv2d(x)))``'s values: the unfused
kernels one after the other. The fast twin (``fast/conv_pool.py``) pools in the convolution's output
pass instead, so the full-size output is never written, and must give the same values. Inference
only: training keeps the pool's argmax, which only the unfused pool computes.
"""

from ..geometry import FUSED_MAXPOOL
from .conv import conv2d_forward
from .pool import maxpool2d_forward

__all__ = ["conv2d_maxpool_forward"]


def conv2d_maxpool_forward(x, w, b, stride, padding, act=None):
    """(N, F, OH // 2, OW // 2): the 2x2 stride-2 max-pool of ``conv2d_forward(x, w, b, stride, padding, act)``."""
    return maxpool2d_forward(conv2d_forward(x, w, b, stride, padding, act=act), *FUSED_MAXPOOL)[0]
