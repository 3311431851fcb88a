"""``Sequential``: a stack of layers with PyTorch-style state and a Keras-style training API.

Structure and state live here (forward/backward, parameters, state_dict, train/eval, summary,
compile, save); the loops of ``fit``/``evaluate``/``predict`` live in ``fastnet._training``.
"""

from __future__ import annotations

import numpy as np

from . import _training
from .layers.base import Layer

__all__ = ["Sequential"]


class Sequential:
    """A linear stack of layers.

    >>> model = Sequential([Dense(784, 512), ReLU(), Dense(512, 10)])
    >>> model.compile(optimizer="rmsprop", loss="softmax_cross_entropy", metrics=["accuracy"])
    >>> history = model.fit(x, y, epochs=5, batch_size=128)

    Attributes: ``layers`` (list), ``loss``, ``optimizer``, ``metrics`` (set by ``compile``),
    ``history`` (the last ``fit``'s History), ``stop_training`` (a callback sets it to stop ``fit``).
    """

    def __init__(self, layers=None, name: str | None = None):
        self.layers: list[Layer] = []
        self.name = name or "sequential"
        self.loss = None
        self.optimizer = None
        self.metrics: list = []
        self.history = None
        self.stop_training = False
        self.shuffle_seed: int | None = None  # drawn from fastnet.random at the first fit; saved with the model
        self.epochs_trained = 0  # epochs completed by fit; saved, so a reloaded checkpoint knows where to resume
        self._input_shape: tuple | None = None
        for layer in layers or []:
            self.add(layer)

    # ---- building ---------------------------------------------------------------------------
    def add(self, layer: Layer):
        """Append a layer."""
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Sequential.add: expected a fastnet Layer, got {type(layer).__name__} (position {len(self.layers)})"
            )
        self.layers.append(layer)
        return self

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(self.layers[index])  # shares the layer objects, like PyTorch
        return self.layers[index]

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)" if lines else "Sequential()"

    @property
    def input_shape(self) -> tuple | None:
        """One sample's shape (no batch axis) as last seen by ``forward``/``fit`` (saved with the
        model), else the first layer's ``(in_features,)``; ``None`` when unknown."""
        return self._guess_input_shape()

    @property
    def dtype(self) -> np.dtype:
        """The float dtype of the first layer with parameters (float32 if none has any)."""
        for layer in self.layers:
            for p in layer.params.values():
                return p.dtype
        return np.dtype(np.float32)

    # ---- computation --------------------------------------------------------------------------
    def forward(self, x, training: bool | None = None):
        """Run every layer; ``training=None`` uses each layer's own mode (see ``train()``/``eval()``)."""
        if not self.layers:
            raise ValueError("Sequential.forward: the model has no layers")
        if isinstance(x, np.ndarray) and x.ndim >= 1:
            self._input_shape = tuple(x.shape[1:])
        for layer in self._plan():
            x = layer.forward(x, training)
        return x

    __call__ = forward

    def backward(self, dout, input_grad: bool = True):
        """Back-propagate ``dout`` (gradient of the loss w.r.t. the output); fills every layer's grads
        and returns the gradient w.r.t. the model's input.

        ``input_grad=False`` (what ``fit`` and ``train_on_batch`` use) returns None and skips the work
        only that gradient needs: the layers before the first one with parameters, and that layer's
        own input gradient when it can skip it (``Dense`` and ``Conv2D``: one GEMM of three).
        """
        plan = self._plan()
        first = 0
        if not input_grad:
            first = next((i for i, layer in enumerate(plan) if layer.params), len(plan))
        for i in range(len(plan) - 1, first - 1, -1):
            layer = plan[i]
            if i == first and not input_grad and getattr(layer, "can_skip_input_grad", False):
                layer.backward(dout, input_grad=False)
            else:
                dout = layer.backward(dout)
        return dout if input_grad else None

    # ---- Dense / Conv2D + activation fusion ------------------------------------------------------
    def _plan(self) -> list:
        """The layers to run: an activation fused into the Dense or Conv2D before it is skipped.

        Derived from the layers' own state each call, so a Dense fused by another model that
        shares it (e.g. a slice) is never applied twice or without its activation layer.
        """
        plan, skip = [], False
        for i, layer in enumerate(self.layers):
            if skip:
                skip = False
                continue
            fused = getattr(layer, "fused_activation", None)
            if fused is not None:
                nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
                fusable = getattr(nxt, "fusable", None)
                if fusable is not None and fusable[0] == fused:
                    skip = True
                else:
                    layer.unfuse()  # its activation layer is not next to it in this model
            plan.append(layer)
        return plan

    def fuse(self):
        """Fuse each linear Dense with a following elementwise activation layer, and each Conv2D
        with a following ReLU, into one kernel call (``compile`` does this). Results are the
        same; the activation layer is skipped."""
        for layer, nxt in zip(self.layers[:-1], self.layers[1:], strict=True):
            fusable = getattr(nxt, "fusable", None)
            if fusable is None or not hasattr(layer, "fuse") or getattr(layer, "fused_activation", "x") is not None:
                continue
            accepts = getattr(layer, "fusable_activations", None)  # a layer that fuses only some
            if (fusable[0] in accepts) if accepts is not None else getattr(layer, "activation", "x") is None:
                layer.fuse(*fusable)
        return self

    def unfuse(self):
        """Undo ``fuse()``: every layer runs on its own again."""
        for layer in self.layers:
            if getattr(layer, "fused_activation", None) is not None:
                layer.unfuse()
        return self

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    # ---- mode ---------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return all(layer.training for layer in self.layers)

    def train(self, mode: bool = True):
        """Put every layer in training (``True``) or evaluation mode."""
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # ---- parameters and state -----------------------------------------------------------------
    def named_parameters(self) -> list[tuple[str, np.ndarray]]:
        """``[("0.weight", W0), ("0.bias", b0), ...]`` (the arrays themselves, not copies)."""
        return [(f"{i}.{k}", p) for i, layer in enumerate(self.layers) for k, p in layer.params.items()]

    def parameters(self) -> list[np.ndarray]:
        """Every trainable array, in layer order."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        return [(f"{i}.{k}", b) for i, layer in enumerate(self.layers) for k, b in layer.buffers.items()]

    def num_params(self, trainable: bool = True) -> int:
        """Count of trainable parameters (or of buffers with ``trainable=False``)."""
        if trainable:
            return int(sum(p.size for p in self.parameters()))
        return int(sum(b.size for _, b in self.named_buffers()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed ``"<layer index>.<name>"``."""
        out = {}
        for i, layer in enumerate(self.layers):
            for k, v in layer.params.items():
                out[f"{i}.{k}"] = v.copy()
            for k, v in layer.buffers.items():
                out[f"{i}.{k}"] = v.copy()
        return out

    def load_state_dict(self, state: dict, strict: bool = True):
        """Copy arrays from ``state`` into the model in place (optimizer state stays attached).

        ``strict=True`` requires exactly this model's keys. A shape mismatch is always an error.
        All problems are reported together in one ValueError.
        """
        if not isinstance(state, dict):
            raise ValueError(f"Sequential.load_state_dict: expected a dict, got {type(state).__name__}")
        targets = dict(self.named_parameters())
        targets.update(self.named_buffers())
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        mismatched = [
            f"{k}: model {targets[k].shape}, state {np.shape(state[k])}"
            for k in targets
            if k in state and np.shape(state[k]) != targets[k].shape
        ]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if mismatched:
            problems.append(f"shape mismatches [{'; '.join(mismatched)}]")
        if problems:
            raise ValueError("Sequential.load_state_dict: " + ", ".join(problems))
        for k, arr in targets.items():
            if k in state:
                value = np.asarray(state[k])
                if not np.issubdtype(value.dtype, np.number) and value.dtype != np.bool_:
                    raise ValueError(f"Sequential.load_state_dict: {k} must be numeric, got dtype {value.dtype}")
                arr[...] = value
        return self

    # ---- summary ------------------------------------------------------------------------------
    def summary(self, input_shape: tuple | None = None, print_fn=print) -> str:
        """Print and return a table of layers, output shapes and parameter counts.

        ``input_shape`` is one sample's shape (no batch axis); by default the shape last seen by
        ``forward``, or the first layer's ``in_features``. Unknown shapes show as ``?``.
        """
        shape = tuple(input_shape) if input_shape is not None else self._guess_input_shape()
        rows = []
        for i, layer in enumerate(self.layers):
            if shape is not None:
                try:
                    shape = tuple(layer.output_shape(shape))
                except Exception:  # a layer that cannot infer from a partial shape
                    shape = None
            shown = (
                "(None, " + ", ".join("?" if d is None else str(d) for d in shape) + ")" if shape is not None else "?"
            )
            cls = type(layer).__name__
            label = f"{i}: {cls}" if layer.name == cls else f"{i}: {layer.name} ({cls})"
            rows.append((label, shown, layer.num_params()))
        trainable = self.num_params()
        non_trainable = self.num_params(trainable=False)
        w0 = max([len("Layer")] + [len(r[0]) for r in rows]) + 2
        w1 = max([len("Output shape")] + [len(r[1]) for r in rows]) + 2
        w2 = max([len("Params")] + [len(f"{r[2]:,}") for r in rows])
        rule = "=" * (w0 + w1 + w2)
        lines = [f'Model: "{self.name}"', rule, f"{'Layer':<{w0}}{'Output shape':<{w1}}{'Params':>{w2}}", rule]
        lines += [f"{a:<{w0}}{b:<{w1}}{c:>{w2},}" for a, b, c in rows]
        lines += [
            rule,
            f"Total params: {trainable + non_trainable:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {non_trainable:,}",
            rule,
        ]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def _guess_input_shape(self):
        if self._input_shape is not None:
            return self._input_shape
        if self.layers and hasattr(self.layers[0], "in_features"):
            return (int(self.layers[0].in_features),)
        return None

    # ---- training API -------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, fuse: bool = True):
        """Attach an optimizer, a loss and metrics; each may be a name or an object.

        ``fuse=True`` also fuses each Dense with a following activation layer (see ``fuse()``).
        """
        from . import losses as _losses
        from . import metrics as _metrics
        from . import optim as _optim

        if loss is None:
            raise ValueError("Sequential.compile: loss is required, e.g. loss='softmax_cross_entropy'")
        if metrics is not None and (isinstance(metrics, str) or callable(metrics)):
            metrics = [metrics]
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ValueError(f"Sequential.compile: metrics must be a list of names or callables, got {metrics!r}")
        self.optimizer = _optim.get(optimizer)
        self.loss = _losses.get(loss)
        self.metrics = [_metrics.get(m) for m in (metrics or [])]
        if fuse:
            self.fuse()
        return self

    @property
    def compiled(self) -> bool:
        return self.loss is not None and self.optimizer is not None

    def train_on_batch(self, x, y) -> float:
        """One forward/backward/update on ``(x, y)``; returns the batch loss.

        Raises ``NonFiniteLossError`` (a FloatingPointError) without updating the weights if the
        loss is NaN or inf.
        """
        return _training.train_on_batch(self, x, y)

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

        ``x`` may be arrays (with ``y``) or a ``fastnet.data.DataLoader`` (then ``y``, ``batch_size``
        and ``shuffle`` come from the loader). Each epoch uses a fresh permutation derived from
        ``(model.shuffle_seed, epoch)``, so ``fit(..., initial_epoch=k)`` on a reloaded checkpoint
        repeats an uninterrupted run exactly (``model.epochs_trained``, saved with the model, is the
        ``k`` to pass). ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch.
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

    def predict(self, x, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        """Outputs in eval mode, through the loss's link (so from-logits losses give probabilities)."""
        return _training.predict(self, x, batch_size=batch_size, verbose=verbose)

    # ---- config and persistence ---------------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "layers": [
                {
                    "class": type(layer).__name__,
                    "config": layer.get_config(),
                    "name": layer.name,
                    "lr_mult": float(layer.lr_mult),
                }
                for layer in self.layers
            ],
        }

    def save(self, path) -> None:
        """Write architecture, compile settings, weights and optimizer state to one ``.npz`` (atomic)."""
        from .serialization import save_model

        save_model(self, path)
