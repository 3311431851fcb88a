"""Inverted dropout."""

from __future__ import annotations

import math

import numpy as np

from .. import random as _random
from .._kernels import ops
from .base import Layer


def check_p(p, where: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: p must be a float in [0, 1), got {p!r}")
    p = float(p)
    if not math.isfinite(p) or not 0.0 <= p < 1.0:
        raise ValueError(f"{where}: p must be in [0, 1), got {p!r}")
    return p


class Dropout(Layer):
    """Zero each element with probability ``p`` in training and scale the rest by ``1/(1-p)``;
    the identity in eval mode (inverted dropout, as PyTorch and Keras).

    Masks come from ``self.rng``, a generator taken from ``fastnet.random.spawn()`` when the
    layer is built, so ``fastnet.seed(s)`` before building a model makes every mask
    reproducible. Set ``freeze_mask = True`` to reuse the last training mask (while the
    input shape stays the same) instead of drawing a new one, e.g. to probe gradients;
    ``fastnet.gradcheck`` does not need it (it replays ``self.rng`` instead).
    """

    def __init__(self, p: float = 0.5, name: str | None = None):
        super().__init__(name)
        self.p = check_p(p, self.name)
        self.rng = _random.spawn()
        self.freeze_mask = False
        self._mask = None
        self._shape = None  # shape of the last training input; mask None means "no dropout" (p == 0)

    @property
    def scale(self) -> float:
        return 1.0 / (1.0 - self.p)

    def forward(self, x, training=None):
        x = self._check_input(x)
        if not self._mode(training):
            return x
        self._shape = x.shape
        if self.p == 0.0:
            self._mask = None
            return x
        if not (self.freeze_mask and self._mask is not None and self._mask.shape == x.shape):
            # uint8 keep-mask (1 = keep): a plain byte array every backend reads directly
            self._mask = (self.rng.random(x.shape) >= self.p).view(np.uint8)
        return ops.dropout_forward(x, self._mask, self.scale)

    def backward(self, dout):
        self._require_forward(self._shape)
        dout = self._check_grad(dout, self._shape)
        if self._mask is None:
            return dout
        return ops.dropout_backward(dout, self._mask, self.scale)

    def get_config(self):
        return {"p": self.p}
