"""Weight initialisers, drawn from the seeded generator (``fastnet.seed``).

He (Kaiming) normal suits ReLU-family layers, Glorot (Xavier) uniform suits
sigmoid/tanh and linear outputs. Layers choose with ``init="he" | "glorot"``.
"""

from __future__ import annotations

import numpy as np

from .. import random as _random

INITS = ("he", "glorot")


def check_init(init: str, where: str) -> str:
    if init not in INITS:
        raise ValueError(f"{where}: init must be one of {INITS}, got {init!r}")
    return init


def init_weight(shape, fan_in: int, fan_out: int, init: str, dtype) -> np.ndarray:
    rng = _random.generator()
    if init == "he":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif init == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=shape)
    else:
        raise ValueError(f"unknown init {init!r}")
    return np.ascontiguousarray(w, dtype=dtype)
