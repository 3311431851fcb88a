"""Conv2D layer and its kernels: reference vs naive loops, gradients, errors, dtypes."""

import json

import numpy as np
import pytest
from _fused import FusedRelu
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastnet
from fastnet._kernels import kernel
from fastnet._kernels.reference import conv as ref
from fastnet.gradcheck import check_layer
from fastnet.layers import Conv2D

SETTINGS = settings(max_examples=25, derandomize=True, deadline=None)


# ---- the obvious loop implementations (the test's own ground truth) ----------------------
def out_hw(h, w, k, s, p):
    return (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1


def pad(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))


def naive_conv_forward(x, w, b, s, p):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = out_hw(h, wd, (kh, kw), s, p)
    xp = pad(x, p)
    y = np.zeros((n, f, oh, ow))
    for i in range(n):
        for o in range(f):
            for a in range(oh):
                for bb in range(ow):
                    acc = b[o]
                    for ch in range(c):
                        for u in range(kh):
                            for v in range(kw):
                                acc += xp[i, ch, a * s[0] + u, bb * s[1] + v] * w[o, ch, u, v]
                    y[i, o, a, bb] = acc
    return y


def naive_conv_backward(dy, x, w, s, p):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    _, _, oh, ow = dy.shape
    xp = pad(x, p)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(n):
        for o in range(f):
            for a in range(oh):
                for bb in range(ow):
                    for ch in range(c):
                        for u in range(kh):
                            for v in range(kw):
                                r, q = a * s[0] + u, bb * s[1] + v
                                dxp[i, ch, r, q] += w[o, ch, u, v] * dy[i, o, a, bb]
                                dw[o, ch, u, v] += xp[i, ch, r, q] * dy[i, o, a, bb]
    db = dy.sum(axis=(0, 2, 3))
    return dxp[:, :, p[0] : p[0] + h, p[1] : p[1] + wd], dw, db


def naive_im2col(x, k, s, p):
    n, c, h, wd = x.shape
    oh, ow = out_hw(h, wd, k, s, p)
    xp = pad(x, p)
    cols = np.zeros((c * k[0] * k[1], n * oh * ow))
    for ch in range(c):
        for u in range(k[0]):
            for v in range(k[1]):
                for i in range(n):
                    for a in range(oh):
                        for bb in range(ow):
                            cols[(ch * k[0] + u) * k[1] + v, (i * oh + a) * ow + bb] = xp[
                                i, ch, a * s[0] + u, bb * s[1] + v
                            ]
    return cols


# ---- shapes ------------------------------------------------------------------------------
@st.composite
def conv_cases(draw):
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    assume(h + 2 * p[0] >= k[0] and w + 2 * p[1] >= k[1])
    return (n, c, h, w), (f, c, *k), s, p


EXPLICIT = [  # x shape, w shape, stride, padding
    ((1, 1, 5, 5), (2, 1, 3, 2), (2, 2), (1, 1)),  # batch 1, non-square kernel, stride 2
    ((2, 3, 7, 6), (4, 3, 1, 5), (1, 2), (0, 2)),  # 1x5 kernel, non-square stride and padding
    ((3, 2, 6, 9), (3, 2, 3, 3), (3, 1), (2, 0)),  # stride 3
    ((1, 2, 4, 4), (1, 2, 4, 4), (1, 1), (0, 0)),  # kernel covers the whole input
]


