"""Fast (Numba) kernels against their NumPy twins, on random shapes (hypothesis).

Criterion: float32 within 1e-4 and float64 within 1e-10, relative to the largest
reference magnitude (elementwise relative error means nothing for entries that cancel
to ~0), and the output dtype equals the input dtype. Shapes include batch 1 and odd
sizes; ``test_parallel_variants`` repeats every kernel above ``PARALLEL_MIN_ELEMENTS``
so the threaded variants are checked too. Coverage, warmup and "import compiles
nothing" are in ``test_fast_kernels_meta.py``.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnet._kernels import config as kconfig
from fastnet._kernels import parallel as kparallel
from fastnet._kernels.config import PARALLEL_MIN_ELEMENTS
from fastnet._kernels.registry import kernel

DTYPES = (np.float32, np.float64)
TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
ACTS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu")
SETTINGS = settings(derandomize=True, max_examples=12, deadline=None)
# tools/coverage_jit.sh runs these tests with NUMBA_DISABLE_JIT=1 (kernels as plain Python):
# tests of what only compiled code does are skipped there.
needs_jit = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="checks compiled-code behaviour (NUMBA_DISABLE_JIT=1)")

dtypes = st.sampled_from(DTYPES)
seeds = st.integers(0, 2**31 - 1)
dim = st.integers(1, 17)  # batch 1 and odd sizes included


def run(name, *args, **kwargs):
    """(fast result, reference result), each on its own deep copy of the arguments."""
    copy = lambda a: a.copy() if isinstance(a, np.ndarray) else a  # noqa: E731
    fast = kernel(name, "fast")(*map(copy, args), **{k: copy(v) for k, v in kwargs.items()})
    return fast, kernel(name, "numpy")(*map(copy, args), **{k: copy(v) for k, v in kwargs.items()})


def close(f, r, dtype):
    """Assert one fast output equals the reference's (value, shape, dtype)."""
    if r is None:
        assert f is None
        return
    if isinstance(r, float):
        assert isinstance(f, float)
        np.testing.assert_allclose(f, r, rtol=TOL[np.dtype(dtype)] * 10)  # a sum of many terms
        return
    f, r = np.asarray(f), np.asarray(r)
    assert f.dtype == np.dtype(dtype), f"fast output dtype {f.dtype}, expected {np.dtype(dtype)}"
    assert f.shape == r.shape
    tol = TOL[np.dtype(dtype)]
    scale = max(1.0, float(np.max(np.abs(r)))) if r.size else 1.0
    np.testing.assert_allclose(f, r, rtol=tol, atol=tol * scale)


def close_all(fr, dtype):
    f, r = fr
    if isinstance(r, tuple):
        assert isinstance(f, tuple) and len(f) == len(r)
        for a, b in zip(f, r, strict=True):
            close(a, b, dtype)
    else:
        close(f, r, dtype)


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# --- dense ---


@SETTINGS
@given(n=dim, i=dim, o=dim, dtype=dtypes, seed=seeds)
def test_dense(n, i, o, dtype, seed):
    rng = np.random.default_rng(seed)
    x, w, b, dy = randn(rng, (n, i), dtype), randn(rng, (i, o), dtype), randn(rng, o, dtype), randn(rng, (n, o), dtype)
    close_all(run("dense_forward", x, w, b), dtype)
    close_all(run("dense_backward", dy, x, w), dtype)
    full = kernel("dense_backward", "numpy")(dy, x, w)
    for backend in ("fast", "numpy"):  # need_dx=False: no dx, the same dw and db
        dx, dw, db = kernel("dense_backward", backend)(dy, x, w, need_dx=False)
        assert dx is None
        close(dw, full[1], dtype)
        close(db, full[2], dtype)


@SETTINGS
@given(n=dim, i=dim, o=dim, act=st.sampled_from(ACTS), dtype=dtypes, seed=seeds)
def test_dense_act(n, i, o, act, dtype, seed):
    rng = np.random.default_rng(seed)
    x, w, b, dy = randn(rng, (n, i), dtype), randn(rng, (i, o), dtype), randn(rng, o, dtype), randn(rng, (n, o), dtype)
    (yf, zf), (yr, zr) = run("dense_act_forward", x, w, b, act, 0.1)
    close(yf, yr, dtype)
    close(zf, zr, dtype)
    # Backward from the reference's saved arrays, so only the backward kernel is compared.
    close_all(run("dense_act_backward", dy, x, w, yr, zr, act, 0.1), dtype)
    close_all(run("dense_act_backward", dy, x, w, yr, zr, act, 0.1, False), dtype)  # need_dx=False: dx None


