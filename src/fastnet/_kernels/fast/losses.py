"""Loss kernels, compiled (twin of ``reference/losses.py``): ``(loss_sum, grad)``.

Softmax cross-entropy is fused per row: max, log-sum-exp (the exponentials written
straight into the gradient array), loss and gradient ``p * sum(t) - t`` (with label
smoothing) while the row is in cache; nothing of size (N, C) is allocated besides the
gradient. The elementwise losses are one pass each.

Partial sums are float64 and taken over a FIXED partition (one per row, or per block of
``BLOCK`` elements), then added in order, so the loss does not depend on the thread count.
"""

import math

import numpy as np
from numba import prange

from .. import config, parallel
from .._jit import jit, pjit
from ..config import BLOCK, CHUNK
from ._vecmath import _LN2_HI32, _LN2_HI64, _LN2_LO32, _LN2_LO64, _exp_nonpos, _row_max

__all__ = ["softmax_cross_entropy", "sigmoid_bce_with_logits", "bce_on_probs", "mse"]

# Elementwise loss codes (one block routine, branch hoisted out of the loop).
_BCE_LOGITS, _BCE_PROBS, _MSE = 0, 1, 2


# --- softmax cross-entropy ---


@jit
def _lse_row(x, g, r, scratch):
    """log-sum-exp of row r of x; leaves exp(x - max) in row r of g (vectorised exp)."""
    c = x.shape[1]
    mx = _row_max(x[r])
    gr = g[r]
    _exp_nonpos(x[r], mx, gr, scratch)
    s = 0.0
    for j in range(c):
        s += gr[j]
    return mx + math.log(s), s


@jit
def _sce_ids_rows(x, ids, ls, g, out, r0, r1):
    """Integer targets: loss_r = lse - (1-ls) x[k] - ls/C sum_j x[j]; g = p - ls/C - (1-ls)[j==k]."""
    c = x.shape[1]
    t = g.dtype.type
    off = ls / c
    scratch = np.empty(c, dtype=g.dtype)
    for r in range(r0, r1):
        lse, s = _lse_row(x, g, r, scratch)
        inv = t(1.0 / s)
        sx = 0.0
        for j in range(c):
            sx += x[r, j]
            g[r, j] = g[r, j] * inv - t(off)
        k = ids[r]
        g[r, k] -= t(1.0 - ls)
        out[r] = lse - (1.0 - ls) * x[r, k] - off * sx


@jit
def _sce_probs_rows(x, tgt, ls, g, out, r0, r1):
    """Probability targets t' = (1-ls) t + ls/C: loss_r = -sum t'(x - lse); g = p sum(t') - t'."""
    c = x.shape[1]
    t = g.dtype.type
    off = ls / c
    scratch = np.empty(c, dtype=g.dtype)
    for r in range(r0, r1):
        lse, s = _lse_row(x, g, r, scratch)
        tsum = 0.0
        acc = 0.0
        for j in range(c):
            tj = (1.0 - ls) * tgt[r, j] + off
            tsum += tj
            acc += tj * (x[r, j] - lse)
        scale = t(tsum / s)
        for j in range(c):
            g[r, j] = g[r, j] * scale - t((1.0 - ls) * tgt[r, j] + off)
        out[r] = -acc


@jit
def _sce_ids_serial(x, ids, ls, g, out):
    _sce_ids_rows(x, ids, ls, g, out, 0, x.shape[0])


