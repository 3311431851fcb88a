"""Batch normalisation, compiled (twin of ``reference/norm.py``), on x viewed as (N, C, L).

Work is split over blocks of channels (threads never share a channel's statistics);
inside a block the loops run n -> c -> l (L is ``length`` in the code), so memory is read in order whether L is 1
(BatchNorm1d) or H*W (BatchNorm2d). Sums accumulate in float64 (per-channel sums over
N*L elements lose precision fast in float32); outputs keep the input dtype.
"""

import math

import numba
import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit

__all__ = ["batchnorm_forward_train", "batchnorm_forward_eval", "batchnorm_backward"]


@jit
def _train_channels(x, gamma, beta, eps, y, mean, var, xhat, inv_std, c0, c1):
    n, _, length = x.shape
    m = n * length
    s = np.zeros(c1 - c0)
    for i in range(n):
        for c in range(c0, c1):
            acc = 0.0
            for k in range(length):
                acc += x[i, c, k]
            s[c - c0] += acc
    for c in range(c0, c1):
        mean[c] = s[c - c0] / m
        s[c - c0] = 0.0
    # Two passes (mean, then centred squares), as the reference: no cancellation.
    for i in range(n):
        for c in range(c0, c1):
            mu = mean[c]
            acc = 0.0
            for k in range(length):
                d = x[i, c, k] - mu
                acc += d * d
            s[c - c0] += acc
    t = x.dtype.type
    for c in range(c0, c1):
        var[c] = s[c - c0] / m
        inv_std[c] = t(1.0) / math.sqrt(var[c] + eps)
    for i in range(n):
        for c in range(c0, c1):
            mu, istd, g, b = mean[c], inv_std[c], gamma[c], beta[c]
            for k in range(length):
                h = (x[i, c, k] - mu) * istd
                xhat[i, c, k] = h
                y[i, c, k] = h * g + b


@jit
def _train_serial(x, gamma, beta, eps, y, mean, var, xhat, inv_std):
    _train_channels(x, gamma, beta, eps, y, mean, var, xhat, inv_std, 0, x.shape[1])