# --- activations ---

shapes = st.lists(dim, min_size=1, max_size=4).map(tuple)


@SETTINGS
@given(shape=shapes, dtype=dtypes, seed=seeds)
def test_elementwise_activations(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x, dy = randn(rng, shape, dtype, 3.0), randn(rng, shape, dtype)
    x.flat[0] = 0.0  # the kink: gradient at 0 is 0
    for name in ("relu", "sigmoid", "tanh"):
        (yf, yr) = run(f"{name}_forward", x)
        close(yf, yr, dtype)
        close_all(run(f"{name}_backward", dy, yr), dtype)
    close_all(run("leaky_relu_forward", x, 0.2), dtype)
    close_all(run("leaky_relu_backward", dy, kernel("leaky_relu_forward", "numpy")(x, 0.2), 0.2), dtype)
    close_all(run("gelu_forward", x), dtype)
    close_all(run("gelu_backward", dy, x), dtype)
    for act in ACTS:
        yf, yr = run("act_forward", x, act, 0.1)
        close(yf, yr, dtype)
        z = x if act == "gelu" else None
        close_all(run("act_backward_from_output", dy, yr, z, act, 0.1), dtype)


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], dtype=np.float32)
    with np.errstate(all="raise"):
        y = kernel("sigmoid_forward", "fast")(x)
    assert np.all(np.isfinite(y))
    close(y, kernel("sigmoid_forward", "numpy")(x), np.float32)


# The fast kernels compute exp, tanh and log1p with their own vectorised polynomials
# (see fast/_vecmath.py and fast/losses.py): check them ELEMENTWISE (no scaling) over wide ranges,
# including tiny arguments, where a careless formula loses all relative accuracy.
ELEMENT_RTOL = {np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-13}


