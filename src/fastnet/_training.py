"""The loops behind ``fit / evaluate / predict / train_on_batch`` of every model (see fastnet.trainer).

Inputs are checked once, before any training step (see fastnet._training_inputs); a model with
several inputs takes ``x`` as a list of arrays; each step is ``model.train_step``.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from . import _resume, distributed
from . import preprocessing as _preprocessing
from . import random as _random
from . import threads as _threads
from ._training_inputs import (
    _check_loader_sample,
    _check_verbose,
    _find_non_finite,
    _forward_fitting,
    _forward_keeps_state,
    _is_loader,
    _length,
    _multi_input,
    _positive_int,
    _prepare,
    _prepare_targets,
    _prepare_x,
    _refuse_loader_for_outputs,
    _require_compiled,
    _require_output_losses,
    _take,
)
from ._training_logs import Meter, log_keys, output_logs
from .callbacks import CallbackList, History
from .output_losses import OutputLosses

__all__ = ["NonFiniteLossError", "train_on_batch", "fit", "evaluate", "predict"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the offending update was not applied."""


# ---- one step -------------------------------------------------------------------------------------
def _nan_message(loss, model, where, restored=False):
    lr = getattr(model.optimizer, "lr", None)
    kept = (
        "the weights had already overflowed to NaN/inf, so those of the start of this epoch were restored"
        if restored
        else "so the weights are those of the last good step"
    )
    return (
        f"{where}: the loss became {loss}; the update was skipped, {kept}. This usually means the learning "
        f"rate is too high (lr={lr}) or the data has extreme values; try a lower lr or scaled inputs."
    )


def _light_x(model, x):
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"train_on_batch: x must be numeric, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=model.dtype)


def _light_y(y):
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise ValueError(f"train_on_batch: y must be numeric, got dtype {y.dtype}")
    return y


def train_on_batch(model, x, y) -> float:
    _require_compiled(model, "train_on_batch")
    _require_output_losses(model, "train_on_batch")
    # Light checks only: this is the benchmarked hot path; layers and the loss check shapes and labels.
    multi = _multi_input(model) and isinstance(x, (list, tuple))
    x = [_light_x(model, a) for a in x] if multi else _light_x(model, x)
    xs = x if isinstance(x, list) else [x]
    if getattr(model, "num_outputs", 1) > 1:  # one target array per output, fully checked (not the hot path)
        y = ys = _prepare_targets(model, y, xs[0].shape[0] if xs[0].ndim else 0, "train_on_batch")
    else:
        y = _light_y(y)
        y = y.astype(np.int64, copy=False) if y.dtype.kind in "biu" else np.ascontiguousarray(y, dtype=model.dtype)
        ys = [y]
    if any(a.ndim == 0 for a in xs + ys) or any(a.shape[0] != ys[0].shape[0] for a in xs + ys):
        raise ValueError(
            f"train_on_batch: x and y must have the same number of samples, got shapes {xs[0].shape} and {ys[0].shape}"
        )
    # NaN/inf data: checked before the step only where the forward pass changes state (BatchNorm's
    # running statistics); elsewhere it shows as a non-finite loss (train_step then skips the
    # update) and is named after it, so the hot path pays no pass over the data (M2: 0.15-0.25 ms
    # of a 1.45 ms step).
    stateful = _forward_keeps_state(model)
    if stateful:
        _find_non_finite(xs, ys)
    _threads.tick()  # the automatic thread count follows the machine's load (about once a second)
    try:
        loss = model.train_step(x, y)["loss"]
    except ValueError:  # e.g. a loss refusing NaN targets: name the data's first NaN instead, if there is one
        if not stateful:
            _find_non_finite(xs, ys)
        raise
    if not math.isfinite(loss):
        if not stateful:
            _find_non_finite(xs, ys)
        raise NonFiniteLossError(_nan_message(loss, model, "train_on_batch"))
    return loss


# ---- progress -------------------------------------------------------------------------------------
def _fmt(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items() if isinstance(v, float))


def _bar(total, desc, verbose):
    if verbose != 1:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="sample",
        unit_scale=True,
        leave=True,
        dynamic_ncols=True,
        mininterval=0.2,
        file=sys.stdout,
    )


