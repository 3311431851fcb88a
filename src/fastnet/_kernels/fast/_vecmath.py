"""Vectorisable math for the Numba kernels: exp, tanh, sigmoid and row max, written so LLVM
emits SIMD loops (used by ``activations.py``, ``losses.py`` and, through the activation
blocks, ``dense.py``).

Without Intel SVML, Numba's ``math.exp``/``math.tanh`` are scalar libm calls, 4-25x slower
than NumPy's SIMD loops; these polynomials match NumPy's accuracy at SIMD speed. Constants
are cast to the array's dtype (``dtype.type``) so float32 stays float32 end to end.
"""

import numpy as np

from .._jit import jit

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
