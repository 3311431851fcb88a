"""Optimizers against steps computed by hand (formulas written out here, no kernel calls),
lr multipliers, state save/restore, per-parameter state, errors and config."""

import io
import json

import numpy as np
import pytest

from fastnet import optim
from fastnet._kernels import kernel

# The tiny problem: f(p) = 0.5 * sum(a * p**2), so grad = a * p.
A = np.array([1.0, 4.0, 0.5])
P0 = np.array([1.0, -2.0, 3.0])


def grad(p):
    return A * p


def run(opt, steps=3, p0=P0, lr_mult=1.0, key="w"):
    p = p0.copy()
    for _ in range(steps):
        opt.step([(key, p, grad(p), lr_mult)])
    return p


def by_hand(update, steps=3):
    """Apply ``update(p, g, state, t) -> p`` (explicit formulas) to the tiny problem."""
    p, state = P0.copy(), {}
    for t in range(1, steps + 1):
        p = update(p, grad(p), state, t)
    return p


# ---- each optimizer against the formulas -------------------------------------------------------------
def test_sgd_plain(backend):
    def update(p, g, s, t):
        return p - 0.1 * g

    np.testing.assert_allclose(run(optim.SGD(lr=0.1)), by_hand(update), rtol=1e-12, atol=1e-14)


def test_sgd_momentum(backend):
    def update(p, g, s, t):
        s["buf"] = 0.9 * s.get("buf", 0.0) + g  # PyTorch: the first buf is g
        return p - 0.1 * s["buf"]

    np.testing.assert_allclose(run(optim.SGD(lr=0.1, momentum=0.9)), by_hand(update), rtol=1e-12, atol=1e-14)


def test_sgd_nesterov_weight_decay(backend):
    def update(p, g, s, t):
        d = g + 0.01 * p
        s["buf"] = 0.8 * s.get("buf", 0.0) + d
        return p - 0.05 * (d + 0.8 * s["buf"])

    opt = optim.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)
    np.testing.assert_allclose(run(opt), by_hand(update), rtol=1e-12, atol=1e-14)


def test_adagrad(backend):
    def update(p, g, s, t):
        s["acc"] = s.get("acc", 0.0) + g * g
        return p - 0.5 * g / (np.sqrt(s["acc"]) + 1e-10)

    np.testing.assert_allclose(run(optim.AdaGrad(lr=0.5)), by_hand(update), rtol=1e-12, atol=1e-14)


def test_rmsprop(backend):
    def update(p, g, s, t):
        d = g + 0.1 * p
        s["sq"] = 0.9 * s.get("sq", 0.0) + 0.1 * d * d
        return p - 0.01 * d / (np.sqrt(s["sq"]) + 1e-7)

    np.testing.assert_allclose(run(optim.RMSprop(lr=0.01, weight_decay=0.1)), by_hand(update), rtol=1e-12, atol=1e-14)


def test_adam(backend):
    def update(p, g, s, t):
        s["m"] = 0.9 * s.get("m", 0.0) + 0.1 * g
        s["v"] = 0.999 * s.get("v", 0.0) + 0.001 * g * g
        m_hat = s["m"] / (1 - 0.9**t)
        v_hat = s["v"] / (1 - 0.999**t)
        return p - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)

    np.testing.assert_allclose(run(optim.Adam(lr=0.1)), by_hand(update), rtol=1e-12, atol=1e-14)
    # first Adam step moves every coordinate by ~lr regardless of the gradient's scale
    np.testing.assert_allclose(run(optim.Adam(lr=0.1), steps=1), P0 - 0.1 * np.sign(grad(P0)), rtol=1e-7)


def test_adam_l2_weight_decay_is_coupled(backend):
    def update(p, g, s, t):
        d = g + 0.2 * p
        s["m"] = 0.5 * s.get("m", 0.0) + 0.5 * d
        s["v"] = 0.9 * s.get("v", 0.0) + 0.1 * d * d
        return p - 0.1 * (s["m"] / (1 - 0.5**t)) / (np.sqrt(s["v"] / (1 - 0.9**t)) + 1e-6)

    opt = optim.Adam(lr=0.1, beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.2)
    np.testing.assert_allclose(run(opt), by_hand(update), rtol=1e-12, atol=1e-14)


