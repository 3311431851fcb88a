"""The Optimizer base class: lazy per-parameter state, step counting, state_dict and config.

An optimizer is created before the model exists (Keras style), so it binds to parameters
lazily: ``step(slots)`` receives ``(key, param, grad, lr_mult)`` tuples and creates a
parameter's state the first time it sees its key. Each parameter is then updated IN PLACE
by one kernel call (``ops.<name>_update_``), with learning rate ``self.lr * lr_mult``.
"""

from __future__ import annotations

import math

import numpy as np

from .._kernels.dtypes import FLOAT_DTYPES as _FLOATS

OPTIMIZER_CLASSES: dict[str, type] = {}


def check_hyper(
    value, name: str, who: str, low: float = 0.0, high: float = math.inf, low_open: bool = False, high_open: bool = True
) -> float:
    """``value`` as a float inside the given interval, or a ValueError naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: {name} must be a number, got {value!r}") from None
    ok = math.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{who}: {name} must be in {lo}{low:g}, {high:g}{hi}, got {value!r}")
    return v


class Optimizer:
    """Base class. Subclasses set ``_slots`` (names of their per-parameter state arrays),
    ``_hyper`` (names of their constructor hyperparameters) and implement ``_update``.

    Attributes
    ----------
    lr : float          base learning rate; settable (schedules and callbacks change it)
    iterations : int    number of ``step`` calls so far
    """

    _slots: tuple[str, ...] = ()
    _hyper: tuple[str, ...] = ()

    def __init__(self, lr: float):
        self.lr = lr
        self.iterations = 0
        self._state: dict[str, dict[str, np.ndarray]] = {}  # key -> {slot name -> array}
        self._steps: dict[str, int] = {}  # key -> times that parameter was updated

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        OPTIMIZER_CLASSES[cls.__name__] = cls

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_hyper(value, "lr", type(self).__name__)

    # ---- the update ------------------------------------------------------------------------
    def step(self, slots) -> None:
        """Update every ``(key, param, grad, lr_mult)`` in place and count one iteration."""
        who = type(self).__name__
        checked = [self._check_slot(slot, who) for slot in slots]
        self.iterations += 1
        for key, p, g, lr_mult in checked:
            state = self._state_for(key, p, who)
            t = self._steps.get(key, 0) + 1
            self._steps[key] = t
            self._update(p, g, state, self.lr * lr_mult, t)

    def _update(self, p, g, state, lr, t):
        raise NotImplementedError

    def _check_slot(self, slot, who):
        try:
            key, p, g, lr_mult = slot
        except (TypeError, ValueError):
            raise ValueError(f"{who}.step: expected (key, param, grad, lr_mult) tuples, got {slot!r:.80}") from None
        if not isinstance(p, np.ndarray) or p.dtype not in _FLOATS or not p.flags.c_contiguous:
            raise ValueError(
                f"{who}.step: parameter {key!r} must be a C-contiguous float32/float64 array, "
                f"got {getattr(p, 'dtype', type(p).__name__)}"
            )
        if not isinstance(g, np.ndarray) or g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(
                f"{who}.step: gradient of {key!r} must match its parameter "
                f"({p.shape}, {p.dtype}), got {getattr(g, 'shape', type(g).__name__)} "
                f"{getattr(g, 'dtype', '')}"
            )
        lr_mult = check_hyper(lr_mult, f"lr_mult of {key!r}", f"{who}.step")
        return str(key), p, np.ascontiguousarray(g), lr_mult

    def _state_for(self, key, p, who):
        state = self._state.get(key)
        if state is None:
            state = {name: np.zeros_like(p) for name in self._slots}
            self._state[key] = state
            return state
        for name, arr in state.items():
            if arr.shape != p.shape:
                raise ValueError(
                    f"{who}: state {name}/{key} has shape {arr.shape} but the parameter has "
                    f"shape {p.shape}; was the optimizer reused for another model?"
                )
            if arr.dtype != p.dtype:  # loaded from a file saved with another dtype
                state[name] = arr = np.ascontiguousarray(arr, dtype=p.dtype)
        return state

    # ---- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays (0-d for scalars), ready for ``np.savez``:
        ``"iterations"``, ``"lr"``, ``"step/<key>"`` and ``"<slot>/<key>"`` per parameter."""
        out = {"iterations": np.array(self.iterations, dtype=np.int64), "lr": np.array(self.lr, dtype=np.float64)}
        for key, t in self._steps.items():
            out[f"step/{key}"] = np.array(t, dtype=np.int64)
        for key, state in self._state.items():
            for name, arr in state.items():
                out[f"{name}/{key}"] = arr.copy()
        return out

    def load_state_dict(self, state: dict) -> Optimizer:
        """Restore ``state_dict()``'s output; the following steps are identical to the saved run's."""
        who = type(self).__name__
        if not isinstance(state, dict) or "iterations" not in state:
            raise ValueError(
                f"{who}.load_state_dict: expected a dict from state_dict() with 'iterations', "
                f"got keys {sorted(state) if isinstance(state, dict) else type(state).__name__}"
            )
        steps, slots = {}, {}
        for name, value in state.items():
            if name in ("iterations", "lr"):
                continue
            prefix, sep, key = name.partition("/")
            if not sep or (prefix != "step" and prefix not in self._slots):
                raise ValueError(
                    f"{who}.load_state_dict: unexpected entry {name!r}; expected 'iterations', 'lr', "
                    f"'step/<key>' or one of {[s + '/<key>' for s in self._slots]}"
                )
            if prefix == "step":
                steps[key] = int(np.asarray(value))
            else:
                slots.setdefault(key, {})[prefix] = np.array(value, copy=True, order="C")
        for key, d in slots.items():
            missing = set(self._slots) - set(d)
            if missing:
                raise ValueError(f"{who}.load_state_dict: parameter {key!r} lacks state {sorted(missing)}")
        self.iterations = int(np.asarray(state["iterations"]))
        if "lr" in state:
            self.lr = float(np.asarray(state["lr"]))
        self._steps = steps
        self._state = slots
        return self

    # ---- config -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """JSON-able ``{"class_name": ..., "config": {hyperparameters}}``."""
        return {
            "class_name": type(self).__name__,
            "config": {"lr": self.lr, **{h: getattr(self, h) for h in self._hyper}},
        }

    def __repr__(self):
        cfg = self.get_config()["config"]
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in cfg.items()) + ")"
