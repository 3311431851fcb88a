"""Fully connected layer, plain NumPy: y = x @ w + b, optionally followed by an activation."""

from .activations import act_backward_from_output, act_forward

__all__ = ["dense_forward", "dense_backward", "dense_act_forward", "dense_act_backward"]


def dense_forward(x, w, b):
    return x @ w + b


def dense_backward(dy, x, w, need_dx=True):
    dx = dy @ w.T if need_dx else None  # need_dx=False: a model's first layer in training
    dw = x.T @ dy
    db = dy.sum(axis=0)
    return dx, dw, db


def dense_act_forward(x, w, b, act, alpha):
    """``act(x @ w + b)``. For GELU the pre-activation is needed in backward, so the
    caller keeps it: this returns ``(y, z)`` for every act, z being None unless act == "gelu"."""
    z = x @ w + b
    y = act_forward(z, act, alpha)
    return y, (z if act == "gelu" else None)


def dense_act_backward(dy, x, w, y, z, act, alpha, need_dx=True):
    dz = act_backward_from_output(dy, y, z, act, alpha)
    return dense_backward(dz, x, w, need_dx)