def test_adamw_decoupled(backend):
    def update(p, g, s, t):
        p = p * (1 - 0.1 * 0.05)  # decay first, on the parameter, outside the moments
        s["m"] = 0.9 * s.get("m", 0.0) + 0.1 * g
        s["v"] = 0.999 * s.get("v", 0.0) + 0.001 * g * g
        return p - 0.1 * (s["m"] / (1 - 0.9**t)) / (np.sqrt(s["v"] / (1 - 0.999**t)) + 1e-8)

    np.testing.assert_allclose(run(optim.AdamW(lr=0.1, weight_decay=0.05)), by_hand(update), rtol=1e-12, atol=1e-14)
    assert optim.AdamW().weight_decay == 0.01


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.SGD(0.1, momentum=0.9),
        lambda: optim.Adam(0.01),
        lambda: optim.RMSprop(),
        lambda: optim.AdaGrad(),
        lambda: optim.AdamW(),
    ],
)
def test_float32_in_place(backend, make):
    p = P0.astype(np.float32)
    before = p.copy()
    opt = make()
    opt.step([("w", p, (A * p).astype(np.float32), 1.0)])
    assert p.dtype == np.float32 and not np.array_equal(p, before)  # updated in place
    assert all(v.dtype == np.float32 for k, v in opt.state_dict().items() if "/" in k and not k.startswith("step/"))


# ---- lr_mult, lr setter, iterations ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda lr: optim.SGD(lr, momentum=0.5),
        lambda lr: optim.RMSprop(lr),
        lambda lr: optim.Adam(lr),
        lambda lr: optim.AdaGrad(lr),
    ],
)
def test_lr_mult_scales_the_learning_rate(backend, make):
    np.testing.assert_allclose(run(make(0.1), lr_mult=0.25), run(make(0.025)), rtol=1e-12)
    np.testing.assert_array_equal(run(make(0.1), lr_mult=0.0), P0)  # a frozen layer does not move


def test_per_parameter_lr_mult_in_one_step(backend):
    opt = optim.SGD(lr=0.1)
    a, b = P0.copy(), P0.copy()
    opt.step([("a", a, grad(a), 1.0), ("b", b, grad(b), 2.0)])
    np.testing.assert_allclose(a, P0 - 0.1 * grad(P0))
    np.testing.assert_allclose(b, P0 - 0.2 * grad(P0))
    assert opt.iterations == 1


def test_lr_is_settable(backend):
    opt = optim.SGD(lr=0.1)
    p = P0.copy()
    opt.step([("w", p, grad(p), 1.0)])
    opt.lr = 0.01
    q = p.copy()
    opt.step([("w", p, grad(p), 1.0)])
    np.testing.assert_allclose(p, q - 0.01 * grad(q))
    assert opt.iterations == 2


def test_adam_bias_correction_is_per_parameter(backend):
    # a parameter first seen at iteration 3 gets the t=1 correction, as in PyTorch
    opt = optim.Adam(lr=0.1)
    a = P0.copy()
    for _ in range(2):
        opt.step([("a", a, grad(a), 1.0)])
    b = P0.copy()
    opt.step([("a", a, grad(a), 1.0), ("b", b, grad(b), 1.0)])
    np.testing.assert_allclose(b, run(optim.Adam(lr=0.1), steps=1), rtol=1e-14)
    assert opt.iterations == 3
    assert int(opt.state_dict()["step/b"]) == 1 and int(opt.state_dict()["step/a"]) == 3


# ---- state_dict ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.SGD(0.05, momentum=0.9, nesterov=True),
        lambda: optim.SGD(0.05),
        lambda: optim.AdaGrad(0.1),
        lambda: optim.RMSprop(0.01),
        lambda: optim.Adam(0.05),
        lambda: optim.AdamW(0.05),
    ],
)
def test_state_dict_round_trip_gives_identical_steps(backend, make):
    opt = make()
    p = run(opt, steps=2)
    state = opt.state_dict()
    buf = io.BytesIO()
    np.savez(buf, **state)  # it must survive an .npz without pickle
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}
    resumed_p = p.copy()
    resumed = make()
    resumed.lr = 123.0  # restored from the state
    resumed.load_state_dict(loaded)
    assert resumed.iterations == 2 and resumed.lr == opt.lr
    expected = run(opt, steps=3, p0=p)
    got = run(resumed, steps=3, p0=resumed_p)
    np.testing.assert_array_equal(got, expected)
    # the saved dict is a copy: stepping did not change it
    for k, v in make().load_state_dict(state).state_dict().items():
        np.testing.assert_array_equal(v, state[k])


