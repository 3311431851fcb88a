"""``Trainer``: the one training engine of every model (Keras's Trainer mixin).

``compile`` attaches optimizer, loss and metrics and rewrites the plan once for fusion;
``train_step`` is the public, overridable step that ``fit`` and ``train_on_batch`` call; the loops
of ``fit``/``evaluate``/``predict`` live in ``fastnet._training``.
"""

from __future__ import annotations

import math

import numpy as np

from . import _training, distributed
from ._training_inputs import _length
from ._training_logs import output_logs

__all__ = ["Trainer"]


class Trainer:
    """Mixed into :class:`fastnet.Model` (and so ``Sequential``); expects the model's graph API."""

    # ---- compile and fusion -------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, fuse: bool = True, loss_weights=None):
        """Attach an optimizer, a loss and metrics; each may be a name or an object.

        A model with several outputs takes a loss per output (a list in ``output_names`` order, or
        a dict by output name) or one loss for all of them, ``loss_weights`` (a list or dict; the
        trained loss is the weighted sum) and ``metrics`` as a list for every output or a dict by
        output name; ``fit`` then takes ``y`` as a list of arrays, one per output, and logs
        ``<output>_loss`` and ``<output>_<metric>`` beside the total ``loss``.

        ``fuse=True`` also rewrites the model's plan once: each linear Dense whose only consumer is
        an elementwise activation layer, and each Conv2D, BatchNorm or Add followed only by a ReLU,
        run as one fused kernel call, and a Conv2D (with its ReLU or not) takes the 2x2 stride-2
        MaxPool2D that only it feeds (see ``fuse()``). Results are the same.
        """
        from . import _compile_outputs
        from . import optim as _optim

        where = f"{type(self).__name__}.compile"
        loss_fn = _compile_outputs.resolve_loss(self, loss, loss_weights, where)
        metric_fns = _compile_outputs.resolve_metrics(self, metrics, where)
        self.optimizer = _optim.get(optimizer)
        self.loss, self.metrics = loss_fn, metric_fns
        if fuse:
            self.fuse()
        return self

    @property
    def compiled(self) -> bool:
        return self.loss is not None and self.optimizer is not None

    def fuse(self):
        """Run this model (and the models nested in it) from the fused plan: the rewrite of the
        node list described in ``compile``. The layers themselves are not changed, so a layer
        shared with another model behaves the same there. Returns self."""
        self._fuse = True
        for layer in self._nested_models():
            layer.fuse()
        return self

    def unfuse(self):
        """Run every node on its own again (the unfused plan). Returns self."""
        self._fuse = False
        for layer in self._nested_models():
            layer.unfuse()
        return self

    def fusions(self) -> list[tuple[str, ...]]:
        """The layers this model runs fused (empty when not fused), by name: ``(layer, activation layer)``
        for a pair, ``(conv, relu, pool)`` for a Conv2D that also runs the max-pool after it."""
        if not self._fuse:
            return []
        return [(s.label, *s.fused_from) for s in self._current_plan(True).steps if s.fused_from]

    def _nested_models(self):
        from .model import Model

        return [layer for layer in self.layers if isinstance(layer, Model)]

    # ---- one step -------------------------------------------------------------------------------
    def train_step(self, x, y) -> dict:
        """One optimisation step on a batch; returns the batch logs (``{"loss": ..., metric: ...}``).

        Zeroes the gradients once, runs forward in training mode, the loss, backward (no gradient
        for the data) and the optimizer. If the loss is NaN or inf it returns it without updating
        the weights (``fit`` and ``train_on_batch`` decide what happens next). Override it for a
        new training scheme; ``fit`` then runs it for every batch, callbacks included.

        Under MPI (fastnet.distributed) ``(x, y)`` is this rank's slice of the global batch: the
        loss is agreed over ranks (the global batch's) and the gradients summed before the update;
        an override keeps that by calling ``distributed.agree_loss`` and ``reduce_gradients`` too.
        """
        self.zero_grad()  # once per step: a layer used twice adds both uses into its grads
        n = _length(y)  # y is a list (one array per output) for a model with several outputs
        pred = ctx = None
        loss = 0.0
        # distributed, a rank's slice of a short last batch can be empty: it still takes part
        if n or not distributed.active():
            pred, ctx = self._forward(x, True)
            try:
                loss = float(self.loss.forward(pred, y))
            except ValueError:
                if all(np.isfinite(p).all() for p in (pred if isinstance(pred, list) else [pred])):
                    raise
                loss = math.nan  # the model's output diverged (losses reject non-finite predictions)
        loss = distributed.agree_loss(self, loss, n)  # the global batch's loss; a no-op without MPI
        logs = {"loss": loss}
        if not math.isfinite(loss):
            return logs
        if ctx is not None:
            self._backward(ctx, self.loss.backward(), False)
        slots = self.param_slots()
        distributed.reduce_gradients(self, [g for _, _, g, _ in slots])  # summed over ranks
        self.optimizer.step(slots)
        if n:
            logs.update(output_logs(self, pred, y))
        return logs

    def train_on_batch(self, x, y) -> float:
        """One ``train_step`` on ``(x, y)``; returns the batch loss.

        Raises ``NonFiniteLossError`` (a FloatingPointError) without updating the weights if the
        loss is NaN or inf.
        """
        return _training.train_on_batch(self, x, y)

    # ---- loops ------------------------------------------------------------------------------------
    def fit(
        self,
        x=None,
        y=None,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_data=None,
        validation_split: float = 0.0,
        verbose: int = 1,
        callbacks=None,
        initial_epoch: int = 0,
    ):
        """Train for ``epochs`` epochs (Keras semantics); returns the ``History``.

        ``x`` may be arrays (with ``y``; a list of arrays for a model with several inputs) or a
        ``fastnet.data.DataLoader`` (then ``y``, ``batch_size`` and ``shuffle`` come from the
        loader). Each epoch uses a fresh permutation derived from ``(model.shuffle_seed, epoch)``, so
        ``fit(..., initial_epoch=k)`` on a reloaded checkpoint repeats an uninterrupted run exactly
        (``model.epochs_trained``, saved with the model, is the ``k`` to pass). ``verbose``: 0
        silent, 1 progress bar, 2 one line per epoch.
        """
        return _training.fit(
            self,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            validation_data=validation_data,
            validation_split=validation_split,
            verbose=verbose,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
        )

    def evaluate(self, x=None, y=None, batch_size: int = 256, return_dict: bool = False, verbose: int = 0):
        """Loss (and metrics) over ``(x, y)`` in eval mode: a float, ``[loss, m1, ...]`` when metrics
        were compiled (Keras), or a dict with ``return_dict=True``."""
        return _training.evaluate(self, x, y, batch_size=batch_size, return_dict=return_dict, verbose=verbose)

    def predict(self, x, batch_size: int = 256, verbose: int = 0):
        """Outputs in eval mode, through the loss's link (so from-logits losses give probabilities);
        a list of arrays for a model with several outputs."""
        return _training.predict(self, x, batch_size=batch_size, verbose=verbose)

    # ---- summary and persistence ----------------------------------------------------------------
    def summary(self, input_shape=None, print_fn=print) -> str:
        """Print and return a Keras-style table: "Layer (type)", "Output shape", "Params" and
        "Connected to", then the parameter totals. ``input_shape`` (one sample, no batch axis)
        overrides the model's own; unknown shapes show as ``?``."""
        from .summary import summary_table

        text = summary_table(self, input_shape)
        if print_fn is not None:
            print_fn(text)
        return text

    def save(self, path) -> None:
        """Write architecture, compile settings, weights and optimizer state to one ``.npz`` (atomic)."""
        from .serialization import save_model

        save_model(self, path)

    # ---- interop (fastnet.interop; each needs its optional extra) -----------------------------------
    def export_onnx(self, path, opset: int = 17, input_shape=None, dtype=None):
        """Write this model as ONNX whose output equals ``predict`` (see ``fastnet.export_onnx``)."""
        from .interop import export_onnx

        return export_onnx(self, path, opset=opset, input_shape=input_shape, dtype=dtype)

    def save_weights(self, path) -> None:
        """Write the weights as safetensors under PyTorch names and layouts (see ``fastnet.save_weights``)."""
        from .interop import save_weights

        save_weights(self, path)

    def load_weights(self, path, strict: bool = True):
        """Load safetensors weights (PyTorch names and layouts) in place and return self (``fastnet.load_weights``)."""
        from .interop import load_weights

        return load_weights(self, path, strict=strict)
