"""The loops behind ``Sequential.fit / evaluate / predict / train_on_batch``.

Inputs are checked once, before any training step: numeric and finite, converted to the
model's float dtype, x/y lengths equal, one sample run through the model (so a wrong input
shape fails naming the layer), integer labels inside [0, n_outputs).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from . import preprocessing as _preprocessing
from . import random as _random
from .callbacks import CallbackList, History

__all__ = ["NonFiniteLossError", "train_on_batch", "fit", "evaluate", "predict"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the offending update was not applied."""


# ---- input checks -------------------------------------------------------------------------------
def _is_loader(obj) -> bool:
    """A DataLoader-like object: iterable of (xb, yb) batches with ``len()``; not an array."""
    return (
        obj is not None
        and not isinstance(obj, (np.ndarray, list, tuple))
        and hasattr(obj, "__iter__")
        and hasattr(obj, "__len__")
        and hasattr(obj, "batch_size")
    )


def _numeric(a, what: str, where: str) -> np.ndarray:
    if a is None:
        raise ValueError(f"{where}: {what} is required")
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: {what} must be a numeric array, could not convert it ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: {what} must be numeric (bool, int or float), got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{where}: {what} must have at least one sample, got shape {arr.shape}")
    return arr


def _check_finite(arr: np.ndarray, what: str, where: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        value = arr[tuple(bad)]
        raise ValueError(
            f"{where}: {what} contains NaN or inf (first at index {tuple(int(i) for i in bad)}: "
            f"{value}); clean or impute the data first"
        )


def _prepare_x(model, x, where: str) -> np.ndarray:
    arr = _numeric(x, "x", where)
    _check_finite(arr, "x", where)
    return np.ascontiguousarray(arr, dtype=model.dtype)


def _prepare_y(model, y, n: int, where: str) -> np.ndarray:
    arr = _numeric(y, "y", where)
    if arr.shape[0] != n:
        raise ValueError(f"{where}: x and y have different lengths: x has {n} samples, y has {arr.shape[0]}")
    if arr.dtype.kind in "biu":
        return np.ascontiguousarray(arr, dtype=np.int64)
    _check_finite(arr, "y", where)
    return np.ascontiguousarray(arr, dtype=model.dtype)


def _check_against_model(model, x: np.ndarray, y: np.ndarray | None, where: str):
    """Run one sample through the model (eval mode) and the loss; returns possibly re-typed y."""
    try:
        out = model.forward(x[:1], training=False)
    except ValueError as e:
        raise ValueError(f"{where}: input of sample shape {tuple(x.shape[1:])} does not fit the model: {e}") from None
    if y is None:
        return y
    n_out = out.shape[-1] if out.ndim == 2 else None
    if y.ndim == 1 and y.dtype.kind == "f" and n_out is not None and n_out > 1 and np.all(y == np.round(y)):
        y = y.astype(np.int64)  # class ids stored as floats
    if y.dtype.kind == "i" and y.ndim == 1 and n_out is not None:
        n_classes = max(n_out, 2)  # one sigmoid output still means classes {0, 1}
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(
                f"{where}: labels must be class ids in [0, {n_classes}) for a model with {n_out} "
                f"output(s), got labels from {lo} to {hi}"
            )
    elif y.ndim == out.ndim and y.shape[1:] != out.shape[1:]:
        raise ValueError(
            f"{where}: target shape per sample {tuple(y.shape[1:])} does not match the model's output "
            f"shape per sample {tuple(out.shape[1:])}"
        )
    if model.loss is not None:
        try:
            model.loss.forward(out, y[:1])
        except ValueError as e:
            raise ValueError(f"{where}: targets do not fit the loss: {e}") from None
    return y


def _check_loader_sample(model, loader, where: str) -> None:
    """Run the loader's first sample through the model before training (when it exposes its
    arrays and has no transform that could change the shape)."""
    x = getattr(loader, "x", None)
    if x is None or getattr(loader, "transform", None) is not None or not hasattr(x, "shape") or len(x) == 0:
        return
    xs = _numeric(x[:1], "x", where)
    y = getattr(loader, "y", None)
    ys = _prepare_y(model, y[:1], 1, where) if y is not None and hasattr(y, "shape") else None
    _check_against_model(model, np.ascontiguousarray(xs, dtype=model.dtype), ys, where)


def _prepare(model, x, y, where: str):
    x = _prepare_x(model, x, where)
    y = _prepare_y(model, y, x.shape[0], where) if y is not None else None
    y = _check_against_model(model, x, y, where)
    return x, y


def _require_compiled(model, where: str):
    if model.loss is None or model.optimizer is None:
        raise RuntimeError(f"{where}: the model is not compiled; call model.compile(optimizer=..., loss=...) first")


def _positive_int(value, name, where, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_verbose(verbose, where):
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"{where}: verbose must be 0, 1 or 2, got {verbose!r}")
    return int(verbose)


# ---- one step -------------------------------------------------------------------------------------
def _slots(model):
    return [
        (f"{i}.{k}", p, layer.grads[k], layer.lr_mult)
        for i, layer in enumerate(model.layers)
        for k, p in layer.params.items()
    ]


def _step(model, xb, yb):
    """Forward, loss, and (only if the loss is finite) backward and update. Returns (loss, pred)."""
    pred = model.forward(xb, training=True)
    try:
        loss = float(model.loss.forward(pred, yb))
    except ValueError:
        if np.isfinite(pred).all():
            raise
        loss = math.nan  # the model's output diverged (losses reject non-finite predictions)
    if math.isfinite(loss):
        model.backward(model.loss.backward(), input_grad=False)  # the data needs no gradient
        model.optimizer.step(_slots(model))
    return loss, pred


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


def train_on_batch(model, x, y) -> float:
    _require_compiled(model, "train_on_batch")
    # Light checks only: this is the benchmarked hot path; layers and the loss check shapes and labels.
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"train_on_batch: x must be numeric, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=model.dtype)
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise ValueError(f"train_on_batch: y must be numeric, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False) if y.dtype.kind in "biu" else np.ascontiguousarray(y, dtype=model.dtype)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"train_on_batch: x and y must have the same number of samples, got shapes {x.shape} and {y.shape}"
        )
    loss, _ = _step(model, x, y)
    if not math.isfinite(loss):
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


class _Meter:
    """Sample-weighted running means of loss and metrics."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, loss, pred_linked, yb, n):
        self.n += n
        self.sums["loss"] = self.sums.get("loss", 0.0) + loss * n
        out = {"loss": loss}
        for m in self.metrics:
            v = float(m(pred_linked, yb))
            self.sums[m.name] = self.sums.get(m.name, 0.0) + v * n
            out[m.name] = v
        return out

    def means(self):
        return {k: s / self.n for k, s in self.sums.items()} if self.n else {}


# ---- fit --------------------------------------------------------------------------------------------
def _batches(x, y, batch_size, order):
    """Yield (xb, yb); ``order`` is a permutation or None (contiguous slices, no copy)."""
    n = x.shape[0]
    for start in range(0, n, batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            sl = order[start : start + batch_size]
            yield x[sl], y[sl]


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffle order of one epoch, a pure function of (seed, epoch) so a resumed run repeats it."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def _split_validation(x, y, fraction):
    fraction = float(fraction)
    if not (0.0 <= fraction < 1.0):
        raise ValueError(f"fit: validation_split must be in [0, 1), got {fraction!r}")
    if fraction == 0.0:
        return x, y, None
    n_val = int(round(x.shape[0] * fraction))
    if n_val < 1 or n_val >= x.shape[0]:
        raise ValueError(
            f"fit: validation_split={fraction} of {x.shape[0]} samples leaves {n_val} for validation "
            f"and {x.shape[0] - n_val} for training; both need at least one"
        )
    # Keras takes the last samples, before shuffling.
    cut = x.shape[0] - n_val
    return x[:cut], y[:cut], (x[cut:], y[cut:])


def fit(
    model, x, y, *, epochs, batch_size, shuffle, validation_data, validation_split, verbose, callbacks, initial_epoch
):
    where = "fit"
    _require_compiled(model, where)
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
        n_train = int(getattr(loader, "num_samples", 0) or 0)
        batch_size = loader.batch_size
        _check_loader_sample(model, loader, where)
    else:
        batch_size = _positive_int(batch_size, "batch_size", where)
        x, y = _prepare(model, x, y, where)
        x, y, split_val = _split_validation(x, y, validation_split)
        _preprocessing.remember_or_check(model, x, where)
        if split_val is not None:
            if validation_data is not None:
                raise ValueError("fit: pass either validation_data or validation_split, not both")
            validation_data = split_val
        n_train = x.shape[0]

    val = _prepare_validation(model, validation_data)

    if model.shuffle_seed is None:
        model.shuffle_seed = int(_random.generator().integers(0, 2**63 - 1))
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

    cbs.on_train_begin()
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
        if model.stop_training:
            break
    cbs.on_train_end()
    return history


def _prepare_validation(model, validation_data):
    if validation_data is None:
        return None
    if _is_loader(validation_data):
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
        order = epoch_permutation(model.shuffle_seed, epoch, x.shape[0]) if shuffle else None
        batches = _batches(x, y, batch_size, order)
        total = x.shape[0]
    snapshot = [p.copy() for p in model.parameters()]  # fallback if the weights themselves diverge
    meter = _Meter(model.metrics)
    bar = _bar(total, f"Epoch {epoch + 1}/{epochs}", verbose)
    link = model.loss.link
    try:
        for i, (xb, yb) in enumerate(batches):
            if loader is not None:
                xb = np.ascontiguousarray(xb, dtype=model.dtype)
                yb = np.asarray(yb)
                yb = yb.astype(np.int64, copy=False) if yb.dtype.kind in "biu" else yb.astype(model.dtype, copy=False)
            cbs.on_batch_begin(i, {"batch": i, "size": len(xb)})
            loss, pred = _step(model, xb, yb)
            if not math.isfinite(loss):
                cbs.on_batch_end(i, {"batch": i, "size": len(xb), "loss": loss})
                diverged = not all(np.isfinite(p).all() for p in model.parameters())
                if diverged:
                    for p, s in zip(model.parameters(), snapshot, strict=True):
                        p[...] = s
                if model.stop_training:
                    return {}, True
                raise NonFiniteLossError(_nan_message(loss, model, f"fit: epoch {epoch + 1}, batch {i + 1}", diverged))
            batch_logs = meter.add(loss, link(pred) if model.metrics else pred, yb, len(xb))
            cbs.on_batch_end(i, dict(batch_logs, batch=i, size=len(xb)))
            if bar is not None:
                bar.set_postfix_str(_fmt(meter.means()), refresh=False)
                bar.update(len(xb))
            if model.stop_training:
                break
        logs = meter.means()
        if val is not None:
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
            xb = np.ascontiguousarray(xb, dtype=model.dtype)
            yb = np.asarray(yb)
            yb = yb.astype(np.int64, copy=False) if yb.dtype.kind in "biu" else yb.astype(model.dtype, copy=False)
            yield xb, yb
    else:
        x, y = data
        yield from _batches(x, y, batch_size, None)


def _evaluate_prepared(model, data, batch_size, bar=None):
    meter = _Meter(model.metrics)
    for xb, yb in _iter_prepared(model, data, batch_size):
        pred = model.forward(xb, training=False)
        loss = float(model.loss.forward(pred, yb))
        meter.add(loss, model.loss.link(pred) if model.metrics else pred, yb, len(xb))
        if bar is not None:
            bar.update(len(xb))
    return meter.means()


def evaluate(model, x, y, *, batch_size, return_dict, verbose):
    where = "evaluate"
    if model.loss is None:
        raise RuntimeError(f"{where}: the model is not compiled; call model.compile(optimizer=..., loss=...) first")
    verbose = _check_verbose(verbose, where)
    if _is_loader(x):
        if y is not None:
            raise ValueError(f"{where}: y must be None when x is a DataLoader")
        data, total = x, getattr(x, "num_samples", None)
    else:
        batch_size = _positive_int(batch_size, "batch_size", where)
        data = _prepare(model, x, y, where)
        _preprocessing.check_model_inputs(model, data[0], where)
        total = data[0].shape[0]
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
    if not model.metrics:
        return logs["loss"]
    return [logs["loss"]] + [logs[m.name] for m in model.metrics]


def predict(model, x, *, batch_size, verbose):
    where = "predict"
    verbose = _check_verbose(verbose, where)
    if _is_loader(x):
        batches = (np.ascontiguousarray(b[0] if isinstance(b, (tuple, list)) else b, dtype=model.dtype) for b in x)
        total = getattr(x, "num_samples", None)
    else:
        batch_size = _positive_int(batch_size, "batch_size", where)
        x = _prepare_x(model, x, where)
        _check_against_model(model, x, None, where)
        _preprocessing.check_model_inputs(model, x, where, whole_dataset=False)
        batches = (x[s : s + batch_size] for s in range(0, x.shape[0], batch_size))
        total = x.shape[0]
    link = model.loss.link if model.loss is not None else None
    bar = _bar(total, "predict", verbose)
    outs = []
    try:
        for xb in batches:
            out = model.forward(xb, training=False)
            outs.append(link(out) if link is not None else out)
            if bar is not None:
                bar.update(len(xb))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(outs, axis=0)