@pytest.mark.parametrize("dtype", DTYPES)
def test_vectorised_math_is_accurate_elementwise(dtype):
    mags = np.logspace(-9, 1.9, 4001)
    x = np.concatenate([-mags[::-1], [0.0], mags]).astype(dtype)
    rtol, tiny = ELEMENT_RTOL[np.dtype(dtype)], np.finfo(dtype).tiny
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(kernel("tanh_forward", "fast")(x), np.tanh(x64), rtol=rtol, atol=tiny)
    np.testing.assert_allclose(kernel("sigmoid_forward", "fast")(x), 1 / (1 + np.exp(-x64)), rtol=rtol, atol=tiny)
    rows = x[None, 3000:5000]  # |x| < ~0.1 ... 1e-9 ... : many nearly equal terms
    np.testing.assert_allclose(
        kernel("softmax_forward", "fast")(rows), kernel("softmax_forward", "numpy")(rows), rtol=rtol
    )
    # BCE from logits with t = 1 on x > 0 is log1p(exp(-x)): tiny for large x.
    pos = x[x > 0]
    loss, _ = kernel("sigmoid_bce_with_logits", "fast")(pos[-1500:], np.ones(1500, dtype))
    np.testing.assert_allclose(loss, np.log1p(np.exp(-pos[-1500:].astype(np.float64))).sum(), rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_propagates_like_the_reference(dtype):
    # A diverging model must show up as a NaN loss (fit stops on it), never be masked.
    x = np.array([[0.5, np.nan, -1.0, 2.0]], dtype)
    for name, args in [
        ("softmax_forward", (x,)),
        ("sigmoid_forward", (x,)),
        ("tanh_forward", (x,)),
        ("relu_forward", (x,)),
        ("gelu_forward", (x,)),
    ]:
        f, r = run(name, *args)
        np.testing.assert_array_equal(np.isnan(f), np.isnan(r), err_msg=name)
    for target in (np.array([0]), np.full((1, 4), 0.25, dtype)):
        loss, g = kernel("softmax_cross_entropy", "fast")(x, target, 0.0)
        assert np.isnan(loss) and np.isnan(g).all()
    loss, g = kernel("sigmoid_bce_with_logits", "fast")(x, np.ones_like(x))
    assert np.isnan(loss) and np.isnan(g[0, 1])


@SETTINGS
@given(shape=st.lists(dim, min_size=1, max_size=3).map(tuple), dtype=dtypes, seed=seeds)
def test_softmax(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x, dy = randn(rng, shape, dtype, 5.0), randn(rng, shape, dtype)
    yf, yr = run("softmax_forward", x)
    close(yf, yr, dtype)
    close_all(run("softmax_backward", dy, yr), dtype)


def test_unknown_activation_is_a_value_error():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        kernel("act_forward", "fast")(x, "swish", 0.0)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        kernel("dense_act_forward", "fast")(x, np.ones((3, 2), np.float32), np.zeros(2, np.float32), "swish", 0.0)


# --- batch norm ---


@SETTINGS
@given(
    n=dim,
    c=st.integers(1, 7),
    length=st.sampled_from([1, 3, 16, 25]),
    act=st.sampled_from([None, "relu"]),
    dtype=dtypes,
    seed=seeds,
)
def test_batchnorm(n, c, length, act, dtype, seed):
    rng = np.random.default_rng(seed)
    x = randn(rng, (n, c, length), dtype, 2.0) + dtype(3.0)  # non-zero mean: the centring matters
    gamma, beta = randn(rng, c, dtype), randn(rng, c, dtype)
    (yf, mf, vf, sf), ref = run("batchnorm_forward_train", x, gamma, beta, 1e-5, act=act)
    close_all(((yf, mf, vf, sf), ref), dtype)
    rm, rv = randn(rng, c, dtype), np.abs(randn(rng, c, dtype)) + dtype(0.5)
    close_all(run("batchnorm_forward_eval", x, gamma, beta, rm, rv, 1e-5, act=act), dtype)
    dy = randn(rng, (n, c, length), dtype)
    y, mean, _, inv_std = ref
    close_all(run("batchnorm_backward", dy, x, mean, gamma, inv_std, act=act, y3=y), dtype)


def test_batchnorm_fused_relu_is_bn_then_relu(rng):
    """The fused kernels equal the two separate kernels, NaN included (it propagates as in np.maximum)."""
    x = rng.standard_normal((3, 4, 10)).astype(np.float32)
    x[1, 2, 5] = np.nan
    gamma, beta = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    for backend in ("fast", "numpy"):
        bn = kernel("batchnorm_forward_train", backend)
        fused, plain = bn(x, gamma, beta, 1e-5, act="relu"), bn(x, gamma, beta, 1e-5)
        np.testing.assert_array_equal(fused[0], kernel("relu_forward", backend)(plain[0]))
        dy = rng.standard_normal(x.shape).astype(np.float32)
        back = kernel("batchnorm_backward", backend)
        masked = kernel("relu_backward", backend)(dy, fused[0])
        np.testing.assert_allclose(
            back(dy, x, fused[1], gamma, fused[3], act="relu", y3=fused[0])[0],
            back(masked, x, fused[1], gamma, fused[3])[0],
            rtol=1e-5,
            atol=1e-6,
        )


def test_batchnorm_rejects_bad_shapes_and_activations():
    x = np.ones((2, 3, 4), np.float32)
    c3 = np.ones(3, np.float32)
    for backend in ("fast", "numpy"):
        with pytest.raises(ValueError, match="batchnorm_forward_train: act must be None or 'relu', got 'tanh'"):
            kernel("batchnorm_forward_train", backend)(x, c3, c3, 1e-5, act="tanh")
        with pytest.raises(ValueError, match="act='relu' needs the forward output y3"):
            kernel("batchnorm_backward", backend)(x, x, c3, c3, c3, act="relu")
    with pytest.raises(ValueError, match=r"x3 must have the shape of dy3 \(2, 3, 4\), got \(2, 3, 5\)"):
        kernel("batchnorm_backward", "fast")(x, np.ones((2, 3, 5), np.float32), c3, c3, c3)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\), got \(4,\)"):
        kernel("batchnorm_forward_train", "fast")(x, np.ones(4, np.float32), np.ones(3, np.float32), 1e-5)
    with pytest.raises(ValueError, match=r"x3 must be 3-D \(N, C, L\), got shape \(3, 4\)"):
        kernel("batchnorm_forward_train", "fast")(x[0], np.ones(3, np.float32), np.ones(3, np.float32), 1e-5)


# --- add (merge) ---


@SETTINGS
@given(
    n=dim,
    length=st.integers(1, 40),
    terms=st.integers(2, 4),
    act=st.sampled_from([None, "relu"]),
    dtype=dtypes,
    seed=seeds,
)
def test_add(n, length, terms, act, dtype, seed):
    rng = np.random.default_rng(seed)
    xs = [randn(rng, (n, 3, length), dtype) for _ in range(terms)]
    close_all(run("add_forward", xs, act=act), dtype)


def test_add_fused_relu_keeps_nan_and_rejects_bad_terms():
    a = np.array([1.0, -2.0, np.nan, 0.5], np.float32)
    b = np.array([-3.0, 1.0, 1.0, 0.25], np.float32)
    for backend in ("fast", "numpy"):
        add = kernel("add_forward", backend)
        np.testing.assert_array_equal(add([a, b], act="relu"), [0.0, 0.0, np.nan, 0.75])
        with pytest.raises(
            ValueError, match=r"add_forward: the arrays must have one shape and dtype, got float32\(4,\), float32\(3,\)"
        ):
            add([a, b[:3]])
        with pytest.raises(ValueError, match="add_forward: the arrays must have one shape and dtype"):
            add([a, b.astype(np.float64)])
        with pytest.raises(ValueError, match="add_forward: expected a list of at least 2 arrays"):
            add([a])
        with pytest.raises(ValueError, match="add_forward: act must be None or 'relu', got 'tanh'"):
            add([a, b], act="tanh")


# --- dropout ---


@SETTINGS
@given(
    shape=shapes, dtype=dtypes, seed=seeds, p=st.sampled_from([0.1, 0.5, 0.9]), kind=st.sampled_from([bool, np.uint8])
)
def test_dropout(shape, dtype, seed, p, kind):
    rng = np.random.default_rng(seed)
    x = randn(rng, shape, dtype)
    mask = (rng.random(shape) >= p).astype(kind)
    close_all(run("dropout_forward", x, mask, 1.0 / (1.0 - p)), dtype)
    close_all(run("dropout_backward", x, mask, 1.0 / (1.0 - p)), dtype)


@SETTINGS
@given(
    shape=st.lists(dim, min_size=1, max_size=4),
    key=st.integers(0, 2**64 - 1),
    p=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
)
def test_dropout_mask_equals_its_twin_bit_for_bit(shape, key, p):
    fast, ref = run("dropout_mask", key, tuple(shape), p)
    assert fast.dtype == ref.dtype == np.uint8 and fast.shape == tuple(shape)
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("n", [1, 2, 3, kconfig.BLOCK - 1, kconfig.BLOCK + 1, PARALLEL_MIN_ELEMENTS + 1001])
def test_dropout_mask_is_the_same_at_every_thread_count(keep_threads, n):
    import fastnet as fn

    ref = kernel("dropout_mask", "numpy")(2**64 - 3, (n,), 0.3)
    for count in (1, 2, 3):
        fn.set_num_threads(count)
        np.testing.assert_array_equal(kernel("dropout_mask", "fast")(2**64 - 3, (n,), 0.3), ref)


@pytest.mark.parametrize("backend_name", ["fast", "numpy"])
def test_dropout_mask_statistics(backend_name):
    mask = kernel("dropout_mask", backend_name)
    n = 200_000
    for p in (0.1, 0.5, 0.9):
        m = mask(7, (n,), p).astype(np.float64)
        assert abs(m.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)  # 5 standard deviations
    m = mask(7, (n,), 0.5).astype(np.float64) - 0.5
    # the two halves of one hash, neighbours across hashes, and the next key are uncorrelated
    for a, b in ((m[0::2], m[1::2]), (m[1:-1:2], m[2::2]), (m, mask(8, (n,), 0.5) - 0.5)):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(a.size)
    assert mask(7, (n,), 0.0).all() and not mask(7, (n,), 1 - 2**-40).any()


def test_dropout_mask_rejects_bad_arguments():
    for backend_name in ("fast", "numpy"):
        mask = kernel("dropout_mask", backend_name)
        with pytest.raises(ValueError, match=r"dropout_mask: key must be an integer in \[0, 2\*\*64\), got -1"):
            mask(-1, (2,), 0.5)
        with pytest.raises(ValueError, match=r"dropout_mask: p must be in \[0, 1\), got 1.0"):
            mask(1, (2,), 1.0)
        with pytest.raises(ValueError, match=r"dropout_mask: shape must have no negative sizes, got \(2, -1\)"):
            mask(1, (2, -1), 0.5)


def test_dropout_rejects_mask_of_wrong_shape():
    with pytest.raises(
        ValueError, match=r"dropout_forward: mask shape must equal the input shape \(2, 3\), got \(3, 2\)"
    ):
        kernel("dropout_forward", "fast")(np.ones((2, 3)), np.ones((3, 2), bool), 2.0)


# --- losses ---


@SETTINGS
@given(n=dim, c=st.integers(1, 12), dtype=dtypes, seed=seeds, ls=st.sampled_from([0.0, 0.1]), probs=st.booleans())
def test_softmax_cross_entropy(n, c, dtype, seed, ls, probs):
    rng = np.random.default_rng(seed)
    logits = randn(rng, (n, c), dtype, 4.0)
    if probs:
        t = rng.random((n, c)).astype(dtype)
        target = t / t.sum(axis=1, keepdims=True)
    else:
        target = rng.integers(0, c, size=n)
    close_all(run("softmax_cross_entropy", logits, target, ls), dtype)


@SETTINGS
@given(shape=shapes, dtype=dtypes, seed=seeds)
def test_elementwise_losses(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = randn(rng, shape, dtype, 5.0)
    t01 = (rng.random(shape) > 0.5).astype(dtype)
    soft = rng.random(shape).astype(dtype)
    close_all(run("sigmoid_bce_with_logits", x, t01), dtype)
    close_all(run("sigmoid_bce_with_logits", x, soft), dtype)
    p = rng.uniform(-0.1, 1.1, shape).astype(dtype)  # some outside [eps, 1 - eps]: clipped
    close_all(run("bce_on_probs", p, soft, 1e-7), dtype)
    close_all(run("mse", x, soft), dtype)


@needs_jit  # as Python, NumPy scalar arithmetic warns on the intermediate underflows errstate turns into errors
def test_losses_are_stable_for_huge_logits():
    x = np.array([[1e4, -1e4, 0.0], [-500.0, 500.0, 1.0]], np.float32)
    with np.errstate(all="raise"):
        loss, g = kernel("softmax_cross_entropy", "fast")(x, np.array([1, 1]), 0.0)
        lb, gb = kernel("sigmoid_bce_with_logits", "fast")(x, np.ones_like(x))
    assert np.isfinite(loss) and np.all(np.isfinite(g)) and np.isfinite(lb) and np.all(np.isfinite(gb))
    close_all(((loss, g), kernel("softmax_cross_entropy", "numpy")(x, np.array([1, 1]), 0.0)), np.float32)


def test_loss_input_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\), got min 0 max 3"):
        kernel("softmax_cross_entropy", "fast")(x, np.array([0, 3]), 0.0)
    with pytest.raises(ValueError, match=r"probability target must have shape \(2, 3\), got \(2, 4\)"):
        kernel("softmax_cross_entropy", "fast")(x, np.zeros((2, 4), np.float32), 0.0)
    with pytest.raises(ValueError, match=r"mse: target must have the prediction's shape \(2, 3\), got \(3,\)"):
        kernel("mse", "fast")(x, np.zeros(3, np.float32))


# --- optimizer updates (in place, several steps) ---

OPTIM_CASES = [
    ("sgd_update_", dict(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0), ()),
    ("sgd_update_", dict(lr=0.05, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=1e-3), ("buf",)),
    ("sgd_update_", dict(lr=0.05, momentum=0.9, dampening=0.1, nesterov=True, weight_decay=0.0), ("buf",)),
    ("adagrad_update_", dict(lr=0.1, eps=1e-10, weight_decay=0.0), ("acc",)),
    ("adagrad_update_", dict(lr=0.1, eps=1e-10, weight_decay=1e-2), ("acc",)),
    ("rmsprop_update_", dict(lr=0.01, rho=0.9, eps=1e-8, weight_decay=0.0), ("sq",)),
    ("rmsprop_update_", dict(lr=0.01, rho=0.99, eps=1e-8, weight_decay=1e-2), ("sq",)),
    ("adam_update_", dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False), ("m", "v")),
    ("adam_update_", dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, decoupled=False), ("m", "v")),
    ("adam_update_", dict(lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-8, weight_decay=1e-2, decoupled=True), ("m", "v")),
]


def optim_steps(backend, name, hyper, state_names, p0, grads):
    """Run len(grads) in-place steps on copies; returns the parameter and the state arrays."""
    p = p0.copy()
    state = {s: np.zeros_like(p) for s in state_names}
    fn = kernel(name, backend)
    for t, g in enumerate(grads, start=1):
        kw = dict(hyper)
        if name == "sgd_update_":
            kw["buf"] = state.get("buf")
        elif name == "adam_update_":
            kw.update(m=state["m"], v=state["v"], t=t)
        else:
            kw[state_names[0]] = state[state_names[0]]
        assert fn(p=p, g=g, **kw) is None  # in place: returns None
    return (p,) + tuple(state[s] for s in state_names)


@pytest.mark.parametrize("name,hyper,state_names", OPTIM_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 3), (3, 5, 2, 2)])
def test_optimizer_updates_match_after_several_steps(name, hyper, state_names, dtype, shape):
    rng = np.random.default_rng(7)
    p0 = randn(rng, shape, dtype)
    grads = [randn(rng, shape, dtype) for _ in range(5)]
    fast = optim_steps("fast", name, hyper, state_names, p0, grads)
    ref = optim_steps("numpy", name, hyper, state_names, p0, grads)
    for a, b in zip(fast, ref, strict=True):
        close(a, b, dtype)
    assert not np.array_equal(fast[0], p0)  # the parameter really moved


