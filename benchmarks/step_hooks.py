"""Timers attached to a model from outside, for ``step_profile.py``: nothing in ``src/`` is changed.

What is wrapped while a profiled step runs (and restored right after it):

- every leaf layer's ``_forward`` / ``_backward`` (instance attributes shadowing the class methods, so
  the graph engine calls the wrappers), the loss's ``forward`` / ``backward``, the optimizer's
  ``step``, the model's ``zero_grad`` and ``train_step``;
- inside the compiled kernel modules (``fastnet._kernels.fast.*``), the names those modules look up
  at call time: their ``numpy`` and ``gemm`` module globals and their Cython extension modules are
  replaced by stand-ins whose GEMM and data-movement functions are timed (``classify``); every
  other attribute passes straight through. The time lands in the layer call that is running.

Why module stand-ins and not edits: the conv engine is being rewritten; the split attaches to
whatever names the new code calls, and when it finds none the profile says so instead of failing.
Numba compiles a jitted function against its module's globals, so ``numpy`` is never replaced in a
module that holds jitted functions (a compile during the profile would see the stand-in).
Only the main thread records (fastnet's GEMM pool threads run inside a timed call already), and
a timed call inside another timed call is not counted twice.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys
import threading
import time
import types

import numpy as np

GEMM = "gemm"
DATA = "data"
# Data movement: the lowering (im2col/col2im) and layout copies (NCHW <-> GEMM layout; conv.py's
# ``nfp``/``fnp`` names are (n, f, p) orders, its ``*_to_*`` passes also add the bias or mask ReLU's
# gradient on the way through, which is counted as part of the copy).
DATA_WORDS = ("im2col", "col2im", "_to_", "transpose", "pack", "layout", "copy", "pad", "contiguous", "nhwc")
GEMM_WORDS = ("matmul", "gemm", "dot", "einsum", "tensordot")


def classify(name: str) -> str | None:
    """GEMM, DATA or None (not timed on its own) for a function called ``name``."""
    low = name.lower()
    if any(w in low for w in GEMM_WORDS):
        return GEMM
    if any(w in low for w in DATA_WORDS):
        return DATA
    return None


class Recorder:
    """Per-step timings: ``parts[name]`` holds seconds per field (``fwd``, ``bwd``, ``fwd_gemm``, ...)."""

    def __init__(self):
        self.main = threading.get_ident()
        self.stack: list = []  # open frames: (part dict, phase)
        self.inner: list = []  # per open frame: the time of the layer calls inside it so far (None: not a layer)
        self.in_kernel = False
        self.parts: dict[str, dict] = {}
        self.kernel_hits = 0  # timed GEMM/data calls seen: zero means the split did not attach

    def part(self, name: str) -> dict:
        return self.parts.setdefault(name, {"calls": 0})

    def timed(self, name: str, phase: str, fn, on_call=None, layer=False):
        """``fn`` wrapped: its wall time is added to ``parts[name][phase]``. A ``layer`` call's time is less
        that of the layer calls inside it (a Conv2D runs its fused pool layer's ``_forward``: that time goes
        to the pool's row only); other calls (``train_step``, the loss) keep their whole time."""

        def call(*args, **kwargs):
            part = self.part(name)
            if phase != "bwd":
                part["calls"] += 1
            if on_call is not None:
                on_call(part, args, kwargs)
            self.stack.append((part, phase))
            self.inner.append(0.0 if layer else None)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                nested = self.inner.pop()
                part[phase] = part.get(phase, 0.0) + elapsed - (nested or 0.0)
                self.stack.pop()
                if layer and self.inner and self.inner[-1] is not None:
                    self.inner[-1] += elapsed

        return call

    def kernel(self, category: str, fn):
        """``fn`` wrapped: its wall time is added to the running layer call's ``<phase>_<category>``."""

        def call(*args, **kwargs):
            if self.in_kernel or not self.stack or threading.get_ident() != self.main:
                return fn(*args, **kwargs)
            self.in_kernel = True
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self.in_kernel = False
                part, phase = self.stack[-1]
                key = f"{phase}_{category}"
                part[key] = part.get(key, 0.0) + dt
                self.kernel_hits += 1

        return call


class _StandIn:
    """Looks like ``target`` to a kernel module; the functions in ``timed`` are wrapped."""

    def __init__(self, target, wrapped: dict):
        self.__dict__.update(wrapped)
        self._target = target

    def __getattr__(self, name):  # only for names not wrapped
        return getattr(self._target, name)


def _is_jitted(value) -> bool:
    return hasattr(value, "py_func") and hasattr(value, "signatures")  # a Numba dispatcher


def kernel_modules() -> list[types.ModuleType]:
    """The compiled kernel modules the registry loaded (the fast package's ``MODULES`` and what they import)."""
    pkg = importlib.import_module("fastnet._kernels.fast")
    for name in getattr(pkg, "MODULES", ()):
        importlib.import_module(f"{pkg.__name__}.{name}")
    prefix = pkg.__name__ + "."
    return [m for n, m in sorted(sys.modules.items()) if n.startswith(prefix) and isinstance(m, types.ModuleType)]


def _wrapped_functions(rec: Recorder, module) -> dict:
    out = {}
    for name in dir(module):
        value = getattr(module, name, None)
        category = classify(name) if callable(value) and not isinstance(value, type) else None
        if category is not None and not name.startswith("__"):
            out[name] = rec.kernel(category, value)
    return out


class Instrumentation:
    """Attach the timers to ``model`` (``install``) and take them all off again (``remove``).

    ``kernel_split=False`` attaches only the per-layer, loss and optimizer timers.
    ``notes`` says what could not be attached and why.
    """

    def __init__(self, model, kernel_split: bool = True):
        self.model = model
        self.kernel_split = kernel_split
        self.rec = Recorder()
        self.notes: list[str] = []
        self._undo: list = []
        self._fwd_flops: dict[str, list] = {}  # per layer: forward FLOPs of calls not yet back-propagated
        self._gemm_module = sys.modules.get("fastnet._kernels.fast.gemm")

    # ---- attach / detach -------------------------------------------------------------------------
    def _set(self, obj, attr, value):
        had_own = isinstance(obj, types.ModuleType) or attr in vars(obj)
        self._undo.append((obj, attr, getattr(obj, attr), had_own))
        setattr(obj, attr, value)

    def remove(self):
        while self._undo:
            obj, attr, old, had_own = self._undo.pop()
            if had_own:
                setattr(obj, attr, old)
            else:
                delattr(obj, attr)

    def install(self, rec: Recorder | None = None):
        self.rec = rec or Recorder()
        self._fwd_flops = {}
        m = self.model
        try:
            for name, layer in m.named_layers().items():
                fwd = functools.partial(self._count_forward, layer)
                bwd = functools.partial(self._count_backward, layer)
                self._set(layer, "_forward", self.rec.timed(name, "fwd", layer._forward, fwd, layer=True))
                self._set(layer, "_backward", self.rec.timed(name, "bwd", layer._backward, bwd, layer=True))
            self._set(m.loss, "forward", self.rec.timed("loss", "fwd", m.loss.forward))
            self._set(m.loss, "backward", self.rec.timed("loss", "bwd", m.loss.backward))
            self._set(m.optimizer, "step", self.rec.timed("optimizer", "total", m.optimizer.step))
            self._set(m, "zero_grad", self.rec.timed("zero_grad", "total", m.zero_grad))
            self._set(m, "train_step", self.rec.timed("train_step", "total", m.train_step))
            if self.kernel_split:
                self._install_kernel_split()
        except Exception:
            self.remove()
            raise
        return self.rec

    def _install_kernel_split(self):
        for module in kernel_modules():
            if module is self._gemm_module:
                continue  # its NumPy calls run inside the timed gemm.matmul (and in its pool threads)
            has_jit = any(_is_jitted(v) for v in vars(module).values())
            for attr, value in list(vars(module).items()):
                if value is np and has_jit:
                    self._note_unseen_numpy_gemm(module)  # see the module docstring
                    continue
                if not (value is np or value is self._gemm_module or _is_extension(value)):
                    continue  # config, parallel, workspace, the module's own functions: not timed
                wrapped = _wrapped_functions(self.rec, value)
                if wrapped:
                    self._set(module, attr, _StandIn(value, wrapped))

    def _note_unseen_numpy_gemm(self, module):
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            return
        if re.search(r"\bnp\.(matmul|dot|einsum|tensordot)\(", source):
            note = (
                f"{module.__name__} holds Numba functions, so its numpy GEMM calls are not timed "
                "(they count as 'rest' there)"
            )
            if note not in self.notes:
                self.notes.append(note)

    # ---- FLOPs of conv and dense calls -------------------------------------------------------------
    def _count_forward(self, layer, part, args, kwargs):
        x = args[0] if args else kwargs.get("x")
        layer_flops = _flops(layer, getattr(x, "shape", None))
        self._fwd_flops.setdefault(id(part), []).append(layer_flops)
        if layer_flops is not None:
            part["flops_fwd"] = part.get("flops_fwd", 0) + layer_flops

    def _count_backward(self, layer, part, args, kwargs):
        need_dx = args[2] if len(args) > 2 else kwargs.get("need_dx", True)
        pending = self._fwd_flops.get(id(part))
        layer_flops = pending.pop() if pending else None  # backward runs in reverse order of the calls
        if layer_flops is not None:
            # dW always; dX (the second GEMM-equivalent pass) only when the caller wants it
            part["flops_bwd"] = part.get("flops_bwd", 0) + layer_flops * (2 if need_dx else 1)
            part["bwd_skips_dx"] = part.get("bwd_skips_dx", False) or not need_dx


def _is_extension(module) -> bool:
    return str(getattr(module, "__file__", "")).endswith((".so", ".pyd"))


def _flops(layer, shape) -> int | None:
    """Direct-convolution (or dense) FLOPs of one forward call: 2*N*F*C*KH*KW*OH*OW (2*N*in*out)."""
    if layer is None or shape is None:
        return None
    kind = type(layer).__name__
    try:
        if kind == "Conv2D" and len(shape) == 4:
            n, c, h, w = shape
            (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
            oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            return 2 * n * layer.out_channels * c * kh * kw * oh * ow
        if kind == "Dense" and len(shape) == 2:
            return 2 * shape[0] * layer.in_features * layer.out_features
    except (AttributeError, TypeError, ValueError):
        return None
    return None
