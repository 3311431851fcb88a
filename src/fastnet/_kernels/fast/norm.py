"""Batch normalisation, compiled (twin of ``reference/norm.py``), on x viewed as (N, C, L).

Work is split over blocks of channels (threads never share a channel's statistics);
inside a block the loops run n -> c -> l (L is ``length`` in the code), so memory is read in order whether L is 1
(BatchNorm1d) or H*W (BatchNorm2d). Sums accumulate in float64 (per-channel sums over
N*L elements lose precision fast in float32); outputs keep the input dtype.

The passes are memory-bound (a 6.4 MB map: one read ~0.4 ms here), so what they write is
kept small: forward writes only y (backward recomputes xhat from x and the mean), and a
fused ReLU (``act="relu"``) is applied in the same pass, its gradient mask read in backward's.
"""

import math

import numba
import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit
from ..reference.activations import check_fused_act

__all__ = ["batchnorm_forward_train", "batchnorm_forward_eval", "batchnorm_backward"]


@jit
def _train_channels(x, gamma, beta, eps, relu, y, mean, var, inv_std, c0, c1):
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
    zero = t(0.0)
    for c in range(c0, c1):
        var[c] = s[c - c0] / m
        inv_std[c] = t(1.0) / math.sqrt(var[c] + eps)
    for i in range(n):
        for c in range(c0, c1):
            mu, istd, g, b = mean[c], inv_std[c], gamma[c], beta[c]
            if relu:
                for k in range(length):
                    v = (x[i, c, k] - mu) * istd * g + b
                    y[i, c, k] = zero if v < zero else v  # NaN propagates, as np.maximum
            else:
                for k in range(length):
                    y[i, c, k] = (x[i, c, k] - mu) * istd * g + b


@jit
def _train_serial(x, gamma, beta, eps, relu, y, mean, var, inv_std):
    _train_channels(x, gamma, beta, eps, relu, y, mean, var, inv_std, 0, x.shape[1])


