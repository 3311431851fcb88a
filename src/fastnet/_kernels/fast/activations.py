"""Elementwise activations, compiled with Numba (twin of ``reference/activations.py``).

Every activation is one block routine (``_fwd_block`` / ``_bwd_block``) over a flat
contiguous array, selected by an integer code. Arrays below the thresholds of
``fastnet/_kernels/config.py`` (by kind of work) run it once, serially; larger ones are cut
into blocks spread over Numba's threads.
Constants are cast to the array's dtype (``dtype.type``) so float32 stays float32
end to end (SIMD width, and the same rounding as the reference).

The block routines are also used by the fused dense kernels (``fast/dense.py``),
which apply them to one output row at a time while that row is in cache, and by the
losses (``_exp_nonpos``, ``_row_max``).

exp and tanh are computed by our own vectorisable polynomials (see ``_exp_nonpos``):
without Intel SVML, Numba's ``math.exp``/``math.tanh`` are scalar libm calls, 4-25x
slower than NumPy's SIMD loops. GELU still uses the scalar ``math.erf`` (1.5x NumPy+SciPy).

Developer note: Numba's on-disk cache does not track calls into other modules. After
editing this file, delete ``__pycache__/{dense,losses}.*.nb?`` too, or they keep the old
inlined code.
"""

import math

import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit
from ..config import BLOCK, CHUNK

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

# BLOCK (elements per parallel block) and CHUNK (elements per pass of the multi-loop
# activations) are in config.py.

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# exp(v) for v <= 0 (softmax's x - max, sigmoid's -|x|), written so LLVM vectorises it:
# Numba's math.exp is a scalar libm call per element (no SVML here), 4-6x slower than a
# SIMD loop. Cody-Waite reduction v = k ln2 + r, |r| <= ln2/2, a Taylor polynomial for
# exp(r) (degree 7 for float32: ~1 ulp; 13 for float64: < 1e-15 relative), and 2**k built
# in the exponent bits of a scratch array. Inputs below the smallest normal's log are
# clamped there (exp(-87) ~ 1.6e-38 instead of a subnormal: invisible next to a 1).
_LOG2E = 1.4426950408889634
_LN2_HI32, _LN2_LO32 = 0.693145751953125, 1.42860682030941723212e-6
_LN2_HI64, _LN2_LO64 = 0.6931471803691238, 1.9082149292705877e-10


@jit
def _exp_nonpos(src, shift, dst, scratch):
    """dst[i] = exp(src[i] - shift) for 1-D float arrays, src[i] - shift <= 0.

    src, dst and scratch (same length and dtype as dst) must be three different arrays:
    if they overlap, LLVM's runtime alias check falls back to the scalar loop (8x slower)."""
    n = src.shape[0]
    if dst.itemsize == 4:
        t = np.float32
        ib = scratch.view(np.int32)
        for i in range(n):
            v = src[i] - shift
            v = t(-87.0) if v < t(-87.0) else v  # NaN stays NaN (and so does the result)
            k = np.floor(
                v * t(_LOG2E) + t(0.5)
            )  # np.floor stays a float (llvm.floor: vectorises); math.floor returns an int
            k = k if k == k else t(0.0)  # no NaN into the int conversion; r carries the NaN
            r = v - k * t(_LN2_HI32) - k * t(_LN2_LO32)
            p = t(1.0 / 5040)
            p = p * r + t(1.0 / 720)
            p = p * r + t(1.0 / 120)
            p = p * r + t(1.0 / 24)
            p = p * r + t(1.0 / 6)
            p = p * r + t(0.5)
            p = p * r + t(1.0)
            dst[i] = p * r + t(1.0)
            ib[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
    else:
        ib = scratch.view(np.int64)
        for i in range(n):
            v = np.float64(src[i] - shift)
            v = -708.0 if v < -708.0 else v
            k = np.floor(v * _LOG2E + 0.5)
            k = k if k == k else 0.0
            r = v - k * _LN2_HI64 - k * _LN2_LO64
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
            p = p * r + 1.0 / 5040.0
            p = p * r + 1.0 / 720.0
            p = p * r + 1.0 / 120.0
            p = p * r + 1.0 / 24.0
            p = p * r + 1.0 / 6.0
            p = p * r + 0.5
            p = p * r + 1.0
            dst[i] = p * r + 1.0
            ib[i] = (np.int64(k) + np.int64(1023)) << np.int64(52)
    for i in range(n):
        dst[i] *= scratch[i]


@jit
def _row_max(xr):
    """max of a 1-D array, in 16 independent lanes so LLVM vectorises the compare-select
    (a single running max is a serial dependency chain: ~3x slower). NaNs are skipped."""
    c = xr.shape[0]
    m = xr[0]
    lanes = np.empty(16, dtype=xr.dtype)
    for k in range(16):
        lanes[k] = m
    c16 = c - c % 16
    for j in range(0, c16, 16):
        for k in range(16):
            v = xr[j + k]
            lanes[k] = v if v > lanes[k] else lanes[k]
    for k in range(16):
        m = lanes[k] if lanes[k] > m else m
    for j in range(c16, c):
        m = xr[j] if xr[j] > m else m
    return m


def act_code(act: str) -> int:
    """Integer code of activation ``act`` (what the compiled routines branch on)."""
    try:
        return ACT_CODES[act]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {act!r}") from None


@jit
def _sigmoid_chunk(x, y, ws):
    """y = sigmoid(x) = 1/(1+e) or e/(1+e), e = exp(-|x|) <= 1: never overflows."""
    n = x.shape[0]
    t = y.dtype.type
    one = t(1.0)
    a, e = ws[0, :n], ws[1, :n]
    for i in range(n):
        a[i] = -abs(x[i])
    _exp_nonpos(a, t(0.0), e, ws[2, :n])
    for i in range(n):
        ei = e[i]
        q = one / (one + ei)  # one division, shared by both branches
        y[i] = q if x[i] >= t(0.0) else ei * q


# Float32 tanh: Eigen's 13/6-degree rational interpolant on [-9, 9] (outside, tanh is +-1 in
# float32); max relative error 4e-7 against float64 tanh (NumPy's float32 tanh: 1.1e-7). One
# loop, no exp, no scratch: 2.5x NumPy's SIMD tanh, where the exp-based form was 0.6x.
_TANH_A = (
    4.89352455891786e-03,
    6.37261928875436e-04,
    1.48572235717979e-05,
    5.12229709037114e-08,
    -8.60467152213735e-11,
    2.00018790482477e-13,
    -2.76076847742355e-16,
)
_TANH_B = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)


@jit
def _tanh_f32(x, y):
    """y = tanh(x) for float32 1-D arrays. |x| < 4e-4 returns x itself (exact there, and keeps
    tiny inputs tiny); NaN propagates (the clamps are written so a NaN falls through them)."""
    t = np.float32
    a1, a3, a5, a7 = t(_TANH_A[0]), t(_TANH_A[1]), t(_TANH_A[2]), t(_TANH_A[3])
    a9, a11, a13 = t(_TANH_A[4]), t(_TANH_A[5]), t(_TANH_A[6])
    b0, b2, b4, b6 = t(_TANH_B[0]), t(_TANH_B[1]), t(_TANH_B[2]), t(_TANH_B[3])
    hi, lo, tiny = t(9.0), t(-9.0), t(4e-4)
    for i in range(x.shape[0]):
        v = x[i]
        c = hi if v > hi else v
        c = lo if c < lo else c
        z = c * c
        p = ((((((a13 * z + a11) * z + a9) * z + a7) * z + a5) * z + a3) * z + a1) * c
        q = ((b6 * z + b4) * z + b2) * z + b0
        y[i] = v if abs(v) < tiny else p / q


@jit
def _tanh_chunk(x, y, ws):
    """y = tanh(x) for float64, vectorised (Numba's math.tanh is a scalar libm call, ~25x
    slower than NumPy's SIMD tanh). |x| < 0.625: Cephes' rational approximation; otherwise
    sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.29, where nothing cancels. Both are
    computed and one selected, so the loop has no branch."""
    n = x.shape[0]
    a, e = ws[0, :n], ws[1, :n]
    for i in range(n):
        a[i] = -2.0 * abs(x[i])
    _exp_nonpos(a, 0.0, e, ws[2, :n])
    for i in range(n):
        v = x[i]
        z = v * v
        num = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3
        den = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3
        small = v + v * z * num / den
        big = (1.0 - e[i]) / (1.0 + e[i])
        big = big if v >= 0.0 else -big
        y[i] = small if abs(v) < 0.625 else big


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
