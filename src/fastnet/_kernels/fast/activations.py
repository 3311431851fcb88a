"""Elementwise activations, compiled with Numba (twin of ``reference/activations.py``).

Every activation is one block routine (``_fwd_block`` / ``_bwd_block``) over a flat
contiguous array, selected by an integer code. Arrays below the thresholds of
``fastnet/_kernels/config.py`` (by kind of work) run it once, serially; larger ones are cut
into blocks spread over Numba's threads.
Constants are cast to the array's dtype (``dtype.type``) so float32 stays float32
end to end (SIMD width, and the same rounding as the reference).

The block routines are also used by the fused dense kernels (``fast/dense.py``),
which apply them to one output row at a time while that row is in cache.

exp, tanh and sigmoid come from the vectorisable polynomials of ``_vecmath.py`` (Numba's
``math.exp``/``math.tanh`` are scalar libm calls without SVML). GELU still uses the scalar
``math.erf`` (1.5x NumPy+SciPy).
"""

import math

import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit
from ..config import BLOCK, CHUNK
from ._vecmath import _exp_nonpos, _row_max, _sigmoid_chunk, _tanh_chunk, _tanh_f32

__all__ = [
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "gelu_forward",
    "gelu_backward",
    "softmax_forward",
    "softmax_backward",
    "act_forward",
    "act_backward_from_output",
]

RELU, LEAKY_RELU, SIGMOID, TANH, GELU = 0, 1, 2, 3, 4
ACT_CODES = {"relu": RELU, "leaky_relu": LEAKY_RELU, "sigmoid": SIGMOID, "tanh": TANH, "gelu": GELU}

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def act_code(act: str) -> int:
    """Integer code of activation ``act`` (what the compiled routines branch on)."""
    try:
        return ACT_CODES[act]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {act!r}") from None


@jit
def _fwd_block(x, y, code, alpha, ws):
    """y[i] = act(x[i]) for 1-D x, y. x and y must be different arrays: if they overlap,
    LLVM's runtime alias check falls back to the scalar loop (2-8x slower).
    ws: workspace (3, >= min(len(x), CHUNK)) of y's dtype, allocated once by the caller (an
    allocation per call would dominate short rows). Sigmoid and tanh go through it CHUNK
    elements at a time, so their temporaries stay in L1/L2 cache."""
    t = y.dtype.type
    zero, one, half = t(0.0), t(1.0), t(0.5)
    alpha = t(alpha)  # a Python float from the entry points (cheaper to pass than a NumPy scalar)
    n = x.shape[0]
    if code == 0:
        for i in range(n):
            v = x[i]
            y[i] = zero if v < zero else v  # NaN propagates, as np.maximum
    elif code == 1:
        for i in range(n):
            v = x[i]
            y[i] = v if v > zero else v * alpha
    elif code == 2:
        for s in range(0, n, CHUNK):
            _sigmoid_chunk(x[s : s + CHUNK], y[s : s + CHUNK], ws)
    elif code == 3:
        if y.itemsize == 4:
            _tanh_f32(x, y)
        else:
            for s in range(0, n, CHUNK):
                _tanh_chunk(x[s : s + CHUNK], y[s : s + CHUNK], ws)
    else:
        c = t(_INV_SQRT2)
        for i in range(n):
            v = x[i]
            y[i] = half * v * (one + math.erf(v * c))


@jit
def _bwd_block(dy, y, z, dx, code, alpha):
    """dx[i] = dy[i] * act'(.) from the output y (or the input z for GELU)."""
    t = dx.dtype.type
    zero, one, half = t(0.0), t(1.0), t(0.5)
    alpha = t(alpha)
    n = dy.shape[0]
    if code == 0:
        for i in range(n):
            dx[i] = dy[i] * (one if y[i] > zero else zero)  # NaN * 0 stays NaN, as the reference
    elif code == 1:
        for i in range(n):
            g = dy[i]
            dx[i] = g if y[i] > zero else g * alpha
    elif code == 2:
        for i in range(n):
            s = y[i]
            dx[i] = dy[i] * s * (one - s)
    elif code == 3:
        for i in range(n):
            s = y[i]
            dx[i] = dy[i] * (one - s * s)
    else:
        c = t(_INV_SQRT2)
        cp = t(_INV_SQRT_2PI)
        for i in range(n):
            v = z[i]
            cdf = half * (one + math.erf(v * c))
            pdf = math.exp(-half * v * v) * cp
            dx[i] = dy[i] * (cdf + v * pdf)


@jit
def _fwd_serial(x, y, code, alpha):
    _fwd_block(x, y, code, alpha, np.empty((3, min(x.shape[0], CHUNK)), dtype=y.dtype))


@pjit
def _fwd_parallel(x, y, code, alpha):
    n = x.shape[0]
    nblocks = (n + BLOCK - 1) // BLOCK
    for k in prange(nblocks):
        s = k * BLOCK
        e = min(n, s + BLOCK)
        _fwd_block(x[s:e], y[s:e], code, alpha, np.empty((3, min(e - s, CHUNK)), dtype=y.dtype))


@jit
def _bwd_serial(dy, y, z, dx, code, alpha):
    _bwd_block(dy, y, z, dx, code, alpha)


@pjit
def _bwd_parallel(dy, y, z, dx, code, alpha):
    n = dy.shape[0]
    nblocks = (n + BLOCK - 1) // BLOCK
    for k in prange(nblocks):
        s = k * BLOCK
        e = min(n, s + BLOCK)
        _bwd_block(dy[s:e], y[s:e], z[s:e], dx[s:e], code, alpha)