@pjit
def _train_parallel(x, gamma, beta, eps, relu, y, mean, var, inv_std, cols):
    c = x.shape[1]
    for k in prange((c + cols - 1) // cols):
        _train_channels(x, gamma, beta, eps, relu, y, mean, var, inv_std, k * cols, min(c, (k + 1) * cols))


@jit
def _backward_channels(dy, x, y, relu, mean, gamma, inv_std, dx, dgamma, dbeta, c0, c1):
    """dx for channels c0..c1; with ``relu`` the gradient is ``dy * (y > 0)`` (NaN * 0 stays NaN)."""
    n, _, length = dy.shape
    m = n * length
    t = dx.dtype.type
    zero, one = t(0.0), t(1.0)
    sb = np.zeros(c1 - c0)
    sg = np.zeros(c1 - c0)
    for i in range(n):
        for c in range(c0, c1):
            mu, istd = mean[c], inv_std[c]
            ab = 0.0
            ag = 0.0
            for k in range(length):
                g = dy[i, c, k]
                if relu:
                    g = g * (one if y[i, c, k] > zero else zero)
                ab += g
                ag += g * ((x[i, c, k] - mu) * istd)
            sb[c - c0] += ab
            sg[c - c0] += ag
    for c in range(c0, c1):
        dbeta[c] = sb[c - c0]
        dgamma[c] = sg[c - c0]
    for i in range(n):
        for c in range(c0, c1):
            mu, istd = mean[c], inv_std[c]
            scale = gamma[c] * istd / t(m)
            db, dg = dbeta[c], dgamma[c]
            for k in range(length):
                g = dy[i, c, k]
                if relu:
                    g = g * (one if y[i, c, k] > zero else zero)
                dx[i, c, k] = scale * (t(m) * g - db - ((x[i, c, k] - mu) * istd) * dg)


@jit
def _backward_serial(dy, x, y, relu, mean, gamma, inv_std, dx, dgamma, dbeta):
    _backward_channels(dy, x, y, relu, mean, gamma, inv_std, dx, dgamma, dbeta, 0, dy.shape[1])


@pjit
def _backward_parallel(dy, x, y, relu, mean, gamma, inv_std, dx, dgamma, dbeta, cols):
    c = dy.shape[1]
    for k in prange((c + cols - 1) // cols):
        _backward_channels(dy, x, y, relu, mean, gamma, inv_std, dx, dgamma, dbeta, k * cols, min(c, (k + 1) * cols))


@jit
def _eval_rows(x, a, mu, beta, relu, y, r0, r1):
    """Rows r of the (N*C, L) view: y = (x - mean) * (inv_std * gamma) + beta for channel r % C."""
    nc = a.shape[0]
    length = x.shape[1]
    zero = y.dtype.type(0.0)
    for r in range(r0, r1):
        c = r % nc
        ac, mc, bc = a[c], mu[c], beta[c]
        if relu:
            for k in range(length):
                v = (x[r, k] - mc) * ac + bc
                y[r, k] = zero if v < zero else v
        else:
            for k in range(length):
                y[r, k] = (x[r, k] - mc) * ac + bc


@jit
def _eval_serial(x, a, mu, beta, relu, y):
    _eval_rows(x, a, mu, beta, relu, y, 0, x.shape[0])


@pjit
def _eval_parallel(x, a, mu, beta, relu, y, rows):
    n = x.shape[0]
    for k in prange((n + rows - 1) // rows):
        _eval_rows(x, a, mu, beta, relu, y, k * rows, min(n, (k + 1) * rows))


def _vec(v, dt, c, name, where):
    v = np.ascontiguousarray(v, dtype=dt)
    if v.shape != (c,):
        raise ValueError(f"{where}: {name} must have shape ({c},), got {v.shape}")
    return v


def _x3(x3, where, name="x3"):
    x3 = np.ascontiguousarray(x3)
    if x3.ndim != 3:
        raise ValueError(f"{where}: {name} must be 3-D (N, C, L), got shape {x3.shape}")
    return x3


def _like(a, ref, name, where):
    a = np.ascontiguousarray(a, dtype=ref.dtype)
    if a.shape != ref.shape:
        raise ValueError(f"{where}: {name} must have the shape of dy3 {ref.shape}, got {a.shape}")
    return a


def _channel_block(c):
    return max(1, -(-c // (config.BATCHNORM_BLOCKS_PER_THREAD * numba.get_num_threads())))


def _channel_work(x3):
    """Elements for the serial/parallel choice: work is split by channel, so one channel is
    serial work whatever its size."""
    return x3.size if x3.shape[1] > 1 else 0


def batchnorm_forward_train(x3, gamma, beta, eps, act=None):
    where = "batchnorm_forward_train"
    relu = check_fused_act(act, where)
    x3 = _x3(x3, where)
    dt, c = x3.dtype, x3.shape[1]
    gamma, beta = _vec(gamma, dt, c, "gamma", where), _vec(beta, dt, c, "beta", where)
    y3 = np.empty_like(x3)
    mean, var, inv_std = np.empty(c, dt), np.empty(c, dt), np.empty(c, dt)
    args = (x3, gamma, beta, dt.type(eps), relu, y3, mean, var, inv_std)
    parallel.run(
        _channel_work(x3), config.BATCHNORM_MIN, _train_serial, _train_parallel, args, args + (_channel_block(c),)
    )
    return y3, mean, var, inv_std


def batchnorm_forward_eval(x3, gamma, beta, running_mean, running_var, eps, act=None):
    where = "batchnorm_forward_eval"
    relu = check_fused_act(act, where)
    x3 = _x3(x3, where)
    dt, (n, c, length) = x3.dtype, x3.shape
    gamma, beta = _vec(gamma, dt, c, "gamma", where), _vec(beta, dt, c, "beta", where)
    mu = _vec(running_mean, dt, c, "running_mean", where)
    rv = _vec(running_var, dt, c, "running_var", where)
    # Per-channel factor, computed like the reference (C values: NumPy is fine here).
    a = (1.0 / np.sqrt(rv + dt.type(eps))) * gamma
    y3 = np.empty_like(x3)
    x2, y2 = x3.reshape(n * c, length), y3.reshape(n * c, length)
    args = (x2, a, mu, beta, relu, y2)
    rows = max(1, config.BLOCK // max(1, length))  # blocks of whole rows of about BLOCK elements
    parallel.run(x3.size, config.BATCHNORM_MIN, _eval_serial, _eval_parallel, args, args + (rows,))
    return y3


def batchnorm_backward(dy3, x3, mean, gamma, inv_std, act=None, y3=None):
    where = "batchnorm_backward"
    relu = check_fused_act(act, where)
    dy3 = _x3(dy3, where, "dy3")
    dt, c = dy3.dtype, dy3.shape[1]
    x3 = _like(x3, dy3, "x3", where)
    if relu and y3 is None:
        raise ValueError(f"{where}: act='relu' needs the forward output y3")
    y3 = _like(y3, dy3, "y3", where) if relu else x3  # not read without relu
    mean, gamma = _vec(mean, dt, c, "mean", where), _vec(gamma, dt, c, "gamma", where)
    inv_std = _vec(inv_std, dt, c, "inv_std", where)
    dx3 = np.empty_like(dy3)
    dgamma, dbeta = np.empty(c, dt), np.empty(c, dt)
    args = (dy3, x3, y3, relu, mean, gamma, inv_std, dx3, dgamma, dbeta)
    pargs = args + (_channel_block(c),)
    parallel.run(_channel_work(dy3), config.BATCHNORM_MIN, _backward_serial, _backward_parallel, args, pargs)
    return dx3, dgamma, dbeta
