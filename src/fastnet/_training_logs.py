"""The logs of the training loops: which names a step or an evaluation logs, and their running means.

A model logs ``loss``; with several outputs also each output's ``<output>_loss``; then its metrics
(``accuracy``, or ``<output>_accuracy`` for an output's metric). Means are sample-weighted, and
fractions such as accuracy are summed as exact counts.
"""

from __future__ import annotations

from . import distributed

__all__ = ["log_keys", "output_logs", "Meter"]


def log_keys(model) -> list[str]:
    """The names a step's and an evaluation's logs have, in order: ``loss``, each output's
    ``<output>_loss`` (several outputs), then the metrics."""
    per_output = [f"{k}_loss" for k in getattr(model.loss, "names", [])]
    return ["loss"] + per_output + [m.name for m in model.metrics]


def output_logs(model, pred, y) -> dict:
    """A batch's logs beside the total loss (after ``model.loss.forward(pred, y)``): each output's
    loss for a model with several outputs, and the metrics on the loss's ``link`` of ``pred``."""
    logs = {f"{k}_loss": float(v) for k, v in getattr(model.loss, "values", {}).items()}
    if model.metrics:
        linked = model.loss.link(pred)
        logs.update({m.name: float(m(linked, y)) for m in model.metrics})
    return logs


class Meter:
    """Sample-weighted running means of loss and metrics."""

    def __init__(self, model):
        self.keys = log_keys(model)
        self.sums: dict[str, float] = {}
        self.n = 0
        # fractions of the samples (accuracy): times n they are exact counts, summed as such
        self._counts = {m.name for m in model.metrics if getattr(m, "counts", False)}

    def add_logs(self, logs: dict, n: int) -> dict:
        """Add one batch's logs (numbers) weighted by its ``n`` samples; returns them as floats."""
        self.n += n
        out = {}
        for k, v in logs.items():
            out[k] = float(v)
            self.sums[k] = self.sums.get(k, 0.0) + (round(out[k] * n) if k in self._counts else out[k] * n)
        return out

    def means(self):
        return {k: s / self.n for k, s in self.sums.items()} if self.n else {}

    def global_means(self):
        """``means()`` over every rank's samples (fastnet.distributed): totals and counts summed, then divided."""
        sums, n = distributed.reduce_totals(self.sums, self.n, self.keys)
        return {k: s / n for k, s in sums.items()} if n else {}
