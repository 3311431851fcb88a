"""The callback protocol (``Callback``, ``CallbackList``), ``History`` and the best-value tracker the
monitoring callbacks share. Public names are re-exported by ``fastnet.callbacks``."""

from __future__ import annotations

import math
import warnings


class Callback:
    """Base class: override any hook. ``self.model`` is set by ``fit`` before training starts."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params: dict):
        self.params = dict(params)

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def after_epoch(self, epoch, logs=None):
        """Called once every callback's ``on_epoch_end`` has run: the model, its optimizer and every
        callback hold their final state for the epoch (``ModelCheckpoint`` saves here)."""

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass


class CallbackList:
    """Calls every callback in order; used by ``fit``."""

    def __init__(self, callbacks, model, params: dict):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise ValueError(
                    f"fit: callbacks must be fastnet.callbacks.Callback instances, got {type(cb).__name__}"
                )
            cb.set_model(model)
            cb.set_params(params)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)
        self._call("after_epoch", epoch, logs)

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_batch_end", batch, logs)


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]`` is a list with one value per epoch,
    ``history.epoch`` the (0-based) epoch numbers. ``fit`` returns it."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(int(epoch))
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


def _monitor_mode(mode: str, monitor: str, where: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{where}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        # Keras's rule: accuracy-like quantities improve upwards, everything else downwards.
        return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return mode


class _Monitor:
    """Tracks the best value of one logged quantity (shared by EarlyStopping, ModelCheckpoint,
    ReduceLROnPlateau)."""

    def __init__(self, monitor: str, mode: str, min_delta: float, where: str):
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{where}: monitor must be a non-empty string, got {monitor!r}")
        min_delta = float(min_delta)
        if not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"{where}: min_delta must be a finite number >= 0, got {min_delta!r}")
        self.monitor, self.where = monitor, where
        self.mode = _monitor_mode(mode, monitor, where)
        self.min_delta = min_delta
        self.reset()

    def reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, logs):
        logs = logs or {}
        if self.monitor not in logs:
            warnings.warn(
                f"{self.where}: monitored quantity {self.monitor!r} is not in the logs "
                f"(available: {sorted(logs)}); skipping",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta
