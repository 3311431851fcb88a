"""The Layer base class: parameters, gradients, mode, config and input checks.

A layer subclass does three things: create its parameters in ``__init__``, and implement

- ``_forward(x, training) -> (y, ctx)``: the output and a per-call context holding only what
  backward needs (Chainer's ``retain_inputs``), never stored on the layer;
- ``_backward(ctx, dy, need_dx) -> dx``: ADD the parameter gradients of that call into
  ``self.grads`` (micrograd's ``+=``, so a layer used twice in a step sums both uses) and return
  the input gradient (``need_dx=False``: the caller does not want it; a layer may skip it).

The textbook interface is built on these two: ``y = layer.forward(x)`` keeps the last context on
the layer, and ``dx = layer.backward(dout)`` zeroes the grads and back-propagates that context, so
it *fills* ``grads`` as it always did. A model calls ``_forward``/``_backward`` itself, one context
per call. The arithmetic lives in ``fastnet._kernels``; a layer only handles shapes and parameters.
"""

from __future__ import annotations

import numpy as np

from .._kernels.dtypes import FLOAT_DTYPES
from ..graph import call_symbolic, is_symbolic

# name -> class, for rebuilding a model from its JSON config (see ``Layer.from_config``).
LAYER_CLASSES: dict[str, type] = {}

# The context of a layer written the old way (its own forward/backward keeping state on self).
_LEGACY = object()


