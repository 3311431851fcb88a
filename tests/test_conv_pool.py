"""A convolution with the 2x2 stride-2 max-pool after it (``conv2d_maxpool_forward``, compile's Conv2D+MaxPool2D
fusion): the fast kernels against the reference on every engine, the same values as the unfused fast kernels, NaN,
every blocked build and thread count; the compile-time rewrite, fused models against unfused ones in evaluation and
training, a float64 gradient check, and the errors."""

import numpy as np
import pytest
from _conv_checks import POOL_CASES, close, pool_case, record_calls

import fastnet
from fastnet import layers as L
from fastnet._kernels import config
from fastnet._kernels.fast import blocked, winograd
from fastnet._kernels.fast import conv as fast_conv
from fastnet._kernels.fast import conv_pool as fast_cp
from fastnet._kernels.fast import pool as fast_pool
from fastnet._kernels.reference import conv_pool as ref_cp

POOL = ((2, 2), (2, 2), (0, 0))
CASES = POOL_CASES
ACTS = [None, "relu"]
_case = pool_case


def _unfused(x, wt, b, stride, padding, act):
    """The fast kernels unfused: the convolution (with its ReLU), then the pool."""
    return fast_pool.maxpool2d_forward(fast_conv.conv2d_forward(x, wt, b, stride, padding, act), *POOL)[0]


@pytest.fixture
def engine_calls(monkeypatch):
    """The forward calls that reach the blocked and the Winograd kernels, by engine."""
    return {"blocked": record_calls(monkeypatch, blocked), "winograd": record_calls(monkeypatch, winograd)}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1:8]}-{np.dtype(c[-1]).name}")
@pytest.mark.parametrize("act", ACTS)
def test_fused_equals_reference_and_the_unfused_kernels(engine_calls, case, act):
    x, wt, b, stride, padding = _case(case, seed=1)
    if case[0] == "winograd":  # with more than BLOCKED_WINOGRAD_CF channels Winograd keeps the layer anyway
        config_cf = config.BLOCKED_WINOGRAD_CF
        assert case[10] == np.float64 or case[2] * case[3] > config_cf
    y = fast_cp.conv2d_maxpool_forward(x, wt, b, stride, padding, act)
    want = ref_cp.conv2d_maxpool_forward(x, wt, b, stride, padding, act)
    n, f, oh, ow = case[1], case[3], *fast_conv.conv2d_forward(x, wt, b, stride, padding, act).shape[2:]
    assert y.shape == (n, f, oh // 2, ow // 2)
    close(y, want, x.dtype)
    assert np.array_equal(y, _unfused(x, wt, b, stride, padding, act))  # pooling in the output pass changes no bit
    for name, calls in engine_calls.items():
        # the fused forward, then the unfused one in the check above: both on the engine the case names
        assert calls == (["conv2d_forward"] * 3 if name == case[0] else []), (name, calls)


def test_reference_is_the_pool_of_the_convolution():
    from fastnet._kernels.reference import conv as ref_conv
    from fastnet._kernels.reference import pool as ref_pool

    x, wt, b, stride, padding = _case(CASES[2])
    y = ref_cp.conv2d_maxpool_forward(x, wt, b, stride, padding, "relu")
    conv = ref_conv.conv2d_forward(x, wt, b, stride, padding, "relu")
    assert np.array_equal(y, ref_pool.maxpool2d_forward(conv, *POOL)[0])
    assert y.shape == (2, 5, conv.shape[2] // 2, conv.shape[3] // 2)


def test_every_blocked_build_pools_the_same(blocked_build):
    for case in CASES[:4]:
        x, wt, b, stride, padding = _case(case, seed=2)
        for act in ACTS:
            y = fast_cp.conv2d_maxpool_forward(x, wt, b, stride, padding, act)
            assert np.array_equal(y, _unfused(x, wt, b, stride, padding, act))


@pytest.mark.parametrize("case", [CASES[1], CASES[4]], ids=["blocked", "winograd"])
def test_a_nan_wins_its_window(case):
    x, wt, b, stride, padding = _case(case, seed=3)
    x[0, 0, 3, 4] = np.nan
    x[-1, -1, -2, 1] = np.nan
    for act in ACTS:
        y = fast_cp.conv2d_maxpool_forward(x, wt, b, stride, padding, act)
        want = ref_cp.conv2d_maxpool_forward(x, wt, b, stride, padding, act)
        assert np.isnan(want).any()
        np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
        close(np.nan_to_num(y), np.nan_to_num(want), x.dtype)


@pytest.mark.parametrize("case", [CASES[1], CASES[4]], ids=["blocked", "winograd"])
def test_same_bits_at_every_thread_count(case):
    x, wt, b, stride, padding = _case(case, seed=4)
    x = np.concatenate([x] * 5)  # enough samples for several tasks
    before = fastnet.get_num_threads()
    try:
        results = []
        for count in (1, 2, 3):
            fastnet.set_num_threads(count)
            results.append(fast_cp.conv2d_maxpool_forward(x, wt, b, stride, padding, "relu"))
    finally:
        fastnet.set_num_threads(before)
    for other in results[1:]:
        assert np.array_equal(results[0], other)


@pytest.mark.parametrize("kernels", [fast_cp, ref_cp], ids=["fast", "reference"])
def test_kernel_errors(kernels):
    x, wt, b, stride, padding = _case(CASES[1])
    with pytest.raises(ValueError, match="relu"):
        kernels.conv2d_maxpool_forward(x, wt, b, stride, padding, "tanh")
    with pytest.raises(ValueError):  # a 1x1 output leaves no 2x2 window
        kernels.conv2d_maxpool_forward(x[:, :, :5, :5], wt, b, stride, padding)


# ---- the compile-time fusion -------------------------------------------------------------------
def _net(dtype=np.float32, pool=None, act=True, seed=0):
    fastnet.seed(seed)
    layers = [L.Conv2D(2, 5, 3, padding=1, dtype=dtype)] + ([L.ReLU()] if act else [])
    layers += [pool or L.MaxPool2D(2), L.Conv2D(5, 4, (3, 2), dtype=dtype), L.ReLU(), L.MaxPool2D(2)]
    layers += [L.Flatten(), L.Dense(4 * 1 * 2, 3, dtype=dtype)]
    net = fastnet.Sequential(layers)
    net.compile(optimizer=fastnet.optim.SGD(lr=0.05, momentum=0.9), loss="softmax_cross_entropy")
    return net


def _data(dtype=np.float32, n=6):
    rng = np.random.default_rng(5)
    return rng.standard_normal((n, 2, 11, 13)).astype(dtype), rng.integers(0, 3, n)


def test_compile_fuses_conv_relu_and_pool():
    assert _net().fusions() == [("0", "1", "2"), ("3", "4", "5")]
    assert _net(act=False).fusions() == [("0", "1"), ("2", "3", "4")]  # a conv without its ReLU takes the pool too
    net = _net()
    assert not any(isinstance(s.layer, L.MaxPool2D) for s in net._current_plan(True).steps)


@pytest.mark.parametrize(
    "pool", [L.MaxPool2D(2, stride=1), L.MaxPool2D(3), L.MaxPool2D(2, padding=1), L.AvgPool2D(2)], ids=repr
)
def test_other_pools_stay_apart(pool):
    net = _net(pool=pool)
    assert net.fusions()[0] == ("0", "1")
    assert any(s.layer is pool for s in net._current_plan(True).steps)


def test_a_conv_read_twice_keeps_its_pool_apart():
    x_in = fastnet.Input((2, 8, 8))
    h = L.ReLU()(L.Conv2D(2, 3, 3, padding=1)(x_in))
    p = L.MaxPool2D(2)(h)
    side = L.AvgPool2D(2)(h)
    model = fastnet.Model(x_in, L.Add()([p, side]))
    model.compile(optimizer="sgd", loss="mse")
    assert model.fusions() == [("conv2d", "relu")]


def test_fused_model_equals_unfused_in_evaluation_and_training():
    x, y = _data()
    fused, unfused = _net(), _net()
    unfused.unfuse()
    assert np.array_equal(fused.predict(x), unfused.predict(x))
    for _ in range(3):  # training through the fused kernels (winners, pooled gradient): the same bits
        assert fused.train_on_batch(x, y) == unfused.train_on_batch(x, y)
    for k, v in fused.params.items():
        assert np.array_equal(v, unfused.params[k]), k
    assert np.array_equal(fused.predict(x), unfused.predict(x))


def test_fused_model_passes_the_float64_gradient_check():
    x, y = _data(np.float64, n=3)
    net = _net(np.float64)
    assert net.fusions()[0] == ("0", "1", "2")
    res = fastnet.gradcheck.check_model(net, x, y)
    assert res.ok and res.max_error < 1e-6, res


@pytest.mark.parametrize("training", [False, True])
def test_too_small_an_output_names_the_pool(training):
    net = _net()
    x = np.zeros((2, 2, 1, 1), dtype=np.float32)  # the first conv's output is 1x1: no 2x2 window
    message = r"MaxPool2D: kernel \(2, 2\) is larger than the padded input \(1, 1\) \(input shape \(2, 5, 1, 1\)"
    with pytest.raises(ValueError, match=message):
        if training:
            net.train_on_batch(x, np.array([0, 1]))
        else:
            net.predict(x)
