"""Optimizer updates, compiled (twin of ``reference/optim.py``): ONE in-place pass per parameter.

Each update reads p, g and the state once and writes p and the state once (NumPy's
version makes four to eight passes and temporaries). Scalars are cast to the parameter's
dtype, as NumPy does with Python floats, so float32 parameters are updated in float32;
bias corrections are folded into two scalars in Python. Arrays of at least
``config.MEMORY_BOUND_MIN`` elements are split into blocks over Numba's threads (see
``fastnet/_kernels/config.py`` for why that is much larger than the generic threshold).
"""

import math

import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit
from ..config import BLOCK

__all__ = ["sgd_update_", "adagrad_update_", "rmsprop_update_", "adam_update_"]


# --- SGD ---


@jit
def _sgd_block(p, g, buf, lr, momentum, damp1, nesterov, wd, use_wd, use_mom, s, e):
    for i in range(s, e):
        d = g[i]
        if use_wd:
            d = d + wd * p[i]
        if use_mom:
            b = momentum * buf[i] + damp1 * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


@jit
def _sgd_serial(p, g, buf, lr, momentum, damp1, nesterov, wd, use_wd, use_mom):
    t = p.dtype.type
    _sgd_block(p, g, buf, t(lr), t(momentum), t(damp1), nesterov, t(wd), use_wd, use_mom, 0, p.shape[0])