def test_state_dict_layout():
    opt = optim.Adam()
    run(opt, steps=1)
    state = opt.state_dict()
    assert sorted(state) == ["iterations", "lr", "m/w", "step/w", "v/w"]
    assert state["iterations"].shape == () and state["lr"].shape == ()


def test_load_state_dict_errors():
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: unexpected entry 'momentum/w'"):
        optim.Adam().load_state_dict({"iterations": np.array(1), "momentum/w": np.zeros(3)})
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: parameter 'w' lacks state \['v'\]"):
        optim.Adam().load_state_dict({"iterations": np.array(1), "m/w": np.zeros(3)})
    with pytest.raises(
        ValueError, match=r"Adam.load_state_dict: expected a dict from state_dict\(\) with 'iterations'"
    ):
        optim.Adam().load_state_dict({})
    opt = optim.Adam().load_state_dict({"iterations": np.array(1), "m/w": np.zeros(2), "v/w": np.zeros(2)})
    with pytest.raises(ValueError, match=r"Adam: state m/w has shape \(2,\) but the parameter has shape \(3,\)"):
        run(opt, steps=1)


# ---- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: optim.SGD(lr=-0.1), r"SGD: lr must be in \[0, inf\), got -0.1"),
        (lambda: optim.SGD(lr="fast"), r"SGD: lr must be a number, got 'fast'"),
        (lambda: optim.SGD(lr=float("nan")), r"SGD: lr must be in \[0, inf\), got nan"),
        (lambda: optim.SGD(momentum=1.0), r"SGD: momentum must be in \[0, 1\), got 1.0"),
        (lambda: optim.SGD(momentum=-0.5), r"SGD: momentum must be in \[0, 1\), got -0.5"),
        (lambda: optim.SGD(nesterov=True), r"SGD: nesterov=True needs momentum > 0"),
        (lambda: optim.SGD(weight_decay=-1), r"SGD: weight_decay must be in \[0, inf\), got -1"),
        (lambda: optim.AdaGrad(eps=0), r"AdaGrad: eps must be in \(0, inf\), got 0"),
        (lambda: optim.RMSprop(rho=1.0), r"RMSprop: rho must be in \[0, 1\), got 1.0"),
        (lambda: optim.RMSprop(eps=-1e-8), r"RMSprop: eps must be in \(0, inf\)"),
        (lambda: optim.Adam(beta1=1.0), r"Adam: beta1 must be in \[0, 1\), got 1.0"),
        (lambda: optim.Adam(beta2=-0.1), r"Adam: beta2 must be in \[0, 1\), got -0.1"),
        (lambda: optim.AdamW(eps=0.0), r"AdamW: eps must be in \(0, inf\), got 0.0"),
    ],
)
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_lr_assignment():
    opt = optim.Adam()
    with pytest.raises(ValueError, match=r"Adam: lr must be in \[0, inf\), got -1"):
        opt.lr = -1
    assert opt.lr == 1e-3


def test_bad_slots():
    opt = optim.SGD()
    p = np.zeros(3)
    with pytest.raises(
        ValueError, match=r"SGD.step: gradient of 'w' must match its parameter \(\(3,\), float64\), got \(2,\)"
    ):
        opt.step([("w", p, np.zeros(2), 1.0)])
    with pytest.raises(ValueError, match=r"SGD.step: gradient of 'w' must match .* got \(3,\) float32"):
        opt.step([("w", p, np.zeros(3, dtype=np.float32), 1.0)])
    with pytest.raises(
        ValueError, match=r"SGD.step: parameter 'w' must be a C-contiguous float32/float64 array, got int64"
    ):
        opt.step([("w", np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64), 1.0)])
    with pytest.raises(ValueError, match=r"SGD.step: lr_mult of 'w' must be in \[0, inf\), got -1.0"):
        opt.step([("w", p, np.zeros(3), -1.0)])
    with pytest.raises(ValueError, match=r"SGD.step: expected \(key, param, grad, lr_mult\) tuples"):
        opt.step([("w", p, np.zeros(3))])
    assert opt.iterations == 0  # nothing counted when a slot is bad