def test_optimizer_rejects_non_contiguous_parameter():
    p = np.ones((4, 4), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="sgd_update_: p must be a writeable C-contiguous ndarray"):
        kernel("sgd_update_", "fast")(p, np.ones_like(p), None, 0.1, 0.0, 0.0, False, 0.0)
    q = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"adam_update_: m must match p \(\(4,\), float32\), got \(\(3,\), float32\)"):
        kernel("adam_update_", "fast")(
            q, q, np.zeros(3, np.float32), np.zeros(4, np.float32), 0.1, 0.9, 0.999, 1e-8, 1, 0.0, False
        )


# --- the threaded variants: every kernel once above PARALLEL_MIN_ELEMENTS ---


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_variants(dtype, monkeypatch):
    # Dense's bias/db passes and the elementwise kernels go parallel only from larger sizes
    # (fastnet/_kernels/config.py): lower them for this test.
    for knob in ("DENSE_PASS_MIN", "MEMORY_BOUND_MIN", "COMPUTE_BOUND_MIN"):
        monkeypatch.setattr(kconfig, knob, PARALLEL_MIN_ELEMENTS)
    assert kparallel.use_parallel(PARALLEL_MIN_ELEMENTS, PARALLEL_MIN_ELEMENTS) == (numba.get_num_threads() > 1)
    rng = np.random.default_rng(3)
    big = PARALLEL_MIN_ELEMENTS + 1001  # odd, not a multiple of the block size
    n, i, o = 257, 9, big // 257 + 1
    x, w, b, dy = randn(rng, (n, i), dtype), randn(rng, (i, o), dtype), randn(rng, o, dtype), randn(rng, (n, o), dtype)
    close_all(run("dense_forward", x, w, b), dtype)
    close_all(run("dense_backward", dy, x, w), dtype)
    for act in ACTS:
        (yf, zf), (yr, zr) = run("dense_act_forward", x, w, b, act, 0.1)
        close(yf, yr, dtype)
        close_all(run("dense_act_backward", dy, x, w, yr, zr, act, 0.1), dtype)
        close_all(run("act_forward", dy, act, 0.1), dtype)
        close_all(run("act_backward_from_output", dy, yr, zr, act, 0.1), dtype)
    close_all(run("softmax_forward", dy), dtype)
    close_all(run("softmax_backward", dy, kernel("softmax_forward", "numpy")(dy)), dtype)
    close_all(run("softmax_cross_entropy", dy, rng.integers(0, o, size=n), 0.1), dtype)
    probs = kernel("softmax_forward", "numpy")(randn(rng, (n, o), dtype))
    close_all(run("softmax_cross_entropy", dy, probs, 0.0), dtype)
    flat = randn(rng, big, dtype)
    soft = rng.random(big).astype(dtype)
    close_all(run("sigmoid_bce_with_logits", flat, soft), dtype)
    close_all(run("bce_on_probs", soft, soft[::-1].copy(), 1e-7), dtype)
    close_all(run("mse", flat, soft), dtype)
    mask = rng.random(big) > 0.3
    close_all(run("dropout_forward", flat, mask, 1 / 0.7), dtype)
    np.testing.assert_array_equal(*run("dropout_mask", 5, (big,), 0.3))
    x3 = randn(rng, (13, 7, 751), dtype)
    gamma, beta = randn(rng, 7, dtype), randn(rng, 7, dtype)
    ref = kernel("batchnorm_forward_train", "numpy")(x3, gamma, beta, 1e-5)
    close_all(run("batchnorm_forward_train", x3, gamma, beta, 1e-5), dtype)
    close_all(run("batchnorm_forward_eval", x3, gamma, beta, ref[1], ref[2], 1e-5), dtype)
    close_all(run("batchnorm_backward", x3[::-1].copy(), x3, ref[1], gamma, ref[3]), dtype)
    close_all(run("batchnorm_backward", x3[::-1].copy(), x3, ref[1], gamma, ref[3], act="relu", y3=x3), dtype)
    close_all(run("add_forward", [flat, soft, flat[::-1].copy()], act="relu"), dtype)
    grads = [randn(rng, big, dtype) for _ in range(3)]
    for name, hyper, state_names in OPTIM_CASES[1::2]:
        fast = optim_steps("fast", name, hyper, state_names, flat, grads)
        for a, r in zip(fast, optim_steps("numpy", name, hyper, state_names, flat, grads), strict=True):
            close(a, r, dtype)