# ---- fit --------------------------------------------------------------------------------------------
def _batches(x, y, batch_size, order):
    """Yield (xb, yb); ``order`` is a permutation or None (contiguous slices, no copy).

    Distributed, each rank gets its contiguous slice of every global batch.
    """
    n = _length(x)
    for start in range(0, n, batch_size):
        lo, hi = distributed.local_range(min(batch_size, n - start))
        sl = slice(start + lo, start + hi) if order is None else order[start + lo : start + hi]
        yield _take(x, sl), _take(y, sl)


def _local_slice(xb, yb):
    """This rank's slice of a DataLoader's global batch (the whole batch without MPI)."""
    lo, hi = distributed.local_range(len(yb))
    return (xb, yb) if (lo, hi) == (0, len(yb)) else (_take(xb, slice(lo, hi)), yb[lo:hi])


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffle order of one epoch, a pure function of (seed, epoch) so a resumed run repeats it."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def _split_validation(x, y, fraction):
    fraction = float(fraction)
    if not (0.0 <= fraction < 1.0):
        raise ValueError(f"fit: validation_split must be in [0, 1), got {fraction!r}")
    if fraction == 0.0:
        return x, y, None
    n = _length(x)
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(
            f"fit: validation_split={fraction} of {n} samples leaves {n_val} for validation "
            f"and {n - n_val} for training; both need at least one"
        )
    # Keras takes the last samples, before shuffling.
    cut = n - n_val
    return (
        _take(x, slice(None, cut)),
        _take(y, slice(None, cut)),
        (_take(x, slice(cut, None)), _take(y, slice(cut, None))),
    )


def fit(
    model, x, y, *, epochs, batch_size, shuffle, validation_data, validation_split, verbose, callbacks, initial_epoch
):
    where = "fit"
    _require_compiled(model, where)
    _require_output_losses(model, where)
    epochs = _positive_int(epochs, "epochs", where, minimum=0)
    initial_epoch = _positive_int(initial_epoch, "initial_epoch", where, minimum=0)
    verbose = _check_verbose(verbose, where)
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]

    loader = x if _is_loader(x) else None
    if loader is not None:
        if y is not None:
            raise ValueError("fit: y must be None when x is a DataLoader (it yields (x, y) batches)")
        if validation_split:
            raise ValueError("fit: validation_split is not supported with a DataLoader; pass validation_data")
        _refuse_loader_for_outputs(model, where)
        n_train = int(getattr(loader, "num_samples", 0) or 0)
        batch_size = loader.batch_size
        _check_loader_sample(model, loader, where)
    else:
        batch_size = _positive_int(batch_size, "batch_size", where)
        x, y = _prepare(model, x, y, where)
        x, y, split_val = _split_validation(x, y, validation_split)
        if not isinstance(x, list):
            _preprocessing.remember_or_check(model, x, where)
        if split_val is not None:
            if validation_data is not None:
                raise ValueError("fit: pass either validation_data or validation_split, not both")
            validation_data = split_val
        n_train = _length(x)

    val = _prepare_validation(model, validation_data)

    if model.shuffle_seed is None:
        model.shuffle_seed = int(_random.generator().integers(0, 2**63 - 1))
    distributed.start_fit(model, where)  # same weights and shuffle seed as rank 0 on every rank
    _resume.follow_model_seed(model, loader, validation_data)
    callbacks = distributed.rank_callbacks(callbacks)  # file writers on rank 0 only
    verbose = verbose if distributed.is_main() else 0
    with distributed.quiet():  # only rank 0 prints
        return _fit_epochs(
            model, x, y, loader, n_train, epochs, batch_size, shuffle, verbose, callbacks, initial_epoch, val
        )