# ---- get / config ------------------------------------------------------------------------------------------
def test_get_and_config_round_trip():
    for name, cls in [
        ("sgd", optim.SGD),
        ("Adam", optim.Adam),
        ("ADAMW", optim.AdamW),
        ("rmsprop", optim.RMSprop),
        ("adagrad", optim.AdaGrad),
    ]:
        assert type(optim.get(name)) is cls
    opt = optim.SGD(lr=0.3, momentum=0.5, nesterov=True, weight_decay=1e-4)
    assert optim.get(opt) is opt
    for o in (
        opt,
        optim.Adam(2e-3, 0.8, 0.99, 1e-7, 0.1),
        optim.AdamW(),
        optim.RMSprop(rho=0.95),
        optim.AdaGrad(eps=1e-8),
    ):
        cfg = json.loads(json.dumps(o.get_config()))
        again = optim.from_config(cfg)
        assert type(again) is type(o) and again.get_config() == o.get_config()
    assert optim.SGD(lr=0.3, momentum=0.5).get_config() == {
        "class_name": "SGD",
        "config": {"lr": 0.3, "momentum": 0.5, "nesterov": False, "weight_decay": 0.0},
    }
    with pytest.raises(ValueError, match=r"unknown optimizer 'lbfgs'"):
        optim.get("lbfgs")
    with pytest.raises(ValueError, match=r"unknown optimizer class 'Nope'"):
        optim.from_config({"class_name": "Nope", "config": {}})


def test_documented_defaults():
    assert (optim.RMSprop().lr, optim.RMSprop().rho, optim.RMSprop().eps) == (1e-3, 0.9, 1e-7)
    a = optim.Adam()
    assert (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay) == (1e-3, 0.9, 0.999, 1e-8, 0.0)
    assert (optim.AdaGrad().lr, optim.AdaGrad().eps) == (0.01, 1e-10)
    assert optim.SGD().lr == 0.01


# ---- the update kernels: fast twin against the NumPy reference -----------------------------------------
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_update_kernels_fast_equals_reference(rng, dtype, rtol):
    shape = (17, 5)
    g = rng.standard_normal(shape).astype(dtype)
    p0 = rng.standard_normal(shape).astype(dtype)
    s0 = rng.random(shape).astype(dtype)  # non-negative: valid for squared-gradient state
    cases = [
        ("sgd_update_", lambda p, s, t: (p, g, None, 0.1, 0.0, 0.0, False, 0.0)),
        ("sgd_update_", lambda p, s, t: (p, g, s[0], 0.1, 0.9, 0.0, False, 1e-2)),
        ("sgd_update_", lambda p, s, t: (p, g, s[0], 0.1, 0.9, 0.0, True, 0.0)),
        ("adagrad_update_", lambda p, s, t: (p, g, s[0], 0.1, 1e-10, 1e-2)),
        ("rmsprop_update_", lambda p, s, t: (p, g, s[0], 0.01, 0.9, 1e-7, 1e-2)),
        ("adam_update_", lambda p, s, t: (p, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-8, t, 1e-2, False)),
        ("adam_update_", lambda p, s, t: (p, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-8, t, 1e-2, True)),
    ]
    for name, make_args in cases:
        out = {}
        for backend in ("numpy", "fast"):
            p, s = p0.copy(), [s0.copy(), s0.copy()]
            for t in (1, 2, 3):
                assert kernel(name, backend)(*make_args(p, s, t)) is None
            out[backend] = (p, s)
        np.testing.assert_allclose(out["fast"][0], out["numpy"][0], rtol=rtol, atol=rtol, err_msg=name)
        for a, b in zip(out["fast"][1], out["numpy"][1], strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol, err_msg=name)
        assert out["fast"][0].dtype == dtype


def test_reference_sgd_kernel_one_explicit_step():
    # one explicit reference-kernel step with every term: p -= lr * (d + mu * (mu * buf + d)), d = g + wd * p
    p, g, buf = np.array([2.0]), np.array([0.5]), np.array([1.0])
    kernel("sgd_update_", "numpy")(p, g, buf, 0.1, 0.9, 0.0, True, 0.25)
    d = 0.5 + 0.25 * 2.0
    assert buf[0] == pytest.approx(0.9 * 1.0 + d)
    assert p[0] == pytest.approx(2.0 - 0.1 * (d + 0.9 * (0.9 + d)))