# --- the serial / parallel choice (fastnet/_kernels/parallel.py) ---


def _recorder(calls, name):
    def fn(*args):
        calls.append((name, args))
        return name

    return fn


def test_run_picks_serial_below_threshold_and_parallel_above(monkeypatch):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    prepared = []
    monkeypatch.setattr(kparallel, "prepare", lambda disp, args: prepared.append(disp))
    calls = []
    ser, par = _recorder(calls, "serial"), _recorder(calls, "parallel")
    assert kparallel.run(PARALLEL_MIN_ELEMENTS - 1, 1 << 20, ser, par, (1,)) == "serial"
    assert prepared == []  # below the warm-up size: the parallel variant is not even compiled
    assert kparallel.run((1 << 20) - 1, 1 << 20, ser, par, (1,)) == "serial"
    assert prepared == [par]  # between the warm-up size and the threshold: compiled, not run
    assert kparallel.run(1 << 20, 1 << 20, ser, par, (1,), (1, 2)) == "parallel"
    assert calls[-1] == ("parallel", (1, 2))


def test_run_is_serial_with_one_thread(monkeypatch):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    assert not kparallel.use_parallel(1 << 30, 1)


def test_run_is_serial_in_a_background_thread(monkeypatch):
    import threading

    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    seen = []
    th = threading.Thread(target=lambda: seen.append(kparallel.use_parallel(1 << 30, 1)))
    th.start()
    th.join()
    assert seen == [False]
    assert kparallel.use_parallel(1 << 30, 1)  # the same call from the main thread


