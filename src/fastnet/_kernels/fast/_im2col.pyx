# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""im2col / col2im and the layout shuffles around the convolution GEMM (OpenMP, fused float types).

Column layout (the kernel contract): ``cols[(c, kh, kw), (n, oh, ow)]``, shape (C*KH*KW, N*OH*OW),
C-contiguous. Every (n, c) plane owns a disjoint block of it (rows c*KH*KW.., columns n*OH*OW..),
so one ``prange`` over the N*C planes needs no locks and covers both a large batch and batch 1
(where it runs over channels). ``nthreads == 1`` runs a plain loop: no OpenMP region at all.
"""
from cython.parallel cimport prange
from libc.string cimport memset, memcpy

ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _first_valid(Py_ssize_t off, Py_ssize_t s) noexcept nogil:
    # smallest o >= 0 with o*s + off >= 0
    if off >= 0:
        return 0
    return (-off + s - 1) // s


cdef inline Py_ssize_t _end_valid(Py_ssize_t off, Py_ssize_t s, Py_ssize_t size, Py_ssize_t nout) noexcept nogil:
    # one past the largest o < nout with o*s + off < size
    cdef Py_ssize_t e
    if size - off <= 0:
        return 0
    e = (size - off - 1) // s + 1
    return e if e < nout else nout


cdef void _im2col_plane(const real* xp, real* cp, Py_ssize_t ld,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """One input plane -> KH*KW rows of OH*OW columns; row r starts at cp + r*ld."""
    cdef Py_ssize_t ki, kj, oh, ow, h, w0, o0, o1
    cdef real* dst
    cdef const real* src
    for ki in range(KH):
        for kj in range(KW):
            dst = cp + (ki * KW + kj) * ld
            o0 = _first_valid(kj - pw, sw)
            o1 = _end_valid(kj - pw, sw, W, OW)
            if o0 > OW:
                o0 = OW
            if o1 < o0:
                o1 = o0
            for oh in range(OH):
                h = oh * sh - ph + ki
                if h < 0 or h >= H:
                    memset(dst, 0, OW * sizeof(real))
                else:
                    src = xp + h * W
                    w0 = kj - pw
                    for ow in range(o0):
                        dst[ow] = 0
                    if sw == 1:
                        memcpy(dst + o0, src + o0 + w0, (o1 - o0) * sizeof(real))
                    else:
                        for ow in range(o0, o1):
                            dst[ow] = src[ow * sw + w0]
                    for ow in range(o1, OW):
                        dst[ow] = 0
                dst += OW


cdef void _col2im_plane(const real* cp, real* xp, Py_ssize_t ld,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                        Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """Adjoint of _im2col_plane: overwrites the plane with the sum of its column entries."""
    cdef Py_ssize_t ki, kj, oh, ow, h, w0, o0, o1
    cdef const real* src
    cdef real* dst
    memset(xp, 0, H * W * sizeof(real))
    for ki in range(KH):
        for kj in range(KW):
            src = cp + (ki * KW + kj) * ld
            o0 = _first_valid(kj - pw, sw)
            o1 = _end_valid(kj - pw, sw, W, OW)
            w0 = kj - pw
            for oh in range(OH):
                h = oh * sh - ph + ki
                if h >= 0 and h < H:
                    dst = xp + h * W
                    if sw == 1:
                        for ow in range(o0, o1):
                            dst[ow + w0] += src[ow]
                    else:
                        for ow in range(o0, o1):
                            dst[ow * sw + w0] += src[ow]
                src += OW


def _check_cols(str who, Py_ssize_t r, Py_ssize_t q, Py_ssize_t N, Py_ssize_t K, Py_ssize_t P,
                bint sample_major):
    """(row stride, offset between samples) of the chosen layout, after checking the shape."""
    if sample_major:
        if r != N * K or q != P:
            raise ValueError(f"{who}: sample-major cols must be ({N * K}, {P}), got ({r}, {q})")
        return P, K * P
    if r != K or q != N * P:
        raise ValueError(f"{who}: cols must be ({K}, {N * P}), got ({r}, {q})")
    return N * P, P


def im2col_into(const real[:, :, :, ::1] x, real[:, ::1] cols,
                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t ph, Py_ssize_t pw, int nthreads, bint sample_major=False):
    """Fill ``cols`` from ``x`` (N, C, H, W).

    ``sample_major=False``: contract layout (C*KH*KW, N*OH*OW). ``True``: (N*C*KH*KW, OH*OW),
    i.e. a stack of N per-sample (C*KH*KW, OH*OW) matrices.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = (H + 2 * ph - KH) // sh + 1, OW = (W + 2 * pw - KW) // sw + 1
    cdef Py_ssize_t P = OH * OW, i, n, c
    cdef Py_ssize_t ld, soff
    ld, soff = _check_cols("im2col_into", cols.shape[0], cols.shape[1], N, C * KH * KW, P, sample_major)
    if N * C == 0 or P == 0:
        return
    cdef const real* xp = &x[0, 0, 0, 0]
    cdef real* cp = &cols[0, 0]
    if nthreads <= 1:
        with nogil:  # serial, but other threads run meanwhile (fastnet's task team)
            for i in range(N * C):
                n = i // C
                c = i - n * C
                _im2col_plane(xp + i * H * W, cp + c * KH * KW * ld + n * soff, ld, H, W, OH, OW, KH, KW, sh, sw, ph, pw)
    else:
        for i in prange(N * C, nogil=True, num_threads=nthreads, schedule="static"):
            n = i // C
            c = i - n * C
            _im2col_plane(xp + i * H * W, cp + c * KH * KW * ld + n * soff, ld, H, W, OH, OW, KH, KW, sh, sw, ph, pw)


