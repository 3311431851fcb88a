"""Batch normalisation, plain NumPy, on x viewed as (N, C, L).

BatchNorm1d on (N, C) passes L = 1; BatchNorm2d passes L = H*W. Statistics are per
channel over the N and L axes; normalisation uses the biased variance (the layer
turns it into the unbiased one for its running statistics, as PyTorch does).
"""

import numpy as np

__all__ = ["batchnorm_forward_train", "batchnorm_forward_eval", "batchnorm_backward"]


def _c(v):
    """(C,) -> (1, C, 1) for broadcasting over (N, C, L)."""
    return v.reshape(1, -1, 1)


def batchnorm_forward_train(x3, gamma, beta, eps):
    """-> (y3, mean, var, xhat3, inv_std); mean/var/inv_std have shape (C,), var is biased."""
    mean = x3.mean(axis=(0, 2))
    xc = x3 - _c(mean)
    var = (xc * xc).mean(axis=(0, 2))
    inv_std = 1.0 / np.sqrt(var + x3.dtype.type(eps))
    xhat3 = xc * _c(inv_std)
    y3 = xhat3 * _c(gamma) + _c(beta)
    return y3, mean, var, xhat3, inv_std


def batchnorm_forward_eval(x3, gamma, beta, running_mean, running_var, eps):
    inv_std = 1.0 / np.sqrt(running_var + x3.dtype.type(eps))
    return (x3 - _c(running_mean)) * _c(inv_std * gamma) + _c(beta)


def batchnorm_backward(dy3, xhat3, gamma, inv_std):
    """The standard simplified form: dx = gamma*inv_std/M * (M*dy - sum(dy) - xhat*sum(dy*xhat)),
    M = N*L samples per channel."""
    m = dy3.shape[0] * dy3.shape[2]
    dbeta = dy3.sum(axis=(0, 2))
    dgamma = (dy3 * xhat3).sum(axis=(0, 2))
    dx3 = _c(gamma * inv_std / m) * (m * dy3 - _c(dbeta) - xhat3 * _c(dgamma))
    return dx3, dgamma, dbeta