def _arrays(xs, ws, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal(xs), r.standard_normal(ws), r.standard_normal(ws[0])


# ---- (1) reference kernels vs loops --------------------------------------------------------
@SETTINGS
@given(conv_cases())
def test_reference_conv_matches_loops(case):
    xs, ws, s, p = case
    x, w, b = _arrays(xs, ws)
    y = ref.conv2d_forward(x, w, b, s, p)
    np.testing.assert_allclose(y, naive_conv_forward(x, w, b, s, p), rtol=1e-10, atol=1e-12)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    for got, want in zip(ref.conv2d_backward(dy, x, w, s, p), naive_conv_backward(dy, x, w, s, p), strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(conv_cases())
def test_reference_im2col_matches_loops_and_col2im_is_its_adjoint(case):
    xs, ws, s, p = case
    k = ws[2:]
    r = np.random.default_rng(2)
    x = r.standard_normal(xs)
    cols = ref.im2col(x, k, s, p)
    np.testing.assert_array_equal(cols, naive_im2col(x, k, s, p))
    c = r.standard_normal(cols.shape)
    back = ref.col2im(c, xs, k, s, p)
    assert back.shape == xs
    np.testing.assert_allclose(np.vdot(back, x), np.vdot(c, cols), rtol=1e-10)


@pytest.mark.parametrize("xs, ws, s, p", EXPLICIT)
def test_kernels_match_loops_on_explicit_cases(backend, xs, ws, s, p):
    x, w, b = _arrays(xs, ws, seed=3)
    y = kernel("conv2d_forward")(x, w, b, s, p)
    np.testing.assert_allclose(y, naive_conv_forward(x, w, b, s, p), rtol=1e-10, atol=1e-12)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    for got, want in zip(kernel("conv2d_backward")(dy, x, w, s, p), naive_conv_backward(dy, x, w, s, p), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    cols = kernel("im2col")(x, ws[2:], s, p)
    np.testing.assert_array_equal(cols, naive_im2col(x, ws[2:], s, p))
    c = np.random.default_rng(5).standard_normal(cols.shape)
    np.testing.assert_allclose(np.vdot(kernel("col2im")(c, xs, ws[2:], s, p), x), np.vdot(c, cols), rtol=1e-10)


def test_kernels_keep_float32(backend):
    x, w, b = (a.astype(np.float32) for a in _arrays((2, 3, 6, 5), (4, 3, 3, 2)))
    y = kernel("conv2d_forward")(x, w, b, (2, 1), (1, 0))
    assert y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_allclose(
        y,
        naive_conv_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), (2, 1), (1, 0)),
        rtol=1e-4,
        atol=1e-5,
    )
    grads = kernel("conv2d_backward")(np.ones_like(y), x, w, (2, 1), (1, 0))
    assert [g.dtype for g in grads] == [np.float32] * 3
    assert [g.shape for g in grads] == [x.shape, w.shape, b.shape]


# ---- (2) gradient checks of the layer ------------------------------------------------------
@pytest.mark.parametrize(
    "xs, args",
    [
        ((1, 2, 5, 4), dict(in_channels=2, out_channels=3, kernel_size=(3, 2), stride=2, padding=1)),
        ((2, 3, 6, 7), dict(in_channels=3, out_channels=2, kernel_size=(1, 5), stride=(1, 2), padding=(0, 2))),
        ((3, 1, 5, 5), dict(in_channels=1, out_channels=2, kernel_size=2, stride=3, padding=2, bias=False)),
    ],
)
def test_conv2d_gradcheck(backend, xs, args):
    fastnet.seed(0)
    layer = Conv2D(**args, dtype=np.float64)
    x = np.random.default_rng(6).standard_normal(xs)
    result = check_layer(layer, x)
    result.assert_ok()
    assert result.max_error < 1e-6


# ---- (3) errors ------------------------------------------------------------------------------
def test_wrong_channel_count_names_layer_expected_and_got():
    layer = Conv2D(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2D: expected input with 3 channels .*got shape \(2, 4, 8, 8\)"):
        layer.forward(np.zeros((2, 4, 8, 8), np.float32))


def test_kernel_larger_than_padded_input():
    layer = Conv2D(1, 1, (5, 3), padding=1)
    with pytest.raises(
        ValueError,
        match=r"Conv2D: kernel \(5, 3\) is larger than the padded input \(4, 6\) "
        r"\(input shape \(1, 1, 2, 4\), padding \(1, 1\)\)",
    ):
        layer.forward(np.zeros((1, 1, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D: kernel \(5, 3\) is larger than the padded input"):
        layer.output_shape((1, 2, 4))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kernel_size=0), r"Conv2D: kernel_size must be >= 1, got 0"),
        (
            dict(kernel_size=(3, 2, 1)),
            r"Conv2D: kernel_size must be an int or a pair of ints \(h, w\), got \(3, 2, 1\)",
        ),
        (dict(kernel_size=3, stride=0), r"Conv2D: stride must be >= 1, got 0"),
        (dict(kernel_size=3, padding=-1), r"Conv2D: padding must be >= 0, got -1"),
        (dict(kernel_size=3, padding=1.5), r"Conv2D: padding must be an int or a pair"),
        (dict(kernel_size=3, dtype=np.int32), r"Conv2D: dtype must be float32 or float64, got int32"),
        (dict(kernel_size=3, init="zeros"), r"Conv2D: init must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Conv2D(2, 2, **kwargs)


def test_bad_channel_arguments():
    with pytest.raises(ValueError, match=r"Conv2D: in_channels must be a positive int, got 0"):
        Conv2D(0, 2, 3)
    with pytest.raises(ValueError, match=r"Conv2D: out_channels must be a positive int, got 2.0"):
        Conv2D(1, 2.0, 3)


def test_bad_inputs_and_backward_misuse():
    layer = Conv2D(2, 3, 3, padding=1)
    with pytest.raises(ValueError, match=r"Conv2D: expected a 4-d input \(N, \?, \?, \?\), got shape \(2, 5, 5\)"):
        layer.forward(np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D: expected input dtype float32 \(the layer's dtype\), got float64"):
        layer.forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(RuntimeError, match=r"Conv2D.backward called before forward"):
        layer.backward(np.zeros((1, 3, 5, 5), np.float32))
    layer.forward(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D.backward: expected dout of shape \(1, 3, 5, 5\), got \(1, 3, 4, 4\)"):
        layer.backward(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D: expected a sample shape \(2, H, W\), got \(3, 5, 5\)"):
        layer.output_shape((3, 5, 5))


# ---- (4) dtype, parameters, state, config --------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_preserves_dtype_and_shapes(backend, dtype):
    fastnet.seed(1)
    layer = Conv2D(3, 5, (3, 2), stride=(2, 1), padding=(1, 0), dtype=dtype)
    assert layer.params["weight"].shape == (5, 3, 3, 2) and layer.params["bias"].shape == (5,)
    assert all(p.dtype == dtype for p in layer.params.values())
    x = np.random.default_rng(7).standard_normal((2, 3, 7, 6)).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype
    assert y.shape == (2, *layer.output_shape((3, 7, 6))) == (2, 5, 4, 5)
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == dtype and dx.shape == x.shape
    assert all(layer.grads[k].dtype == dtype for k in ("weight", "bias"))
    np.testing.assert_allclose(layer.grads["bias"], np.full(5, y[0, 0].size * 2), rtol=1e-6)


def test_output_shape_keeps_unknown_sizes_unknown():
    layer = Conv2D(3, 8, (3, 1), stride=2, padding=(1, 0))
    assert layer.output_shape((3, None, 9)) == (8, None, 5)
    assert layer.output_shape((None, 7, None)) == (8, 4, None)


def test_layer_forward_equals_loops_and_uses_bias():
    fastnet.seed(2)
    layer = Conv2D(2, 3, 3, stride=2, padding=1, dtype=np.float64)
    layer.params["bias"][...] = [1.0, -2.0, 0.5]
    x = np.random.default_rng(8).standard_normal((2, 2, 5, 6))
    want = naive_conv_forward(x, layer.params["weight"], layer.params["bias"], (2, 2), (1, 1))
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-10, atol=1e-12)


def test_no_bias_layer_has_only_weight():
    layer = Conv2D(2, 3, 2, bias=False, dtype=np.float64)
    assert list(layer.params) == ["weight"] and list(layer.grads) == ["weight"]
    assert layer.num_params() == 3 * 2 * 2 * 2
    x = np.random.default_rng(9).standard_normal((1, 2, 3, 3))
    want = naive_conv_forward(x, layer.params["weight"], np.zeros(3), (1, 1), (0, 0))
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-10, atol=1e-12)


def test_eval_mode_keeps_nothing_for_backward():
    layer = Conv2D(1, 1, 3).eval()
    layer.forward(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 1, 2, 2), np.float32))


def test_he_init_scale_and_seeding():
    fastnet.seed(3)
    a = Conv2D(16, 32, 3).params["weight"]
    fastnet.seed(3)
    b = Conv2D(16, 32, 3).params["weight"]
    np.testing.assert_array_equal(a, b)
    assert abs(a.std() - np.sqrt(2.0 / (16 * 9))) < 0.1 * np.sqrt(2.0 / (16 * 9))


def test_config_is_json_and_rebuilds_the_layer():
    layer = Conv2D(1, 6, 5, padding=2)
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config == {
        "in_channels": 1,
        "out_channels": 6,
        "kernel_size": 5,
        "stride": 1,
        "padding": 2,
        "bias": True,
        "init": "he",
        "dtype": "float32",
    }
    odd = Conv2D(2, 3, (3, 1), stride=(1, 2), padding=(1, 0), bias=False, init="glorot", dtype=np.float64)
    again = Conv2D.from_config(json.loads(json.dumps(odd.get_config())))
    assert (again.kernel_size, again.stride, again.padding) == ((3, 1), (1, 2), (1, 0))
    assert again.get_config() == odd.get_config()
    assert repr(layer) == (
        "Conv2D(in_channels=1, out_channels=6, kernel_size=5, stride=1, padding=2, bias=True, "
        "init='he', dtype='float32')"
    )


# ---- (5) Conv2D + ReLU fusion ----------------------------------------------------------------
def _conv_relu_pair(dtype=np.float32, seed=0, **kw):
    args = dict(in_channels=3, out_channels=5, kernel_size=3, padding=1) | kw
    fastnet.seed(seed)
    a = Conv2D(**args, dtype=dtype)
    fastnet.seed(seed)
    b = Conv2D(**args, dtype=dtype)
    b.params["bias"][...] = a.params["bias"][...] = np.linspace(-0.5, 0.5, args["out_channels"])
    return a, b


@pytest.mark.parametrize("out_channels", [5, 24])  # stacked and wide GEMM paths
def test_fused_relu_equals_conv_then_relu(backend, out_channels):
    from fastnet.layers import ReLU

    plain, conv = _conv_relu_pair(out_channels=out_channels)
    fused = FusedRelu(conv)
    act = ReLU()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 7, 6)).astype(np.float32)
    y = fused.forward(x, training=True)
    want = act.forward(plain.forward(x, training=True), training=True)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    assert conv.accepts_activation("relu") and (y == 0).any()
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(fused.backward(dy), plain.backward(act.backward(dy)), rtol=1e-5, atol=1e-5)
    for k in ("weight", "bias"):
        np.testing.assert_allclose(fused.grads[k], plain.grads[k], rtol=1e-5, atol=1e-5)
    assert "fused" not in repr(conv) and "fused" not in json.dumps(conv.get_config())
    np.testing.assert_allclose(conv.forward(x), plain.forward(x), rtol=1e-6, atol=1e-6)  # no state left


@pytest.mark.parametrize("out_channels", [3, 20])
def test_fused_relu_conv_gradcheck(backend, out_channels):
    _, conv = _conv_relu_pair(np.float64, seed=2, out_channels=out_channels, stride=(1, 2))
    layer = FusedRelu(conv)
    x = np.random.default_rng(9).standard_normal((2, 3, 6, 5))
    result = check_layer(layer, x)
    result.assert_ok()
    assert result.max_error < 1e-6


def test_fused_relu_backends_agree():
    _, conv = _conv_relu_pair(np.float64, out_channels=20)
    layer = FusedRelu(conv)
    x = np.random.default_rng(4).standard_normal((3, 3, 9, 8))
    out = {}
    for name in ("fast", "numpy"):
        with fastnet.use_backend(name):
            y = layer.forward(x, training=True)
            dx = layer.backward(np.cos(y))
            out[name] = (y, dx, layer.grads["weight"].copy(), layer.grads["bias"].copy())
    for a, b in zip(out["fast"], out["numpy"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_fuse_arguments_and_backward_misuse():
    layer = Conv2D(2, 3, 3)
    assert layer.accepts_activation("relu") and not layer.accepts_activation("tanh")
    with pytest.raises(ValueError, match=r"Conv2D: can fuse only \('relu',\), got 'tanh'"):
        layer._forward(np.zeros((1, 2, 4, 4), np.float32), True, activation=("tanh", 0.0))
    layer.forward(np.zeros((1, 2, 4, 4), np.float32), training=False)  # eval: nothing kept
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((1, 3, 2, 2), np.float32))


def test_model_fuses_conv_relu_only():
    from fastnet import layers as L

    fastnet.seed(0)
    m = fastnet.Sequential(
        [
            L.Conv2D(1, 4, 3, dtype=np.float64),
            L.ReLU(),
            L.MaxPool2D(2),
            L.Conv2D(4, 20, 3, padding=1, dtype=np.float64),
            L.Sigmoid(),
            L.Flatten(),
            L.Dense(20 * 3 * 3, 3, dtype=np.float64),
        ]
    )
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8))
    y = np.array([0, 1, 2, 1, 0])
    plain = m.forward(x, training=False)
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    assert m.fusions() == [("0", "1", "2")]  # conv+ReLU+pool; sigmoid (4) is not fusable into a conv (3)
    assert not any(isinstance(step.layer, L.ReLU) for step in m._current_plan(True).steps)
    np.testing.assert_allclose(m.forward(x, training=False), plain, rtol=1e-12, atol=1e-12)
    res = fastnet.gradcheck.check_model(m, x, y)
    assert res.ok and res.max_error < 1e-6, res
    # a slice holding the fused conv without its ReLU must not apply the ReLU
    head = m[:1]
    z = head.forward(x, training=False)
    assert (z < 0).any()
    assert m.fusions() == [("0", "1", "2")]  # the slice did not change the model's plan
    m.unfuse()
    np.testing.assert_allclose(m.forward(x, training=False), plain, rtol=1e-12, atol=1e-12)