def col2im_into(const real[:, ::1] cols, real[:, :, :, ::1] dx,
                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t ph, Py_ssize_t pw, int nthreads, bint sample_major=False):
    """Overwrite ``dx`` (N, C, H, W) with the adjoint of im2col applied to ``cols``
    (layout chosen by ``sample_major`` as in :func:`im2col_into`)."""
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = (H + 2 * ph - KH) // sh + 1, OW = (W + 2 * pw - KW) // sw + 1
    cdef Py_ssize_t P = OH * OW, i, n, c
    cdef Py_ssize_t ld, soff
    ld, soff = _check_cols("col2im_into", cols.shape[0], cols.shape[1], N, C * KH * KW, P, sample_major)
    if N * C * H * W == 0:
        return
    cdef real* xp = &dx[0, 0, 0, 0]
    if P == 0:
        memset(xp, 0, N * C * H * W * sizeof(real))
        return
    cdef const real* cp = &cols[0, 0]
    if nthreads <= 1:
        with nogil:  # serial, but other threads run meanwhile (fastnet's task team)
            for i in range(N * C):
                n = i // C
                c = i - n * C
                _col2im_plane(cp + c * KH * KW * ld + n * soff, xp + i * H * W, ld, H, W, OH, OW, KH, KW, sh, sw, ph, pw)
    else:
        for i in prange(N * C, nogil=True, num_threads=nthreads, schedule="static"):
            n = i // C
            c = i - n * C
            _col2im_plane(cp + c * KH * KW * ld + n * soff, xp + i * H * W, ld, H, W, OH, OW, KH, KW, sh, sw, ph, pw)


cdef inline void _add_bias_row(const real* s, real* d, real bf, Py_ssize_t P, bint relu) noexcept nogil:
    cdef Py_ssize_t p
    cdef real v
    if relu:
        for p in range(P):
            v = s[p] + bf
            d[p] = 0 if v < 0 else v  # max(v, 0) that keeps a NaN, like np.maximum
    else:
        for p in range(P):
            d[p] = s[p] + bf


def fnp_to_nfp_bias(const real[:, ::1] src, const real[::1] b, real[:, :, ::1] dst, int nthreads,
                    bint relu=False):
    """dst[n, f, :] = src[f, n*P:(n+1)*P] + b[f]: GEMM output (F, N*P) -> NCHW, bias fused
    (and ReLU when ``relu``)."""
    cdef Py_ssize_t N = dst.shape[0], F = dst.shape[1], P = dst.shape[2], i, n, f
    if src.shape[0] != F or src.shape[1] != N * P or b.shape[0] != F:
        raise ValueError("fnp_to_nfp_bias: shape mismatch")
    if N * F * P == 0:
        return
    if nthreads <= 1:
        with nogil:  # serial, but other threads run meanwhile (fastnet's task team)
            for i in range(N * F):
                n = i // F
                f = i - n * F
                _add_bias_row(&src[f, n * P], &dst[n, f, 0], b[f], P, relu)
    else:
        for i in prange(N * F, nogil=True, num_threads=nthreads, schedule="static"):
            n = i // F
            f = i - n * F
            _add_bias_row(&src[f, n * P], &dst[n, f, 0], b[f], P, relu)


