"""Seeing inside a network while it trains: per-layer gradient and activation statistics.

``LayerStats`` is a callback for ``fit``. Every ``every`` batches it records, for each layer with
parameters, the L2 norm of that step's gradients and of the parameters, and (given a fixed
``probe`` batch) the mean and standard deviation of every layer's output plus, for ReLU outputs,
the fraction of units that are dead (zero for every probe sample) and the fraction of zeros. The
record is a JSON-able dict, also kept on the run's History as ``history.layer_stats``;
``fastnet.plot_gradient_norms`` draws it.

Why: a deep sigmoid net trained with the quadratic loss, or a deep plain (shortcut-free) conv net,
learns slowly because its early layers' gradients vanish; these numbers show where and when.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .callbacks import Callback

__all__ = ["LayerStats", "named_layers", "layer_activations"]


def named_layers(model) -> list[tuple[str, object]]:
    """``(dotted name, leaf layer)`` pairs: the model's own ``named_layers()`` when it has one,
    else the positions of a plain ``Sequential`` ("0", "1", ...) like its state_dict keys."""
    if hasattr(model, "named_layers"):
        named = model.named_layers()
        return list(named.items() if isinstance(named, dict) else named)
    return [(str(i), layer) for i, layer in enumerate(model.layers)]


def layer_activations(model, x) -> dict[str, np.ndarray]:
    """Every layer's output on ``x`` in eval mode (no dropout, BatchNorm running statistics), so
    probing never changes training: ``model.activations`` when the model has it; for a plain
    ``Sequential``, its layers one by one (a layer fused with the activation after it gives the
    activated output, recorded under both names)."""
    if hasattr(model, "activations"):
        return dict(model.activations(x, training=False))
    out, skip = {}, False
    for name, layer in named_layers(model):
        if skip:  # the activation fused into the layer before it
            out[name], skip = x, False
            continue
        x = layer.forward(x, training=False)
        out[name] = x
        skip = getattr(layer, "fused_activation", None) is not None
    return out


def _is_relu(layer) -> bool:
    return type(layer).__name__ == "ReLU"


def _dead_and_zero(a: np.ndarray) -> tuple[float, float]:
    """(fraction of units never active on the batch, fraction of zero activations). A unit is a
    feature of a (N, F) output or a channel of a (N, C, H, W) one (a conv filter dies as a whole)."""
    active = a > 0
    if a.ndim > 2:
        active = active.reshape(a.shape[0], a.shape[1], -1).any(axis=2)
    dead = float(1.0 - active.any(axis=0).mean())
    return dead, float(1.0 - np.count_nonzero(a) / a.size)


def _norm(arrays) -> float:
    return math.sqrt(sum(float(np.vdot(a, a)) for a in arrays))


class LayerStats(Callback):
    """Record per-layer gradient norms every ``every`` batches, and activation statistics on the
    fixed ``probe`` batch (optional) at the same steps.

    After ``fit``, ``stats.record`` (and ``history.layer_stats``) holds::

        {"every": N, "layers": [names of layers with parameters], "weighted": [those of them with a
         weight matrix or filter bank (Dense, Conv2D)], "steps": [...], "epochs": [...],
         "grad_norm": {layer: [...]}, "param_norm": {layer: [...]},
         "act_mean": {layer: [...]}, "act_std": {layer: [...]},
         "dead_fraction": {relu: [...]}, "zero_fraction": {relu: [...]}}

    one value per recorded step (``steps`` counts batches from 0 over the whole ``fit``). Gradients
    are read after the step, when each layer's grads hold that step's gradients; the probe runs in
    eval mode, so it changes neither the weights, the BatchNorm statistics nor any random stream.
    ``save(path)`` writes the record as JSON.
    """

    def __init__(self, every: int = 10, probe=None, activations: bool = True):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"LayerStats: every must be a positive int, got {every!r}")
        if probe is not None:
            probe = np.asarray(probe)
            if probe.dtype.kind not in "biuf" or probe.ndim < 2 or len(probe) == 0:
                raise ValueError(
                    f"LayerStats: probe must be a numeric batch (N, ...) with N >= 1, got "
                    f"{probe.dtype} array of shape {probe.shape}"
                )
        self.every = int(every)
        self.probe = probe
        self.activations = bool(activations) and probe is not None
        self.record: dict = {}
        self._step = 0

    def on_train_begin(self, logs=None):
        self._step = 0
        self._epoch = 0
        layers = [(n, layer) for n, layer in named_layers(self.model) if layer.params]
        self._layers = layers
        self.record = {
            "every": self.every,
            "layers": [n for n, _ in layers],
            "weighted": [n for n, layer in layers if np.ndim(layer.params.get("weight")) >= 2],  # Dense, Conv2D
            "steps": [],
            "epochs": [],
            "grad_norm": {n: [] for n, _ in layers},
            "param_norm": {n: [] for n, _ in layers},
        }
        if self.activations:
            self._probe = np.ascontiguousarray(self.probe, dtype=getattr(self.model, "dtype", np.float32))
            for key in ("act_mean", "act_std", "dead_fraction", "zero_fraction"):
                self.record[key] = {}
            self._kinds = {n: layer for n, layer in named_layers(self.model)}
        history = getattr(self.model, "history", None)
        if history is not None:
            history.layer_stats = self.record  # the same dict, filled as training goes

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = int(epoch)

    def on_batch_end(self, batch, logs=None):
        step, self._step = self._step, self._step + 1
        if step % self.every:
            return
        rec = self.record
        rec["steps"].append(step)
        rec["epochs"].append(self._epoch)
        for name, layer in self._layers:
            rec["grad_norm"][name].append(_norm(layer.grads.values()))
            rec["param_norm"][name].append(_norm(layer.params.values()))
        if self.activations:
            self._record_activations()

    def _record_activations(self):
        rec = self.record
        for name, a in layer_activations(self.model, self._probe).items():
            a = np.asarray(a, dtype=np.float64)
            rec["act_mean"].setdefault(name, []).append(float(a.mean()))
            rec["act_std"].setdefault(name, []).append(float(a.std()))
            if _is_relu(self._kinds.get(name)):
                dead, zeros = _dead_and_zero(a)
                rec["dead_fraction"].setdefault(name, []).append(dead)
                rec["zero_fraction"].setdefault(name, []).append(zeros)

    def save(self, path) -> Path:
        """Write the record as JSON (atomically); returns the path."""
        path = Path(path)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.record))
        os.replace(tmp, path)
        return path
