"""Optimizer update kernels, plain NumPy, in place on the parameter and its state arrays.

Formulas follow PyTorch's (torch.optim, single tensor, no amsgrad/centered/maximize):
``d = g + weight_decay * p`` is the L2-regularised gradient (except AdamW, whose decay is
decoupled: ``p *= 1 - lr * weight_decay`` before the Adam step). ``eps`` is added AFTER the
square root in AdaGrad, RMSprop and Adam. Scalars are Python floats, ``t`` the 1-based step.
"""

import numpy as np

__all__ = ["sgd_update_", "adagrad_update_", "rmsprop_update_", "adam_update_"]


def _decayed(p, g, weight_decay):
    return g + weight_decay * p if weight_decay else g


def sgd_update_(p, g, buf, lr, momentum, dampening, nesterov, weight_decay):
    """SGD with optional (Nesterov) momentum: ``buf = momentum * buf + (1 - dampening) * d``;
    the step is ``buf`` or, with Nesterov, ``d + momentum * buf``. ``buf`` starts at zero,
    so with dampening 0 the first step equals PyTorch's (which starts at ``buf = d``)."""
    d = _decayed(p, g, weight_decay)
    if momentum:
        buf *= momentum
        buf += (1.0 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    p -= lr * d


def adagrad_update_(p, g, acc, lr, eps, weight_decay):
    """``acc += d**2``; ``p -= lr * d / (sqrt(acc) + eps)``."""
    d = _decayed(p, g, weight_decay)
    acc += d * d
    p -= lr * d / (np.sqrt(acc) + eps)


def rmsprop_update_(p, g, sq, lr, rho, eps, weight_decay):
    """``sq = rho * sq + (1 - rho) * d**2``; ``p -= lr * d / (sqrt(sq) + eps)``."""
    d = _decayed(p, g, weight_decay)
    sq *= rho
    sq += (1.0 - rho) * d * d
    p -= lr * d / (np.sqrt(sq) + eps)


def adam_update_(p, g, m, v, lr, beta1, beta2, eps, t, weight_decay, decoupled):
    """Adam (``decoupled=False``, L2 decay in the gradient) or AdamW (``decoupled=True``).

    ``m = b1 m + (1 - b1) d``, ``v = b2 v + (1 - b2) d**2``,
    ``p -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)``.
    """
    if decoupled:
        if weight_decay:
            p *= 1.0 - lr * weight_decay
        d = g
    else:
        d = _decayed(p, g, weight_decay)
    m *= beta1
    m += (1.0 - beta1) * d
    v *= beta2
    v += (1.0 - beta2) * d * d
    bc1 = 1.0 - beta1**t
    bc2 = 1.0 - beta2**t
    p -= (lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + eps)
