"""The four tile transforms of Winograd F(2x2, 3x3) (``fast/winograd.py``), as serial Numba kernels.

Each is the loop form of one einsum of ``reference/winograd.py`` with the constant 0/+-1 matrices
written out as additions. They run inside a task of ``_kernels/tasks.py`` on one sample chunk
(``nogil``: the threads of the team run them side by side), so they have no parallel variant.

The Winograd-domain arrays are (16, channels, m*T): row xi = 4*i + j of the 4x4 domain, then the
channel, then the chunk's tiles ordered (sample, tile row, tile column), T = th*tw per sample.
Every transform is two passes (rows, then columns of the 4x4 tiles) whose innermost loops run over
tiles with unit-stride (or stride-2) access and plain indexing, so they vectorise; no array views
inside the loops (each one costs a reference count). The first version, one tile at a time with 16
scattered loads/stores, was 2-4x slower per transform (2026-12-01, single thread). Where a pass can,
its loop runs over all T tiles of a plane rather than over one tile row (``tw`` = 4 to 14 tiles: too
short for 16-lane vectors): the forward transforms keep the even and odd padded rows (or output
rows) apart so tile ``t``'s rows are at ``t`` and ``t + tw``. That made ``input_tiles`` 1.1-1.5x and
``output_tiles`` about 1.45x faster, bit for bit the same (interleaved, single thread, under load;
2026-12-01). Loops that write the rows of V or dM (16 rows F*m*T apart) write one row per loop:
four interleaved store streams ran at half the speed, and splitting them made ``output_grad_tiles``
1.2-1.4x and ``input_tiles`` another 1.1-1.2x faster on ResNet stage 1 and M4's 32->64 (the same
split of the loops that read four rows, in ``output_tiles`` and ``input_grad_tiles``, gained nothing).
Each (sample, channel) plane is copied into a zero-padded (2*th + 2, 2*tw + 2) scratch plane
first, so the tile loops need no bounds checks (the padding and the overhang read zeros).
"""

from __future__ import annotations

import numpy as np

from .._jit import jit


