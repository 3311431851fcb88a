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


# Conv2D + MaxPool2D(2) cases (engine, n, c, f, h, w, kh, kw, stride, padding, dtype): batch 1, odd outputs (the
# pool drops the last row or column), non-square kernels and inputs, stride 2, padding; LeNet-5's and the Keras
# CNN's layers (small batches). "other": the direct kernel or im2col, then the pool kernel.
POOL_CASES = [
    ("blocked", 1, 1, 6, 28, 28, 5, 5, (1, 1), (2, 2), np.float32),
    ("blocked", 3, 6, 16, 14, 14, 5, 5, (1, 1), (0, 0), np.float32),
    ("blocked", 2, 3, 5, 9, 8, 3, 2, (1, 1), (1, 0), np.float32),
    ("blocked", 1, 7, 9, 5, 40, 1, 3, (1, 1), (0, 1), np.float32),  # pooled rows wider than a vector
    ("winograd", 2, 64, 72, 13, 12, 3, 3, (1, 1), (0, 0), np.float32),  # C*F above BLOCKED_WINOGRAD_CF
    ("winograd", 1, 16, 16, 9, 11, 3, 3, (1, 1), (1, 1), np.float64),
    ("winograd", 2, 16, 24, 10, 10, 3, 3, (1, 1), (0, 1), np.float64),
    ("other", 2, 1, 4, 8, 9, 3, 3, (1, 1), (0, 0), np.float64),  # the direct kernel, then the pool
    ("other", 2, 3, 4, 11, 10, 3, 3, (2, 2), (1, 1), np.float32),  # im2col (stride 2), then the pool
]


def pool_case(case, seed=0):
    """(x, weights, bias, stride, padding) of one ``POOL_CASES`` entry."""
    _, n, c, f, h, w, kh, kw, stride, padding, dtype = case
    x, wt, b, _ = conv_case(n, c, f, h, w, kh, kw, dtype, seed)
    return x, wt, b, stride, padding


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


def float32_layer_against_float64(make_layer, x, relu):
    """``make_layer(dtype)``'s Conv2D in float32 on the fast backend, plain or as a fused Conv2D+ReLU node, against
    the same layer in float64 on the numpy backend: forward, dx, dW and db within ``close``'s float32 tolerance.
    Returns the float32 output (its shape tells which kernels ran)."""
    from _fused import FusedRelu

    import fastnet

    results = []
    for backend, dtype in (("fast", np.float32), ("numpy", np.float64)):
        fastnet.seed(0)
        with fastnet.use_backend(backend):
            layer = make_layer(dtype)
            node = FusedRelu(layer) if relu else layer
            y = node.forward(x.astype(dtype), training=True)
            dy = np.cos(np.arange(y.size)).reshape(y.shape).astype(dtype)
            dx = node.backward(dy)
            results.append((y, dx, layer.grads["weight"].copy(), layer.grads["bias"].copy()))
    for got, want in zip(*results, strict=True):
        close(got, want.astype(np.float32), np.float32)
    return results[0][0]