def _fit_epochs(model, x, y, loader, n_train, epochs, batch_size, shuffle, verbose, callbacks, initial_epoch, val):
    history = History()
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "samples": n_train,
        "verbose": verbose,
        "initial_epoch": initial_epoch,
    }
    # History last (as Keras), so it records what other callbacks add to the logs (e.g. "lr").
    cbs = CallbackList(list(callbacks or []) + [history], model, params)
    model.history = history
    model.stop_training = False

    saved_states = _resume.begin(model, callbacks, initial_epoch)  # before on_train_begin resets them
    cbs.on_train_begin()
    _resume.restore(saved_states, callbacks)
    for epoch in range(initial_epoch, epochs):
        cbs.on_epoch_begin(epoch, {})
        t0 = time.perf_counter()
        logs, aborted = _train_epoch(model, x, y, loader, batch_size, shuffle, epoch, epochs, verbose, cbs, val)
        if aborted:  # TerminateOnNaN asked to stop on a non-finite loss
            break
        model.epochs_trained = epoch + 1  # before the callbacks, so a checkpoint saved now records it
        cbs.on_epoch_end(epoch, logs)
        if verbose == 2:
            print(f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - t0:.1f}s - {_fmt(logs)}", flush=True)
        if distributed.agree_stop(model):
            break
    cbs.on_train_end()
    return history


def _prepare_validation(model, validation_data):
    if validation_data is None:
        return None
    if _is_loader(validation_data):
        _refuse_loader_for_outputs(model, "fit (validation_data)")
        return validation_data
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError(
            "fit: validation_data must be a tuple (x_val, y_val) or a DataLoader, got "
            f"{type(validation_data).__name__}"
            + (f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else "")
        )
    return _prepare(model, validation_data[0], validation_data[1], "fit (validation_data)")


def _train_epoch(model, x, y, loader, batch_size, shuffle, epoch, epochs, verbose, cbs, val):
    if loader is not None:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        batches = loader
        total = getattr(loader, "num_samples", None)
    else:
        order = epoch_permutation(model.shuffle_seed, epoch, _length(x)) if shuffle else None
        batches = _batches(x, y, batch_size, order)
        total = _length(x)
    snapshot = [p.copy() for p in model.parameters()]  # fallback if the weights themselves diverge
    meter = Meter(model)
    bar = _bar(total, f"Epoch {epoch + 1}/{epochs}", verbose)
    try:
        for i, (xb, yb) in enumerate(batches):
            if loader is not None:
                xb, yb = _local_slice(xb, yb)
                xb = np.ascontiguousarray(xb, dtype=model.dtype)
                yb = np.asarray(yb)
                yb = yb.astype(np.int64, copy=False) if yb.dtype.kind in "biu" else yb.astype(model.dtype, copy=False)
            size = _length(yb)
            cbs.on_batch_begin(i, {"batch": i, "size": size})
            _threads.tick()
            step_logs = model.train_step(xb, yb)
            loss = float(step_logs["loss"])
            if not math.isfinite(loss):
                cbs.on_batch_end(i, {"batch": i, "size": size, "loss": loss})
                diverged = not all(np.isfinite(p).all() for p in model.parameters())
                if diverged:
                    for p, s in zip(model.parameters(), snapshot, strict=True):
                        p[...] = s
                if model.stop_training:
                    return {}, True
                raise NonFiniteLossError(_nan_message(loss, model, f"fit: epoch {epoch + 1}, batch {i + 1}", diverged))
            batch_logs = meter.add_logs(step_logs, size)
            cbs.on_batch_end(i, dict(batch_logs, batch=i, size=size))
            if bar is not None:
                bar.set_postfix_str(_fmt(meter.means()), refresh=False)
                bar.update(size)
            if distributed.agree_stop(model):  # a callback on any rank stops every rank
                break
        distributed.end_epoch(model)  # BatchNorm running statistics: averaged over ranks
        logs = meter.global_means()
        if val is not None:
            if hasattr(val, "set_epoch"):  # a shuffled validation loader: the same order when resumed
                val.set_epoch(epoch)
            vlogs = _evaluate_prepared(model, val, 256)
            logs.update({f"val_{k}": v for k, v in vlogs.items()})
        if bar is not None:
            bar.set_postfix_str(_fmt(logs), refresh=True)
    finally:
        if bar is not None:
            bar.close()
    return logs, False


