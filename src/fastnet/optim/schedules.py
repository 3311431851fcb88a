"""Learning-rate schedules (PyTorch-like): each changes ``optimizer.lr`` when stepped.

Call ``step()`` once per epoch (``step(metric)`` for :class:`ReduceLROnPlateau`). The
base learning rate is the optimizer's ``lr`` when the schedule is created. Only
``optimizer.lr`` is changed; per-layer multipliers still apply on top.
"""

from __future__ import annotations

import math

import numpy as np

from .._callback_state import count, decode_best, encode_best, number, require
from .base import Optimizer, check_hyper

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau"]


def _positive_int(value, name, who):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


class LRScheduler:
    """Base of the closed-form schedules: ``lr = get_lr(epoch)`` after each ``step()``."""

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"{type(self).__name__}: expected a fastnet Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def get_lr(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        """Advance one epoch, set and return the new learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr(self.last_epoch)
        return self.optimizer.lr

    def get_last_lr(self) -> float:
        """The learning rate the optimizer has now (one parameter group, so a float)."""
        return self.optimizer.lr

    def state_dict(self) -> dict:
        """The epoch count and base rate as JSON scalars (``LearningRateScheduler`` saves them with the
        model, so a schedule rebuilt on a loaded model's optimizer continues where it was)."""
        return {"last_epoch": int(self.last_epoch), "base_lr": float(self.base_lr)}

    def load_state_dict(self, state: dict):
        who = type(self).__name__
        require(state, ("last_epoch", "base_lr"), who)
        self.last_epoch = count(state["last_epoch"], "last_epoch", who)
        self.base_lr = number(state["base_lr"], "base_lr", who)
        return self


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer)
        self.step_size = _positive_int(step_size, "step_size", "StepLR")
        self.gamma = check_hyper(gamma, "gamma", "StepLR", 0.0, 1.0, low_open=True, high_open=False)

    def get_lr(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """``lr = base_lr * gamma ** epoch``."""

    def __init__(self, optimizer: Optimizer, gamma: float):
        super().__init__(optimizer)
        self.gamma = check_hyper(gamma, "gamma", "ExponentialLR", 0.0, 1.0, low_open=True, high_open=False)

    def get_lr(self, epoch):
        return self.base_lr * self.gamma**epoch


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``
    (PyTorch's closed form: reaches ``eta_min`` at ``T_max`` and rises again after it)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        super().__init__(optimizer)
        self.T_max = _positive_int(T_max, "T_max", "CosineAnnealingLR")
        self.eta_min = check_hyper(eta_min, "eta_min", "CosineAnnealingLR")

    def get_lr(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class ReduceLROnPlateau:
    """Multiply ``lr`` by ``factor`` when the metric has not improved for more than ``patience`` steps.

    PyTorch's rules with an absolute threshold (``threshold_mode="abs"``; ``min_delta`` is
    Keras's name for it): in ``"min"`` mode a value improves when it is below
    ``best - min_delta`` (``"max"``: above ``best + min_delta``). After ``patience + 1``
    steps without improvement the lr becomes ``max(lr * factor, min_lr)``, the count
    restarts, and the next ``cooldown`` steps count no bad steps. A NaN metric is never
    an improvement.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ):
        who = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"{who}: expected a fastnet Optimizer, got {type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"{who}: mode must be 'min' or 'max', got {mode!r}")
        self.optimizer = optimizer
        self.mode = mode
        self.factor = check_hyper(factor, "factor", who, 0.0, 1.0, low_open=True)
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"{who}: patience must be an int >= 0, got {patience!r}")
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, np.integer)) or cooldown < 0:
            raise ValueError(f"{who}: cooldown must be an int >= 0, got {cooldown!r}")
        self.patience = int(patience)
        self.cooldown = int(cooldown)
        self.min_delta = check_hyper(min_delta, "min_delta", who)
        self.min_lr = check_hyper(min_lr, "min_lr", who)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, metric) -> float:
        """Record one epoch's metric value; returns the (possibly reduced) learning rate."""
        try:
            value = float(metric)
        except (TypeError, ValueError):
            raise ValueError(f"ReduceLROnPlateau.step: metric must be a number, got {metric!r}") from None
        self.last_epoch += 1
        if self._improved(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.optimizer.lr * self.factor, self.min_lr)
            if self.optimizer.lr - new_lr > 1e-12:  # PyTorch skips changes below its eps
                self.optimizer.lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.optimizer.lr

    def get_last_lr(self) -> float:
        return self.optimizer.lr

    _counters = ("num_bad_epochs", "cooldown_counter", "last_epoch")

    def state_dict(self) -> dict:
        """JSON scalars; ``best`` is None until a finite metric was seen."""
        return {"best": encode_best(self.best), **{k: int(getattr(self, k)) for k in self._counters}}

    def load_state_dict(self, state: dict):
        who = "ReduceLROnPlateau"
        require(state, ("best", *self._counters), who)
        counters = {k: count(state[k], k, who) for k in self._counters}
        self.best = decode_best(state["best"], self.mode, who)
        for k, v in counters.items():
            setattr(self, k, v)
        return self