@jit
def _softmax_rows(x, y, r0, r1):
    """Stable softmax of rows r0..r1 of the 2-D x into y."""
    c = x.shape[1]
    scratch = np.empty(c, dtype=y.dtype)
    for r in range(r0, r1):
        m = _row_max(x[r])
        yr = y[r]
        _exp_nonpos(x[r], m, yr, scratch)
        s = 0.0
        for j in range(c):
            s += yr[j]
        inv = y.dtype.type(1.0 / s)
        for j in range(c):
            y[r, j] *= inv


@jit
def _softmax_bwd_rows(dy, y, dx, r0, r1):
    c = y.shape[1]
    for r in range(r0, r1):
        s = dx.dtype.type(0.0)
        for j in range(c):
            s += dy[r, j] * y[r, j]
        for j in range(c):
            dx[r, j] = y[r, j] * (dy[r, j] - s)


@jit
def _softmax_serial(x, y):
    _softmax_rows(x, y, 0, x.shape[0])


@pjit
def _softmax_parallel(x, y):
    n = x.shape[0]
    rows = max(1, BLOCK // max(1, x.shape[1]))
    for k in prange((n + rows - 1) // rows):
        _softmax_rows(x, y, k * rows, min(n, (k + 1) * rows))


@jit
def _softmax_bwd_serial(dy, y, dx):
    _softmax_bwd_rows(dy, y, dx, 0, y.shape[0])


@pjit
def _softmax_bwd_parallel(dy, y, dx):
    n = y.shape[0]
    rows = max(1, BLOCK // max(1, y.shape[1]))
    for k in prange((n + rows - 1) // rows):
        _softmax_bwd_rows(dy, y, dx, k * rows, min(n, (k + 1) * rows))


# --- Python entry points: contiguity, dtype, allocation, serial/parallel choice ---


def _flat(a):
    return np.ascontiguousarray(a).reshape(-1)


def _fwd_min(code):
    """Parallel threshold of activation ``code``'s forward (ReLU/LeakyReLU are memory-bound)."""
    return config.MEMORY_BOUND_MIN if code <= LEAKY_RELU else config.COMPUTE_BOUND_MIN


def _bwd_min(code):
    """Parallel threshold of the backward: one multiply per element except GELU's erf and exp."""
    return config.COMPUTE_BOUND_MIN if code == GELU else config.MEMORY_BOUND_MIN


def act_into(x, y, code, alpha):
    """Apply activation ``code`` to contiguous ``x`` into ``y`` (same shape, not ``x``)."""
    xf, yf = x.reshape(-1), y.reshape(-1)
    a = float(alpha)
    parallel.run(xf.shape[0], _fwd_min(code), _fwd_serial, _fwd_parallel, (xf, yf, code, a))
    return y


def _forward(x, code, alpha=0.0):
    x = np.ascontiguousarray(x)
    return act_into(x, np.empty_like(x), code, alpha)


def _backward(dy, y, z, code, alpha=0.0):
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    yf = _flat(y).astype(dy.dtype, copy=False)
    zf = yf if z is None else _flat(z).astype(dy.dtype, copy=False)
    dyf, dxf = dy.reshape(-1), dx.reshape(-1)
    if yf.shape[0] != dyf.shape[0]:
        raise ValueError(f"activation backward: dy has {dyf.shape[0]} elements, the saved array {yf.shape[0]}")
    a = float(alpha)
    parallel.run(dyf.shape[0], _bwd_min(code), _bwd_serial, _bwd_parallel, (dyf, yf, zf, dxf, code, a))
    return dx


def relu_forward(x):
    return _forward(x, RELU)


def relu_backward(dy, y):
    return _backward(dy, y, None, RELU)


def leaky_relu_forward(x, alpha):
    return _forward(x, LEAKY_RELU, alpha)


def leaky_relu_backward(dy, y, alpha):
    return _backward(dy, y, None, LEAKY_RELU, alpha)


def sigmoid_forward(x):
    return _forward(x, SIGMOID)


def sigmoid_backward(dy, y):
    return _backward(dy, y, None, SIGMOID)


def tanh_forward(x):
    return _forward(x, TANH)


def tanh_backward(dy, y):
    return _backward(dy, y, None, TANH)


def gelu_forward(x):
    return _forward(x, GELU)


def gelu_backward(dy, x):
    # GELU's derivative needs the input: it is passed where the others take the output.
    return _backward(dy, x, x, GELU)


def _rows(a):
    a = np.ascontiguousarray(a)
    return a, a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)


def softmax_forward(x):
    x, x2 = _rows(x)
    y = np.empty_like(x)
    y2 = y.reshape(x2.shape)
    if x2.size == 0:
        return y
    parallel.run(x2.size, config.COMPUTE_BOUND_MIN, _softmax_serial, _softmax_parallel, (x2, y2))
    return y


def softmax_backward(dy, y):
    dy, dy2 = _rows(dy)
    _, y2 = _rows(np.asarray(y).astype(dy.dtype, copy=False))
    dx = np.empty_like(dy)
    dx2 = dx.reshape(dy2.shape)
    if dy2.size == 0:
        return dx
    parallel.run(dy2.size, config.MEMORY_BOUND_MIN, _softmax_bwd_serial, _softmax_bwd_parallel, (dy2, y2, dx2))
    return dx


def act_forward(z, act, alpha):
    return _forward(z, act_code(act), alpha)


def act_backward_from_output(dy, y, z, act, alpha):
    code = act_code(act)
    if code == GELU:
        return _backward(dy, z, z, GELU)
    return _backward(dy, y, None, code, alpha)