@pjit
def _sce_ids_parallel(x, ids, ls, g, out, rows):
    n = x.shape[0]
    for k in prange((n + rows - 1) // rows):
        _sce_ids_rows(x, ids, ls, g, out, k * rows, min(n, (k + 1) * rows))


@jit
def _sce_probs_serial(x, tgt, ls, g, out):
    _sce_probs_rows(x, tgt, ls, g, out, 0, x.shape[0])


@pjit
def _sce_probs_parallel(x, tgt, ls, g, out, rows):
    n = x.shape[0]
    for k in prange((n + rows - 1) // rows):
        _sce_probs_rows(x, tgt, ls, g, out, k * rows, min(n, (k + 1) * rows))


def softmax_cross_entropy(logits, target, label_smoothing):
    where = "softmax_cross_entropy"
    x = np.ascontiguousarray(logits)
    if x.ndim != 2:
        raise ValueError(f"{where}: logits must be 2-D (N, C), got shape {x.shape}")
    n, c = x.shape
    target = np.asarray(target)
    ls = float(label_smoothing)
    g = np.empty_like(x)
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return 0.0, g
    rows = max(1, BLOCK // max(1, c))
    if target.ndim == 1 and target.dtype.kind in "iu":
        if target.shape[0] != n:
            raise ValueError(f"{where}: integer target must have shape ({n},), got {target.shape}")
        ids = np.ascontiguousarray(target, dtype=np.int64)
        if ids.min() < 0 or ids.max() >= c:
            raise ValueError(f"{where}: class ids must be in [0, {c}), got min {ids.min()} max {ids.max()}")
        parallel.run(
            x.size,
            config.COMPUTE_BOUND_MIN,
            _sce_ids_serial,
            _sce_ids_parallel,
            (x, ids, ls, g, out),
            (x, ids, ls, g, out, rows),
        )
    else:
        if target.shape != x.shape:
            raise ValueError(f"{where}: probability target must have shape {x.shape}, got {target.shape}")
        tgt = np.ascontiguousarray(target, dtype=x.dtype)
        parallel.run(
            x.size,
            config.COMPUTE_BOUND_MIN,
            _sce_probs_serial,
            _sce_probs_parallel,
            (x, tgt, ls, g, out),
            (x, tgt, ls, g, out, rows),
        )
    return float(out.sum()), g


# --- elementwise losses: BCE from logits, BCE on probabilities, MSE ---


@jit
def _log1p_unit(e, terms):
    """log(1 + e) for -1/2 <= e <= 1, vectorisable (Numba's math.log1p is a scalar libm call):
    2 atanh(s) with s = e / (2 + e), |s| <= 1/3, a series in s**2 <= 1/9 cut after ``terms``
    terms (7 reach float32's, 17 float64's rounding). Exact in relative terms for tiny e."""
    t = type(e)
    s = e / (t(2.0) + e)
    w = s * s
    p = t(1.0) / t(2 * terms - 1)
    for k in range(terms - 2, -1, -1):
        p = p * w + t(1.0) / t(2 * k + 1)
    return t(2.0) * s * p


@jit
def _bce_logits_chunk(x, tgt, g, ws):
    """BCE from logits on one chunk: max(x,0) - x t + log1p(exp(-|x|)), grad sigmoid(x) - t."""
    n = x.shape[0]
    t = g.dtype.type
    zero, one = t(0.0), t(1.0)
    terms = 7 if g.itemsize == 4 else 17
    a, e = ws[0, :n], ws[1, :n]
    for i in range(n):
        a[i] = -abs(x[i])
    _exp_nonpos(a, zero, e, ws[2, :n])  # exp of a non-positive number: never overflows
    acc = 0.0
    for i in range(n):
        v, y, ei = x[i], tgt[i], e[i]
        q = one / (one + ei)
        g[i] = (q if v >= zero else ei * q) - y
        a[i] = (v if v > zero else zero) - v * y
    # The log1p series in its own loop, with a constant term count per dtype, so LLVM
    # unrolls it and vectorises across elements.
    if terms == 7:
        for i in range(n):
            acc += a[i] + _log1p_unit(e[i], 7)
    else:
        for i in range(n):
            acc += a[i] + _log1p_unit(e[i], 17)
    return acc


_SQRT2 = 1.4142135623730951


@jit
def _log_normal(a, out, scratch):
    """out[i] = log(a[i]) for positive normal finite a[i] (1-D, three different arrays),
    vectorisable (Numba's math.log is a scalar libm call, ~5x slower than NumPy's SIMD log).
    a = m 2**k with m in [sqrt(1/2), sqrt(2)) read from the bits; log m = 2 atanh(s),
    s = (m - 1)/(m + 1), |s| <= 0.172: an odd series cut at s**11 (float32) / s**25 (float64)."""
    n = a.shape[0]
    if out.itemsize == 4:
        t = np.float32
        ia = a.view(np.int32)
        im = scratch.view(np.int32)
        for i in range(n):
            bits = ia[i]
            im[i] = (bits & np.int32(0x007FFFFF)) | np.int32(0x3F800000)
            out[i] = t(((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(127))
        for i in range(n):
            m = scratch[i]
            k = out[i]
            big = m > t(_SQRT2)
            m = m * t(0.5) if big else m
            k = k + t(1.0) if big else k
            s = (m - t(1.0)) / (m + t(1.0))
            w = s * s
            p = ((((t(1.0 / 11) * w + t(1.0 / 9)) * w + t(1.0 / 7)) * w + t(1.0 / 5)) * w + t(1.0 / 3)) * w
            out[i] = k * t(_LN2_HI32) + (t(2.0) * s + (t(2.0) * s * p + k * t(_LN2_LO32)))
    else:
        ia = a.view(np.int64)
        im = scratch.view(np.int64)
        for i in range(n):
            bits = ia[i]
            im[i] = (bits & np.int64(0x000FFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000)
            out[i] = np.float64(((bits >> np.int64(52)) & np.int64(0x7FF)) - np.int64(1023))
        for i in range(n):
            m = scratch[i]
            k = out[i]
            big = m > _SQRT2
            m = m * 0.5 if big else m
            k = k + 1.0 if big else k
            s = (m - 1.0) / (m + 1.0)
            w = s * s
            p = 1.0 / 25
            p = p * w + 1.0 / 23
            p = p * w + 1.0 / 21
            p = p * w + 1.0 / 19
            p = p * w + 1.0 / 17
            p = p * w + 1.0 / 15
            p = p * w + 1.0 / 13
            p = p * w + 1.0 / 11
            p = p * w + 1.0 / 9
            p = p * w + 1.0 / 7
            p = p * w + 1.0 / 5
            p = p * w + 1.0 / 3
            p = p * w
            out[i] = k * _LN2_HI64 + (2.0 * s + (2.0 * s * p + k * _LN2_LO64))


@jit
def _bce_probs_chunk(x, tgt, eps, g, ws):
    """BCE on probabilities clipped to [eps, 1 - eps] (eps a normal number), one chunk:
    -(t log p + (1 - t) log1p(-p)), gradient (p - t) / (p (1 - p)).
    log1p(-p) is log(1 - p) for p > 1/2 (1 - p exact there) and the atanh series of
    ``_log1p_unit`` for p <= 1/2 (no cancellation for small p). The two terms go to separate
    sums: under fastmath's reassociation LLVM rewrites t a + (1 - t) b as t (a - b) + b, which
    loses a -1e-7 log next to a -16 one (seen: a float32 loss of exactly 0)."""
    n = x.shape[0]
    t = g.dtype.type
    one = t(1.0)
    terms = 7 if g.itemsize == 4 else 17
    a, q, la, lq = ws[0, :n], ws[1, :n], ws[2, :n], ws[3, :n]
    lo, hi = eps, one - eps
    for i in range(n):
        p = min(max(x[i], lo), hi)
        a[i] = p
        q[i] = one - p
    _log_normal(a, la, ws[4, :n])
    _log_normal(q, lq, ws[5, :n])
    acc1 = 0.0  # sum of t log p
    acc2 = 0.0  # sum of (1 - t) log1p(-p): both <= 0, so adding them cancels nothing
    if terms == 7:
        for i in range(n):
            p, y = a[i], tgt[i]
            l1p = lq[i] if p > t(0.5) else _log1p_unit(-p, 7)
            acc1 += y * la[i]
            acc2 += (one - y) * l1p
            g[i] = (p - y) / (p * (one - p))
    else:
        for i in range(n):
            p, y = a[i], tgt[i]
            l1p = lq[i] if p > t(0.5) else _log1p_unit(-p, 17)
            acc1 += y * la[i]
            acc2 += (one - y) * l1p
            g[i] = (p - y) / (p * (one - p))
    acc = -(acc1 + acc2)
    return acc


@jit
def _elem_block(x, tgt, eps64, g, code):
    """One block: gradient into g, returns the block's loss sum (float64)."""
    t = g.dtype.type
    one = t(1.0)
    eps = t(eps64)
    acc = 0.0
    n = x.shape[0]
    if code == 0:
        ws = np.empty((3, min(n, CHUNK)), dtype=g.dtype)
        for s in range(0, n, CHUNK):
            acc += _bce_logits_chunk(x[s : s + CHUNK], tgt[s : s + CHUNK], g[s : s + CHUNK], ws)
    elif code == 1:
        tiny = t(1.1754943508222875e-38) if g.itemsize == 4 else t(2.2250738585072014e-308)
        if eps >= tiny:
            ws = np.empty((6, min(n, CHUNK)), dtype=g.dtype)
            for s in range(0, n, CHUNK):
                acc += _bce_probs_chunk(x[s : s + CHUNK], tgt[s : s + CHUNK], eps, g[s : s + CHUNK], ws)
        else:  # eps below the smallest normal: subnormal logs, not worth a vector path
            lo, hi = eps, one - eps
            for i in range(n):
                p = min(max(x[i], lo), hi)
                y = tgt[i]
                acc -= y * math.log(p) + (one - y) * math.log1p(-p)
                g[i] = (p - y) / (p * (one - p))
    else:
        for i in range(n):
            d = x[i] - tgt[i]
            acc += d * d
            g[i] = t(2.0) * d
    return acc


@jit
def _elem_serial(x, tgt, eps, g, code, partial):
    n = x.shape[0]
    for k in range(partial.shape[0]):
        s = k * BLOCK
        e = min(n, s + BLOCK)
        partial[k] = _elem_block(x[s:e], tgt[s:e], eps, g[s:e], code)


@pjit
def _elem_parallel(x, tgt, eps, g, code, partial):
    n = x.shape[0]
    for k in prange(partial.shape[0]):
        s = k * BLOCK
        e = min(n, s + BLOCK)
        partial[k] = _elem_block(x[s:e], tgt[s:e], eps, g[s:e], code)


def _elementwise(pred, target, eps, code, where):
    x = np.ascontiguousarray(pred)
    target = np.asarray(target)
    if target.shape != x.shape:
        raise ValueError(f"{where}: target must have the prediction's shape {x.shape}, got {target.shape}")
    tgt = np.ascontiguousarray(target, dtype=x.dtype)
    g = np.empty_like(x)
    xf, tf, gf = x.reshape(-1), tgt.reshape(-1), g.reshape(-1)
    n = xf.shape[0]
    partial = np.empty((n + BLOCK - 1) // BLOCK, dtype=np.float64)
    kind_min = config.MEMORY_BOUND_MIN if code == _MSE else config.COMPUTE_BOUND_MIN
    # Both variants write one sum per block of BLOCK elements (the same partition), added here
    # in the same order: the loss does not depend on the variant or the thread count.
    parallel.run(n, kind_min, _elem_serial, _elem_parallel, (xf, tf, float(eps), gf, code, partial))
    return float(partial.sum()), g


def sigmoid_bce_with_logits(logits, target):
    return _elementwise(logits, target, 0.0, _BCE_LOGITS, "sigmoid_bce_with_logits")


def bce_on_probs(probs, target, eps):
    return _elementwise(probs, target, eps, _BCE_PROBS, "bce_on_probs")


def mse(pred, target):
    return _elementwise(pred, target, 0.0, _MSE, "mse")
