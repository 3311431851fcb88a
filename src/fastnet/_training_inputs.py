"""Input checks of the training loops (fastnet._training), run once before any step.

Inputs are numeric and finite, converted to the model's float dtype, x/y lengths equal, one
sample run through the model (so a wrong input shape fails naming the layer), integer labels
inside [0, n_outputs). A model with several inputs takes ``x`` as a list of arrays.
"""

from __future__ import annotations

import numpy as np


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


def _multi_input(model) -> bool:
    return getattr(model, "_multi_in", False)


def _take(x, index):
    """``x[index]`` for one array or for each array of a multi-input list."""
    return [a[index] for a in x] if isinstance(x, list) else x[index]


def _length(x) -> int:
    return x[0].shape[0] if isinstance(x, list) else x.shape[0]


def _prepare_x(model, x, where: str):
    if _multi_input(model):
        if not isinstance(x, (list, tuple)) or len(x) != model.num_inputs:
            raise ValueError(f"{where}: the model has {model.num_inputs} inputs; pass x as a list of as many arrays")
        xs = [_prepare_x_one(model, a, f"x[{i}]", where) for i, a in enumerate(x)]
        if len({a.shape[0] for a in xs}) != 1:
            raise ValueError(f"{where}: the input arrays have different lengths {[a.shape[0] for a in xs]}")
        return xs
    return _prepare_x_one(model, x, "x", where)


def _prepare_x_one(model, x, what, where):
    arr = _numeric(x, what, where)
    _check_finite(arr, what, where)
    return np.ascontiguousarray(arr, dtype=model.dtype)


def _require_output_losses(model, where: str):
    """A model with several outputs trains with a loss per output (compile builds one)."""
    from .output_losses import OutputLosses

    n = getattr(model, "num_outputs", 1)
    if n > 1 and model.loss is not None and not isinstance(model.loss, OutputLosses):
        raise ValueError(
            f"{where}: {model.name} has {n} outputs but its loss {type(model.loss).__name__} scores one; "
            "compile it again (compile makes a loss per output from a list, a dict or one loss)"
        )


def _refuse_loader_for_outputs(model, where: str):
    if getattr(model, "num_outputs", 1) > 1:
        raise ValueError(
            f"{where}: {model.name} has {model.num_outputs} outputs; a DataLoader yields one target array, "
            "so pass x and y (a list of arrays, one per output) instead"
        )


def _prepare_y(model, y, n: int, where: str) -> np.ndarray:
    arr = _numeric(y, "y", where)
    if arr.shape[0] != n:
        raise ValueError(f"{where}: x and y have different lengths: x has {n} samples, y has {arr.shape[0]}")
    if arr.dtype.kind in "biu":
        return np.ascontiguousarray(arr, dtype=np.int64)
    _check_finite(arr, "y", where)
    return np.ascontiguousarray(arr, dtype=model.dtype)


def _forward_fitting(model, x, where: str):
    """``model.forward(x)`` in eval mode; a layer's ValueError (shapes, dtypes) is re-raised as "the input
    does not fit the model", with the layer's own message."""
    try:
        return model.forward(x, training=False)
    except ValueError as e:
        shape = [tuple(a.shape[1:]) for a in x] if isinstance(x, list) else tuple(x.shape[1:])
        raise ValueError(f"{where}: input of sample shape {shape} does not fit the model: {e}") from None


def _check_against_model(model, x, y, where: str):
    """Run one sample through the model (eval mode) and the loss; returns possibly re-typed y
    (a list, one per output, for a model with several outputs)."""
    out = _forward_fitting(model, _take(x, slice(0, 1)), where)
    if y is None:
        return y
    if not isinstance(out, list):
        return _check_target(out, y, model.loss, where)
    losses = getattr(model.loss, "losses", [None] * len(out))
    return [
        _check_target(o, t, loss, f"{where} (output {name!r})")
        for o, t, loss, name in zip(out, y, losses, model.output_names, strict=True)
    ]


def _check_target(out, y, loss, where: str):
    """One output's targets against one sample's prediction ``out`` and its ``loss``."""
    n_out = out.shape[-1] if out.ndim == 2 else None
    if y.ndim == 2 and y.shape[1] == 1 and n_out is not None and n_out > 1 and np.all(y == np.round(y)):
        y = y[:, 0]  # Keras-style (N, 1) class ids, as the losses accept them
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
    if loss is not None:
        try:
            loss.forward(out, y[:1])
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


def _prepare_targets(model, y, n: int, where: str):
    """``y`` as arrays: one, or a list of one per output for a model with several outputs."""
    outputs = getattr(model, "num_outputs", 1)
    if outputs == 1:
        return _prepare_y(model, y, n, where)
    if not isinstance(y, (list, tuple)) or len(y) != outputs:
        got = f"a list of {len(y)}" if isinstance(y, (list, tuple)) else type(y).__name__
        raise ValueError(
            f"{where}: {model.name} has {outputs} outputs {model.output_names}; pass y as a list of "
            f"{outputs} arrays (one per output), got {got}"
        )
    return [
        _prepare_y(model, t, n, f"{where} (output {name!r})") for t, name in zip(y, model.output_names, strict=True)
    ]


def _prepare(model, x, y, where: str):
    x = _prepare_x(model, x, where)
    y = _prepare_targets(model, y, _length(x), where) if y is not None else None
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


def _forward_keeps_state(model) -> bool:
    """Whether a training forward changes anything but the output (a layer with buffers)."""
    layers = model._named_table().values() if hasattr(model, "_named_table") else getattr(model, "layers", ())
    return any(layer.buffers for layer in layers)


def _find_non_finite(xs, ys) -> None:
    """train_on_batch's NaN check: one sum per array (cheaper than an isfinite mask on the hot path);
    only a non-finite sum pays for finding the index, named as ``fit`` names it."""
    with np.errstate(over="ignore", invalid="ignore"):  # huge finite data may overflow the sum: not an error
        for i, a in enumerate(xs):
            if a.dtype.kind == "f" and not np.isfinite(a.sum()):
                _check_finite(a, "x" if len(xs) == 1 else f"x[{i}]", "train_on_batch")
        for i, t in enumerate(ys):
            if t.dtype.kind == "f" and not np.isfinite(t.sum()):
                _check_finite(t, "y" if len(ys) == 1 else f"y[{i}]", "train_on_batch")
