"""Central-difference gradient checks for functions, layers, losses and whole models.

Every check compares an analytic gradient ``g`` with the central difference
``(f(x + eps*d) - f(x - eps*d)) / (2*eps)`` and reports the relative error the
classic checkers use::

    error = |numeric - analytic| / max(1, |numeric|, |analytic|)

Small tensors (``size <= max_elements``) are checked element by element
(``d`` = one unit vector per element). Large ones are checked along
``directions`` random unit directions ``d`` (Gaussian, normalised), comparing the
directional derivative ``<g, d>`` with the difference quotient; a wrong entry
anywhere changes ``<g, d>`` with probability 1, so this still catches bugs at a
fixed cost.

Only float64 gives meaningful differences (float32 round-off at ``eps=1e-6`` is
larger than the derivative itself), so float32 inputs or parameters are refused
with a ValueError unless ``allow_float32=True``.

Randomness (Dropout): a check evaluates the forward pass many times and needs the
same function each time. Before every evaluation the checker restores the state
of every ``numpy.random.Generator`` held as an attribute of the layer (of each
layer of a model), so a layer drawing its mask from ``self.rng`` draws the same
mask every time. Layer buffers (BatchNorm running statistics) are restored after
the check, so checking a layer leaves it as it was.

Example::

    layer = fastnet.layers.Dense(5, 3, dtype=np.float64)
    fastnet.gradcheck.check_layer(layer, np.random.randn(4, 5)).assert_ok()
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GradcheckResult", "check_function", "check_layer", "check_loss", "check_model", "relative_error"]

DEFAULT_TOL = 1e-6


def relative_error(numeric, analytic):
    """``|numeric - analytic| / max(1, |numeric|, |analytic|)``, elementwise."""
    numeric = np.asarray(numeric, dtype=np.float64)
    analytic = np.asarray(analytic, dtype=np.float64)
    scale = np.maximum(1.0, np.maximum(np.abs(numeric), np.abs(analytic)))
    return np.abs(numeric - analytic) / scale


@dataclass
class GradcheckResult:
    """Outcome of a gradient check.

    Attributes
    ----------
    ok        : bool   max_error <= tol (and every value finite)
    max_error : float  the worst relative error over all checked tensors
    worst     : str    name of the tensor holding the worst error ("x", "weight", "2.bias", ...)
    index     : tuple | str  its index (an element index, or ``"direction k"`` for a large tensor)
    numeric   : float  central-difference value there
    analytic  : float  analytic value there
    tol       : float  the tolerance used
    errors    : dict   tensor name -> its worst relative error
    modes     : dict   tensor name -> "elementwise" or "N directions"
    """

    ok: bool
    max_error: float
    worst: str | None
    index: tuple | str | None
    numeric: float
    analytic: float
    tol: float = DEFAULT_TOL
    errors: dict = field(default_factory=dict)
    modes: dict = field(default_factory=dict)

    def __str__(self):
        head = "gradcheck passed" if self.ok else "gradcheck FAILED"
        lines = [f"{head}: max relative error {self.max_error:.3e} (tol {self.tol:.1e})"]
        if self.worst is not None:
            lines.append(
                f"  worst: {self.worst}[{self._index_text()}]  numeric={self.numeric!r}  analytic={self.analytic!r}"
            )
        for name, err in self.errors.items():
            flag = "" if err <= self.tol else "  <-- over tolerance"
            lines.append(f"  {name}: {err:.3e} ({self.modes.get(name, '')}){flag}")
        return "\n".join(lines)

    def _index_text(self):
        if isinstance(self.index, tuple):
            return ", ".join(str(i) for i in self.index)
        return str(self.index)

    def __bool__(self):
        return bool(self.ok)

    def assert_ok(self):
        """Raise AssertionError with the readable report unless the check passed."""
        if not self.ok:
            raise AssertionError(str(self))
        return self


# ---------------------------------------------------------------------------------------------
# the generic engine
# ---------------------------------------------------------------------------------------------
def _require_float64(arrays: dict, where: str, allow_float32: bool):
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{where}: {name} must be a numpy array, got {type(a).__name__}")
        if a.dtype == np.float64:
            continue
        if a.dtype == np.float32 and allow_float32:
            continue
        if a.dtype == np.float32:
            raise ValueError(
                f"{where}: {name} is float32; numeric gradients need float64 "
                f"(build the layer with dtype=np.float64 and pass float64 inputs), "
                f"or pass allow_float32=True"
            )
        raise ValueError(f"{where}: {name} must be a float64 array, got dtype {a.dtype}")


def _check_settings(eps, tol, max_elements, directions):
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"gradcheck: eps must be a positive finite float, got {eps!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"gradcheck: tol must be a positive finite float, got {tol!r}")
    if isinstance(max_elements, bool) or not isinstance(max_elements, (int, np.integer)) or max_elements < 0:
        raise ValueError(f"gradcheck: max_elements must be an int >= 0, got {max_elements!r}")
    if isinstance(directions, bool) or not isinstance(directions, (int, np.integer)) or directions < 1:
        raise ValueError(f"gradcheck: directions must be a positive int, got {directions!r}")


def _scalar(f) -> float:
    value = f()
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f"gradcheck: the checked function must return a scalar, got shape {value.shape}")
    return float(value.reshape(()))


def check_function(
    f: Callable[[], float],
    inputs: dict,
    grads,
    eps: float = 1e-6,
    tol: float = DEFAULT_TOL,
    max_elements: int = 2000,
    directions: int = 20,
    seed: int = 0,
    allow_float32: bool = False,
) -> GradcheckResult:
    """Check the gradients of a scalar function of several arrays.

    Parameters
    ----------
    f : callable
        ``f()`` returns a scalar; it must read the arrays in ``inputs`` (which the checker
        perturbs in place and restores).
    inputs : dict[str, ndarray]
        The arrays to differentiate with respect to (float64).
    grads : dict[str, ndarray] or callable
        Analytic gradients by the same names, or a callable returning that dict, called
        once at the unperturbed point before any perturbation.
    eps : float
        Central-difference step.
    tol : float
        Largest accepted relative error.
    max_elements : int
        Tensors with more elements are checked along ``directions`` random unit directions.
    seed : int
        Seed of the random directions.
    allow_float32 : bool
        Accept float32 inputs (results are then only indicative).

    Returns
    -------
    GradcheckResult
    """
    _check_settings(eps, tol, max_elements, directions)
    if not isinstance(inputs, dict) or not inputs:
        raise ValueError(f"check_function: inputs must be a non-empty dict of arrays, got {type(inputs).__name__}")
    _require_float64(inputs, "check_function", allow_float32)
    analytic = grads() if callable(grads) else grads
    if not isinstance(analytic, dict):
        raise ValueError(f"check_function: grads must be a dict (or return one), got {type(analytic).__name__}")
    analytic = {k: np.array(v, dtype=np.float64) for k, v in analytic.items()}  # copy: f() may overwrite them
    for name, x in inputs.items():
        if name not in analytic:
            raise ValueError(f"check_function: no analytic gradient for {name!r}; got {sorted(analytic)}")
        if analytic[name].shape != x.shape:
            raise ValueError(
                f"check_function: gradient of {name!r} has shape {analytic[name].shape}, expected {x.shape}"
            )

    rng = np.random.default_rng(seed)
    best = dict(err=-1.0, name=None, index=None, num=float("nan"), ana=float("nan"))
    errors, modes = {}, {}
    for name, x in inputs.items():
        g = analytic[name]
        if x.size <= max_elements:
            worst = _elementwise(f, x, g, eps)
            modes[name] = "elementwise"
        else:
            worst = _directional(f, x, g, eps, directions, rng)
            modes[name] = f"{directions} directions"
        err, index, num, ana = worst  # err is inf when a value was NaN/inf: never ok
        errors[name] = err
        if err > best["err"]:
            best = dict(err=err, name=name, index=index, num=num, ana=ana)
    max_error = best["err"]
    return GradcheckResult(
        ok=bool(max_error <= tol),
        max_error=float(max_error),
        worst=best["name"],
        index=best["index"],
        numeric=best["num"],
        analytic=best["ana"],
        tol=tol,
        errors=errors,
        modes=modes,
    )


def _difference(f, x, flat_index_or_direction, eps):
    """Central difference of f along one coordinate (int) or a unit direction (array); x restored."""
    flat = x.reshape(-1)  # a view: x is contiguous (checked by the callers' copies)
    if isinstance(flat_index_or_direction, np.ndarray):
        d = flat_index_or_direction.astype(x.dtype)
        saved = flat.copy()
        flat += eps * d
        fp = _scalar(f)
        flat[...] = saved - eps * d
        fm = _scalar(f)
        flat[...] = saved
    else:
        i = flat_index_or_direction
        saved = flat[i]
        flat[i] = saved + eps
        fp = _scalar(f)
        flat[i] = saved - eps
        fm = _scalar(f)
        flat[i] = saved
    return (fp - fm) / (2 * eps)


def _elementwise(f, x, g, eps):
    _require_contiguous(x)
    gflat = g.reshape(-1)
    worst = (-1.0, None, float("nan"), float("nan"))
    for i in range(x.size):
        num = _difference(f, x, i, eps)
        ana = float(gflat[i])
        err = float(relative_error(num, ana))
        if not np.isfinite(err):
            err = float("inf")
        if err > worst[0]:
            worst = (err, tuple(int(j) for j in np.unravel_index(i, x.shape)), num, ana)
    return worst


def _directional(f, x, g, eps, directions, rng):
    _require_contiguous(x)
    gflat = g.reshape(-1)
    worst = (-1.0, None, float("nan"), float("nan"))
    for k in range(directions):
        d = rng.standard_normal(x.size)
        d /= np.linalg.norm(d)
        num = _difference(f, x, d, eps)
        ana = float(gflat @ d)
        err = float(relative_error(num, ana))
        if not np.isfinite(err):
            err = float("inf")
        if err > worst[0]:
            worst = (err, f"direction {k}", num, ana)
    return worst


def _require_contiguous(x):
    if not x.flags.c_contiguous:
        raise ValueError("gradcheck: inputs must be C-contiguous arrays (they are perturbed in place)")


# ---------------------------------------------------------------------------------------------
# layers, losses, models
# ---------------------------------------------------------------------------------------------
def _generators(obj):
    """(owner, attribute, Generator) for every numpy Generator stored on ``obj``."""
    found = []
    for attr, value in vars(obj).items():
        if isinstance(value, np.random.Generator):
            found.append((obj, attr, value))
    return found


@contextlib.contextmanager
def _frozen(layers):
    """Replay every layer's random generators before each forward and restore buffers afterwards."""
    gens = [g for layer in layers for g in _generators(layer)]
    states = [(gen, gen.bit_generator.state) for _, _, gen in gens]
    buffers = [(layer, {k: v.copy() for k, v in getattr(layer, "buffers", {}).items()}) for layer in layers]

    def replay():
        for gen, state in states:
            gen.bit_generator.state = state

    try:
        yield replay
    finally:
        replay()
        for layer, saved in buffers:
            for k, v in saved.items():
                layer.buffers[k][...] = v


