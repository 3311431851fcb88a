"""The stacks fastnet started with: a one-hidden-layer MLP, LeNet-5 and a small CNN.

Each builder sizes itself from one sample's ``input_shape`` (``(C, H, W)`` images, or ``(features,)``
for the MLP) and returns an uncompiled :class:`fastnet.Sequential`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import layers as L
from .._kernels.geometry import window_out
from ..model import Sequential
from ._checks import check_classes, check_image_shape, check_positive_ints


def mlp(
    input_shape=(1, 28, 28), num_classes: int = 10, hidden=(128,), activation: str = "relu", dtype=np.float32
) -> Sequential:
    """``Dense - act - ... - Dense(num_classes)`` on flattened inputs of ``prod(input_shape)`` features
    (feed it ``(N, features)``; the CLI's ``mlp``). ``activation``: relu, sigmoid or tanh; sigmoid/tanh
    layers get Glorot initialisation, ReLU layers He. ``dtype``: float32 or float64 parameters."""
    acts = {"relu": L.ReLU, "sigmoid": L.Sigmoid, "tanh": L.Tanh}
    if activation not in acts:
        raise ValueError(f"mlp: activation must be one of {', '.join(acts)}, got {activation!r}")
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    check_positive_ints(shape, "input_shape", "mlp")
    hidden = check_positive_ints((hidden,) if isinstance(hidden, int) else tuple(hidden), "hidden", "mlp")
    classes = check_classes(num_classes, "mlp")
    init = "he" if activation == "relu" else "glorot"
    sizes = [math.prod(shape), *hidden]
    stack = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        stack += [L.Dense(a, b, init=init, dtype=dtype), acts[activation]()]
    stack.append(L.Dense(sizes[-1], classes, init=init, dtype=dtype))
    return Sequential(stack, name="mlp")


def lenet5(input_shape=(1, 28, 28), num_classes: int = 10, dtype=np.float32) -> Sequential:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: ``Conv(C, 6, 5, padding=2) - pool -
    Conv(6, 16, 5) - pool - 120 - 84 - num_classes``. Padding 2 keeps a 28x28 input at 28x28 the way
    the original's 32x32 input worked; images need to be at least 12x12."""
    c, h, w = check_image_shape(input_shape, "lenet5")
    classes = check_classes(num_classes, "lenet5")
    h4, w4 = window_out(window_out(h, 5, padding=2) // 2, 5) // 2, window_out(window_out(w, 5, padding=2) // 2, 5) // 2
    if min(h4, w4) < 1:
        raise ValueError(f"lenet5: needs images of at least 12x12, got {h}x{w}")
    return Sequential(
        [
            L.Conv2D(c, 6, 5, padding=2, dtype=dtype),
            L.ReLU(),
            L.MaxPool2D(2),
            L.Conv2D(6, 16, 5, dtype=dtype),
            L.ReLU(),
            L.MaxPool2D(2),
            L.Flatten(),
            L.Dense(16 * h4 * w4, 120, dtype=dtype),
            L.ReLU(),
            L.Dense(120, 84, dtype=dtype),
            L.ReLU(),
            L.Dense(84, classes, dtype=dtype),
        ],
        name="lenet5",
    )


def small_cnn(input_shape=(1, 28, 28), num_classes: int = 10, dtype=np.float32) -> Sequential:
    """Two 3x3 conv blocks (16 and 32 channels, ReLU, 2x2 max pooling), 64 hidden units (the CLI's
    ``cnn``); images need to be at least 4x4."""
    c, h, w = check_image_shape(input_shape, "small_cnn")
    classes = check_classes(num_classes, "small_cnn")
    h4, w4 = h // 2 // 2, w // 2 // 2
    if min(h4, w4) < 1:
        raise ValueError(f"small_cnn: needs images of at least 4x4, got {h}x{w}")
    return Sequential(
        [
            L.Conv2D(c, 16, 3, padding=1, dtype=dtype),
            L.ReLU(),
            L.MaxPool2D(2),
            L.Conv2D(16, 32, 3, padding=1, dtype=dtype),
            L.ReLU(),
            L.MaxPool2D(2),
            L.Flatten(),
            L.Dense(32 * h4 * w4, 64, dtype=dtype),
            L.ReLU(),
            L.Dense(64, classes, dtype=dtype),
        ],
        name="small_cnn",
    )
