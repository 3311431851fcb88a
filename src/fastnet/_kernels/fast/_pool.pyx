# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Max / average / global-average pooling, forward and backward (OpenMP over the N*C planes).

Every (n, c) plane is independent (backward scatters only inside its own plane), so one
``prange`` over N*C needs no locks. ``nthreads == 1`` runs a plain loop with no OpenMP region.
Max-pool ties: the FIRST maximum in row-major window order wins (strict ``>``); a NaN wins
over numbers and the first NaN is kept, like ``np.argmax``. A window lying wholly in the
padding gives -inf and argmax -1, which backward skips.
"""
from cython.parallel cimport prange
from libc.string cimport memset
from libc.math cimport INFINITY
from libc.stdint cimport int64_t

ctypedef fused real:
    float
    double


cdef void _max_plane(const real* xp, real* yp, int64_t* ap, Py_ssize_t H, Py_ssize_t W,
                     Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                     Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    cdef Py_ssize_t oh, ow, h, w, h0, h1, w0, w1, idx
    cdef real best, v
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
                    v = xp[h * W + w]
                    if v > best or (v != v and best == best):
                        best = v
                        idx = h * W + w
            yp[oh * OW + ow] = best
            ap[oh * OW + ow] = idx


cdef void _max_plane_back(const real* dyp, const int64_t* ap, real* dxp, Py_ssize_t HW,
                          Py_ssize_t P) noexcept nogil:
    cdef Py_ssize_t p
    cdef int64_t idx
    memset(dxp, 0, HW * sizeof(real))
    for p in range(P):
        idx = ap[p]
        if idx >= 0:
            dxp[idx] += dyp[p]


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
            _max_plane(xp + i * H * W, yp + i * P, ap + i * P, H, W, OH, OW, KH, KW, sh, sw, ph, pw)
    else:
        for i in prange(NC, nogil=True, num_threads=nthreads, schedule="static"):
            _max_plane(xp + i * H * W, yp + i * P, ap + i * P, H, W, OH, OW, KH, KW, sh, sw, ph, pw)


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
