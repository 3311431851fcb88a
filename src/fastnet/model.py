"""``Model``: a graph of layers that is itself a layer, with PyTorch-style state.

>>> x = fn.Input((1, 28, 28))
>>> h = L.ReLU()(L.Conv2D(1, 8, 3, padding=1)(x))
>>> model = fn.Model(inputs=x, outputs=L.Dense(8, 10)(L.GlobalAvgPool2D()(h)))

The graph runs as a :class:`~fastnet.graph_build.Plan`: steps in topological order, one context per
step, backward in reverse order summing gradients where a value fans out. ``Sequential``
(fastnet.sequential) is the chain special case of the same class. Training (compile, fit, ...)
comes from :class:`fastnet.trainer.Trainer`, the one engine every model uses.
"""

from __future__ import annotations

import numpy as np

from . import graph_build
from ._kernels import ops
from .graph import SymbolicTensor
from .layers.base import Layer
from .trainer import Trainer

__all__ = ["Model", "Sequential"]


def _as_list(x, what: str, where: str) -> list:
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    if not items or not all(isinstance(t, SymbolicTensor) for t in items):
        raise TypeError(
            f"{where}: {what} must be a symbolic tensor (fastnet.Input or a layer's output) or a list of them"
        )
    return items


def _fan_in(a, b):
    """The sum of two gradients of one value, in a new array: never in place, since a layer may
    still hold either (Add returns one array for all its inputs)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype:
        return ops.add_forward((a, b))
    return a + b


class Model(Trainer, Layer):
    """A graph of layers from ``inputs`` to ``outputs`` (one symbolic tensor or a list of each).

    A Model is a Layer: ``model(t)`` on a symbolic tensor nests it in a bigger graph, and it can sit
    in a ``Sequential``. Layers get Keras-style unique names in the model (``conv2d``, ``conv2d_1``,
    or the ``name=`` they were given), used by ``state_dict`` (dotted, ``block1.conv1.weight``),
    ``summary`` and ``activations``. A layer called twice shares its weights; its gradients are the
    sum over both calls. Several outputs: ``forward``/``predict`` return a list; ``compile`` takes a
    loss per output (a list, or a dict by ``output_names``) or one loss for all, and ``fit`` /
    ``evaluate`` / ``train_on_batch`` take ``y`` as a list of arrays, one per output.
    """

    default_name = "model"

    def __init__(self, inputs, outputs, name: str | None = None):
        where = f"Model({name!r})" if name else "Model"
        ins, outs = _as_list(inputs, "inputs", where), _as_list(outputs, "outputs", where)
        for i, t in enumerate(ins):
            if t.node is not None:
                raise ValueError(f"{where}: inputs[{i}] is the output of {t.node.layer.name}, not a fastnet.Input")
        if len({id(t) for t in ins}) != len(ins):
            raise ValueError(f"{where}: the same Input is listed twice in inputs")
        nodes, out_refs = graph_build.trace(ins, outs, where)
        input_names = self._input_names([t.name for t in ins])
        self._init_model(name)
        self._set_graph(
            input_names, nodes, out_refs, [t.shape for t in ins], [t.shape for t in outs], where,
            multi_in=isinstance(inputs, (list, tuple)), multi_out=isinstance(outputs, (list, tuple)),
        )  # fmt: skip

    # ---- construction (shared with Sequential and loading) ------------------------------------
    def _init_model(self, name):
        # not Layer.__init__: params/grads/buffers/training are views of the layers inside
        self.name = name or self.default_name
        self.auto_named = name is None
        self.lr_mult = 1.0
        self._ctx = None
        self._fuse = False
        self._fused_plan = None
        self.loss = self.optimizer = self.history = None
        self.metrics: list = []
        self.stop_training = False
        self.shuffle_seed: int | None = None  # drawn from fastnet.random at the first fit; saved with the model
        self.epochs_trained = 0  # epochs completed by fit; saved, so a reloaded checkpoint knows where to resume
        self._input_shape: tuple | None = None
        self.preprocessing = None  # the input-scaling record of fit (fastnet.preprocessing); saved

    @staticmethod
    def _input_names(given):
        names, taken = [], set(n for n in given if n)
        for n in given:
            if n is None:
                base, k, n = "input", 0, "input"
                while n in taken:
                    k += 1
                    n = f"{base}_{k}"
                taken.add(n)
            names.append(n)
        if len(set(names)) != len(names):
            raise ValueError(f"Model: two inputs share a name: {names}")
        return names

    def _set_graph(self, input_names, nodes, out_refs, input_shapes, output_shapes, where, multi_in, multi_out):
        layers = list({id(layer): layer for layer, _, _ in nodes}.values())
        names = graph_build.auto_names(layers, where)
        graph_build.validate(input_names, nodes, out_refs, where, layer_names=lambda layer: names[id(layer)])
        self._nodes, self._out_refs = nodes, out_refs
        self._layers = layers
        self._names = names
        self._plan = graph_build.build_plan(input_names, nodes, out_refs, names)
        self._fused_plan = None
        self.input_names = list(input_names)
        self._input_shapes = [None if s is None else tuple(s) for s in input_shapes]
        self._output_shapes = [None if s is None else tuple(s) for s in output_shapes]
        self._multi_in = multi_in or len(input_names) > 1
        self._multi_out = multi_out or len(out_refs) > 1
        self.takes_list = self._multi_in
        if len(input_names) == 1 and self._input_shapes[0] is not None:
            self._input_shape = self._input_shapes[0]

    def _current_plan(self, fused: bool):
        """The plan to run (a hook: Sequential rebuilds its chain when its layer list changed)."""
        if not fused:
            return self._plan
        if self._fused_plan is None:
            self._fused_plan = graph_build.fuse_plan(self._plan)
        return self._fused_plan

    # ---- structure ------------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The distinct layers of this graph (a nested model is one entry), in first-call order."""
        self._current_plan(False)
        return list(self._layers)

    @property
    def num_inputs(self) -> int:
        return self._current_plan(False).n_inputs

    @property
    def num_outputs(self) -> int:
        return len(self._current_plan(False).outputs)

    @property
    def output_names(self) -> list[str]:
        """One name per output: its layer's name (``dense_1``; ``dense_1_2`` for a shared layer's third
        call), made unique. The names of a several-output model's losses and logs (``dense_1_loss``)."""
        plan = self._current_plan(False)
        names: list[str] = []
        for i in plan.outputs:
            base = plan.labels[i].replace(":", "_")
            name, k = base, 0
            while name in names:
                k += 1
                name = f"{base}_{k}"
            names.append(name)
        return names

    def get_layer(self, name: str) -> Layer:
        """The layer of this model called ``name`` (its own layers, not nested ones)."""
        self._current_plan(False)
        for layer in self._layers:
            if self._names[id(layer)] == name:
                return layer
        raise ValueError(
            f"{self.name}: no layer named {name!r}; layers: {[self._names[id(layer)] for layer in self._layers]}"
        )

    def named_layers(self) -> dict[str, Layer]:
        """Dotted name -> leaf layer, recursing into nested models (``{"block.conv2d": Conv2D}``).
        A layer reachable twice keeps its first name."""
        return dict(self._named_table())  # a copy: callers may edit what they get

    def _named_table(self) -> dict[str, Layer]:
        """``named_layers``' table itself, rebuilt only when this model's plan or a nested model's table
        changed: a training step asks for it several times (zero_grad, param_slots, dtype), 20 us a time
        on a small MLP."""
        plan = self._current_plan(False)  # a new plan whenever the layers changed (Sequential edits)
        inners = [layer._named_table() if isinstance(layer, Model) else None for layer in self._layers]
        cached = getattr(self, "_named_cache", None)
        if cached is None or cached[0] is not plan or any(a is not b for a, b in zip(cached[1], inners, strict=True)):
            out, seen = {}, set()
            for layer, inner in zip(self._layers, inners, strict=True):
                prefix = self._names[id(layer)]
                for sub, leaf in (inner or {"": layer}).items():
                    if id(leaf) not in seen:
                        seen.add(id(leaf))
                        out[f"{prefix}.{sub}" if sub else prefix] = leaf
            cached = self._named_cache = (plan, inners, out)  # holding the tables keeps their ids unique
        return cached[2]

    @property
    def input_shape(self):
        """One sample's input shape (no batch axis); a list for several inputs; None when unknown."""
        return self._input_shapes if self._multi_in else self._input_shapes[0]

    @property
    def dtype(self) -> np.dtype:
        """The float dtype of the first layer with parameters (float32 if none has any)."""
        for leaf in self._named_table().values():
            for p in leaf.params.values():
                return p.dtype
        return np.dtype(np.float32)

    def output_shape(self, input_shape):
        if self._multi_out:
            raise ValueError(
                f"{self.name}: a model with {len(self._output_shapes)} outputs cannot be nested as a layer"
            )
        given = list(input_shape) if self._multi_in else [input_shape]
        if len(given) != len(self._input_shapes):
            raise ValueError(f"{self.name}: expected {len(self._input_shapes)} inputs, got {len(given)}")
        for name, want, got in zip(self.input_names, self._input_shapes, given, strict=True):
            if not _shape_fits(want, got):
                raise ValueError(f"{self.name}: input {name!r} expects per-sample shape {want}, got {tuple(got)}")
        return self._output_shapes[0]

    # ---- computation ----------------------------------------------------------------------------
    def _mode(self, training):
        return training  # None: every layer uses its own mode

    def _inputs(self, x, plan) -> list:
        if self._multi_in:
            if not isinstance(x, (list, tuple)) or len(x) != plan.n_inputs:
                got = f"a list of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
                raise ValueError(f"{self.name}: expected a list of {plan.n_inputs} input arrays, got {got}")
            xs = list(x)
        else:
            xs = [x]
        for name, want, a in zip(self.input_names, self._input_shapes, xs, strict=True):
            if isinstance(a, np.ndarray) and want is not None and not _shape_fits(want, a.shape[1:]):
                raise ValueError(f"{self.name}: input {name!r} expects shape (N, {_dims(want)}), got {a.shape}")
        return xs

    def _forward(self, x, training, record=None):
        plan = self._current_plan(self._fuse and record is None)
        vals = self._inputs(x, plan) + [None] * (plan.n_values - plan.n_inputs)
        ctxs = []
        for step in plan.steps:
            layer = step.layer
            xin = [vals[i] for i in step.inputs] if step.as_list else vals[step.inputs[0]]
            mode = layer._mode(training)
            if record is not None and isinstance(layer, Model):
                y, ctx = layer._forward(xin, mode, record=(record[0], f"{record[1]}{step.label}."))
            else:  # an unfused step passes no keywords: a layer without fusion takes (x, training) only
                y, ctx = layer._forward(xin, mode, **step.fused)
            if record is not None and not isinstance(layer, Model):
                record[0][record[1] + step.label] = y
            vals[step.out] = y
            ctxs.append(ctx)
            for i in step.free:
                vals[i] = None  # nothing later reads it: let it go
        outs = [vals[i] for i in plan.outputs]
        return (outs if self._multi_out else outs[0]), (plan, ctxs)

    def _backward(self, ctx, dy, need_dx):
        plan, ctxs = ctx
        grads = [None] * plan.n_values
        dys = list(dy) if self._multi_out else [dy]
        if len(dys) != len(plan.outputs):
            raise ValueError(f"{self.name}.backward: expected {len(plan.outputs)} output gradients, got {len(dys)}")
        for i, g in zip(plan.outputs, dys, strict=True):
            grads[i] = g if grads[i] is None else _fan_in(grads[i], g)
        mask = plan.needs_grad(need_dx)
        for step, c in zip(reversed(plan.steps), reversed(ctxs), strict=True):
            g, grads[step.out] = grads[step.out], None
            if g is None:
                continue  # nothing upstream needs a gradient through this value
            wanted = any(mask[i] for i in step.inputs)
            if c is None:
                raise RuntimeError(f"{step.layer.name}.backward called before forward (in training mode)")
            dx = step.layer._backward(c, g, wanted)
            if not wanted:
                continue
            for i, d in zip(step.inputs, dx if step.as_list else [dx], strict=True):
                if mask[i]:
                    grads[i] = d if grads[i] is None else _fan_in(grads[i], d)  # fan-out: sum
        if not need_dx:
            return None
        dxs = grads[: plan.n_inputs]
        return dxs if self._multi_in else dxs[0]

    def activations(self, x, training: bool = False) -> dict[str, np.ndarray]:
        """Every node's output by dotted layer name (nested models recursed; a shared layer's
        second call is ``"name:1"``), from one unfused forward pass. For diagnostics."""
        out: dict[str, np.ndarray] = {}
        self._forward(x, bool(training), record=(out, ""))
        return out

    # ---- mode -------------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return all(layer.training for layer in self.named_layers().values())

    def train(self, mode: bool = True):
        """Put every layer in training (``True``) or evaluation mode."""
        for layer in self.named_layers().values():
            layer.train(mode)
        return self

    # ---- parameters and state -------------------------------------------------------------------
    def _dotted(self, attr):
        return {f"{n}.{k}": v for n, layer in self.named_layers().items() for k, v in getattr(layer, attr).items()}

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every trainable array by dotted name (the arrays themselves)."""
        return self._dotted("params")

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self._dotted("grads")

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return self._dotted("buffers")

    def zero_grad(self):
        for layer in self._named_table().values():
            layer.zero_grad()

    def named_parameters(self) -> list[tuple[str, np.ndarray]]:
        """``[("dense.weight", W), ...]`` (the arrays themselves, not copies)."""
        return list(self.params.items())

    def parameters(self) -> list[np.ndarray]:
        return list(self.params.values())

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        return list(self.buffers.items())

    def num_params(self, trainable: bool = True) -> int:
        """Count of trainable parameters (or of buffers with ``trainable=False``)."""
        return int(sum(v.size for v in (self.params if trainable else self.buffers).values()))

    def param_slots(self) -> list[tuple]:
        """``(name, param, grad, lr_mult)`` for every parameter: what ``optimizer.step`` takes."""
        return [
            (f"{n}.{k}", p, layer.grads[k], layer.lr_mult)
            for n, layer in self._named_table().items()
            for k, p in layer.params.items()
        ]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed by dotted name (``"block.conv2d.weight"``)."""
        out = {}
        for n, layer in self.named_layers().items():
            out.update({f"{n}.{k}": v.copy() for k, v in layer.params.items()})
            out.update({f"{n}.{k}": v.copy() for k, v in layer.buffers.items()})
        return out

    def load_state_dict(self, state: dict, strict: bool = True):
        """Copy arrays from ``state`` into the model in place (optimizer state stays attached).

        ``strict=True`` requires exactly this model's keys. A shape mismatch is always an error.
        All problems are reported together in one ValueError.
        """
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict):
            raise ValueError(f"{where}: expected a dict, got {type(state).__name__}")
        targets = {**self.params, **self.buffers}
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
            raise ValueError(f"{where}: " + ", ".join(problems))
        for k, arr in targets.items():
            if k in state:
                value = np.asarray(state[k])
                if not np.issubdtype(value.dtype, np.number) and value.dtype != np.bool_:
                    raise ValueError(f"{where}: {k} must be numeric, got dtype {value.dtype}")
                arr[...] = value
        return self

    # ---- config (see fastnet._graph_config) -------------------------------------------------------
    def get_config(self) -> dict:
        from . import _graph_config

        return _graph_config.graph_config(self)

    @classmethod
    def from_config(cls, config: dict):
        from . import _graph_config

        return _graph_config.build_graph_model(config)

    def __repr__(self):
        rows = [f"  ({self._names[id(layer)]}): {layer!r}" for layer in self.layers]
        return f"{type(self).__name__}(name={self.name!r},\n" + "\n".join(rows) + "\n)"


def _shape_fits(want, got) -> bool:
    got = tuple(got)
    return len(want) == len(got) and all(w is None or g is None or w == g for w, g in zip(want, got, strict=True))


def _dims(shape) -> str:
    return ", ".join("?" if d is None else str(d) for d in shape)


from .sequential import Sequential  # noqa: E402  (the chain special case; it subclasses Model)
