"""What the convolution-engine tests share (Winograd, direct, blocked): random operands, the equivalence tolerance,
the checks, and a recorder of the calls that reach an engine."""

import numpy as np


def conv_case(n, c, f, h, w, kh, kw, dtype, seed=0):
    """(x, weights scaled like He init, bias, the generator) for an (n, c, h, w) input and f filters of kh x kw."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((f, c, kh, kw)) / np.sqrt(kh * kw * c)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, wt, b, rng


def close(got, want, dtype):
    """The conv equivalence tests' tolerance: float32 1e-4, float64 1e-10, relative to the array's scale."""
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    tol = 1e-4 if dtype == np.float32 else 1e-10
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def assert_same_at_every_thread_count(x, wt, b, padding, act):
    """Fast conv forward and backward give the same bits at 1, 2 and 3 threads (the caller restores the count)."""
    import fastnet
    from fastnet._kernels.fast import conv as fast_conv

    results = []
    for count in (1, 2, 3):
        fastnet.set_num_threads(count)
        y = fast_conv.conv2d_forward(x, wt, b, (1, 1), padding, act=act)
        dy = np.cos(np.arange(y.size, dtype=y.dtype)).reshape(y.shape)
        results.append((y, *fast_conv.conv2d_backward(dy, x, wt, (1, 1), padding, act=act, y=y)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other, strict=True):
            assert np.array_equal(a, b_)


def assert_fast_matches_reference(x, wt, b, padding, act, rng):
    """The fast stride-1 conv against the im2col reference: forward, backward, and backward without dx; returns y."""
    from fastnet._kernels.fast import conv as fast_conv
    from fastnet._kernels.reference import conv as ref_conv

    dtype = x.dtype
    y = fast_conv.conv2d_forward(x, wt, b, (1, 1), padding, act)
    close(y, ref_conv.conv2d_forward(x, wt, b, (1, 1), padding, act), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    want = ref_conv.conv2d_backward(dy, x, wt, (1, 1), padding, act, y)
    for g, r in zip(fast_conv.conv2d_backward(dy, x, wt, (1, 1), padding, act, y), want, strict=True):
        close(g, r, dtype)
    dx, dw, db = fast_conv.conv2d_backward(dy, x, wt, (1, 1), padding, act, y, need_dx=False)
    assert dx is None
    close(dw, want[1], dtype)
    close(db, want[2], dtype)
    return y


def assert_relu_keeps_nan(x, wt, b):
    """A NaN in x gives NaN outputs exactly where the reference has them (fused ReLU keeps NaN); returns y."""
    from fastnet._kernels.fast import conv as fast_conv
    from fastnet._kernels.reference import conv as ref_conv

    y = fast_conv.conv2d_forward(x, wt, b, (1, 1), (1, 1), "relu")
    y_ref = ref_conv.conv2d_forward(x, wt, b, (1, 1), (1, 1), "relu")
    assert np.isnan(y).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
    ok = ~np.isnan(y_ref)
    close(y[ok], y_ref[ok], x.dtype)
    return y


def record_calls(monkeypatch, engine):
    """The names of ``engine``'s ``conv2d_forward`` / ``conv2d_backward`` calls from now on (a list that grows), so a
    test knows it exercised that engine; ``monkeypatch`` undoes the wrapping."""
    calls = []
    for name in ("conv2d_forward", "conv2d_backward"):
        real = getattr(engine, name)
        monkeypatch.setattr(
            engine, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(*a, **kw)
        )
    return calls
