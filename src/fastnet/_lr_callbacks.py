"""The learning-rate callbacks: ``LearningRateScheduler`` and ``ReduceLROnPlateau`` (re-exported by
``fastnet.callbacks``)."""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np

from ._callback_base import Callback, _Monitor
from ._callback_state import MonitorState


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate every epoch.

    ``schedule`` is either a function ``f(epoch) -> lr`` or ``f(epoch, lr) -> lr`` (Keras; called
    at the start of each epoch, 0-based), or a schedule object from ``fastnet.optim`` (StepLR,
    ExponentialLR, CosineAnnealingLR, ...) whose ``step()`` is called at the end of each epoch
    (PyTorch's convention); a ReduceLROnPlateau object gets ``step(logs[monitor])``.
    """

    def __init__(self, schedule, monitor: str = "val_loss", verbose: int = 0):
        super().__init__()
        self.is_object = hasattr(schedule, "step") and callable(schedule.step)
        if not self.is_object and not callable(schedule):
            raise ValueError(
                "LearningRateScheduler: schedule must be a function f(epoch[, lr]) -> lr or a "
                f"schedule object with .step(), got {type(schedule).__name__}"
            )
        self.schedule = schedule
        self.monitor = monitor
        self.verbose = verbose
        self._n_args = None
        if not self.is_object:
            try:
                params = [
                    p
                    for p in inspect.signature(schedule).parameters.values()
                    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                ]
                self._n_args = 2 if len(params) >= 2 else 1
            except (TypeError, ValueError):
                self._n_args = 2

    def state_dict(self) -> dict:
        """A schedule object's progress (saved with the model); a function has none."""
        if not (self.is_object and hasattr(self.schedule, "state_dict")):
            return {}
        return {"schedule": type(self.schedule).__name__, **self.schedule.state_dict()}

    def load_state_dict(self, state: dict):
        state = dict(state)
        kind = state.pop("schedule", None)
        has_state = self.is_object and hasattr(self.schedule, "state_dict")
        if kind != (type(self.schedule).__name__ if has_state else None):
            raise ValueError(
                f"LearningRateScheduler.load_state_dict: the state is of a {kind or 'function'} schedule, "
                f"this callback has a {type(self.schedule).__name__ if has_state else 'function'}"
            )
        if has_state:
            self.schedule.load_state_dict(state)
        return self

    def on_train_begin(self, logs=None):
        if self.is_object and getattr(self.schedule, "optimizer", self.model.optimizer) is not self.model.optimizer:
            raise ValueError(
                "LearningRateScheduler: the schedule drives another optimizer than the model's; build it on "
                "model.optimizer (after fastnet.load, on the loaded model's optimizer)"
            )

    def on_epoch_begin(self, epoch, logs=None):
        if self.is_object:
            return
        opt = self.model.optimizer
        lr = self.schedule(epoch, float(opt.lr)) if self._n_args == 2 else self.schedule(epoch)
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            raise ValueError(f"LearningRateScheduler: schedule returned {lr!r}, expected a number") from None
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(
                f"LearningRateScheduler: schedule returned lr={lr!r} at epoch {epoch}, expected a finite number >= 0"
            )
        opt.lr = lr
        if self.verbose:
            print(f"LearningRateScheduler: epoch {epoch + 1}: lr={lr:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if not self.is_object:
            return
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.lr)  # the rate this epoch used (Keras logs it too)
        if "Plateau" in type(self.schedule).__name__:
            value = (logs or {}).get(self.monitor)
            if value is None:
                warnings.warn(
                    f"LearningRateScheduler: {self.monitor!r} not in logs; plateau schedule not stepped",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return
            self.schedule.step(float(value))
        else:
            self.schedule.step()


class ReduceLROnPlateau(MonitorState, Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs
    (Keras semantics: ``min_delta``, ``cooldown`` epochs after a reduction, never below ``min_lr``)."""

    state_counters = ("wait", "cooldown_counter")

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        min_lr: float = 0.0,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        mode: str = "auto",
        verbose: int = 0,
    ):
        super().__init__()
        factor = float(factor)
        if not (0.0 < factor < 1.0):
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        for name, v in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"ReduceLROnPlateau: {name} must be an int >= 0, got {v!r}")
        min_lr = float(min_lr)
        if not math.isfinite(min_lr) or min_lr < 0:
            raise ValueError(f"ReduceLROnPlateau: min_lr must be a finite number >= 0, got {min_lr!r}")
        self._mon = _Monitor(monitor, mode, min_delta, "ReduceLROnPlateau")
        self.monitor, self.factor, self.patience = monitor, factor, int(patience)
        self.min_lr, self.cooldown, self.verbose = min_lr, int(cooldown), verbose
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self._mon.reset()
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        opt = self.model.optimizer
        if logs is not None:
            logs["lr"] = float(opt.lr)
        value = self._mon.value(logs)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._mon.improved(value):
            self._mon.best = value
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old = float(opt.lr)
            new = max(old * self.factor, self.min_lr)
            if new < old:
                opt.lr = new
                if self.verbose:
                    print(f"ReduceLROnPlateau: epoch {epoch + 1}: lr {old:.6g} -> {new:.6g}")
            self.cooldown_counter = self.cooldown
            self.wait = 0