def _layer_params(layer, prefix=""):
    return {f"{prefix}{name}": p for name, p in getattr(layer, "params", {}).items()}


def check_layer(
    layer,
    x,
    seed: int = 0,
    eps: float = 1e-6,
    tol: float = DEFAULT_TOL,
    max_elements: int = 2000,
    directions: int = 20,
    allow_float32: bool = False,
    check_params: bool = True,
) -> GradcheckResult:
    """Check ``layer.backward`` (input gradient and every parameter gradient) in training mode.

    The scalar checked is ``L = sum(layer.forward(x, training=True) * R)`` with a fixed
    random ``R`` (from ``seed``), so ``dL/dout = R`` is what ``layer.backward`` receives.
    ``x`` is copied, never modified; parameters are perturbed in place and restored, and
    buffers (running statistics) are restored after the check. Random layers are made
    repeatable by replaying their generators (see the module docstring).
    """
    if not isinstance(x, np.ndarray):
        raise ValueError(f"check_layer: x must be a numpy array, got {type(x).__name__}")
    x = np.array(x, order="C", copy=True)
    inputs = {"x": x}
    if check_params:
        inputs.update(_layer_params(layer))
    _require_float64(inputs, f"check_layer({getattr(layer, 'name', type(layer).__name__)})", allow_float32)
    rng = np.random.default_rng(seed)
    with _frozen([layer]) as replay:
        replay()
        out = layer.forward(x, training=True)
        R = rng.standard_normal(out.shape).astype(out.dtype)

        def f():
            replay()
            return np.sum(layer.forward(x, training=True) * R, dtype=np.float64)

        def grads():
            f()
            dx = layer.backward(R.copy())
            g = {"x": dx}
            if check_params:
                g.update({name: layer.grads[name] for name in layer.params})
            return g

        return check_function(
            f,
            inputs,
            grads,
            eps=eps,
            tol=tol,
            max_elements=max_elements,
            directions=directions,
            seed=seed + 1,
            allow_float32=allow_float32,
        )


def check_loss(
    loss,
    pred,
    target,
    seed: int = 0,
    eps: float = 1e-6,
    tol: float = DEFAULT_TOL,
    max_elements: int = 2000,
    directions: int = 20,
    allow_float32: bool = False,
) -> GradcheckResult:
    """Check ``loss.backward()`` (the gradient with respect to ``pred``) of ``loss.forward(pred, target)``.

    ``target`` is held fixed (integer class ids or float arrays are both fine); ``pred`` is
    copied and must be float64.
    """
    if not isinstance(pred, np.ndarray):
        raise ValueError(f"check_loss: pred must be a numpy array, got {type(pred).__name__}")
    pred = np.array(pred, order="C", copy=True)
    _require_float64({"pred": pred}, f"check_loss({type(loss).__name__})", allow_float32)

    def f():
        return loss.forward(pred, target)

    def grads():
        f()
        return {"pred": loss.backward()}

    return check_function(
        f,
        {"pred": pred},
        grads,
        eps=eps,
        tol=tol,
        max_elements=max_elements,
        directions=directions,
        seed=seed,
        allow_float32=allow_float32,
    )


# check_model lives in its own file (line budget); it is part of this module's API.
from ._gradcheck_model import check_model  # noqa: E402
