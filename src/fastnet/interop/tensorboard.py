"""``TensorBoard``: a training callback writing TensorBoard event files.

It uses TensorBoard's own event-file writer and summary protos (``pip install
'fastnet[tensorboard]'``; TensorFlow is not needed), the same pieces ``torch.utils.tensorboard``
builds on, so the files are what ``tensorboard --logdir DIR`` reads.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..callbacks import Callback
from ._naming import named_layers
from ._optional import require


class TensorBoard(Callback):
    """Log training to ``log_dir`` for TensorBoard (``tensorboard --logdir log_dir``).

    Written at the end of every epoch (step = the 0-based epoch, so a resumed run continues
    the curves): every number in the epoch's logs (``loss``, metrics, ``val_*``) and ``lr``,
    the optimizer's learning rate. Every ``histogram_freq`` epochs (0: never) a histogram of
    each parameter (``weights/3.weight``, the state_dict name) and of its gradient
    (``gradients/3.weight``, from the epoch's last batch). With ``update_freq=N`` the batch
    loss and metrics are also written every N batches as ``batch/loss`` etc., with the
    optimizer's step count as step. Under distributed training only rank 0 writes
    (``main_rank_only``).
    """

    main_rank_only = True  # one event file per run, not one per MPI rank

    def __init__(self, log_dir, update_freq="epoch", histogram_freq: int = 1, histogram_bins: int = 30):
        super().__init__()
        self._tb = _require_writer()
        if not isinstance(log_dir, (str, bytes)) and not hasattr(log_dir, "__fspath__"):
            raise TypeError(f"TensorBoard: log_dir must be a str or os.PathLike, got {type(log_dir).__name__}")
        self.log_dir = str(log_dir)
        if update_freq != "epoch" and (
            isinstance(update_freq, bool) or not isinstance(update_freq, int) or update_freq < 1
        ):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch' or a positive int, got {update_freq!r}")
        self.update_freq = update_freq
        for name, value in (("histogram_freq", histogram_freq), ("histogram_bins", histogram_bins)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "histogram_freq" else 1):
                raise ValueError(
                    f"TensorBoard: {name} must be an int >= {int(name != 'histogram_freq')}, got {value!r}"
                )
        self.histogram_freq = histogram_freq
        self.histogram_bins = histogram_bins
        self._writer = None
        self._batches = 0

    # ---- writing ------------------------------------------------------------------------------
    def _add(self, summary, step: int):
        event = self._tb.Event(wall_time=time.time(), step=int(step), summary=summary)
        self._writer.add_event(event)

    def scalar(self, tag: str, value: float, step: int):
        """Write one scalar (also usable from user code while the callback is training)."""
        self._add(self._tb.scalar_pb(tag, float(value)), step)

    def histogram(self, tag: str, values: np.ndarray, step: int):
        data = np.asarray(values, dtype=np.float64).ravel()
        if data.size and np.isfinite(data).all():  # TensorBoard cannot bin NaN/inf
            self._add(self._tb.histogram_pb(tag, data, buckets=self.histogram_bins), step)

    # ---- hooks --------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        # a new event file per fit; TensorBoard merges the files of one directory
        self._writer = self._tb.EventFileWriter(self.log_dir)
        self._batches = 0

    def on_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._writer is None:
            return
        self._batches += 1
        if self._batches % self.update_freq:
            return
        optimizer = getattr(self.model, "optimizer", None)
        step = int(getattr(optimizer, "iterations", self._batches))
        for key, value in _numbers(logs, skip=("batch", "size")):
            self.scalar(f"batch/{key}", value, step)

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            return
        logs = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        if "lr" not in logs and optimizer is not None:
            logs["lr"] = float(optimizer.lr)
        for key, value in _numbers(logs):
            self.scalar(key, value, epoch)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            for prefix, layer in named_layers(self.model):
                for key, param in layer.params.items():
                    self.histogram(f"weights/{prefix}.{key}", param, epoch)
                    if key in layer.grads:
                        self.histogram(f"gradients/{prefix}.{key}", layer.grads[key], epoch)
        self._writer.flush()  # a crash later loses nothing already logged

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _numbers(logs, skip=()):
    for key, value in (logs or {}).items():
        if key in skip or isinstance(value, bool):
            continue
        if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(float(value)):
            yield key, float(value)


class _Writer:
    """TensorBoard's writer pieces, imported once (lazily: tensorboard is an optional extra)."""

    def __init__(self):
        require("tensorboard", "fastnet.callbacks.TensorBoard")
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.plugins.histogram.summary_v2 import histogram_pb
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.Event, self.EventFileWriter = Event, EventFileWriter
        self.scalar_pb, self.histogram_pb = scalar_pb, histogram_pb


def _require_writer() -> _Writer:
    return _Writer()
