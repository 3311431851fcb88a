"""The two passes of direct convolution (``fast/direct.py``), as serial Numba kernels.

Each runs inside a task of ``_kernels/tasks.py`` on one chunk of samples (``nogil``: the team's
threads run them side by side), so they have no parallel variant.

Layout: every plane is flat with the padded row width ``Wp = W + 2*pw``. Output pixel ``(oh, ow)``
sits at ``q = oh*Wp + ow`` and the input it reads through tap ``(i, j)`` at ``q + i*Wp + j`` of the
padded input: one offset per tap for the whole plane. So each tap is one long unit-stride loop over
``OH*Wp`` positions, which vectorises; the ``Wp - OW`` positions past each output row are computed
and dropped (the input beyond a channel's plane only ever reaches them). Each tap's loop indexes a
view that starts at the tap's offset with the loop counter alone: with ``buf[o + q]`` Numba's
negative-index wrap-around on ``o + q`` kept LLVM from vectorising at all. A first version looped
along single output rows (26-28 values, too short for 16-lane vectors) and ran 2-9x slower than
im2col; this one is the version measured in ``config.py``.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit


@jit
def _pad_sample(x, n, ph, pw, buf):
    """buf[c*Hp*Wp + (ph + h)*Wp + pw + k] = x[n, c, h, k]; buf's border was zeroed once and stays zero."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Wp = W + 2 * pw
    plane = (H + 2 * ph) * Wp
    for c in range(C):
        for h in range(H):
            o = c * plane + (ph + h) * Wp + pw
            for k in range(W):
                buf[o + k] = x[n, c, h, k]


@jit
def _masked_dy(dy, y, relu, n, f, Wp, g):
    """g[oh*Wp + k] = dy[n, f, oh, k], times ReLU's mask y > 0 when ``relu`` (0 at a NaN y); the
    positions past each row are never written (zero)."""
    OH, OW = dy.shape[2], dy.shape[3]
    for oh in range(OH):
        o = oh * Wp
        if relu:
            for k in range(OW):
                g[o + k] = dy[n, f, oh, k] if y[n, f, oh, k] > 0 else dy[n, f, oh, k] * 0
        else:
            for k in range(OW):
                g[o + k] = dy[n, f, oh, k]


@jit
def forward_planes(x, w, b, ph, pw, relu, y):
    """y[n, f] = b[f] + sum over taps (c, i, j) of w[f, c, i, j] * the padded input shifted by (i, j),
    then max(., 0) when ``relu``; stride 1."""
    m, C, H, W = x.shape
    F, KH, KW = w.shape[0], w.shape[2], w.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    Wp = W + 2 * pw
    plane = (H + 2 * ph) * Wp
    L = OH * Wp
    buf = np.zeros(C * plane + KW, dtype=x.dtype)  # + KW: the last row's overhang reads zeros
    acc = np.empty(L, dtype=x.dtype)
    for n in range(m):
        _pad_sample(x, n, ph, pw, buf)
        for f in range(F):
            bf = b[f]
            for q in range(L):
                acc[q] = bf
            for c in range(C):
                for i in range(KH):
                    for j in range(KW):
                        wv = w[f, c, i, j]
                        src = buf[c * plane + i * Wp + j :]  # a view: q alone indexes it (see above)
                        for q in range(L):
                            acc[q] += wv * src[q]
            for oh in range(OH):
                o = oh * Wp
                if relu:  # max(v, 0) that keeps a NaN, like np.maximum
                    for k in range(OW):
                        v = acc[o + k]
                        y[n, f, oh, k] = v * 0 if v < 0 else v
                else:
                    for k in range(OW):
                        y[n, f, oh, k] = acc[o + k]


@jit
def backward_planes(dy, y, relu, x, w, ph, pw, need_dx, dw, db, dx):
    """dw[f, c, i, j] and db[f] of the chunk's samples (overwritten) and, when ``need_dx``, dx: the adjoint
    of :func:`forward_planes`, each tap's w[f, c, i, j] * dy added into the padded input at the tap's offset,
    then the padding cropped off. dy is masked by ReLU when ``relu``, once per (sample, filter) for both."""
    m, F, OH, OW = dy.shape
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    KH, KW = w.shape[2], w.shape[3]
    Wp = W + 2 * pw
    plane = (H + 2 * ph) * Wp
    L = OH * Wp
    buf = np.zeros(C * plane + KW, dtype=x.dtype)
    dxp = np.empty(C * plane + KW, dtype=x.dtype)
    g = np.zeros(L, dtype=dy.dtype)
    dw[:] = 0
    db[:] = 0
    for n in range(m):
        _pad_sample(x, n, ph, pw, buf)
        if need_dx:
            dxp[:] = 0
        for f in range(F):
            _masked_dy(dy, y, relu, n, f, Wp, g)
            s = g[0] * 0  # in dy's dtype, so the reductions vectorise
            for q in range(L):
                s += g[q]
            db[f] += s
            for c in range(C):
                for i in range(KH):
                    for j in range(KW):
                        o = c * plane + i * Wp + j
                        src = buf[o:]  # views: q alone indexes them (see above)
                        s = g[0] * 0
                        for q in range(L):
                            s += g[q] * src[q]
                        dw[f, c, i, j] += s
                        if need_dx:
                            wv = w[f, c, i, j]
                            dst = dxp[o:]
                            for q in range(L):
                                dst[q] += wv * g[q]
        if need_dx:
            for c in range(C):
                for h in range(H):
                    o = c * plane + (ph + h) * Wp + pw
                    for k in range(W):
                        dx[n, c, h, k] = dxp[o + k]
