"""How ``compile`` turns its ``loss`` / ``loss_weights`` / ``metrics`` arguments into a model's
loss and metrics, for one output or several (Keras's spellings).

A model with several outputs trains ``OutputLosses``: ``loss`` is a list (one per output, in
``model.output_names`` order), a dict by output name, or one loss used for every output (a copy
per output: a loss keeps its last forward's state). ``metrics`` is a list applied to every output
or a dict by output name; each becomes an :class:`OutputMetric` logged as ``<output>_<metric>``.
"""

from __future__ import annotations

from . import losses as _losses
from . import metrics as _metrics
from .output_losses import OutputLosses

__all__ = ["OutputMetric", "resolve_loss", "resolve_metrics", "metrics_config"]


class OutputMetric:
    """A metric of one output of a several-output model: ``m(preds, targets)`` scores output ``index``."""

    def __init__(self, metric, index: int, output: str):
        self.metric, self.index, self.output = metric, int(index), output
        self.name = f"{output}_{metric.name}"
        self.counts = getattr(metric, "counts", False)  # an exact count times n, as the loops sum it

    def __call__(self, pred, target) -> float:
        return self.metric(pred[self.index], target[self.index])

    def __repr__(self):
        return f"OutputMetric({self.metric.name!r}, output={self.output!r})"


def _by_output(value, names, what, where) -> list:
    """A dict keyed by output name (or a list, one per output) as a list in output order."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{where}: {what} names unknown outputs {unknown}; the outputs are {names}")
        return [value.get(n) for n in names]
    if len(value) != len(names):
        raise ValueError(
            f"{where}: {what} has {len(value)} entries but the model has {len(names)} outputs {names}; "
            "give one per output (or a dict by output name)"
        )
    return list(value)


def _copy(loss, where):
    try:
        return _losses.from_config(loss.get_config())
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(
            f"{where}: {type(loss).__name__} cannot be copied for each output from its get_config ({e}); "
            "pass a list with one loss instance per output"
        ) from None


def resolve_loss(model, loss, loss_weights, where):
    """The model's loss: one ``Loss``, or ``OutputLosses`` for a model with several outputs."""
    n = getattr(model, "num_outputs", 1)
    if loss is None:
        raise ValueError(f"{where}: loss is required, e.g. loss='softmax_cross_entropy'")
    many = isinstance(loss, (list, tuple)) or (isinstance(loss, dict) and "class_name" not in loss)
    if n == 1:
        if loss_weights is not None:
            raise ValueError(f"{where}: loss_weights is for a model with several outputs; {model.name} has one")
        if many:
            items = list(loss.values()) if isinstance(loss, dict) else list(loss)
            if len(items) != 1:
                raise ValueError(f"{where}: {model.name} has one output, got {len(items)} losses")
            loss = items[0]
        return _losses.get(loss)
    names = model.output_names
    if isinstance(loss, OutputLosses):
        if len(loss.losses) != n:
            raise ValueError(f"{where}: the OutputLosses has {len(loss.losses)} losses; {model.name} has {n} outputs")
        if loss_weights is not None:
            raise ValueError(f"{where}: pass loss_weights inside the OutputLosses, not both")
        return loss
    if many:
        items = _by_output(loss, names, "loss", where)
        missing = [nm for nm, item in zip(names, items, strict=True) if item is None]
        if missing:
            raise ValueError(f"{where}: no loss for outputs {missing}; every output of {model.name} needs one")
        parts, seen = [], set()
        for item in items:
            one = _losses.get(item)
            parts.append(_copy(one, where) if id(one) in seen else one)  # one instance per output
            seen.add(id(one))
    else:
        one = _losses.get(loss)
        parts = [one] + [_copy(one, where) for _ in names[1:]]
    weights = None
    if loss_weights is not None:
        if not isinstance(loss_weights, (list, tuple, dict)):
            raise ValueError(f"{where}: loss_weights must be a list or a dict by output name, got {loss_weights!r}")
        weights = [1.0 if w is None else w for w in _by_output(loss_weights, names, "loss_weights", where)]
    return OutputLosses(parts, weights, names)


def resolve_metrics(model, metrics, where) -> list:
    """The model's metrics: a flat list of callables ``m(linked_pred, y)`` with a ``.name``."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    n = getattr(model, "num_outputs", 1)
    if isinstance(metrics, dict):
        if n == 1:
            raise ValueError(f"{where}: metrics by output name are for a model with several outputs; pass a list")
        per_output = [m or [] for m in _by_output(metrics, model.output_names, "metrics", where)]
        per_output = [[m] if isinstance(m, str) or callable(m) else m for m in per_output]
    elif isinstance(metrics, (list, tuple)):
        per_output = [list(metrics)] * n
    else:
        raise ValueError(f"{where}: metrics must be a list of names or callables, got {metrics!r}")
    for ms in per_output:
        if not isinstance(ms, (list, tuple)):
            raise ValueError(f"{where}: metrics must be lists of names or callables, got {ms!r}")
    if n == 1:
        return [_metrics.get(m) for m in per_output[0]]
    names = model.output_names
    return [OutputMetric(_metrics.get(m), i, names[i]) for i, ms in enumerate(per_output) for m in ms]


def metrics_config(model):
    """What a saved file records: metric names, or ``{output: [names]}`` for several outputs."""
    if not any(isinstance(m, OutputMetric) for m in model.metrics):
        return [m.name for m in model.metrics]
    out: dict = {}
    for m in model.metrics:
        out.setdefault(m.output, []).append(m.metric.name)
    return out
