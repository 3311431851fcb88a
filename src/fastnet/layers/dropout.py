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

    Each training step draws one 64-bit key from ``self.rng``, a generator taken from
    ``fastnet.random.spawn()`` when the layer is built, and the mask is a hash of that key and
    each element's index (``dropout_mask``, the same bits on both backends and at any thread
    count), so ``fastnet.seed(s)`` before building a model makes every mask reproducible.
    Set ``freeze_mask = True`` to reuse the last training mask (while the input shape stays the
    same) instead of drawing a new one, e.g. to probe gradients;
    ``fastnet.gradcheck`` does not need it (it replays ``self.rng`` instead).
    """

    def __init__(self, p: float = 0.5, name: str | None = None):
        super().__init__(name)
        self.p = check_p(p, self.name)
        self.rng = _random.spawn()
        self.freeze_mask = False
        self._last_mask = None  # kept only so ``freeze_mask`` can reuse it

    @property
    def scale(self) -> float:
        return 1.0 / (1.0 - self.p)

    def _forward(self, x, training):
        """The context is (shape, mask); mask None means "identity" (eval mode, or p == 0)."""
        x = self._check_input(x)
        if not training or self.p == 0.0:
            return x, (x.shape, None)
        mask = self._last_mask
        if not (self.freeze_mask and mask is not None and mask.shape == x.shape):
            # uint8 keep-mask (1 = keep): a plain byte array every backend reads directly
            key = int(self.rng.integers(0, 1 << 64, dtype=np.uint64))
            mask = self._last_mask = ops.dropout_mask(key, x.shape, self.p)
        return ops.dropout_forward(x, mask, self.scale), (x.shape, mask)

    def _backward(self, ctx, dout, need_dx):
        shape, mask = ctx
        dout = self._check_grad(dout, shape)
        if mask is None:
            return dout
        return ops.dropout_backward(dout, mask, self.scale)

    def get_config(self):
        return {"p": self.p}
