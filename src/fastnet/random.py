"""Seeding. Every layer draws its initial weights and dropout masks from
``fastnet.random.generator()``; ``fastnet.seed(s)`` resets it, so the same seed
gives the same weights, masks and shuffles."""

from __future__ import annotations

import numpy as np

_state = {"rng": np.random.default_rng()}


def seed(value: int) -> None:
    """Seed fastnet's global generator (weights, dropout masks, shuffling)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"seed must be a non-negative int, got {value!r}")
    _state["rng"] = np.random.default_rng(int(value))


def generator() -> np.random.Generator:
    """The global generator; layers take child generators from it when they are built."""
    return _state["rng"]


def spawn() -> np.random.Generator:
    """A new independent generator drawn from the global one (one per layer / loader)."""
    return np.random.default_rng(_state["rng"].integers(0, 2**63 - 1))