# ---- evaluate / predict -----------------------------------------------------------------------
def _iter_prepared(model, data, batch_size):
    if _is_loader(data):
        for xb, yb in data:
            xb, yb = _local_slice(xb, yb)
            xb = np.ascontiguousarray(xb, dtype=model.dtype)
            yb = np.asarray(yb)
            yb = yb.astype(np.int64, copy=False) if yb.dtype.kind in "biu" else yb.astype(model.dtype, copy=False)
            yield xb, yb
    else:
        x, y = data
        yield from _batches(x, y, batch_size, None)


def _evaluate_prepared(model, data, batch_size, bar=None):
    meter = Meter(model)
    for xb, yb in _iter_prepared(model, data, batch_size):
        loss = 0.0
        n_local = _length(yb)
        scored = n_local or not distributed.active()  # distributed, a rank's slice can be empty
        if scored:
            pred = model.forward(xb, training=False)
            loss = float(model.loss.forward(pred, yb))
        # distributed: the batch's loss as one process computes it, from every rank's slice
        loss, n_batch = distributed.global_batch_loss(model.loss, loss, n_local)
        if scored:
            meter.add_logs({"loss": loss, **output_logs(model, pred, yb)}, n_local)
        if bar is not None:
            bar.update(n_batch)
    return meter.global_means()


def evaluate(model, x, y, *, batch_size, return_dict, verbose):
    where = "evaluate"
    _require_output_losses(model, where)
    if model.loss is None:
        raise RuntimeError(f"{where}: the model is not compiled; call model.compile(optimizer=..., loss=...) first")
    verbose = _check_verbose(verbose, where) if distributed.is_main() else 0
    if _is_loader(x):
        if y is not None:
            raise ValueError(f"{where}: y must be None when x is a DataLoader")
        _refuse_loader_for_outputs(model, where)
        data, total = x, getattr(x, "num_samples", None)
    else:
        batch_size = _positive_int(batch_size, "batch_size", where)
        data = _prepare(model, x, y, where)
        if not isinstance(data[0], list):  # the scaling record describes one input array
            _preprocessing.check_model_inputs(model, data[0], where)
        total = _length(data[0])
    bar = _bar(total, "evaluate", verbose)
    try:
        logs = _evaluate_prepared(model, data, batch_size, bar)
        if bar is not None:
            bar.set_postfix_str(_fmt(logs), refresh=True)
    finally:
        if bar is not None:
            bar.close()
    if verbose == 2:
        print(f"evaluate - {_fmt(logs)}", flush=True)
    if return_dict:
        return logs
    keys = log_keys(model)
    if len(keys) == 1:
        return logs["loss"]
    return [logs[k] for k in keys]


def predict(model, x, *, batch_size, verbose):
    where = "predict"
    verbose = _check_verbose(verbose, where)
    if _is_loader(x):
        batches = (np.ascontiguousarray(b[0] if isinstance(b, (tuple, list)) else b, dtype=model.dtype) for b in x)
        total = getattr(x, "num_samples", None)
    else:
        batch_size = _positive_int(batch_size, "batch_size", where)
        x = _prepare_x(model, x, where)  # the first batch's forward checks x against the model (no probe)
        if not isinstance(x, list):
            _preprocessing.check_model_inputs(model, x, where, whole_dataset=False)
        batches = (_take(x, slice(s, s + batch_size)) for s in range(0, _length(x), batch_size))
        total = _length(x)
    loss_link = model.loss.link if model.loss is not None else None
    per_output = isinstance(model.loss, OutputLosses)  # each output's own loss links it

    def link(out):
        if loss_link is None:
            return out
        if isinstance(out, list) and not per_output:  # one loss for a list: link each output with it
            return [loss_link(o) for o in out]
        return loss_link(out)

    bar = _bar(total, "predict", verbose)
    outs = []
    try:
        for k, xb in enumerate(batches):
            out = _forward_fitting(model, xb, where) if k == 0 else model.forward(xb, training=False)
            outs.append(link(out))
            if bar is not None:
                bar.update(_length(xb) if isinstance(xb, list) else len(xb))
    finally:
        if bar is not None:
            bar.close()
    if isinstance(outs[0], list):  # several outputs: one array each
        return [np.concatenate(parts, axis=0) for parts in zip(*outs, strict=True)]
    return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)
