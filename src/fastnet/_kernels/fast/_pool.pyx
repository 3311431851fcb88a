# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Max / average / global-average pooling, forward and backward (OpenMP over the N*C planes).

Every (n, c) plane is independent (backward scatters only inside its own plane), so one
``prange`` over N*C needs no locks. ``nthreads == 1`` runs a plain loop with no OpenMP region.
Max-pool ties: the FIRST maximum in row-major window order wins (strict ``>``); a NaN wins
over numbers and the first NaN is kept, like ``np.argmax``. A window lying wholly in the
padding gives -inf and argmax -1, which backward skips.

Max-pool forward is branch-free: "is v better than the best so far" is a data-dependent branch
that mispredicts about half the time on real activations, and that cost ~16 ns per 2x2 window
(128x64x24x24 took 19 ms). The general path selects by index arithmetic and reloads the winner;
2x2 windows with stride 2 and no padding (nearly every CNN) have their own path, a tournament
(a vs b, c vs d, then the winners), in SSE2 for float32, 4 windows per step: 1.0 ms there.
"""
from cython.parallel cimport prange
from libc.string cimport memset
from libc.math cimport INFINITY
from libc.stdint cimport int64_t

cdef extern from *:
    """
    #include <stdint.h>
    #include <stddef.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    static inline __m128 fn_better4(__m128 v, __m128 best) {
        return _mm_or_ps(_mm_cmpgt_ps(v, best), _mm_and_ps(_mm_cmpunord_ps(v, v), _mm_cmpord_ps(best, best)));
    }
    static inline __m128 fn_sel4(__m128 m, __m128 x, __m128 y) { return _mm_or_ps(_mm_and_ps(m, x), _mm_andnot_ps(m, y)); }
    static inline __m128i fn_seli(__m128i m, __m128i x, __m128i y) { return _mm_or_si128(_mm_and_si128(m, x), _mm_andnot_si128(m, y)); }
    #endif
    static inline int fn_betterf(float v, float best) { return (v > best) | ((v != v) & (best == best)); }
    /* One output row of a 2x2 stride-2 max-pool over input rows r0, r0 + W; argmax = base + offset in r0.
       SSE2 (x86-64 baseline): 4 windows per step, the same tournament and tie rule as the scalar tail. */
    static void fn_maxpool_row2x2_f32(const float* r0, float* yp, int64_t* ap, ptrdiff_t W, ptrdiff_t OW, int64_t base) {
        ptrdiff_t ow = 0;
    #if defined(__SSE2__)
        const float* r1 = r0 + W;
        const __m128i one = _mm_set1_epi32(1), wv = _mm_set1_epi32((int)W), zero = _mm_setzero_si128();
        __m128i col = _mm_setr_epi32(0, 2, 4, 6);
        const __m128i eight = _mm_set1_epi32(8);
        const __m128i b64 = _mm_set1_epi64x(base);
        for (; ow + 4 <= OW; ow += 4) {
            __m128 u0 = _mm_loadu_ps(r0 + 2 * ow), u1 = _mm_loadu_ps(r0 + 2 * ow + 4);
            __m128 l0 = _mm_loadu_ps(r1 + 2 * ow), l1 = _mm_loadu_ps(r1 + 2 * ow + 4);
            __m128 a = _mm_shuffle_ps(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)), b = _mm_shuffle_ps(u0, u1, _MM_SHUFFLE(3, 1, 3, 1));
            __m128 c = _mm_shuffle_ps(l0, l1, _MM_SHUFFLE(2, 0, 2, 0)), d = _mm_shuffle_ps(l0, l1, _MM_SHUFFLE(3, 1, 3, 1));
            __m128 t0 = fn_better4(b, a), m0 = fn_sel4(t0, b, a);
            __m128 t1 = fn_better4(d, c), m1 = fn_sel4(t1, d, c);
            __m128 t2 = fn_better4(m1, m0);
            _mm_storeu_ps(yp + ow, fn_sel4(t2, m1, m0));
            __m128i o0 = _mm_and_si128(_mm_castps_si128(t0), one);
            __m128i o1 = _mm_add_epi32(wv, _mm_and_si128(_mm_castps_si128(t1), one));
            __m128i idx = _mm_add_epi32(col, fn_seli(_mm_castps_si128(t2), o1, o0));
            _mm_storeu_si128((__m128i*)(ap + ow), _mm_add_epi64(b64, _mm_unpacklo_epi32(idx, zero)));
            _mm_storeu_si128((__m128i*)(ap + ow + 2), _mm_add_epi64(b64, _mm_unpackhi_epi32(idx, zero)));
            col = _mm_add_epi32(col, eight);
        }
    #endif
        for (; ow < OW; ow++) {
            ptrdiff_t j0 = 2 * ow + fn_betterf(r0[2 * ow + 1], r0[2 * ow]);
            ptrdiff_t j1 = W + 2 * ow + fn_betterf(r0[W + 2 * ow + 1], r0[W + 2 * ow]);
            ptrdiff_t j = j0 + fn_betterf(r0[j1], r0[j0]) * (j1 - j0);
            yp[ow] = r0[j];
            ap[ow] = base + j;
        }
    }
    """
    void fn_maxpool_row2x2_f32(const float* r0, float* yp, int64_t* ap, Py_ssize_t W, Py_ssize_t OW,
                               int64_t base) noexcept nogil


ctypedef fused real:
    float
    double


cdef inline bint _better(real v, real best) noexcept nogil:
    # v replaces the running best: larger, or the first NaN (NaN beats every number).
    # Bitwise ops, not `or`/`and`: no short-circuit branches (setcc instructions).
    return (v > best) | ((v != v) & (best == best))


cdef inline Py_ssize_t _winner2x2(const real* r0, Py_ssize_t W, Py_ssize_t ow) noexcept nogil:
    """The winner 0..3 (row-major) of the 2x2 window at column 2*ow of rows r0, r0 + W: a tournament (a vs b,
    c vs d, then the winners) in which each match keeps its first operand unless the second is strictly
    better, so the first maximum in row-major order wins. Branch-free: each match yields an offset."""
    cdef Py_ssize_t k0 = _better(r0[2 * ow + 1], r0[2 * ow])
    cdef Py_ssize_t k1 = 2 + _better(r0[W + 2 * ow + 1], r0[W + 2 * ow])
    return k0 + _better(r0[_at(k1, W, ow)], r0[_at(k0, W, ow)]) * (k1 - k0)


cdef inline Py_ssize_t _at(Py_ssize_t k, Py_ssize_t W, Py_ssize_t ow) noexcept nogil:
    """Offset from r0 of winner k of the window at column 2*ow."""
    return (k >> 1) * W + 2 * ow + (k & 1)


cdef void _max_plane(const real* xp, real* yp, int64_t* ap, Py_ssize_t H, Py_ssize_t W,
                     Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                     Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    cdef Py_ssize_t oh, ow, h, w, h0, h1, w0, w1, idx, k
    cdef real best, v
    cdef bint t
    for oh in range(OH):
        h0 = oh * sh - ph
        h1 = h0 + KH
        if h0 < 0:
            h0 = 0
        if h1 > H:
            h1 = H
        for ow in range(OW):
            w0 = ow * sw - pw
            w1 = w0 + KW
            if w0 < 0:
                w0 = 0
            if w1 > W:
                w1 = W
            if h0 >= h1 or w0 >= w1:  # window wholly in the padding
                yp[oh * OW + ow] = -INFINITY
                ap[oh * OW + ow] = -1
                continue
            # start from the window's first real element, so an all -inf window points at it
            idx = h0 * W + w0
            best = xp[idx]
            for h in range(h0, h1):
                for w in range(w0, w1):
                    k = h * W + w
                    t = _better(xp[k], best)
                    # select by index arithmetic + reload, not `k if t else idx`: gcc keeps
                    # that a data-dependent branch, which mispredicts ~half the time on real data
                    idx = idx + t * (k - idx)
                    best = xp[idx]
            yp[oh * OW + ow] = best
            ap[oh * OW + ow] = idx


cdef void _max_plane_2x2(const real* xp, real* yp, int64_t* ap, Py_ssize_t W,
                         Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """2x2 windows, stride 2, no padding (the common case): ``_winner2x2``'s tournament (for float32
    the SSE2 row kernel above, the same tournament four windows at a time)."""
    cdef Py_ssize_t oh, ow, j
    cdef const real* r0
    for oh in range(OH):
        r0 = xp + 2 * oh * W
        if real is float:
            fn_maxpool_row2x2_f32(r0, yp, ap, W, OW, 2 * oh * W)
        else:
            for ow in range(OW):
                j = _at(_winner2x2(r0, W, ow), W, ow)
                yp[ow] = r0[j]
                ap[ow] = 2 * oh * W + j
        yp += OW
        ap += OW


cdef void _max_plane_any(const real* xp, real* yp, int64_t* ap, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                         Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    if KH == 2 and KW == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0 and W < (1 << 30):  # int32 lanes
        _max_plane_2x2(xp, yp, ap, W, OH, OW)
    else:
        _max_plane(xp, yp, ap, H, W, OH, OW, KH, KW, sh, sw, ph, pw)


cdef void _max_plane_back(const real* dyp, const int64_t* ap, real* dxp, Py_ssize_t HW,
                          Py_ssize_t P) noexcept nogil:
    cdef Py_ssize_t p
    cdef int64_t idx
    memset(dxp, 0, HW * sizeof(real))
    for p in range(P):
        idx = ap[p]
        if idx >= 0:
            dxp[idx] += dyp[p]


cdef inline bint _same4(Py_ssize_t* a, Py_ssize_t* b) noexcept nogil:
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3]


cdef void _winners_plane(const real* xp, real* yp, unsigned char* wp, Py_ssize_t W,
                         Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """``_max_plane_2x2`` keeping each window's winner as 0..3 (row-major in the window) instead of a flat
    index: what a fused Conv2D + MaxPool2D keeps for backward."""
    cdef Py_ssize_t oh, ow, k
    cdef const real* r0
    for oh in range(OH):
        r0 = xp + 2 * oh * W
        for ow in range(OW):
            k = _winner2x2(r0, W, ow)
            yp[oh * OW + ow] = r0[_at(k, W, ow)]
            wp[oh * OW + ow] = <unsigned char>k


cdef void _unpool_plane(const real* dyp, const unsigned char* wp, const real* pp, bint relu, real* dxp,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """dx (H, W) of one plane from its 2x2 stride-2 pool's gradient: dy to each window's winner, times
    (pooled output ``pp`` > 0) when ``relu`` (a ReLU before the pool; pp unread otherwise), 0 elsewhere."""
    cdef Py_ssize_t oh, ow, k
    cdef real g
    memset(dxp, 0, H * W * sizeof(real))
    for oh in range(OH):
        for ow in range(OW):
            g = dyp[oh * OW + ow]
            if relu:
                g = g * (1 if pp[oh * OW + ow] > 0 else 0)
            k = wp[oh * OW + ow] & 3  # a window has four positions: never a write outside the plane
            dxp[(2 * oh + (k >> 1)) * W + 2 * ow + (k & 1)] = g


cdef void _avg_plane(const real* xp, real* yp, Py_ssize_t H, Py_ssize_t W,
                     Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                     Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    cdef Py_ssize_t oh, ow, h, w, h0, h1, w0, w1
    cdef real acc, scale = <real>1.0 / <real>(KH * KW)
    for oh in range(OH):
        h0 = oh * sh - ph
        h1 = h0 + KH
        if h0 < 0:
            h0 = 0
        if h1 > H:
            h1 = H
        for ow in range(OW):
            w0 = ow * sw - pw
            w1 = w0 + KW
            if w0 < 0:
                w0 = 0
            if w1 > W:
                w1 = W
            acc = 0
            for h in range(h0, h1):
                for w in range(w0, w1):
                    acc = acc + xp[h * W + w]
            yp[oh * OW + ow] = acc * scale


cdef void _avg_plane_back(const real* dyp, real* dxp, Py_ssize_t H, Py_ssize_t W,
                          Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    cdef Py_ssize_t oh, ow, h, w, h0, h1, w0, w1
    cdef real g, scale = <real>1.0 / <real>(KH * KW)
    memset(dxp, 0, H * W * sizeof(real))
    for oh in range(OH):
        h0 = oh * sh - ph
        h1 = h0 + KH
        if h0 < 0:
            h0 = 0
        if h1 > H:
            h1 = H
        for ow in range(OW):
            w0 = ow * sw - pw
            w1 = w0 + KW
            if w0 < 0:
                w0 = 0
            if w1 > W:
                w1 = W
            g = dyp[oh * OW + ow] * scale
            for h in range(h0, h1):
                for w in range(w0, w1):
                    dxp[h * W + w] += g


def maxpool_forward_into(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, int64_t[:, :, :, ::1] argmax,
                         Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                         Py_ssize_t ph, Py_ssize_t pw, int nthreads):
    cdef Py_ssize_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], P = OH * OW, i
    if NC * P == 0:
        return
    cdef const real* xp = &x[0, 0, 0, 0]
    cdef real* yp = &y[0, 0, 0, 0]
    cdef int64_t* ap = &argmax[0, 0, 0, 0]
    if nthreads <= 1:
        for i in range(NC):
            _max_plane_any(xp + i * H * W, yp + i * P, ap + i * P, H, W, OH, OW, KH, KW, sh, sw, ph, pw)
    else:
        for i in prange(NC, nogil=True, num_threads=nthreads, schedule="static"):
            _max_plane_any(xp + i * H * W, yp + i * P, ap + i * P, H, W, OH, OW, KH, KW, sh, sw, ph, pw)


def maxpool_backward_into(const real[:, :, :, ::1] dy, const int64_t[:, :, :, ::1] argmax,
                          real[:, :, :, ::1] dx, int nthreads):
    cdef Py_ssize_t NC = dx.shape[0] * dx.shape[1], HW = dx.shape[2] * dx.shape[3]
    cdef Py_ssize_t P = dy.shape[2] * dy.shape[3], i
    if NC * HW == 0:
        return
    cdef real* dxp = &dx[0, 0, 0, 0]
    if P == 0:
        memset(dxp, 0, NC * HW * sizeof(real))
        return
    cdef const real* dyp = &dy[0, 0, 0, 0]
    cdef const int64_t* ap = &argmax[0, 0, 0, 0]
    if nthreads <= 1:
        for i in range(NC):
            _max_plane_back(dyp + i * P, ap + i * P, dxp + i * HW, HW, P)
    else:
        for i in prange(NC, nogil=True, num_threads=nthreads, schedule="static"):
            _max_plane_back(dyp + i * P, ap + i * P, dxp + i * HW, HW, P)


def avgpool_forward_into(const real[:, :, :, ::1] x, real[:, :, :, ::1] y,
                         Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                         Py_ssize_t ph, Py_ssize_t pw, int nthreads):
    cdef Py_ssize_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], P = OH * OW, i
    if NC * P == 0:
        return
    cdef const real* xp = &x[0, 0, 0, 0]
    cdef real* yp = &y[0, 0, 0, 0]
    if nthreads <= 1:
        for i in range(NC):
            _avg_plane(xp + i * H * W, yp + i * P, H, W, OH, OW, KH, KW, sh, sw, ph, pw)
    else:
        for i in prange(NC, nogil=True, num_threads=nthreads, schedule="static"):
            _avg_plane(xp + i * H * W, yp + i * P, H, W, OH, OW, KH, KW, sh, sw, ph, pw)


def avgpool_backward_into(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx,
                          Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                          Py_ssize_t ph, Py_ssize_t pw, int nthreads):
    cdef Py_ssize_t NC = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3], P = OH * OW, i
    if NC * H * W == 0:
        return
    cdef real* dxp = &dx[0, 0, 0, 0]
    if P == 0:
        memset(dxp, 0, NC * H * W * sizeof(real))
        return
    cdef const real* dyp = &dy[0, 0, 0, 0]
    if nthreads <= 1:
        for i in range(NC):
            _avg_plane_back(dyp + i * P, dxp + i * H * W, H, W, OH, OW, KH, KW, sh, sw, ph, pw)
    else:
        for i in prange(NC, nogil=True, num_threads=nthreads, schedule="static"):
            _avg_plane_back(dyp + i * P, dxp + i * H * W, H, W, OH, OW, KH, KW, sh, sw, ph, pw)


cdef real _plane_mean(const real* xp, Py_ssize_t HW) noexcept nogil:
    # double accumulator: float32 sums over large planes stay within the 1e-4 contract
    cdef double acc = 0
    cdef Py_ssize_t j
    for j in range(HW):
        acc += xp[j]
    return <real>(acc / HW)


cdef void _plane_fill(real* dxp, real g, Py_ssize_t HW) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(HW):
        dxp[j] = g


def global_avg_forward_into(const real[:, :, :, ::1] x, real[:, ::1] y, int nthreads):
    cdef Py_ssize_t NC = x.shape[0] * x.shape[1], HW = x.shape[2] * x.shape[3], i
    if NC == 0:
        return
    cdef real* yp = &y[0, 0]
    if HW == 0:
        raise ValueError("global_avgpool2d_forward: empty spatial plane")
    cdef const real* xp = &x[0, 0, 0, 0]
    if nthreads <= 1:
        for i in range(NC):
            yp[i] = _plane_mean(xp + i * HW, HW)
    else:
        for i in prange(NC, nogil=True, num_threads=nthreads, schedule="static"):
            yp[i] = _plane_mean(xp + i * HW, HW)


def global_avg_backward_into(const real[:, ::1] dy, real[:, :, :, ::1] dx, int nthreads):
    cdef Py_ssize_t NC = dx.shape[0] * dx.shape[1], HW = dx.shape[2] * dx.shape[3], i
    if NC * HW == 0:
        return
    cdef const real* dyp = &dy[0, 0]
    cdef real* dxp = &dx[0, 0, 0, 0]
    cdef real inv = <real>(1.0 / HW)
    if nthreads <= 1:
        for i in range(NC):
            _plane_fill(dxp + i * HW, dyp[i] * inv, HW)
    else:
        for i in prange(NC, nogil=True, num_threads=nthreads, schedule="static"):
            _plane_fill(dxp + i * HW, dyp[i] * inv, HW)


def maxpool2x2_winners_into(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, unsigned char[:, :, :, ::1] win,
                            int nthreads):
    """y: the 2x2 stride-2 max-pool of x (an odd last row or column dropped); win: each window's winner,
    0..3 in row-major order, by the tie rule of ``maxpool_forward_into``."""
    cdef Py_ssize_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], P = OH * OW, i
    if y.shape[0] != x.shape[0] or y.shape[1] != x.shape[1] or OH != H // 2 or OW != W // 2:
        raise ValueError("maxpool2x2_winners_into: y must be (N, C, H // 2, W // 2)")
    if not _same4(win.shape, y.shape):
        raise ValueError("maxpool2x2_winners_into: win must have y's shape")
    if NC * P == 0:
        return
    cdef const real* xp = &x[0, 0, 0, 0]
    cdef real* yp = &y[0, 0, 0, 0]
    cdef unsigned char* wp = &win[0, 0, 0, 0]
    if nthreads <= 1:
        for i in range(NC):
            _winners_plane(xp + i * H * W, yp + i * P, wp + i * P, W, OH, OW)
    else:
        for i in prange(NC, nogil=True, num_threads=nthreads, schedule="static"):
            _winners_plane(xp + i * H * W, yp + i * P, wp + i * P, W, OH, OW)


def unpool2x2_into(const real[:, :, :, ::1] dy, const unsigned char[:, :, :, ::1] win, const real[:, :, :, ::1] p,
                   bint relu, real[:, :, :, ::1] dx, int nthreads):
    """dx (N, C, H, W): the gradient of a 2x2 stride-2 max-pool whose winners are ``win``, masked by
    ``p > 0`` (p: the pooled output) when ``relu``; dy, win and p are (N, C, H // 2, W // 2)."""
    cdef Py_ssize_t NC = dx.shape[0] * dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3], P = OH * OW, i
    if dy.shape[0] != dx.shape[0] or dy.shape[1] != dx.shape[1] or OH != H // 2 or OW != W // 2:
        raise ValueError("unpool2x2_into: dy must be (N, C, H // 2, W // 2) of dx's (N, C, H, W)")
    if not _same4(win.shape, dy.shape) or (relu and not _same4(p.shape, dy.shape)):
        raise ValueError("unpool2x2_into: win (and p when relu) must have dy's shape")
    if NC * H * W == 0:
        return
    cdef real* dxp = &dx[0, 0, 0, 0]
    if P == 0:
        memset(dxp, 0, NC * H * W * sizeof(real))
        return
    cdef const real* dyp = &dy[0, 0, 0, 0]
    cdef const unsigned char* wp = &win[0, 0, 0, 0]
    cdef const real* pp = &p[0, 0, 0, 0] if relu else dyp  # unread without relu
    if nthreads <= 1:
        for i in range(NC):
            _unpool_plane(dyp + i * P, wp + i * P, pp + i * P, relu, dxp + i * H * W, H, W, OH, OW)
    else:
        for i in prange(NC, nogil=True, num_threads=nthreads, schedule="static"):
            _unpool_plane(dyp + i * P, wp + i * P, pp + i * P, relu, dxp + i * H * W, H, W, OH, OW)
