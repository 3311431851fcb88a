"""``check_model``: the central-difference check of a whole model (see fastnet.gradcheck)."""

from __future__ import annotations

import numpy as np

from .gradcheck import DEFAULT_TOL, GradcheckResult, _frozen, _layer_params, _require_float64, check_function

__all__ = ["check_model"]


def check_model(
    model,
    x,
    y,
    seed: int = 0,
    eps: float = 1e-6,
    tol: float = DEFAULT_TOL,
    max_elements: int = 2000,
    directions: int = 20,
    allow_float32: bool = False,
    check_input: bool = True,
) -> GradcheckResult:
    """Check every parameter of a model (and its input gradient) through its loss.

    ``model`` needs ``.loss`` (with ``forward(pred, target)`` and ``backward()``),
    ``forward(x, training=True)``, ``backward(dout)`` and either ``named_layers()`` (every
    fastnet model, graphs included) or ``.layers``. The scalar checked is
    ``model.loss.forward(model.forward(x, training=True), y)``. Parameters are named by dotted
    layer name (``"0.weight"`` in a Sequential, ``"block.conv2d.weight"`` in a graph); the input
    gradient, ``"x"`` (``"x0"``, ``"x1"``... for a list of inputs), is checked when
    ``model.backward`` returns arrays of the inputs' shapes.
    """
    if hasattr(model, "named_layers"):
        named = model.named_layers()
    else:
        named = {str(i): layer for i, layer in enumerate(getattr(model, "layers", []))}
    layers = list(named.values())
    loss = getattr(model, "loss", None)
    if loss is None:
        raise ValueError("check_model: model.loss is not set (compile the model with a loss first)")
    many = isinstance(x, (list, tuple))
    xs = list(x) if many else [x]
    for a in xs:
        if not isinstance(a, np.ndarray):
            raise ValueError(f"check_model: x must be a numpy array (or a list of them), got {type(a).__name__}")
    xs = [np.array(a, order="C", copy=True) for a in xs]
    x_names = [f"x{i}" for i in range(len(xs))] if many else ["x"]
    model_x = xs if many else xs[0]
    params = {}
    for name, layer in named.items():
        params.update(_layer_params(layer, f"{name}."))
    _require_float64({**dict(zip(x_names, xs, strict=True)), **params}, "check_model", allow_float32)

    with _frozen(layers) as replay:

        def f():
            replay()
            return loss.forward(model.forward(model_x, training=True), y)

        def grads():
            f()
            dx = model.backward(loss.backward())
            g = {}
            for lname, layer in named.items():
                g.update({f"{lname}.{k}": layer.grads[k] for k in layer.params})
            for xn, a, d in zip(x_names, xs, dx if many and isinstance(dx, list) else [dx], strict=False):
                if isinstance(d, np.ndarray) and d.shape == a.shape:
                    g[xn] = d
            return g

        analytic = {k: np.array(v, dtype=np.float64) for k, v in grads().items()}
        inputs = dict(params)
        if check_input:
            inputs = {**{xn: a for xn, a in zip(x_names, xs, strict=True) if xn in analytic}, **params}
        if not inputs:
            raise ValueError("check_model: the model has no parameters and backward returned no input gradient")
        return check_function(
            f,
            inputs,
            analytic,
            eps=eps,
            tol=tol,
            max_elements=max_elements,
            directions=directions,
            seed=seed,
            allow_float32=allow_float32,
        )
