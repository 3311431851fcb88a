"""Residual networks for small images (He et al. 2016, "Deep Residual Learning", section 4.2) and
their plain twins.

``resnet(depth)`` with ``depth = 6n + 2``: a 3x3 convolution with ``width`` filters, then three stages
of ``n`` basic blocks on feature maps of widths ``width, 2*width, 4*width`` (each stage after the first
starts with a stride-2 convolution that halves the map), global average pooling and a dense
classifier: ``6n + 2`` weighted layers. A basic block is ``conv3x3 - BN - ReLU - conv3x3 - BN``, plus
its input, then ReLU. Where a block changes the shape, the shortcut is a projection (1x1 convolution
with the block's stride, then BN; the paper's option B); elsewhere it is the identity. Every
convolution is followed by BatchNorm, so convolutions have no bias. ``plain(depth)`` is the same
stack without any shortcut (the paper's "plain" baseline, whose deep versions train worse).

Layers are named after their place: ``stem_conv``, ``stage2_block1.conv1``, ``stage2_block1.shortcut_bn``,
``fc``; each block is a nested :class:`fastnet.Model`, so state_dict keys read ``stage2_block1.conv1.weight``.
"""

from __future__ import annotations

import numpy as np

from .. import layers as L
from .._kernels.geometry import window_out
from ._checks import check_classes, check_image_shape

SHORTCUTS = ("projection",)


def blocks_per_stage(depth, where: str) -> int:
    """``n`` of a ``6n + 2``-layer network; ValueError for any other depth."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"{where}: depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth!r}")
    return (depth - 2) // 6


def basic_block(c_in: int, c_out: int, stride: int, residual: bool, name: str, input_hw: tuple, dtype=np.float32):
    """One block as a nested Model taking ``(c_in, H, W)``: two 3x3 conv-BN pairs; with ``residual``
    the input (projected when the shape changes) is added before the last ReLU."""
    import fastnet as fn

    x = fn.Input((c_in, *input_hw))
    h = L.Conv2D(c_in, c_out, 3, stride=stride, padding=1, bias=False, dtype=dtype, name="conv1")(x)
    h = L.ReLU(name="relu1")(L.BatchNorm2d(c_out, dtype=dtype, name="bn1")(h))
    h = L.BatchNorm2d(c_out, dtype=dtype, name="bn2")(
        L.Conv2D(c_out, c_out, 3, padding=1, bias=False, dtype=dtype, name="conv2")(h)
    )
    if residual:
        skip = x
        if stride != 1 or c_in != c_out:
            proj = L.Conv2D(c_in, c_out, 1, stride=stride, bias=False, dtype=dtype, name="shortcut_conv")(x)
            skip = L.BatchNorm2d(c_out, dtype=dtype, name="shortcut_bn")(proj)
        h = L.Add(name="add")([h, skip])
    return fn.Model(x, L.ReLU(name="relu2")(h), name=name)


def _build(depth, width, input_shape, num_classes, residual: bool, where: str, name: str, dtype):
    import fastnet as fn

    n = blocks_per_stage(depth, where)
    c, h, w = check_image_shape(input_shape, where)
    classes = check_classes(num_classes, where)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"{where}: width must be a positive int, got {width!r}")
    x = fn.Input((c, h, w))
    t = L.Conv2D(c, width, 3, padding=1, bias=False, dtype=dtype, name="stem_conv")(x)
    t = L.ReLU(name="stem_relu")(L.BatchNorm2d(width, dtype=dtype, name="stem_bn")(t))
    c_in, hw = width, (h, w)
    for stage in range(3):
        c_out = width * 2**stage
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            block = basic_block(c_in, c_out, stride, residual, f"stage{stage + 1}_block{b + 1}", hw, dtype)
            t = block(t)
            c_in, hw = c_out, tuple(window_out(s, 3, stride, 1) for s in hw)
    t = L.GlobalAvgPool2D(name="pool")(t)
    out = L.Dense(c_in, classes, init="glorot", dtype=dtype, name="fc")(t)
    return fn.Model(x, out, name=name)


def resnet(
    depth: int = 20,
    width: int = 16,
    input_shape=(1, 28, 28),
    num_classes: int = 10,
    shortcut: str = "projection",
    dtype=np.float32,
):
    """ResNet-``depth`` for small images (``depth = 6n + 2``: 20, 32, 44, 56, 110; 8 and 14 for tests).

    ``width`` is the first stage's channel count (16 in the paper). ``shortcut="projection"`` uses a
    1x1 convolution + BN where a block changes shape (the paper's option B; option A's zero padding
    is not implemented). ``dtype``: float32 or float64 parameters. Returns an uncompiled
    :class:`fastnet.Model` named ``resnet<depth>``.
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(f"resnet: shortcut must be one of {', '.join(map(repr, SHORTCUTS))}, got {shortcut!r}")
    return _build(depth, width, input_shape, num_classes, True, "resnet", f"resnet{depth}", dtype)


def plain(depth: int = 20, width: int = 16, input_shape=(1, 28, 28), num_classes: int = 10, dtype=np.float32):
    """The plain twin of :func:`resnet`: the same ``6n + 2`` layers, no shortcuts (``plain<depth>``)."""
    return _build(depth, width, input_shape, num_classes, False, "plain", f"plain{depth}", dtype)