@jit
def input_tiles(x, ph, pw, th, tw, v):
    """v[:, c, n*T + t] = B^T d B for tile t of x[n, c] (d: its 4x4 block of the padded input)."""
    m, C, H, W = x.shape
    T = th * tw
    buf = np.zeros((2 * th + 2, 2 * tw + 2), dtype=x.dtype)  # the padding stays zero: only x is copied in
    eo = np.empty((2, 4, (th + 1) * tw), dtype=x.dtype)  # B over the columns of the even and the odd padded rows
    ev, od = eo[0], eo[1]
    for n in range(m):
        t0 = n * T
        for c in range(C):
            for h in range(H):
                for k in range(W):
                    buf[ph + h, pw + k] = x[n, c, h, k]
            for r in range(2 * th + 2):  # B over the columns of every padded row, even and odd rows apart
                p, base = r % 2, (r // 2) * tw
                for tj in range(tw):
                    a, b_ = buf[r, 2 * tj], buf[r, 2 * tj + 1]
                    c_, d = buf[r, 2 * tj + 2], buf[r, 2 * tj + 3]
                    eo[p, 0, base + tj] = a - c_
                    eo[p, 1, base + tj] = b_ + c_
                    eo[p, 2, base + tj] = c_ - b_
                    eo[p, 3, base + tj] = b_ - d
            for j in range(4):  # B^T over the rows: tile t's rows are even t, odd t, even t+tw, odd t+tw
                for t in range(T):  # one output row per loop (see the module docstring)
                    v[j, c, t0 + t] = ev[j, t] - ev[j, t + tw]
                for t in range(T):
                    v[4 + j, c, t0 + t] = od[j, t] + ev[j, t + tw]
                for t in range(T):
                    v[8 + j, c, t0 + t] = ev[j, t + tw] - od[j, t]
                for t in range(T):
                    v[12 + j, c, t0 + t] = od[j, t] - od[j, t + tw]


@jit(inline="always")  # inlined by Numba: as a call, output_tiles_pool ran 2.5x slower (16 -> 41 ms, M4's layer)
def _rows_at(mm, f, t0, T, q):
    """q[a, j, t] = (A^T M)[a, j] of tile t0 + t of filter f, a < 2: the first pass of both output transforms."""
    for j in range(4):
        for t in range(T):
            m1, m2 = mm[4 + j, f, t0 + t], mm[8 + j, f, t0 + t]
            q[0, j, t] = mm[j, f, t0 + t] + m1 + m2
            q[1, j, t] = m1 - m2 - mm[12 + j, f, t0 + t]


@jit
def output_tiles(mm, b, relu, th, tw, y):
    """y[n, f] = A^T M A per tile (+ b[f], then max(., 0) when ``relu``), cropped to y's OH x OW."""
    m, F, OH, OW = y.shape
    T = th * tw
    q = np.empty((2, 4, T), dtype=y.dtype)  # A^T over the rows of every tile of the sample
    o = np.empty((2, 2 * T), dtype=y.dtype)  # output rows 2*ti + a as o[a, ti*2tw : (ti+1)*2tw]
    for n in range(m):
        t0 = n * T
        for f in range(F):
            bf = b[f]
            _rows_at(mm, f, t0, T, q)
            for a in range(2):
                for t in range(T):
                    s1, s2 = q[a, 1, t], q[a, 2, t]
                    o[a, 2 * t] = q[a, 0, t] + s1 + s2 + bf
                    o[a, 2 * t + 1] = s1 - s2 - q[a, 3, t] + bf
            for oh in range(OH):
                a = oh % 2
                s = (oh // 2) * 2 * tw
                if relu:  # max(v, 0) that keeps a NaN, like np.maximum
                    for k in range(OW):
                        val = o[a, s + k]
                        y[n, f, oh, k] = 0 if val < 0 else val
                else:
                    for k in range(OW):
                        y[n, f, oh, k] = o[a, s + k]


@jit
def _max_nan(m, v):
    """v if it beats the running max m (larger, or a NaN where m is none): the pool kernel's rule."""
    return v if (v > m or v != v) and m == m else m


@jit
def output_tiles_pool(mm, b, relu, th, tw, y):
    """y[n, f] = the 2x2 stride-2 max-pool of ``output_tiles``' result (+ b[f], then ReLU): each 2x2
    tile is one pool window, so each tile gives one value; y is (m, F, OH // 2, OW // 2). The four
    values are computed exactly as ``output_tiles`` computes them, so the result is that pass's
    followed by the pool kernel, bit for bit (max and ReLU commute; see ``conv_pool.py``)."""
    m, F, PH, PW = y.shape
    T = th * tw
    q = np.empty((2, 4, T), dtype=y.dtype)
    p = np.empty(T, dtype=y.dtype)
    for n in range(m):
        t0 = n * T
        for f in range(F):
            bf = b[f]
            _rows_at(mm, f, t0, T, q)
            for t in range(T):  # the window in row-major order: (0, 0), (0, 1), (1, 0), (1, 1)
                s1, s2 = q[0, 1, t], q[0, 2, t]
                v = q[0, 0, t] + s1 + s2 + bf
                v = _max_nan(v, s1 - s2 - q[0, 3, t] + bf)
                s1, s2 = q[1, 1, t], q[1, 2, t]
                v = _max_nan(v, q[1, 0, t] + s1 + s2 + bf)
                p[t] = _max_nan(v, s1 - s2 - q[1, 3, t] + bf)
            for i in range(PH):
                if relu:  # max(v, 0) that keeps a NaN, like np.maximum
                    for k in range(PW):
                        val = p[i * tw + k]
                        y[n, f, i, k] = 0 if val < 0 else val
                else:
                    for k in range(PW):
                        y[n, f, i, k] = p[i * tw + k]


@jit
def output_grad_tiles(dy, y, relu, th, tw, dm, db):
    """dm[:, f, t] = A g A^T (the adjoint of :func:`output_tiles`), g the tile's 2x2 of dy, times
    ReLU's mask y > 0 when ``relu``, zero beyond OH x OW. db[f] = the sum of those g."""
    m, F, OH, OW = dy.shape
    T = th * tw
    g = np.zeros(2 * tw, dtype=dy.dtype)  # one row of masked dy; the overhang stays zero
    p = np.zeros((2, 4, T), dtype=dy.dtype)  # A over the columns; rows beyond OH stay zero
    for f in range(F):
        db[f] = 0
    for n in range(m):
        t0 = n * T
        for f in range(F):
            acc = 0.0
            for oh in range(OH):
                ti, a = oh // 2, oh % 2
                if relu:  # ReLU's gradient: 0 at y <= 0 (and at a NaN y)
                    for k in range(OW):
                        g[k] = dy[n, f, oh, k] if y[n, f, oh, k] > 0 else 0
                else:
                    for k in range(OW):
                        g[k] = dy[n, f, oh, k]
                row_sum = g[0] * 0  # in dy's dtype, so the loop vectorises; rows are short
                for k in range(OW):
                    row_sum += g[k]
                acc += row_sum
                for tj in range(tw):
                    g0, g1 = g[2 * tj], g[2 * tj + 1]
                    t = ti * tw + tj
                    p[a, 0, t] = g0
                    p[a, 1, t] = g0 + g1
                    p[a, 2, t] = g0 - g1
                    p[a, 3, t] = -g1
            db[f] += acc
            for j in range(4):  # then A over the rows: rows 0..3 of the domain from the 2 rows
                for t in range(T):  # one output row per loop (see the module docstring)
                    dm[j, f, t0 + t] = p[0, j, t]
                for t in range(T):
                    dm[4 + j, f, t0 + t] = p[0, j, t] + p[1, j, t]
                for t in range(T):
                    dm[8 + j, f, t0 + t] = p[0, j, t] - p[1, j, t]
                for t in range(T):
                    dm[12 + j, f, t0 + t] = -p[1, j, t]


@jit
def input_grad_tiles(dv, ph, pw, th, tw, dx):
    """dx[n, c] = the adjoint of :func:`input_tiles`: B dV B^T per tile, overlap-added over the
    padded plane (tiles overlap by 2), cropped to dx's H x W."""
    m, C, H, W = dx.shape
    T = th * tw
    buf = np.empty((2 * th + 2, 2 * tw + 2), dtype=dx.dtype)
    e = np.empty((4, 4, T), dtype=dx.dtype)  # B over the rows of every tile: (row, column j, tile)
    for n in range(m):
        t0 = n * T
        for c in range(C):
            for j in range(4):
                for t in range(T):
                    a, b_ = dv[j, c, t0 + t], dv[4 + j, c, t0 + t]
                    c_, d = dv[8 + j, c, t0 + t], dv[12 + j, c, t0 + t]
                    e[0, j, t] = a
                    e[1, j, t] = b_ - c_ + d
                    e[2, j, t] = c_ + b_ - a
                    e[3, j, t] = -d
            buf[:] = 0
            for ti in range(th):
                for r in range(4):  # then B^T over the columns, added into padded row 2*ti + r
                    h = 2 * ti + r
                    # column 2*tj gets tile tj's column 0 and tile tj-1's column 2 (tiles overlap by 2)
                    for tj in range(tw):
                        t = ti * tw + tj
                        buf[h, 2 * tj] += e[r, 0, t]
                        buf[h, 2 * tj + 1] += e[r, 1, t] - e[r, 2, t] + e[r, 3, t]
                    for tj in range(tw):
                        t = ti * tw + tj
                        buf[h, 2 * tj + 2] += e[r, 2, t] + e[r, 1, t] - e[r, 0, t]
                        buf[h, 2 * tj + 3] -= e[r, 3, t]
            for h in range(H):
                for k in range(W):
                    dx[n, c, h, k] = buf[ph + h, pw + k]