def test_thresholds_are_at_least_the_warmup_size():
    # fastnet.warmup() calls every kernel at PARALLEL_MIN_ELEMENTS: from there up, run()
    # compiles the parallel variant, so warmup leaves both variants ready.
    for knob in ("MEMORY_BOUND_MIN", "COMPUTE_BOUND_MIN", "DENSE_PASS_MIN", "BATCHNORM_MIN", "DROPOUT_MIN"):
        assert getattr(kconfig, knob) >= PARALLEL_MIN_ELEMENTS, knob


@needs_jit  # reads the dispatcher's compiled signatures
def test_prepare_compiles_without_running():
    from fastnet._kernels.fast import optim as fast_optim

    p = np.ones(5, np.float32)
    args = (p, p.copy(), p, 1.0, 0.0, 1.0, False, 0.0, False, False)
    kparallel.prepare(fast_optim._sgd_parallel, args)
    np.testing.assert_array_equal(p, 1.0)  # not run
    assert any(sig[0] == numba.typeof(p) for sig in fast_optim._sgd_parallel.signatures)


@pytest.mark.parametrize("dtype", DTYPES)
def test_narrow_dense_row_blocks(dtype):
    # M2's shapes: rows of 20 and 26 outputs go through the activation in blocks of whole rows.
    rng = np.random.default_rng(5)
    for n, i, o in [(1024, 289, 20), (1024, 20, 26), (3, 5, 4097)]:
        x, w, b, dy = (
            randn(rng, (n, i), dtype, 0.1),
            randn(rng, (i, o), dtype),
            randn(rng, o, dtype),
            randn(rng, (n, o), dtype),
        )
        for act in ACTS:
            (yf, zf), (yr, zr) = run("dense_act_forward", x, w, b, act, 0.1)
            close(yf, yr, dtype)
            close_all(run("dense_act_backward", dy, x, w, yr, zr, act, 0.1), dtype)


