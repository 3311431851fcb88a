"""The ``state_dict()`` / ``load_state_dict()`` protocol of stateful callbacks.

A callback that changes what later epochs do (EarlyStopping's best and wait, ReduceLROnPlateau's
best, wait and cooldown, ModelCheckpoint's best, a schedule object's epoch count) returns its state
as a flat dict of JSON scalars, so it can be saved inside the model file (``fastnet._resume``) and a
resumed ``fit`` continues exactly. ``load_state_dict`` checks every field: a bad saved value is a
ValueError naming the callback and the field, never a silently different run.
"""

from __future__ import annotations

import math

import numpy as np


def encode_best(value: float) -> float | None:
    """A monitored best as JSON: ``None`` for "nothing seen yet" (+-inf), which strict JSON lacks."""
    return float(value) if math.isfinite(value) else None


def decode_best(value, mode: str, who: str) -> float:
    value = scalar(value)
    if value is None:
        return math.inf if mode == "min" else -math.inf
    return number(value, "best", who)


def scalar(value):
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def number(value, field: str, who: str) -> float:
    value = scalar(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{who}.load_state_dict: {field} must be a number, got {value!r}")
    if math.isnan(float(value)):
        raise ValueError(f"{who}.load_state_dict: {field} must not be NaN")
    return float(value)


def count(value, field: str, who: str, optional: bool = False) -> int | None:
    value = scalar(value)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        kind = "an int >= 0" + (" or null" if optional else "")
        raise ValueError(f"{who}.load_state_dict: {field} must be {kind}, got {value!r}")
    return int(value)


def require(state, keys, who: str) -> dict:
    """``state`` is a dict holding exactly ``keys``."""
    if not isinstance(state, dict):
        raise ValueError(f"{who}.load_state_dict: expected a dict from state_dict(), got {type(state).__name__}")
    missing, extra = sorted(set(keys) - set(state)), sorted(set(state) - set(keys))
    if missing or extra:
        raise ValueError(
            f"{who}.load_state_dict: expected the fields {sorted(keys)}, got {sorted(state)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
        )
    return state


class MonitorState:
    """Mixin for callbacks that track the best value of a monitored quantity (``self._mon``) and
    some int counters (``state_counters``; those in ``state_optional`` may be None)."""

    state_counters: tuple = ()
    state_optional: tuple = ()

    def state_dict(self) -> dict:
        """The callback's progress as JSON scalars (what a resumed ``fit`` needs)."""
        out = {"monitor": self._mon.monitor, "mode": self._mon.mode, "best": encode_best(self._mon.best)}
        out.update({k: getattr(self, k) for k in self.state_counters})
        return out

    def load_state_dict(self, state: dict):
        """Restore ``state_dict()``'s output; the monitor and mode must be this callback's."""
        who = type(self).__name__
        require(state, ("monitor", "mode", "best", *self.state_counters), who)
        if (state["monitor"], state["mode"]) != (self._mon.monitor, self._mon.mode):
            raise ValueError(
                f"{who}.load_state_dict: the state monitors {state['monitor']!r} in mode {state['mode']!r}, "
                f"this callback monitors {self._mon.monitor!r} in mode {self._mon.mode!r}"
            )
        counters = {k: count(state[k], k, who, optional=k in self.state_optional) for k in self.state_counters}
        self._mon.best = decode_best(state["best"], self._mon.mode, who)
        for k, v in counters.items():
            setattr(self, k, v)
        return self
