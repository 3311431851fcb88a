"""Keras-style training callbacks for ``Sequential.fit``.

A callback receives ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)`` and
``on_batch_begin/end(batch, logs)``; epochs are 0-based as in Keras. ``logs`` at epoch end
holds the epoch's averaged ``loss``, metrics and ``val_*`` entries. A callback stops training by
setting ``self.model.stop_training = True``.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import warnings

import numpy as np

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "CSVLogger",
    "TerminateOnNaN",
]


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


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights=True`` the weights of the best epoch are put back at the end of
    training, whether training stopped early or ran all its epochs.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
        verbose: int = 0,
    ):
        super().__init__()
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self._mon = _Monitor(monitor, mode, min_delta, "EarlyStopping")
        self.monitor, self.mode = monitor, self._mon.mode
        self.patience, self.min_delta = int(patience), self._mon.min_delta
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose
        self._reset()

    def _reset(self):
        self._mon.reset()
        self.wait = 0
        self.stopped_epoch = None
        self.best_epoch = None
        self.best_weights = None

    @property
    def best(self):
        return self._mon.best

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        value = self._mon.value(logs)
        if value is None:
            return
        if self._mon.improved(value):
            self._mon.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(
                    f"EarlyStopping: stopped at epoch {epoch + 1}; best {self.monitor}={self.best:.6g} "
                    f"at epoch {self.best_epoch + 1 if self.best_epoch is not None else '-'}"
                )

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored weights from epoch {self.best_epoch + 1}")


class ModelCheckpoint(Callback):
    """Save the model (``model.save``, atomic) at the end of each epoch.

    ``path`` may contain ``{epoch}`` (1-based, as Keras) and any log key, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``. With ``save_best_only`` a file is written only
    when ``monitor`` improved. The file holds weights, optimizer state and the shuffling seed, so
    ``fastnet.load(path).fit(..., initial_epoch=epoch)`` resumes exactly.
    """

    def __init__(
        self, path, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto", verbose: int = 0
    ):
        super().__init__()
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"ModelCheckpoint: path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = os.fspath(path)
        self._mon = _Monitor(monitor, mode, 0.0, "ModelCheckpoint")
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.verbose = verbose
        self.last_saved: str | None = None

    def on_train_begin(self, logs=None):
        self._mon.reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.save_best_only:
            value = self._mon.value(logs)
            if not self._mon.improved(value):
                return
            self._mon.best = value
        try:
            path = self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"ModelCheckpoint: cannot format path {self.path!r} with epoch and logs {sorted(logs)}: {e}"
            ) from None
        self.model.save(path)
        self.last_saved = path
        if self.verbose:
            print(f"ModelCheckpoint: saved {path}")


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


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs
    (Keras semantics: ``min_delta``, ``cooldown`` epochs after a reduction, never below ``min_lr``)."""

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


class CSVLogger(Callback):
    """Append one CSV row per epoch (``epoch`` then the log keys, sorted) to ``path``.

    The file is flushed after each row, so it is readable while training runs. ``append=True``
    continues an existing file (for resumed runs) instead of overwriting it.
    """

    def __init__(self, path, separator: str = ",", append: bool = False):
        super().__init__()
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"CSVLogger: path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = os.fspath(path)
        self.separator = separator
        self.append = bool(append)
        self.keys = None
        self._file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        has_header = self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        # open across epochs (closed in on_train_end), so no with-block
        self._file = open(self.path, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer = None
        self.keys = None
        self._has_header = has_header

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._writer is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(
                self._file,
                fieldnames=["epoch"] + self.keys,
                delimiter=self.separator,
                extrasaction="ignore",
                restval="",
            )
            if not self._has_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: _csv_value(logs.get(k, "")) for k in self.keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def _csv_value(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


class TerminateOnNaN(Callback):
    """Stop training cleanly when a batch loss is NaN or inf (instead of ``fit`` raising).

    ``fit`` skips the update of the offending batch, so the weights stay those of the last good step.
    """

    def __init__(self):
        super().__init__()
        self.terminated_at = None

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.terminated_at = batch
            print(f"TerminateOnNaN: batch {batch}: invalid loss {loss}, terminating training")
            self.model.stop_training = True


def __getattr__(name):
    # TensorBoard lives in fastnet.interop (it needs the optional tensorboard package); loaded on first use.
    if name == "TensorBoard":
        from .interop.tensorboard import TensorBoard

        return TensorBoard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
