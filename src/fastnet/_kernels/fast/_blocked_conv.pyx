# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Register-blocked direct convolution, stride 1, float32: the chunk entry points of ``fast/direct.py``.

The arithmetic is in ``_blocked_conv.h`` (C, three instruction-set builds picked at run time); these
wrappers check the shapes, release the GIL (each runs inside one task of fastnet's thread team) and
turn a failed allocation into MemoryError.
"""


cdef extern from "_blocked_conv.h" nogil:
    ctypedef struct bc_geom:
        long C, H, W, KH, KW, ph, pw, OH, OW, Wp, Lq, plane
    bc_geom bc_geometry(long C, long H, long W, long KH, long KW, long ph, long pw)
    long bc_lanes()
    int bc_available()
    int bc_isa()
    int bc_isa_best()
    int bc_use_isa(int isa)
    int bc_forward(const float* x, long m, bc_geom g, const float* w, const float* b, long F, long Fp,
                   int relu, int pool, float* y, unsigned char* win)
    int bc_backward(const float* dy, const float* y, int relu, const float* x, long m, bc_geom g, long F,
                    float* dw, float* db, const float* w2, long Cp, float* dx, long group_floats,
                    const unsigned char* win)
    enum: BC_FB


def block() -> int:
    """The multiple that the weights' filter rows (and, for the input gradient, channel rows) are padded to."""
    return BC_FB


_ISAS = ("base", "avx2", "avx512")


def available() -> bool:
    """Whether the kernels were built (GCC or Clang: vector extensions); without them fastnet uses its other engines."""
    return bool(bc_available())


def isa() -> str:
    """The micro-kernel build in use: "avx512", "avx2" or "base" (the best this CPU runs, unless :func:`use_isa`)."""
    return _ISAS[bc_isa()]


def supported_isas() -> tuple:
    """Every build this CPU can run, from the baseline up."""
    return _ISAS[: bc_isa_best() + 1]


def use_isa(str name) -> str:
    """Run the build ``name`` from now on (for tests: each build on one machine); returns the previous one.
    Not thread-safe: call it only while no convolution runs."""
    if name not in supported_isas():
        raise ValueError(f"blocked conv: build {name!r} is not one this CPU runs {supported_isas()}")
    before = isa()
    bc_use_isa(_ISAS.index(name))
    return before


def _geometry(x, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t ph, Py_ssize_t pw):
    if not (0 <= ph < KH and 0 <= pw < KW):
        raise ValueError(f"blocked conv: padding ({ph}, {pw}) must be below the kernel size ({KH}, {KW})")
    return bc_geometry(x.shape[1], x.shape[2], x.shape[3], KH, KW, ph, pw)


def forward(const float[:, :, :, ::1] x, const float[:, ::1] w, const float[::1] b,
            Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t ph, Py_ssize_t pw, bint relu, float[:, :, :, ::1] y,
            bint pool=False, unsigned char[:, :, :, ::1] win=None):
    """y = b + conv(x) (max(., 0) when ``relu``) for one chunk of samples; ``w`` is (Fp, C*KH*KW), its
    rows from y's F on zero (Fp a multiple of :func:`block`). ``pool``: y is the 2x2 stride-2 max-pool
    of that, (m, F, OH // 2, OW // 2), and ``win`` (training; shaped as y) gets each window's winner,
    0..3 in row-major order, as the pool kernel's argmax."""
    cdef bc_geom g = _geometry(x, KH, KW, ph, pw)
    cdef long m = x.shape[0], F = y.shape[1], Fp = w.shape[0]
    cdef long YH = g.OH // 2 if pool else g.OH, YW = g.OW // 2 if pool else g.OW
    cdef int rc
    cdef unsigned char* winp = NULL
    if (y.shape[0] != m or y.shape[2] != YH or y.shape[3] != YW or Fp % BC_FB or Fp < F
            or w.shape[1] != g.C * KH * KW or b.shape[0] != F):
        raise ValueError("blocked conv forward: shape mismatch")
    if win is not None and (not pool or win.shape[0] != m or win.shape[1] != F or win.shape[2] != YH
                            or win.shape[3] != YW):
        raise ValueError("blocked conv forward: win needs pool and y's shape")
    if m == 0 or F == 0 or YH == 0 or YW == 0:
        return
    if win is not None:
        winp = &win[0, 0, 0, 0]
    with nogil:
        rc = bc_forward(&x[0, 0, 0, 0], m, g, &w[0, 0], &b[0], F, Fp, relu, pool, &y[0, 0, 0, 0], winp)
    if rc:
        raise MemoryError("blocked conv forward: scratch allocation failed") if rc == -1 else RuntimeError(
            "blocked conv: not built with this compiler")


def backward(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] y, bint relu, const float[:, :, :, ::1] x,
             Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t ph, Py_ssize_t pw, float[:, ::1] dw, float[::1] db,
             const float[:, ::1] w2, float[:, :, :, ::1] dx, bint need_dx, long group_bytes,
             const unsigned char[:, :, :, ::1] win=None):
    """Add this chunk's weight and bias gradients into ``dw`` (F, C*KH*KW) and ``db`` (F); when
    ``need_dx``, write its input gradient into ``dx``. ``y`` is the forward output (ReLU's mask, read
    when ``relu``); ``w2`` (Cp, F*KH*KW) the weights transposed and flipped, rows from C on zero. Samples are
    packed in groups of at most ``group_bytes`` (at least one sample) for the weight gradient.
    ``win``: a fused 2x2 stride-2 max-pool's winners (``forward``); then dy is the pool's gradient and y
    its output, both shaped as ``win`` (m, F, OH // 2, OW // 2)."""
    cdef bc_geom g = _geometry(x, KH, KW, ph, pw)
    cdef long m = x.shape[0], F = dy.shape[1], Cp = w2.shape[0]
    cdef long DH = g.OH // 2 if win is not None else g.OH, DW = g.OW // 2 if win is not None else g.OW
    cdef int rc
    cdef const float* yp = NULL
    cdef float* dxp = NULL
    cdef const float* w2p = NULL
    cdef const unsigned char* winp = NULL
    if (dy.shape[0] != m or dy.shape[2] != DH or dy.shape[3] != DW or dw.shape[0] != F
            or dw.shape[1] != g.C * KH * KW or db.shape[0] != F):
        raise ValueError("blocked conv backward: shape mismatch")
    if win is not None and (win.shape[0] != m or win.shape[1] != F or win.shape[2] != DH or win.shape[3] != DW
                            or DH * DW == 0):
        raise ValueError("blocked conv backward: win must have dy's shape, at least one window")
    if relu and (y.shape[0] != m or y.shape[1] != F or y.shape[2] != DH or y.shape[3] != DW):
        raise ValueError("blocked conv backward: y must have dy's shape")
    if need_dx and (dx.shape[0] != m or dx.shape[1] != g.C or dx.shape[2] != g.H or dx.shape[3] != g.W
                    or Cp % BC_FB or Cp < g.C or w2.shape[1] != F * KH * KW):
        raise ValueError("blocked conv backward: dx or w2 shape mismatch")
    if m == 0 or F == 0:
        return
    if win is not None:
        winp = &win[0, 0, 0, 0]
    if relu:
        yp = &y[0, 0, 0, 0]
    if need_dx:
        dxp = &dx[0, 0, 0, 0]
        w2p = &w2[0, 0]
    with nogil:
        rc = bc_backward(&dy[0, 0, 0, 0], yp, relu, &x[0, 0, 0, 0], m, g, F, &dw[0, 0], &db[0], w2p, Cp, dxp, group_bytes // 4, winp)
    if rc:
        raise MemoryError("blocked conv backward: scratch allocation failed") if rc == -1 else RuntimeError(
            "blocked conv: not built with this compiler")
