"""Keras-style training callbacks for ``Sequential.fit``.

A callback receives ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)`` and
``on_batch_begin/end(batch, logs)``; epochs are 0-based as in Keras. ``logs`` at epoch end
holds the epoch's averaged ``loss``, metrics and ``val_*`` entries. A callback stops training by
setting ``self.model.stop_training = True``.
"""

from __future__ import annotations

import csv
import math
import os
import warnings

import numpy as np

from ._callback_base import Callback, CallbackList, History, _Monitor
from ._callback_state import MonitorState
from ._lr_callbacks import LearningRateScheduler, ReduceLROnPlateau

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


class EarlyStopping(MonitorState, Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights=True`` the weights of the best epoch are put back at the end of
    training, whether training stopped early or ran all its epochs. Its progress (best, wait) is saved
    with the model; the best weights are not, so after a resume only epochs since then can be restored.
    """

    state_counters = ("wait", "best_epoch")
    state_optional = ("best_epoch",)

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
        if self.restore_best_weights and self.best_weights is None and self.best_epoch is not None:
            warnings.warn(
                f"EarlyStopping: the best weights (epoch {self.best_epoch + 1}) are from before this resumed "
                "fit and are not saved in the model file; the last weights are kept",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored weights from epoch {self.best_epoch + 1}")


class ModelCheckpoint(MonitorState, Callback):
    """Save the model (``model.save``, atomic) at the end of each epoch.

    ``path`` may contain ``{epoch}`` (1-based, as Keras) and any log key, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``. With ``save_best_only`` a file is written only
    when ``monitor`` improved. The file holds weights, optimizer state and the shuffling seed, so
    ``fastnet.load(path).fit(..., initial_epoch=epoch)`` resumes exactly. The file is written after
    every callback's ``on_epoch_end`` (in ``after_epoch``), so it holds their state of this epoch too.
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
        self._pending: str | None = None

    def on_train_begin(self, logs=None):
        self._mon.reset()

    def on_epoch_end(self, epoch, logs=None):
        self._pending = None
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
        self._pending = path

    def after_epoch(self, epoch, logs=None):
        path, self._pending = self._pending, None
        if path is None:
            return
        self.model.save(path)
        self.last_saved = path
        if self.verbose:
            print(f"ModelCheckpoint: saved {path}")


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
