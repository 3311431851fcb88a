"""Batch normalisation, plain NumPy, on x viewed as (N, C, L).

BatchNorm1d on (N, C) passes L = 1; BatchNorm2d passes L = H*W. Statistics are per
channel over the N and L axes; normalisation uses the biased variance (the layer
turns it into the unbiased one for its running statistics, as PyTorch does).

``act="relu"`` is BatchNorm fused with a following ReLU (a model's compile-time fusion):
the output is ``max(bn(x), 0)`` and backward masks ``dy`` by ``y > 0`` first. Backward
recomputes ``xhat`` from the layer's input and the batch mean, so forward writes one array.
"""

import numpy as np

from .activations import check_fused_act

__all__ = ["batchnorm_forward_train", "batchnorm_forward_eval", "batchnorm_backward"]


def _c(v):
    """(C,) -> (1, C, 1) for broadcasting over (N, C, L)."""
    return v.reshape(1, -1, 1)


def batchnorm_forward_train(x3, gamma, beta, eps, act=None):
    """-> (y3, mean, var, inv_std); mean/var/inv_std have shape (C,), var is biased."""
    check_fused_act(act, "batchnorm_forward_train")
    mean = x3.mean(axis=(0, 2))
    xc = x3 - _c(mean)
    var = (xc * xc).mean(axis=(0, 2))
    inv_std = 1.0 / np.sqrt(var + x3.dtype.type(eps))
    y3 = xc * _c(inv_std) * _c(gamma) + _c(beta)
    if act == "relu":
        y3 = np.maximum(y3, 0)
    return y3, mean, var, inv_std


def batchnorm_forward_eval(x3, gamma, beta, running_mean, running_var, eps, act=None):
    check_fused_act(act, "batchnorm_forward_eval")
    inv_std = 1.0 / np.sqrt(running_var + x3.dtype.type(eps))
    y3 = (x3 - _c(running_mean)) * _c(inv_std * gamma) + _c(beta)
    return np.maximum(y3, 0) if act == "relu" else y3


def batchnorm_backward(dy3, x3, mean, gamma, inv_std, act=None, y3=None):
    """The standard simplified form: dx = gamma*inv_std/M * (M*dy - sum(dy) - xhat*sum(dy*xhat)),
    M = N*L samples per channel, xhat = (x - mean) * inv_std. With ``act="relu"``, ``y3`` is the
    forward's output and dy is first ``dy * (y3 > 0)``."""
    if check_fused_act(act, "batchnorm_backward"):
        if y3 is None:
            raise ValueError("batchnorm_backward: act='relu' needs the forward output y3")
        dy3 = dy3 * (y3 > 0)
    m = dy3.shape[0] * dy3.shape[2]
    xhat3 = (x3 - _c(mean)) * _c(inv_std)
    dbeta = dy3.sum(axis=(0, 2))
    dgamma = (dy3 * xhat3).sum(axis=(0, 2))
    dx3 = _c(gamma * inv_std / m) * (m * dy3 - _c(dbeta) - xhat3 * _c(dgamma))
    return dx3, dgamma, dbeta
