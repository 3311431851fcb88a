"""Compiled conv/pool kernels (Cython) against their NumPy reference twins."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnet._kernels import config as kconfig
from fastnet._kernels import workspace
from fastnet._kernels.fast import conv as fast_conv
from fastnet._kernels.registry import kernel

SETTINGS = settings(max_examples=35, deadline=None, derandomize=True)
DTYPES = st.sampled_from([np.float32, np.float64])


def close(fast, ref, dtype):
    """float32 within 1e-4 relative (to the array's scale), float64 within 1e-10."""
    assert fast.dtype == ref.dtype == dtype
    assert fast.shape == ref.shape
    tol = 1e-4 if dtype == np.float32 else 1e-10
    scale = max(1.0, float(np.max(np.abs(ref), initial=0.0)))
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol * scale)


def both(name, *args):
    return kernel(name, "fast")(*args), kernel(name, "numpy")(*args)


@st.composite
def geometry(draw, max_pad_half_kernel=False):
    """Random conv/pool geometry: batch 1 included, odd sizes, non-square kernel and stride."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if max_pad_half_kernel:  # pooling: a window must hold at least one real element
        ph, pw = draw(st.integers(0, min(2, kh // 2))), draw(st.integers(0, min(2, kw // 2)))
    else:
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 11))
    w = draw(st.integers(max(1, kw - 2 * pw), 11))
    n = draw(st.sampled_from([1, 1, 2, 3, 5]))
    c = draw(st.integers(1, 4))
    return n, c, h, w, (kh, kw), (sh, sw), (ph, pw)


@SETTINGS
@given(geometry(), st.integers(1, 20), DTYPES, st.integers(0, 2**31 - 1))
def test_conv2d_matches_reference(geo, f, dtype, seed):
    # f spans both GEMM strategies (stacked below STACKED_MAX_FILTERS, wide above)
    n, c, h, w, k, s, p = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, *k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    yf, yr = both("conv2d_forward", x, wt, b, s, p)
    close(yf, yr, dtype)
    dy = rng.standard_normal(yr.shape).astype(dtype)
    for gf, gr in zip(*both("conv2d_backward", dy, x, wt, s, p), strict=True):
        close(gf, gr, dtype)
    # need_dx=False (a model's first layer in training): no dx, the same dw and db
    full = kernel("conv2d_backward", "numpy")(dy, x, wt, s, p)
    for backend in ("fast", "numpy"):
        dx, dw, db = kernel("conv2d_backward", backend)(dy, x, wt, s, p, need_dx=False)
        assert dx is None
        close(dw, full[1], dtype)
        close(db, full[2], dtype)


@SETTINGS
@given(geometry(), DTYPES, st.integers(0, 2**31 - 1))
def test_im2col_col2im_match_reference(geo, dtype, seed):
    n, c, h, w, k, s, p = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    cf, cr = both("im2col", x, k, s, p)
    close(cf, cr, dtype)
    cols = rng.standard_normal(cr.shape).astype(dtype)
    close(*both("col2im", cols, x.shape, k, s, p), dtype)


@SETTINGS
@given(geometry(max_pad_half_kernel=True), DTYPES, st.booleans(), st.integers(0, 2**31 - 1))
def test_maxpool2d_matches_reference(geo, dtype, ties, seed):
    n, c, h, w, k, s, p = geo
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: many tied maxima, the first must win in both
        x = rng.integers(-2, 2, size=(n, c, h, w)).astype(dtype)
    else:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
    (yf, af), (yr, ar) = both("maxpool2d_forward", x, k, s, p)
    close(yf, yr, dtype)
    assert af.dtype == ar.dtype == np.int64
    np.testing.assert_array_equal(af, ar)
    dy = rng.standard_normal(yr.shape).astype(dtype)
    close(*both("maxpool2d_backward", dy, ar, x.shape), dtype)


@SETTINGS
@given(geometry(), DTYPES, st.integers(0, 2**31 - 1))
def test_avgpool2d_matches_reference(geo, dtype, seed):
    n, c, h, w, k, s, p = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    yf, yr = both("avgpool2d_forward", x, k, s, p)
    close(yf, yr, dtype)
    dy = rng.standard_normal(yr.shape).astype(dtype)
    close(*both("avgpool2d_backward", dy, x.shape, k, s, p), dtype)


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 9), st.integers(1, 9), DTYPES, st.integers(0, 2**31 - 1))
def test_global_avgpool2d_matches_reference(n, c, h, w, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    close(*both("global_avgpool2d_forward", x), dtype)
    dy = rng.standard_normal((n, c)).astype(dtype)
    close(*both("global_avgpool2d_backward", dy, x.shape), dtype)


def test_maxpool_nan_and_all_minus_inf_windows():
    x = np.array([[[[1.0, np.nan, np.nan, 2.0], [-np.inf, -np.inf, 0.0, 3.0]]]], dtype=np.float32)
    (yf, af), (yr, ar) = both("maxpool2d_forward", x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(af, ar)
    np.testing.assert_array_equal(yf, yr)  # NaN == NaN for assert_array_equal
    assert np.isnan(yf[0, 0, 0, 0]) and af[0, 0, 0, 0] == 1  # first NaN wins
    x2 = np.full((1, 1, 2, 2), -np.inf, dtype=np.float64)
    (yf, af), (yr, ar) = both("maxpool2d_forward", x2, (2, 2), (1, 1), (0, 0))
    np.testing.assert_array_equal(af, ar)
    assert af[0, 0, 0, 0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("filters", [4, 24])  # stacked and wide GEMM paths
def test_chunked_conv_equals_unchunked(dtype, filters, monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((7, 3, 10, 9)).astype(dtype)
    w = rng.standard_normal((filters, 3, 3, 2)).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype)
    s, p = (2, 1), (1, 2)
    y_full = fast_conv.conv2d_forward(x, w, b, s, p)
    dy = rng.standard_normal(y_full.shape).astype(dtype)
    g_full = fast_conv.conv2d_backward(dy, x, w, s, p)
    limit = workspace.get_workspace_limit()
    try:
        # room for 2 samples per chunk: 7 samples -> chunks of 2, 2, 2, 1
        per_sample = (3 * 3 * 2 + filters) * y_full.shape[2] * y_full.shape[3] * x.itemsize
        workspace.set_workspace_limit(2 * per_sample)
        assert workspace.chunk_size(7, per_sample) == 2
        y_chunk = fast_conv.conv2d_forward(x, w, b, s, p)
        g_chunk = fast_conv.conv2d_backward(dy, x, w, s, p)
        assert workspace.nbytes() <= 2 * per_sample + filters * 3 * 3 * 2 * 2 * x.itemsize
    finally:
        workspace.set_workspace_limit(limit)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y_chunk, y_full, rtol=tol, atol=tol)
    for a, c in zip(g_chunk, g_full, strict=True):
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol * 10)


def test_workspace_is_reused_and_bounded():
    workspace.release()
    a, b = workspace.take(np.float32, (3, 4), (5,))
    assert a.shape == (3, 4) and b.shape == (5,) and a.dtype == np.float32
    assert np.shares_memory(a.base, b.base)
    first = workspace.nbytes()
    (c,) = workspace.take(np.float32, (2, 2))
    assert workspace.nbytes() == first  # smaller request reuses the buffer
    assert workspace.chunk_size(1000, 1 << 30) == 1  # a sample bigger than the limit still runs
    assert workspace.chunk_size(10, 1) == 10
    with pytest.raises(ValueError, match="set_workspace_limit: nbytes must be a positive int"):
        workspace.set_workspace_limit(0)


def test_conv_large_batch_stays_within_workspace_limit():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((32, 8, 3, 3)).astype(np.float32)
    limit = workspace.get_workspace_limit()
    try:
        workspace.set_workspace_limit(256 << 10)
        y = fast_conv.conv2d_forward(x, w, np.zeros(32, np.float32), (1, 1), (1, 1))
        fast_conv.conv2d_backward(np.ones_like(y), x, w, (1, 1), (1, 1))
        assert workspace.nbytes() <= 256 << 10
    finally:
        workspace.set_workspace_limit(limit)
    close(y, kernel("conv2d_forward", "numpy")(x, w, np.zeros(32, np.float32), (1, 1), (1, 1)), np.float32)


def test_fast_backend_really_compiles_conv_and_pool():
    from fastnet._kernels.registry import fast_kernel_names

    names = set(fast_kernel_names())
    for name in (
        "conv2d_forward",
        "conv2d_backward",
        "im2col",
        "col2im",
        "maxpool2d_forward",
        "maxpool2d_backward",
        "avgpool2d_forward",
        "avgpool2d_backward",
        "global_avgpool2d_forward",
        "global_avgpool2d_backward",
    ):
        assert name in names
        assert kernel(name, "fast") is not kernel(name, "numpy")


def test_bad_geometry_is_a_value_error():
    x = np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"conv geometry: kernel \(5, 5\).*input \(1, 1, 3, 3\)"):
        fast_conv.im2col(x, (5, 5), (1, 1), (0, 0))
    with pytest.raises(ValueError, match=r"pool geometry"):
        kernel("maxpool2d_forward", "fast")(x, (4, 4), (1, 1), (0, 0))
    with pytest.raises(ValueError, match=r"conv2d_backward: dy must have shape"):
        fast_conv.conv2d_backward(
            np.zeros((1, 2, 3, 3), np.float32), x, np.zeros((2, 1, 2, 2), np.float32), (1, 1), (0, 0)
        )


def test_threaded_and_serial_paths_agree(monkeypatch):
    # big enough to cross config.OMP_MIN_ELEMENTS, then forced serial
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 16, 33, 31)).astype(np.float32)
    w = rng.standard_normal((20, 16, 3, 3)).astype(np.float32)
    b = np.zeros(20, np.float32)
    par = (
        fast_conv.conv2d_forward(x, w, b, (1, 2), (1, 1)),
        kernel("maxpool2d_forward", "fast")(x, (3, 2), (2, 2), (1, 1)),
    )
    from fastnet._kernels import parallel

    monkeypatch.setattr(parallel, "omp_threads", lambda n, min_elements=None: 1)
    ser = (
        fast_conv.conv2d_forward(x, w, b, (1, 2), (1, 1)),
        kernel("maxpool2d_forward", "fast")(x, (3, 2), (2, 2), (1, 1)),
    )
    np.testing.assert_array_equal(par[0], ser[0])
    np.testing.assert_array_equal(par[1][0], ser[1][0])
    np.testing.assert_array_equal(par[1][1], ser[1][1])


# ---- Conv2D + ReLU fusion (act="relu") -------------------------------------------------------
@SETTINGS
@given(geometry(), st.integers(1, 20), DTYPES, st.integers(0, 2**31 - 1))
def test_conv2d_relu_matches_reference_and_unfused(geo, f, dtype, seed):
    n, c, h, w, k, s, p = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, *k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    yf, yr = both("conv2d_forward", x, wt, b, s, p, "relu")
    close(yf, yr, dtype)
    z = kernel("conv2d_forward", "fast")(x, wt, b, s, p)
    close(yf, kernel("relu_forward", "fast")(z), dtype)
    dy = rng.standard_normal(yr.shape).astype(dtype)
    gf = kernel("conv2d_backward", "fast")(dy, x, wt, s, p, "relu", yf)
    gr = kernel("conv2d_backward", "numpy")(dy, x, wt, s, p, "relu", yr)
    unfused = kernel("conv2d_backward", "fast")(kernel("relu_backward", "fast")(dy, yf), x, wt, s, p)
    for a, r, u in zip(gf, gr, unfused, strict=True):
        close(a, r, dtype)
        close(a, u, dtype)
    no_dx = kernel("conv2d_backward", "fast")(dy, x, wt, s, p, "relu", yf, need_dx=False)
    assert no_dx[0] is None
    close(no_dx[1], gr[1], dtype)
    close(no_dx[2], gr[2], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("filters", [4, 24])  # stacked and wide GEMM paths
def test_chunked_conv_relu_equals_unchunked(dtype, filters, monkeypatch):
    monkeypatch.setattr(kconfig, "DIRECT_MAX_K", None)  # a 3-channel 3x3 layer: keep it on im2col's chunks
    monkeypatch.setattr(kconfig, "BLOCKED_MAX_CF", None)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 3, 8, 7)).astype(dtype)
    w = rng.standard_normal((filters, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype)
    y = fast_conv.conv2d_forward(x, w, b, (1, 1), (1, 1), "relu")
    dy = rng.standard_normal(y.shape).astype(dtype)
    g = fast_conv.conv2d_backward(dy, x, w, (1, 1), (1, 1), "relu", y)
    limit = workspace.get_workspace_limit()
    try:
        workspace.set_workspace_limit(1)  # one sample per chunk
        y1 = fast_conv.conv2d_forward(x, w, b, (1, 1), (1, 1), "relu")
        g1 = fast_conv.conv2d_backward(dy, x, w, (1, 1), (1, 1), "relu", y1)
    finally:
        workspace.set_workspace_limit(limit)
    close(y1, y, dtype)
    for a, r in zip(g1, g, strict=True):
        close(a, r, dtype)
    assert (y >= 0).all() and (y == 0).any() and (y > 0).any()


@pytest.mark.parametrize("backend_name", ["fast", "numpy"])
def test_conv2d_act_argument_errors(backend_name):
    x = np.zeros((1, 1, 4, 4), np.float32)
    w = np.zeros((2, 1, 3, 3), np.float32)
    b = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="act must be None or 'relu'"):
        kernel("conv2d_forward", backend_name)(x, w, b, (1, 1), (0, 0), "tanh")
    dy = np.zeros((1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="act='relu' needs the forward output y"):
        kernel("conv2d_backward", backend_name)(dy, x, w, (1, 1), (0, 0), "relu")
    with pytest.raises(ValueError, match="act='relu' needs the forward output y"):
        kernel("conv2d_backward", backend_name)(dy, x, w, (1, 1), (0, 0), "relu", np.zeros((1, 2, 3, 3), np.float32))


# ---- max-pool 2x2 stride 2 (the specialised, SIMD float32 path) ------------------------------
def _first_max_loops(x):
    """Naive 2x2/2 max-pool with the contract's tie rule (first maximum, first NaN, row-major)."""
    n, c, h, w = x.shape
    y = np.empty((n, c, h // 2, w // 2), x.dtype)
    a = np.empty(y.shape, np.int64)
    for i in np.ndindex(n, c, h // 2, w // 2):
        best, idx = None, None
        for dh in range(2):
            for dw in range(2):
                hh, ww = 2 * i[2] + dh, 2 * i[3] + dw
                v = x[i[0], i[1], hh, ww]
                if best is None or v > best or (np.isnan(v) and not np.isnan(best)):
                    best, idx = v, hh * w + ww
        y[i], a[i] = best, idx
    return y, a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h, w", [(2, 2), (5, 9), (8, 16), (7, 17), (4, 26), (3, 31)])
@pytest.mark.parametrize("values", ["normal", "ties", "special"])
def test_maxpool_2x2_stride2_tie_rule_and_specials(dtype, h, w, values):
    rng = np.random.default_rng(h * 100 + w)
    shape = (2, 3, h, w)
    if values == "normal":
        x = rng.standard_normal(shape)
    elif values == "ties":  # many equal maxima in every window: the first must win
        x = rng.integers(-1, 2, size=shape).astype(float)
    else:  # NaN, +-inf and ties mixed
        x = rng.choice([np.nan, -np.inf, np.inf, 0.0, 1.0, -1.0], size=shape, p=[0.15, 0.2, 0.1, 0.25, 0.2, 0.1])
    x = x.astype(dtype)
    (yf, af), (yr, ar) = both("maxpool2d_forward", x, (2, 2), (2, 2), (0, 0))
    want_y, want_a = _first_max_loops(x)
    np.testing.assert_array_equal(af, want_a)
    np.testing.assert_array_equal(ar, want_a)
    np.testing.assert_array_equal(yf, want_y)  # NaN == NaN here
    np.testing.assert_array_equal(yr, want_y)
    assert af.dtype == np.int64 and yf.dtype == dtype
    dy = rng.standard_normal(yf.shape).astype(dtype)
    close(*both("maxpool2d_backward", dy, af, x.shape), dtype)


def test_maxpool_2x2_large_parallel_matches_reference():
    # big enough for the OpenMP pass (config.OMP_MIN_ELEMENTS), with ties
    x = np.random.default_rng(5).integers(-3, 3, size=(4, 8, 48, 50)).astype(np.float32)
    (yf, af), (yr, ar) = both("maxpool2d_forward", x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(af, ar)
    np.testing.assert_array_equal(yf, yr)