def check_dtype(dtype, where: str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{where}: dtype must be float32 or float64, got {dt}")
    return dt


def pair(value, name: str, where: str, minimum: int = 1) -> tuple[int, int]:
    """Normalise an int or (h, w) argument to a pair of ints, with a clear error."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{where}: {name} must be an int or a pair of ints (h, w), got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return out


def positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


class Layer:
    """Base class of every fastnet layer.

    Attributes
    ----------
    params : dict[str, ndarray]   trainable arrays, e.g. ``{"weight": W, "bias": b}``
    grads  : dict[str, ndarray]   gradients with the same names and shapes: ``_backward`` adds into
                                  them, ``backward`` and a model's ``train_step`` zero them first
    buffers: dict[str, ndarray]   saved, not trained (BatchNorm running statistics)
    training : bool               train or eval mode; ``forward(x, training=None)`` uses it
    lr_mult : float               per-layer learning-rate multiplier (the course lab's ``layer.lr``)
    """

    def __init__(self, name: str | None = None):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True
        self.lr_mult = 1.0
        self.name = name or type(self).__name__
        self.auto_named = name is None  # a model then gives it a Keras-style unique name ("dense_1")
        self._ctx = None  # the last textbook forward's context, for backward()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        LAYER_CLASSES[cls.__name__] = cls

    # ---- the two methods every layer implements -------------------------------------------
    def _forward(self, x, training: bool):
        """Return ``(y, ctx)``; ``ctx`` holds what ``_backward`` needs (None when it needs nothing
        or, in eval mode, when backward is not allowed)."""
        if type(self).forward is not Layer.forward:  # written the old way: forward keeps state on self
            return self.forward(x, training), _LEGACY
        raise NotImplementedError(f"{type(self).__name__} must implement _forward(x, training)")

    def _backward(self, ctx, dy, need_dx: bool):
        """Add this call's parameter gradients into ``self.grads`` and return the input gradient."""
        if ctx is _LEGACY:  # old-style backward assigns grads: add back what earlier calls summed
            before = {k: g.copy() for k, g in self.grads.items()}
            dx = self.backward(dy)
            for k, g in before.items():
                self.grads[k] += g
            return dx
        raise NotImplementedError(f"{type(self).__name__} must implement _backward(ctx, dy, need_dx)")

    # ---- the textbook interface -----------------------------------------------------------
    def forward(self, x, training: bool | None = None):
        """Compute the output; in training mode keep the context ``backward`` needs."""
        y, self._ctx = self._forward(x, self._mode(training))
        return y

    def backward(self, dout, input_grad: bool = True):
        """Fill ``grads`` (zeroed first) from the last ``forward`` and return the gradient w.r.t. its
        input; ``input_grad=False`` skips that gradient where the layer can and returns None."""
        if self._ctx is None:
            self._require_forward(None)
        self.zero_grad()
        dx = self._backward(self._ctx, dout, bool(input_grad))
        return dx if input_grad else None

    def __call__(self, x, training=None):
        """On arrays, ``forward``; on symbolic tensors (``fastnet.Input``), record a graph node."""
        if is_symbolic(x):
            return call_symbolic(self, x)
        return self.forward(x, training)

    # Merge layers (Add, Concatenate, ...) take a list of inputs; everything else takes one array.
    takes_list = False

    # Activations this layer's kernels can apply themselves (a model's compile fuses them; none by default).
    fusable_activations: tuple = ()

    def accepts_activation(self, activation: str) -> bool:
        """Whether a model may fuse the activation layer named ``activation`` into this one at compile."""
        return activation in self.fusable_activations

    def _fused_act(self, activation):
        """The name of the fused activation a model's node passes (``(name, alpha)`` or None), checked."""
        act = None if activation is None else activation[0]
        if act is not None and act not in self.fusable_activations:
            raise ValueError(f"{self.name}: can fuse only {self.fusable_activations}, got {act!r}")
        return act

    def output_shape(self, input_shape: tuple) -> tuple:
        """Shape of one output sample given one input sample's shape (no batch axis)."""
        return tuple(input_shape)

    # ---- mode ---------------------------------------------------------------------------
    def _mode(self, training):
        return self.training if training is None else bool(training)

    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    # ---- the course lab's per-layer learning rate ---------------------------------------
    @property
    def lr(self) -> float:
        """Alias of ``lr_mult``: the optimizer's learning rate is multiplied by it for this layer."""
        return self.lr_mult

    @lr.setter
    def lr(self, value: float):
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{self.name}: lr multiplier must be a finite number >= 0, got {value!r}")
        self.lr_mult = value

    # ---- parameters and state -----------------------------------------------------------
    def zero_grad(self):
        for g in self.grads.values():
            g[...] = 0

    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by name (copies)."""
        out = {k: v.copy() for k, v in self.params.items()}
        out.update({k: v.copy() for k, v in self.buffers.items()})
        return out

    def load_state_dict(self, state: dict, strict: bool = True):
        expected = {**self.params, **self.buffers}
        if strict:
            missing = sorted(set(expected) - set(state))
            unexpected = sorted(set(state) - set(expected))
            if missing or unexpected:
                raise ValueError(f"{self.name}: state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for k, arr in expected.items():
            if k not in state:
                continue
            v = np.asarray(state[k])
            if v.shape != arr.shape:
                raise ValueError(f"{self.name}: {k} expects shape {arr.shape}, got {v.shape}")
            arr[...] = v  # in place: optimizer state keeps pointing at the same arrays
        return self

    # ---- config (JSON-able constructor arguments, used by save/load and repr) ------------
    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # ---- input checks shared by all layers -----------------------------------------------
    def _check_input(
        self, x, ndim: int | None = None, shape_tail: tuple | None = None, dtype: np.dtype | None = None
    ) -> np.ndarray:
        """Raise a ValueError naming this layer when ``x`` has the wrong type, rank, shape or dtype."""
        if not isinstance(x, np.ndarray):
            raise ValueError(f"{self.name}: expected a numpy array, got {type(x).__name__}")
        if x.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{self.name}: expected float32 or float64 input, got {x.dtype}")
        if dtype is not None and x.dtype != dtype:
            raise ValueError(f"{self.name}: expected input dtype {np.dtype(dtype)} (the layer's dtype), got {x.dtype}")
        if ndim is not None and x.ndim != ndim:
            raise ValueError(
                f"{self.name}: expected a {ndim}-d input {self._shape_hint(ndim, shape_tail)}, got shape {x.shape}"
            )
        if shape_tail is not None:
            tail = x.shape[len(x.shape) - len(shape_tail) :]
            if any(e is not None and e != g for e, g in zip(shape_tail, tail, strict=False)):
                raise ValueError(
                    f"{self.name}: expected input shape {self._shape_hint(x.ndim, shape_tail)}, got {x.shape}"
                )
        if x.shape[0] == 0:
            raise ValueError(f"{self.name}: got an empty batch, shape {x.shape}")
        return np.ascontiguousarray(x)

    @staticmethod
    def _shape_hint(ndim, tail):
        if tail is None:
            tail = ()
        dims = ["N"] + ["*"] * (ndim - 1 - len(tail)) + ["?" if t is None else str(t) for t in tail]
        return "(" + ", ".join(dims) + ")"

    def _check_grad(self, dout, expected_shape) -> np.ndarray:
        if not isinstance(dout, np.ndarray) or dout.shape != tuple(expected_shape):
            got = getattr(dout, "shape", type(dout).__name__)
            raise ValueError(f"{self.name}.backward: expected dout of shape {tuple(expected_shape)}, got {got}")
        return np.ascontiguousarray(dout)

    def _require_forward(self, *cached):
        if any(c is None for c in cached):
            raise RuntimeError(f"{self.name}.backward called before forward (in training mode)")