def nfp_bias_(real[:, :, ::1] y, const real[::1] b, int nthreads, bint relu=False):
    """In place: y[n, f, :] += b[f] (then ReLU when ``relu``)."""
    cdef Py_ssize_t N = y.shape[0], F = y.shape[1], P = y.shape[2], i, n, f
    if b.shape[0] != F:
        raise ValueError("nfp_bias_: shape mismatch")
    if N * F * P == 0:
        return
    if nthreads <= 1:
        with nogil:  # serial, but other threads run meanwhile (fastnet's task team)
            for i in range(N * F):
                n = i // F
                f = i - n * F
                _add_bias_row(&y[n, f, 0], &y[n, f, 0], b[f], P, relu)
    else:
        for i in prange(N * F, nogil=True, num_threads=nthreads, schedule="static"):
            n = i // F
            f = i - n * F
            _add_bias_row(&y[n, f, 0], &y[n, f, 0], b[f], P, relu)


cdef inline void _relu_mask_row(const real* g, const real* y, real* d, Py_ssize_t P) noexcept nogil:
    cdef Py_ssize_t p
    for p in range(P):
        d[p] = g[p] if y[p] > 0 else 0  # ReLU's gradient: 0 at y <= 0 (and at a NaN y)


def nfp_to_fnp_relu(const real[:, :, ::1] src, const real[:, :, ::1] y, real[:, ::1] dst, int nthreads):
    """:func:`nfp_to_fnp` of ReLU's input gradient: dst[f, n*P + p] = src[n, f, p] * (y[n, f, p] > 0),
    ``y`` the ReLU output (NCHW). ``dst`` may have the shape (F, N*P) or, stacked, (N*F, P)."""
    cdef Py_ssize_t N = src.shape[0], F = src.shape[1], P = src.shape[2], i, n, f
    cdef bint stacked = dst.shape[0] == N * F and dst.shape[1] == P
    if y.shape[0] != N or y.shape[1] != F or y.shape[2] != P or not (
            stacked or (dst.shape[0] == F and dst.shape[1] == N * P)):
        raise ValueError("nfp_to_fnp_relu: shape mismatch")
    if N * F * P == 0:
        return
    cdef real* d0 = &dst[0, 0]
    if nthreads <= 1:
        with nogil:  # serial, but other threads run meanwhile (fastnet's task team)
            for i in range(N * F):
                n = i // F
                f = i - n * F
                _relu_mask_row(&src[n, f, 0], &y[n, f, 0], d0 + (i * P if stacked else (f * N + n) * P), P)
    else:
        for i in prange(N * F, nogil=True, num_threads=nthreads, schedule="static"):
            n = i // F
            f = i - n * F
            _relu_mask_row(&src[n, f, 0], &y[n, f, 0], d0 + (i * P if stacked else (f * N + n) * P), P)


cdef inline void _transpose_plane(const real* g, const real* y, real* d, Py_ssize_t F, Py_ssize_t P,
                                  bint relu) noexcept nogil:
    # d[p, f] = g[f, p] (* (y[f, p] > 0)): one sample's (F, P) gradient to pixel-major (P, F)
    cdef Py_ssize_t f, p
    cdef real v
    for p in range(P):
        for f in range(F):
            v = g[f * P + p]
            if relu and not (y[f * P + p] > 0):
                v = 0
            d[p * F + f] = v


def nfp_to_npf(const real[:, :, ::1] src, y, real[:, ::1] dst, int nthreads):
    """dst[n*P + p, f] = src[n, f, p]: NCHW upstream gradient -> pixel-major (N*P, F) GEMM operand,
    masked by ReLU's derivative (``y`` > 0, ``y`` the ReLU output shaped like ``src``) unless ``y`` is None."""
    cdef Py_ssize_t N = src.shape[0], F = src.shape[1], P = src.shape[2], n
    cdef const real[:, :, ::1] yv
    cdef bint relu = y is not None
    if dst.shape[0] != N * P or dst.shape[1] != F:
        raise ValueError("nfp_to_npf: shape mismatch")
    if relu:
        yv = y
        if yv.shape[0] != N or yv.shape[1] != F or yv.shape[2] != P:
            raise ValueError("nfp_to_npf: y must be shaped like src")
    else:
        yv = src
    if N * F * P == 0:
        return
    cdef const real* gp = &src[0, 0, 0]
    cdef const real* yp = &yv[0, 0, 0]
    cdef real* dp = &dst[0, 0]
    if nthreads <= 1:
        with nogil:
            for n in range(N):
                _transpose_plane(gp + n * F * P, yp + n * F * P, dp + n * P * F, F, P, relu)
    else:
        for n in prange(N, nogil=True, num_threads=nthreads, schedule="static"):
            _transpose_plane(gp + n * F * P, yp + n * F * P, dp + n * P * F, F, P, relu)