@pjit
def _sgd_parallel(p, g, buf, lr, momentum, damp1, nesterov, wd, use_wd, use_mom):
    n = p.shape[0]
    t = p.dtype.type
    lr, momentum, damp1, wd = t(lr), t(momentum), t(damp1), t(wd)
    for k in prange((n + BLOCK - 1) // BLOCK):
        _sgd_block(p, g, buf, lr, momentum, damp1, nesterov, wd, use_wd, use_mom, k * BLOCK, min(n, (k + 1) * BLOCK))


# --- AdaGrad and RMSprop: one routine, rho = 1 and (1 - rho) = 1 gives AdaGrad's sum ---


@jit
def _sq_block(p, g, sq, lr, rho, rho1, eps, wd, use_wd, s, e):
    for i in range(s, e):
        d = g[i]
        if use_wd:
            d = d + wd * p[i]
        v = rho * sq[i] + rho1 * d * d
        sq[i] = v
        p[i] -= lr * d / (math.sqrt(v) + eps)


@jit
def _sq_serial(p, g, sq, lr, rho, rho1, eps, wd, use_wd):
    t = p.dtype.type
    _sq_block(p, g, sq, t(lr), t(rho), t(rho1), t(eps), t(wd), use_wd, 0, p.shape[0])


@pjit
def _sq_parallel(p, g, sq, lr, rho, rho1, eps, wd, use_wd):
    n = p.shape[0]
    t = p.dtype.type
    lr, rho, rho1, eps, wd = t(lr), t(rho), t(rho1), t(eps), t(wd)
    for k in prange((n + BLOCK - 1) // BLOCK):
        _sq_block(p, g, sq, lr, rho, rho1, eps, wd, use_wd, k * BLOCK, min(n, (k + 1) * BLOCK))


# --- Adam / AdamW ---


@jit
def _adam_block(p, g, m, v, step, inv_sqrt_bc2, b1, b11, b2, b21, eps, wd, shrink, use_wd, s, e):
    for i in range(s, e):
        q = p[i] * shrink  # AdamW's decoupled decay (shrink == 1 otherwise)
        d = g[i]
        if use_wd:
            d = d + wd * q
        mi = b1 * m[i] + b11 * d
        vi = b2 * v[i] + b21 * d * d
        m[i] = mi
        v[i] = vi
        p[i] = q - step * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


@jit
def _adam_serial(p, g, m, v, step, inv_sqrt_bc2, b1, b11, b2, b21, eps, wd, shrink, use_wd):
    t = p.dtype.type
    _adam_block(
        p,
        g,
        m,
        v,
        t(step),
        t(inv_sqrt_bc2),
        t(b1),
        t(b11),
        t(b2),
        t(b21),
        t(eps),
        t(wd),
        t(shrink),
        use_wd,
        0,
        p.shape[0],
    )


@pjit
def _adam_parallel(p, g, m, v, step, inv_sqrt_bc2, b1, b11, b2, b21, eps, wd, shrink, use_wd):
    n = p.shape[0]
    t = p.dtype.type
    step, inv_sqrt_bc2, b1, b11, b2, b21 = t(step), t(inv_sqrt_bc2), t(b1), t(b11), t(b2), t(b21)
    eps, wd, shrink = t(eps), t(wd), t(shrink)
    for k in prange((n + BLOCK - 1) // BLOCK):
        _adam_block(
            p,
            g,
            m,
            v,
            step,
            inv_sqrt_bc2,
            b1,
            b11,
            b2,
            b21,
            eps,
            wd,
            shrink,
            use_wd,
            k * BLOCK,
            min(n, (k + 1) * BLOCK),
        )


# --- Python entry points ---
# Scalars are passed as Python floats and cast to p's dtype inside the drivers: a NumPy scalar
# argument costs Numba's dispatcher ~0.3 us more than a float (and ~0.2 us to build), which
# on M2's 20-element bias was as much as the update itself.


def _flat_inplace(a, name, where, like=None):
    """A flat view of ``a`` that writes through (so ``a`` must be C-contiguous)."""
    if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{where}: {name} must be a writeable C-contiguous ndarray (updated in place)")
    if like is not None and (a.shape != like.shape or a.dtype != like.dtype):
        raise ValueError(f"{where}: {name} must match p ({like.shape}, {like.dtype}), got ({a.shape}, {a.dtype})")
    return a.reshape(-1)


def _grad(g, p, where):
    if type(g) is not np.ndarray or g.dtype != p.dtype or not g.flags.c_contiguous:
        g = np.ascontiguousarray(g, dtype=p.dtype)
    if g.shape != p.shape:
        raise ValueError(f"{where}: g must have p's shape {p.shape}, got {g.shape}")
    return g.reshape(-1)


def sgd_update_(p, g, buf, lr, momentum, dampening, nesterov, weight_decay):
    where = "sgd_update_"
    pf = _flat_inplace(p, "p", where)
    gf = _grad(g, p, where)
    use_mom = bool(momentum)
    bf = _flat_inplace(buf, "buf", where, p) if use_mom else pf  # placeholder, never read
    args = (
        pf,
        gf,
        bf,
        float(lr),
        float(momentum),
        1.0 - float(dampening),
        bool(nesterov),
        float(weight_decay),
        bool(weight_decay),
        use_mom,
    )
    parallel.run(args[0].shape[0], config.MEMORY_BOUND_MIN, _sgd_serial, _sgd_parallel, args)


def _sq_update(p, g, sq, lr, rho, rho1, eps, weight_decay, where, name):
    pf = _flat_inplace(p, "p", where)
    gf = _grad(g, p, where)
    sf = _flat_inplace(sq, name, where, p)
    args = (pf, gf, sf, float(lr), float(rho), float(rho1), float(eps), float(weight_decay), bool(weight_decay))
    parallel.run(args[0].shape[0], config.MEMORY_BOUND_MIN, _sq_serial, _sq_parallel, args)


def adagrad_update_(p, g, acc, lr, eps, weight_decay):
    _sq_update(p, g, acc, lr, 1.0, 1.0, eps, weight_decay, "adagrad_update_", "acc")


def rmsprop_update_(p, g, sq, lr, rho, eps, weight_decay):
    _sq_update(p, g, sq, lr, rho, 1.0 - rho, eps, weight_decay, "rmsprop_update_", "sq")


def adam_update_(p, g, m, v, lr, beta1, beta2, eps, t, weight_decay, decoupled):
    where = "adam_update_"
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
        raise ValueError(f"{where}: t must be the 1-based step (int >= 1), got {t!r}")
    pf = _flat_inplace(p, "p", where)
    gf = _grad(g, p, where)
    mf = _flat_inplace(m, "m", where, p)
    vf = _flat_inplace(v, "v", where, p)
    bc1 = 1.0 - beta1**t
    bc2 = 1.0 - beta2**t
    shrink = 1.0 - lr * weight_decay if (decoupled and weight_decay) else 1.0
    use_wd = bool(weight_decay) and not decoupled
    args = (
        pf,
        gf,
        mf,
        vf,
        float(lr / bc1),
        float(1.0 / math.sqrt(bc2)),
        float(beta1),
        float(1.0 - beta1),
        float(beta2),
        float(1.0 - beta2),
        float(eps),
        float(weight_decay),
        float(shrink),
        use_wd,
    )
    parallel.run(args[0].shape[0], config.MEMORY_BOUND_MIN, _adam_serial, _adam_parallel, args)