def test_tanh_float32_accuracy_and_specials():
    x = np.concatenate(
        [
            np.linspace(-12, 12, 200001),
            np.logspace(-30, 1.5, 5001),
            -np.logspace(-30, 1.5, 5001),
            [0.0, -0.0, np.inf, -np.inf, np.nan, 3e-4, 5e-4, 9.0, -9.0],
        ]
    ).astype(np.float32)
    y = kernel("tanh_forward", "fast")(x)
    ref = np.tanh(x.astype(np.float64))
    ok = np.isfinite(ref)
    assert np.all(np.abs(y[ok] - ref[ok]) <= 1e-6 * np.abs(ref[ok]) + 1e-45)
    assert np.isnan(y[~ok]).all()
    assert y.dtype == np.float32
    assert np.signbit(y[x == 0]).tolist() == np.signbit(x[x == 0]).tolist()


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_on_probs_extremes(dtype):
    eps = 1e-7
    p = np.array([0.0, 1e-9, eps, 1e-5, 0.3, 0.5, 0.5000001, 0.7, 1 - 1e-5, 1.0, 1.0], dtype=dtype)
    t = np.array([1.0, 1.0, 0.0, 1.0, 0.2, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype)
    close_all(run("bce_on_probs", p, t, eps), dtype)
    rng = np.random.default_rng(1)
    q = np.concatenate([rng.random(5000), np.logspace(-7, -1, 3000), 1 - np.logspace(-7, -1, 3000)]).astype(dtype)
    close_all(run("bce_on_probs", q, (rng.random(q.size) < 0.5).astype(dtype), eps), dtype)
    close_all(run("bce_on_probs", q, rng.random(q.size).astype(dtype), 1e-40 if dtype == np.float64 else 1e-39), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_on_probs_single_small_term_not_lost(dtype):
    # p at 1 - eps with target 1: the loss is -log(1 - eps) ~ 1e-7; reassociating
    # t log p + (1 - t) log1p(-p) once made it exactly 0 in float32.
    p, t = np.array([1.0], dtype), np.array([1.0], dtype)
    f, _ = kernel("bce_on_probs", "fast")(p, t, 1e-7)
    r, _ = kernel("bce_on_probs", "numpy")(p, t, 1e-7)
    assert abs(f - r) <= 1e-6 * abs(r)