@pjit
def _train_parallel(x, gamma, beta, eps, y, mean, var, xhat, inv_std, cols):
    c = x.shape[1]
    for k in prange((c + cols - 1) // cols):
        _train_channels(x, gamma, beta, eps, y, mean, var, xhat, inv_std, k * cols, min(c, (k + 1) * cols))


@jit
def _backward_channels(dy, xhat, gamma, inv_std, dx, dgamma, dbeta, c0, c1):
    n, _, length = dy.shape
    m = n * length
    sb = np.zeros(c1 - c0)
    sg = np.zeros(c1 - c0)
    for i in range(n):
        for c in range(c0, c1):
            ab = 0.0
            ag = 0.0
            for k in range(length):
                g = dy[i, c, k]
                ab += g
                ag += g * xhat[i, c, k]
            sb[c - c0] += ab
            sg[c - c0] += ag
    t = dx.dtype.type
    for c in range(c0, c1):
        dbeta[c] = sb[c - c0]
        dgamma[c] = sg[c - c0]
    for i in range(n):
        for c in range(c0, c1):
            scale = gamma[c] * inv_std[c] / t(m)
            db, dg = dbeta[c], dgamma[c]
            for k in range(length):
                dx[i, c, k] = scale * (t(m) * dy[i, c, k] - db - xhat[i, c, k] * dg)


@jit
def _backward_serial(dy, xhat, gamma, inv_std, dx, dgamma, dbeta):
    _backward_channels(dy, xhat, gamma, inv_std, dx, dgamma, dbeta, 0, dy.shape[1])


@pjit
def _backward_parallel(dy, xhat, gamma, inv_std, dx, dgamma, dbeta, cols):
    c = dy.shape[1]
    for k in prange((c + cols - 1) // cols):
        _backward_channels(dy, xhat, gamma, inv_std, dx, dgamma, dbeta, k * cols, min(c, (k + 1) * cols))


@jit
def _eval_rows(x, a, mu, beta, y, r0, r1):
    """Rows r of the (N*C, L) view: y = (x - mean) * (inv_std * gamma) + beta for channel r % C."""
    nc = a.shape[0]
    length = x.shape[1]
    for r in range(r0, r1):
        c = r % nc
        ac, mc, bc = a[c], mu[c], beta[c]
        for k in range(length):
            y[r, k] = (x[r, k] - mc) * ac + bc


@jit
def _eval_serial(x, a, mu, beta, y):
    _eval_rows(x, a, mu, beta, y, 0, x.shape[0])


@pjit
def _eval_parallel(x, a, mu, beta, y, rows):
    n = x.shape[0]
    for k in prange((n + rows - 1) // rows):
        _eval_rows(x, a, mu, beta, y, k * rows, min(n, (k + 1) * rows))


def _vec(v, dt, c, name, where):
    v = np.ascontiguousarray(v, dtype=dt)
    if v.shape != (c,):
        raise ValueError(f"{where}: {name} must have shape ({c},), got {v.shape}")
    return v


def _x3(x3, where):
    x3 = np.ascontiguousarray(x3)
    if x3.ndim != 3:
        raise ValueError(f"{where}: x3 must be 3-D (N, C, L), got shape {x3.shape}")
    return x3


def _channel_block(c):
    return max(1, -(-c // (config.BATCHNORM_BLOCKS_PER_THREAD * numba.get_num_threads())))


def _channel_work(x3):
    """Elements for the serial/parallel choice: work is split by channel, so one channel is
    serial work whatever its size."""
    return x3.size if x3.shape[1] > 1 else 0


def batchnorm_forward_train(x3, gamma, beta, eps):
    where = "batchnorm_forward_train"
    x3 = _x3(x3, where)
    dt, c = x3.dtype, x3.shape[1]
    gamma, beta = _vec(gamma, dt, c, "gamma", where), _vec(beta, dt, c, "beta", where)
    y3, xhat3 = np.empty_like(x3), np.empty_like(x3)
    mean, var, inv_std = np.empty(c, dt), np.empty(c, dt), np.empty(c, dt)
    e = dt.type(eps)
    args = (x3, gamma, beta, e, y3, mean, var, xhat3, inv_std)
    parallel.run(
        _channel_work(x3), config.BATCHNORM_MIN, _train_serial, _train_parallel, args, args + (_channel_block(c),)
    )
    return y3, mean, var, xhat3, inv_std


def batchnorm_forward_eval(x3, gamma, beta, running_mean, running_var, eps):
    where = "batchnorm_forward_eval"
    x3 = _x3(x3, where)
    dt, (n, c, length) = x3.dtype, x3.shape
    gamma, beta = _vec(gamma, dt, c, "gamma", where), _vec(beta, dt, c, "beta", where)
    mu = _vec(running_mean, dt, c, "running_mean", where)
    rv = _vec(running_var, dt, c, "running_var", where)
    # Per-channel factor, computed like the reference (C values: NumPy is fine here).
    a = (1.0 / np.sqrt(rv + dt.type(eps))) * gamma
    y3 = np.empty_like(x3)
    x2, y2 = x3.reshape(n * c, length), y3.reshape(n * c, length)
    args = (x2, a, mu, beta, y2)
    rows = max(1, config.BLOCK // max(1, length))  # blocks of whole rows of about BLOCK elements
    parallel.run(x3.size, config.BATCHNORM_MIN, _eval_serial, _eval_parallel, args, args + (rows,))
    return y3


def batchnorm_backward(dy3, xhat3, gamma, inv_std):
    where = "batchnorm_backward"
    dy3 = _x3(dy3, where)
    dt, c = dy3.dtype, dy3.shape[1]
    xhat3 = np.ascontiguousarray(xhat3, dtype=dt)
    if xhat3.shape != dy3.shape:
        raise ValueError(f"{where}: xhat3 must have the shape of dy3 {dy3.shape}, got {xhat3.shape}")
    gamma, inv_std = _vec(gamma, dt, c, "gamma", where), _vec(inv_std, dt, c, "inv_std", where)
    dx3 = np.empty_like(dy3)
    dgamma, dbeta = np.empty(c, dt), np.empty(c, dt)
    args = (dy3, xhat3, gamma, inv_std, dx3, dgamma, dbeta)
    pargs = args + (_channel_block(c),)
    parallel.run(_channel_work(dy3), config.BATCHNORM_MIN, _backward_serial, _backward_parallel, args, pargs)
    return dx3, dgamma, dbeta
