"""Fully connected layer, compiled (twin of ``reference/dense.py``).

Forward: ONE GEMM written straight into a preallocated array (``gemm.matmul``: BLAS with
``out=`` in fixed row blocks, called from Python, never from inside a ``prange``), then one
Numba pass that adds the bias in place and, when fused, writes the activation of each row (while it
is in cache) to the output. NumPy's ``x @ w + b`` allocates and makes a separate pass
for the add, and another for the activation.

Backward: the activation's derivative and the bias gradient ``db`` in one Numba pass
(``dz`` written into a scratch array), then ``dX = dz @ W.T`` and ``dW = X.T @ dz``
by GEMM (BLAS reads the transposed operands in place, no copy).
"""

import numba
import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit
from ..config import BLOCK, CHUNK
from . import gemm
from .activations import GELU, _bwd_block, _fwd_block, act_code

__all__ = ["dense_forward", "dense_backward", "dense_act_forward", "dense_act_backward"]

# The bias/activation and db passes go parallel from config.DENSE_PASS_MIN (why: see there).


# --- forward: z += b row by row, then y = act(z) on the same row ---


@jit
def _bias_act_rows(z, y, b, code, alpha, act_on, r0, r1, ws):
    """Rows r0..r1: z += b; y = act(z) if act_on. y is a different array from z (see
    ``_fwd_block``). ReLU and LeakyReLU are applied in the bias loop itself (one loop, no
    re-read). The others go through ``_fwd_block`` on blocks of whole rows of about CHUNK
    elements (contiguous in z and y): a narrow layer (M2's 20 and 26 outputs) would
    otherwise pay the block routine's set-up once per 20-element row, which cost more
    than NumPy's whole-array passes."""
    o = z.shape[1]
    t = z.dtype.type
    al = t(alpha)
    if act_on and code <= 1:
        for r in range(r0, r1):
            zr = z[r]
            yr = y[r]
            for j in range(o):
                v = zr[j] + b[j]
                if code == 0:
                    yr[j] = t(0.0) if v < t(0.0) else v  # NaN propagates, as np.maximum
                else:
                    yr[j] = v if v > t(0.0) else v * al
        return
    zf = z.reshape(-1)
    yf = y.reshape(-1)
    rows = max(1, CHUNK // max(1, o))
    for s in range(r0, r1, rows):
        e = min(r1, s + rows)
        for r in range(s, e):
            zr = z[r]
            for j in range(o):
                zr[j] += b[j]
        if act_on:
            _fwd_block(zf[s * o : e * o], yf[s * o : e * o], code, alpha, ws)


@jit
def _bias_act_serial(z, y, b, code, alpha, act_on):
    ws = np.empty((3, min(z.size, CHUNK)), dtype=z.dtype)
    _bias_act_rows(z, y, b, code, alpha, act_on, 0, z.shape[0], ws)


@pjit
def _bias_act_parallel(z, y, b, code, alpha, act_on):
    n = z.shape[0]
    rows = max(1, BLOCK // max(1, z.shape[1]))
    for k in prange((n + rows - 1) // rows):
        ws = np.empty((3, CHUNK), dtype=z.dtype)
        _bias_act_rows(z, y, b, code, alpha, act_on, k * rows, min(n, (k + 1) * rows), ws)


# --- backward: dz = act'(.) * dy and db = sum_rows(dz), per block of columns ---


@jit
def _dz_db_cols(dy, y, z, dz, db, code, alpha, act_on, c0, c1):
    """Columns c0..c1: dz (if act_on) and db. Columns, not rows, so threads never share a db entry."""
    n = dy.shape[0]
    for j in range(c0, c1):
        db[j] = 0
    src = dz if act_on else dy
    for i in range(n):
        if act_on:
            _bwd_block(dy[i, c0:c1], y[i, c0:c1], z[i, c0:c1], dz[i, c0:c1], code, alpha)
        for j in range(c0, c1):
            db[j] += src[i, j]


@jit
def _dz_db_serial(dy, y, z, dz, db, code, alpha, act_on):
    """dz (if act_on) and db over all rows, by blocks of whole rows of about CHUNK elements:
    the derivative runs on each block as one flat array (not per row, which costs the block
    routine's set-up per row of a narrow layer), then the block's rows are added to db while
    they are in cache (row after row, as NumPy's ``sum(axis=0)``)."""
    n, o = dy.shape
    for j in range(o):
        db[j] = 0
    src = dz if act_on else dy
    dyf = dy.reshape(-1)
    yf = y.reshape(-1)
    zf = z.reshape(-1)
    dzf = dz.reshape(-1)
    rows = max(1, CHUNK // max(1, o))
    for s in range(0, n, rows):
        e = min(n, s + rows)
        if act_on:
            _bwd_block(dyf[s * o : e * o], yf[s * o : e * o], zf[s * o : e * o], dzf[s * o : e * o], code, alpha)
        for i in range(s, e):
            sr = src[i]
            for j in range(o):
                db[j] += sr[j]


@pjit
def _dz_db_parallel(dy, y, z, dz, db, code, alpha, act_on, cols):
    o = dy.shape[1]
    for k in prange((o + cols - 1) // cols):
        _dz_db_cols(dy, y, z, dz, db, code, alpha, act_on, k * cols, min(o, (k + 1) * cols))


# --- Python entry points ---


def _prepare(x, w, b=None):
    if (
        type(x) is np.ndarray
        and type(w) is np.ndarray
        and x.dtype == w.dtype
        and x.flags.c_contiguous
        and (b is None or (type(b) is np.ndarray and b.dtype == x.dtype and b.flags.c_contiguous))
    ):
        return x, w, b  # the layers' case: nothing to convert
    dt = np.result_type(x, w) if b is None else np.result_type(x, w, b)
    x = np.ascontiguousarray(x, dtype=dt)
    w = np.asarray(w, dtype=dt)
    if b is not None:
        b = np.ascontiguousarray(b, dtype=dt)
    return x, w, b


def _forward(x, w, b, code, alpha, act_on):
    x, w, b = _prepare(x, w, b)
    z = np.empty((x.shape[0], w.shape[1]), dtype=x.dtype)
    gemm.matmul(x, w, z)
    # The activation writes a second array even when z is not needed afterwards (all but
    # GELU): same memory traffic as in place, and in-place loops would not vectorise.
    y = np.empty_like(z) if act_on else z
    a = float(alpha)
    parallel.run(z.size, config.DENSE_PASS_MIN, _bias_act_serial, _bias_act_parallel, (z, y, b, code, a, act_on))
    return y, z


def _backward(dy, x, w, y, z, code, alpha, act_on, need_dx):
    dt = np.result_type(dy, x, w)
    dy = np.ascontiguousarray(dy, dtype=dt)
    x = np.asarray(x, dtype=dt)
    w = np.asarray(w, dtype=dt)
    n, o = dy.shape
    db = np.empty(o, dtype=dt)
    if act_on:
        dz = np.empty_like(dy)
        saved = y if code != GELU else z
        if saved is None:
            raise ValueError(f"dense_act_backward: the saved {'z' if code == GELU else 'y'} is needed, got None")
        yy = np.ascontiguousarray(saved, dtype=dt)
        zz = yy
    else:
        dz = dy
        yy = zz = dy  # unused placeholders with the right type
    a = float(alpha)
    args = (dy, yy, zz, dz, db, code, a, act_on)
    # column blocks, about four per thread: no two threads share a db entry
    cols = max(config.DENSE_MIN_BLOCK_COLS, -(-o // (4 * numba.get_num_threads())))
    parallel.run(dy.size, config.DENSE_PASS_MIN, _dz_db_serial, _dz_db_parallel, args, args + (cols,))
    dx = None
    if need_dx:  # a model's first layer skips it in training: one GEMM of three
        dx = np.empty((n, w.shape[0]), dtype=dt)
        gemm.matmul(dz, w.T, dx)
    dw = np.empty(w.shape, dtype=dt)
    gemm.matmul(x.T, dz, dw)
    return dx, dw, db


def dense_forward(x, w, b):
    return _forward(x, w, b, 0, 0.0, False)[0]


def dense_backward(dy, x, w, need_dx=True):
    return _backward(dy, x, w, None, None, 0, 0.0, False, need_dx)


def dense_act_forward(x, w, b, act, alpha):
    """``act(x @ w + b)`` in one GEMM and one pass; returns ``(y, z)``, z only for GELU."""
    code = act_code(act)
    y, z = _forward(x, w, b, code, alpha, True)
    return y, (z if code == GELU else None)


def dense_act_backward(dy, x, w, y, z, act, alpha, need_dx=True):
    return _backward(dy, x, w, y, z, act_code(act), alpha, True, need_dx)
