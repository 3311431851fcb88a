"""``OutputLosses``: one loss per output, how a model with several outputs trains.

``model.compile(loss=[...])`` (or a dict by output name, or one loss for every output) builds it;
the trained quantity is ``sum_i weight_i * loss_i(pred_i, y_i)`` (Keras's ``loss_weights``), so
each output's gradient is its own loss's, scaled by its weight. Targets are a list with one array
per output, in the model's output order. The last ``forward``'s per-output values are in
``values`` (by output name): the training loops log them as ``<name>_loss``.
"""

from __future__ import annotations

import math

from .losses import Loss, get

__all__ = ["OutputLosses"]


class OutputLosses(Loss):
    """A weighted sum of one loss per model output.

    ``losses``: a list of losses (instances, names or configs), one per output. ``weights``: one
    non-negative number per output (default 1). ``names``: the outputs' names, used in the logs
    (default ``output_0``, ``output_1``, ...). Every loss must have the same ``reduction`` (the
    sum is then reduced over the batch the same way, which distributed training relies on).
    """

    def __init__(self, losses, weights=None, names=None):
        who = "OutputLosses"
        if not isinstance(losses, (list, tuple)) or len(losses) < 2:
            raise ValueError(f"{who}: losses must be a list of at least two losses (one per output), got {losses!r}")
        self.losses = [get(x) for x in losses]
        if any(isinstance(x, OutputLosses) for x in self.losses):
            raise ValueError(f"{who}: an output's loss cannot itself be an OutputLosses")
        n = len(self.losses)
        self.weights = _weights(weights, n, who)
        self.names = _names(names, n, who)
        reductions = sorted({x.reduction for x in self.losses})
        if len(reductions) != 1:
            raise ValueError(f"{who}: every output's loss must have the same reduction, got {reductions}")
        super().__init__(reductions[0])
        self.values: dict[str, float] = {}
        self._ran = False

    def forward(self, pred, target) -> float:
        """The weighted sum of every output's loss; ``pred`` and ``target`` are lists, one per output."""
        n = len(self.losses)
        for what, v in (("predictions", pred), ("targets", target)):
            if not isinstance(v, (list, tuple)) or len(v) != n:
                got = f"a list of {len(v)}" if isinstance(v, (list, tuple)) else type(v).__name__
                raise ValueError(f"OutputLosses: expected {what} as a list of {n} arrays (one per output), got {got}")
        total = 0.0
        for name, loss, w, p, t in zip(self.names, self.losses, self.weights, pred, target, strict=True):
            try:
                value = loss.forward(p, t)
            except ValueError as e:
                raise ValueError(f"output {name!r}: {e}") from None
            self.values[name] = value
            total += w * value
        self._ran = True
        return total

    def backward(self) -> list:
        """Each output's gradient (its loss's, times its weight), as a list in output order."""
        if not self._ran:
            raise RuntimeError("OutputLosses.backward called before forward")
        out = []
        for loss, w in zip(self.losses, self.weights, strict=True):
            g = loss.backward()  # the loss's own array, kept for repeated calls: scale a copy
            out.append(g if w == 1.0 else g * g.dtype.type(w))
        return out

    def link(self, pred) -> list:
        return [loss.link(p) for loss, p in zip(self.losses, pred, strict=True)]

    def __repr__(self):
        return f"OutputLosses({self.losses!r}, weights={self.weights!r}, names={self.names!r})"

    def _config(self) -> dict:
        return {"losses": [x.get_config() for x in self.losses], "weights": list(self.weights), "names": self.names}


def _weights(weights, n, who) -> list[float]:
    if weights is None:
        return [1.0] * n
    if not isinstance(weights, (list, tuple)) or len(weights) != n:
        raise ValueError(f"{who}: weights must be a list of {n} numbers (one per output), got {weights!r}")
    out = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"{who}: weights must be finite numbers >= 0, got {weights!r}")
        out.append(float(w))
    return out


def _names(names, n, who) -> list[str]:
    if names is None:
        return [f"output_{i}" for i in range(n)]
    if not isinstance(names, (list, tuple)) or len(names) != n or not all(isinstance(s, str) and s for s in names):
        raise ValueError(f"{who}: names must be a list of {n} non-empty strings, got {names!r}")
    if len(set(names)) != n:
        raise ValueError(f"{who}: names must be distinct, got {names!r}")
    return list(names)
