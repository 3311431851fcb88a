"""Sequential: structure, state, summary, compile, fit/evaluate/predict/train_on_batch and input checks."""

import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L
from fastnet import losses, optim
from fastnet._training import epoch_permutation


def blobs(n=120, d=6, k=3, seed=0, dtype=np.float32):
    """Separable clusters: class c is centred at 3 * e_c."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.standard_normal((n, d)) * 0.5
    x[np.arange(n), y] += 3.0
    return x.astype(dtype), y


def mlp(d=6, h=8, k=3, dtype=np.float32):
    return fn.Sequential([L.Dense(d, h, dtype=dtype), L.ReLU(), L.Dense(h, k, dtype=dtype)])


def compiled(opt=None, metrics=("accuracy",), **kw):
    m = mlp(**kw)
    m.compile(optimizer=opt or optim.SGD(lr=0.1), loss="softmax_cross_entropy", metrics=list(metrics))
    return m


# ---- structure -------------------------------------------------------------------------------
def test_len_index_slice_iter_repr():
    m = mlp()
    assert len(m) == 3
    assert isinstance(m[0], L.Dense) and isinstance(m[-1], L.Dense)
    head = m[:2]
    assert isinstance(head, fn.Sequential) and len(head) == 2 and head[0] is m[0]
    assert [type(layer).__name__ for layer in m] == ["Dense", "ReLU", "Dense"]
    text = repr(m)
    assert text.startswith("Sequential(") and "(0): Dense(in_features=6" in text and "(1): ReLU()" in text


def test_add_rejects_non_layers():
    with pytest.raises(ValueError, match=r"Sequential.add: expected a fastnet Layer, got int \(position 0\)"):
        fn.Sequential([3])


def test_forward_backward_chain_matches_layers(rng):
    m = mlp(dtype=np.float64)
    x = rng.standard_normal((5, 6))
    h = m[0].forward(x)
    expected = m[2].forward(m[1].forward(h))
    out = m.forward(x, training=True)
    np.testing.assert_allclose(out, expected)
    dout = rng.standard_normal(out.shape)
    dx = m.backward(dout)
    assert dx.shape == x.shape
    assert m[0].grads["weight"].any()


class _NoBackward(L.Flatten):
    """A Flatten whose backward must not run (the input gradient is not wanted)."""

    def _backward(self, ctx, dout, need_dx):
        raise AssertionError("backward of a layer before the first parametrised one was called")


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("first", ["dense", "conv"])
def test_backward_without_input_grad_gives_the_same_grads(backend, first, rng):
    """Training skips the input gradient: layers before the first one with parameters do not run,
    and that one skips its dx GEMM; every parameter gradient is unchanged."""
    with fn.use_backend(backend):

        def build(head=L.Flatten):
            fn.seed(3)
            if first == "dense":
                return fn.Sequential(
                    [head(), L.Dense(12, 7, dtype=np.float64), L.ReLU(), L.Dense(7, 3, dtype=np.float64)]
                )
            return fn.Sequential(
                [
                    L.Conv2D(1, 4, (3, 2), stride=(2, 1), padding=1, dtype=np.float64),
                    L.ReLU(),
                    L.Flatten(),
                    L.Dense(4 * 2 * 5, 3, dtype=np.float64),
                ]
            )

        x = rng.standard_normal((5, 12) if first == "dense" else (5, 1, 4, 4))
        dout = rng.standard_normal((5, 3))
        skip, full = build(_NoBackward).fuse(), build().fuse()
        skip.forward(x, training=True)
        full.forward(x, training=True)
        assert skip.backward(dout, input_grad=False) is None
        assert full.backward(dout).shape == x.shape
        for i, (a, b) in enumerate(zip(skip.layers, full.layers, strict=True)):
            assert a.grads.keys() == b.grads.keys()
            for k in a.grads:
                np.testing.assert_allclose(a.grads[k], b.grads[k], rtol=1e-12, atol=1e-12, err_msg=f"{i}.{k}")


def test_named_parameters_parameters_state_dict():
    m = fn.Sequential([L.Dense(4, 3), L.ReLU(), L.Dense(3, 2, bias=False)])
    names = [k for k, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight"]
    assert m.parameters()[0] is m[0].params["weight"]
    sd = m.state_dict()
    assert list(sd) == names
    sd["0.weight"][...] = 7  # a copy: the model is untouched
    assert not np.any(m[0].params["weight"] == 7)


def test_state_dict_includes_buffers():
    m = fn.Sequential([L.Dense(4, 3), L.BatchNorm1d(3)])
    sd = m.state_dict()
    assert {"1.running_mean", "1.running_var"} <= set(sd)
    assert m.num_params(trainable=False) == 6


def test_load_state_dict_in_place_and_errors():
    a, b = mlp(), mlp()
    w_before = b[0].params["weight"]
    b.load_state_dict(a.state_dict())
    assert b[0].params["weight"] is w_before  # in place
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(pa, pb)

    sd = a.state_dict()
    sd.pop("2.bias")
    sd["9.weight"] = np.zeros(3)
    sd["0.weight"] = np.zeros((5, 8))
    with pytest.raises(
        ValueError,
        match=r"missing keys \['2.bias'\].*unexpected keys \['9.weight'\].*"
        r"0.weight: model \(6, 8\), state \(5, 8\)",
    ):
        b.load_state_dict(sd)
    sd["0.weight"] = np.zeros((6, 8))
    b.load_state_dict(sd, strict=False)  # missing/unexpected tolerated, matching keys loaded
    assert not b[0].params["weight"].any()
    with pytest.raises(ValueError, match="shape mismatches"):
        b.load_state_dict({"0.weight": np.zeros((1, 1))}, strict=False)


def test_train_eval_propagate():
    m = fn.Sequential([L.Dense(4, 3), L.Dropout(0.5)])
    assert m.training
    m.eval()
    assert not m.training and not m[1].training
    m.train()
    assert all(layer.training for layer in m)


def test_summary_param_count_formula(capsys):
    m = fn.Sequential([L.Dense(289, 20), L.Sigmoid(), L.Dense(20, 26), L.Sigmoid()])
    text = m.summary()
    total = (289 + 1) * 20 + (20 + 1) * 26
    assert f"Total params: {total:,}" in text
    assert f"Trainable params: {total:,}" in text
    assert "(None, 20)" in text and "(None, 26)" in text
    assert capsys.readouterr().out.strip() == text.strip()


def test_summary_cnn_shapes():
    m = fn.Sequential([L.Conv2D(1, 4, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(4 * 7 * 7, 5)])
    text = m.summary(input_shape=(1, 16, 16), print_fn=None)
    assert "(None, 4, 14, 14)" in text and "(None, 4, 7, 7)" in text and "(None, 196)" in text
    assert f"Total params: {4 * 9 + 4 + 196 * 5 + 5:,}" in text


def test_input_shape_from_first_layer_then_from_data():
    m = fn.Sequential([L.Flatten(), L.Dense(12, 3)])
    assert m.input_shape is None  # Flatten has no in_features: unknown until data is seen
    m.forward(np.zeros((2, 3, 2, 2), np.float32))
    assert m.input_shape == (3, 2, 2)
    assert fn.Sequential([L.Dense(7, 2)]).input_shape == (7,)


# ---- compile ---------------------------------------------------------------------------------
def test_compile_strings_and_objects():
    m = mlp()
    m.compile(optimizer="adam", loss="softmax_cross_entropy", metrics=["accuracy"])
    assert isinstance(m.optimizer, optim.Adam) and isinstance(m.loss, losses.SoftmaxCrossEntropy)
    assert [f.name for f in m.metrics] == ["accuracy"]
    opt, loss = optim.SGD(lr=0.5), losses.MSE()
    m.compile(optimizer=opt, loss=loss)
    assert m.optimizer is opt and m.loss is loss and m.metrics == []


def test_compile_errors():
    m = mlp()
    with pytest.raises(ValueError, match="loss is required"):
        m.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer"):
        m.compile(optimizer="nope", loss="mse")


def test_not_compiled_errors():
    x, y = blobs()
    m = mlp()
    with pytest.raises(RuntimeError, match=r"fit: the model is not compiled; call model.compile"):
        m.fit(x, y, verbose=0)
    with pytest.raises(RuntimeError, match="train_on_batch: the model is not compiled"):
        m.train_on_batch(x, y)
    with pytest.raises(RuntimeError, match="evaluate: the model is not compiled"):
        m.evaluate(x, y)
    assert m.predict(x).shape == (len(x), 3)  # predict works without compile: raw outputs


def test_fusion_gives_same_results(rng):
    x = rng.standard_normal((7, 6)).astype(np.float32)
    m = mlp()
    plain = m.forward(x, training=False)
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    assert m.fusions() == [("0", "1")]  # Dense 0 runs with ReLU 1 fused into it
    np.testing.assert_allclose(m.forward(x, training=False), plain, rtol=1e-6, atol=1e-6)
    # A slice sharing the Dense without its ReLU must not apply the ReLU (fusion is not layer state).
    head = m[:1]
    np.testing.assert_allclose(head.forward(x), x @ m[0].params["weight"] + m[0].params["bias"], rtol=1e-5, atol=1e-5)
    m.unfuse()
    assert m.fusions() == []
    np.testing.assert_allclose(m.forward(x, training=False), plain, rtol=1e-6, atol=1e-6)


def test_fused_model_gradcheck(rng):
    m = fn.Sequential([L.Dense(5, 7, dtype=np.float64), L.Tanh(), L.Dense(7, 3, dtype=np.float64), L.Sigmoid()])
    m.compile(optimizer="sgd", loss=losses.BinaryCrossEntropy())
    assert m.fusions() == [("0", "1"), ("2", "3")]  # Dense+Tanh and Dense+Sigmoid
    x = rng.standard_normal((4, 5))
    y = rng.integers(0, 2, (4, 3)).astype(np.float64)
    res = fn.gradcheck.check_model(m, x, y)
    assert res.ok and res.max_error < 1e-6, res


# ---- fit / evaluate / predict ------------------------------------------------------------------
def test_fit_history_and_learning(backend):
    fn.seed(0)
    x, y = blobs()
    m = compiled(optim.SGD(lr=0.1))
    hist = m.fit(x, y, epochs=4, batch_size=16, validation_data=blobs(seed=1), verbose=0)
    assert hist is m.history
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert hist.epoch == [0, 1, 2, 3] and all(len(v) == 4 for v in hist.history.values())
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] > 0.9


def test_epoch_logs_are_sample_weighted_means():
    # lr = 0: weights never change, so the epoch's mean over uneven batches equals evaluate().
    x, y = blobs(n=50)
    m = compiled(optim.SGD(lr=0.0))
    hist = m.fit(x, y, epochs=1, batch_size=16, verbose=0)  # batches 16, 16, 16, 2
    loss, acc = m.evaluate(x, y, batch_size=7)
    assert hist.history["loss"][0] == pytest.approx(loss, rel=1e-5)
    assert hist.history["accuracy"][0] == pytest.approx(acc)


def test_validation_split_uses_last_samples():
    x, y = blobs(n=40)
    m = compiled(optim.SGD(lr=0.0))
    hist = m.fit(x, y, epochs=1, batch_size=8, validation_split=0.25, verbose=0)
    val = m.evaluate(x[30:], y[30:], return_dict=True)
    assert hist.history["val_loss"][0] == pytest.approx(val["loss"], rel=1e-5)
    assert hist.history["val_accuracy"][0] == pytest.approx(val["accuracy"])
    with pytest.raises(ValueError, match=r"validation_split must be in \[0, 1\), got 1.5"):
        m.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="either validation_data or validation_split"):
        m.fit(x, y, validation_split=0.2, validation_data=(x, y), verbose=0)


def test_same_seed_same_weights_and_fresh_permutations():
    x, y = blobs()

    def run():
        fn.seed(123)
        m = compiled(optim.Adam(lr=0.01))
        m.fit(x, y, epochs=3, batch_size=10, verbose=0)
        return m

    a, b = run(), run()
    assert a.shuffle_seed == b.shuffle_seed
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa, pb)
    p0, p1 = epoch_permutation(a.shuffle_seed, 0, 100), epoch_permutation(a.shuffle_seed, 1, 100)
    assert sorted(p0) == list(range(100)) and not np.array_equal(p0, p1)
    np.testing.assert_array_equal(p0, epoch_permutation(a.shuffle_seed, 0, 100))


def test_shuffle_false_equals_manual_train_on_batch():
    x, y = blobs(n=30)
    fn.seed(5)
    a = compiled(optim.SGD(lr=0.05, momentum=0.9))
    fn.seed(5)
    b = compiled(optim.SGD(lr=0.05, momentum=0.9))
    a.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    for _ in range(2):
        for s in range(0, 30, 8):
            b.train_on_batch(x[s : s + 8], y[s : s + 8])
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa, pb)


def test_train_on_batch_returns_float_and_updates():
    x, y = blobs(n=16)
    m = compiled()
    before = m[0].params["weight"].copy()
    loss = m.train_on_batch(x, y)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert not np.array_equal(before, m[0].params["weight"])
    with pytest.raises(ValueError, match=r"same number of samples, got shapes \(16, 6\) and \(15,\)"):
        m.train_on_batch(x, y[:15])


def test_lr_mult_zero_freezes_layer():
    x, y = blobs()
    m = compiled(optim.SGD(lr=0.1))
    m[0].lr_mult = 0.0
    frozen = m[0].params["weight"].copy()
    head = m[2].params["weight"].copy()
    m.fit(x, y, epochs=1, batch_size=32, verbose=0)
    np.testing.assert_array_equal(m[0].params["weight"], frozen)
    assert not np.array_equal(m[2].params["weight"], head)


def test_evaluate_return_forms():
    x, y = blobs()
    m = compiled(metrics=["accuracy", "top_2_accuracy"])
    out = m.evaluate(x, y)
    assert isinstance(out, list) and len(out) == 3
    d = m.evaluate(x, y, return_dict=True)
    assert list(d) == ["loss", "accuracy", "top_2_accuracy"] and d["loss"] == pytest.approx(out[0])
    assert d["top_2_accuracy"] >= d["accuracy"]
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    assert isinstance(m.evaluate(x, y), float)


def test_predict_applies_loss_link(rng):
    x = rng.standard_normal((9, 6)).astype(np.float32)
    m = compiled()
    logits = m.forward(x, training=False)
    probs = m.predict(x, batch_size=4)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    m.compile(optimizer="sgd", loss=losses.BinaryCrossEntropy(from_logits=True))
    np.testing.assert_allclose(m.predict(x), 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)
    m.compile(optimizer="sgd", loss="mse")
    np.testing.assert_allclose(m.predict(x), logits, rtol=1e-6)


def test_fit_accepts_dataloader_like_arrays():
    x, y = blobs(n=40)
    fn.seed(9)
    a = compiled(optim.SGD(lr=0.1))
    fn.seed(9)
    b = compiled(optim.SGD(lr=0.1))
    a.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    loader = fn.DataLoader(x, y, batch_size=8, shuffle=False, prefetch=1)
    hist = b.fit(loader, epochs=2, validation_data=fn.DataLoader(x, y, batch_size=16, shuffle=False), verbose=0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_allclose(pa, pb, rtol=1e-6)
    assert "val_loss" in hist.history
    assert b.evaluate(loader) == pytest.approx(b.evaluate(x, y), rel=1e-5)
    np.testing.assert_allclose(b.predict(loader), b.predict(x), rtol=1e-6)
    with pytest.raises(ValueError, match="y must be None when x is a DataLoader"):
        b.fit(loader, y, verbose=0)


def test_verbose_modes(capsys):
    x, y = blobs(n=20)
    m = compiled()
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert capsys.readouterr().out == ""
    m.fit(x, y, epochs=2, batch_size=8, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2 and "Epoch 2/2" in out and "loss: " in out and "accuracy: " in out
    m.fit(x, y, epochs=1, batch_size=8, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "sample" in out
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2, got 3"):
        m.fit(x, y, verbose=3)


# ---- input checks ------------------------------------------------------------------------------
def test_uint8_input_converted_to_model_dtype():
    x, y = blobs()
    xu = np.clip(x * 20 + 100, 0, 255).astype(np.uint8)
    for dtype in (np.float32, np.float64):
        m = compiled(dtype=dtype)
        m.fit(xu, y, epochs=1, batch_size=32, verbose=0)
        assert m.predict(xu).dtype == dtype
        assert m.train_on_batch(xu[:8], y[:8]) > 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([["a"] * 6] * 4), "fit: x must be numeric"),
        (np.full((4, 6), np.nan, np.float32), r"fit: x contains NaN or inf \(first at index \(0, 0\)"),
        (
            np.ones((4, 5), np.float32),
            r"fit: input of sample shape \(5,\) does not fit the model: Dense.*\(N, 6\).*\(1, 5\)",
        ),
        (np.ones((4, 2, 3), np.float32), r"fit: input of sample shape \(2, 3\).*Dense"),
    ],
)
def test_bad_x(bad, match):
    m = compiled()
    with pytest.raises(ValueError, match=match):
        m.fit(bad, np.zeros(len(bad), np.int64), verbose=0)


def test_bad_y():
    x, y = blobs(n=10)
    m = compiled()
    with pytest.raises(ValueError, match="x and y have different lengths: x has 10 samples, y has 9"):
        m.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 3\) .* got labels from 0 to 3"):
        m.fit(x, np.r_[y[:9], 3], verbose=0)
    with pytest.raises(ValueError, match=r"labels must be class ids .* got labels from -1"):
        m.evaluate(x, np.r_[y[:9], -1])
    with pytest.raises(ValueError, match=r"target shape per sample \(4,\) does not match .* \(3,\)"):
        m.fit(x, np.zeros((10, 4), np.float32), verbose=0)
    with pytest.raises(ValueError, match="y contains NaN or inf"):
        m.fit(x, np.full((10, 3), np.inf, np.float32), verbose=0)
    with pytest.raises(ValueError, match="fit: y must be numeric"):
        m.fit(x, np.array(["a"] * 10), verbose=0)
    with pytest.raises(ValueError, match=r"validation_data must be a tuple \(x_val, y_val\)"):
        m.fit(x, y, validation_data=(x, y, y), verbose=0)
    with pytest.raises(ValueError, match="fit \\(validation_data\\): x and y have different lengths"):
        m.fit(x, y, validation_data=(x, y[:3]), verbose=0)


def test_float_class_ids_accepted():
    x, y = blobs(n=20)
    m = compiled()
    m.fit(x, y.astype(np.float32), epochs=1, verbose=0)
    assert m.evaluate(x, y.astype(np.float64), return_dict=True)["loss"] == pytest.approx(m.evaluate(x, y)[0], rel=1e-6)


def test_bad_fit_arguments():
    x, y = blobs(n=10)
    m = compiled()
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        m.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="epochs must be an int >= 0, got -1"):
        m.fit(x, y, epochs=-1, verbose=0)
    with pytest.raises(ValueError, match="predict: batch_size must be an int >= 1"):
        m.predict(x, batch_size=1.5)


# ---- non-finite loss ----------------------------------------------------------------------------
class PoisonableSCE(losses.SoftmaxCrossEntropy):
    """Softmax-CE that reports NaN while ``poison`` is set (simulates a diverging step)."""

    poison = False

    def forward(self, pred, target):
        value = super().forward(pred, target)
        return float("nan") if self.poison else value


class PoisonAt(fn.callbacks.Callback):
    """Records weights after each batch and poisons the loss from batch ``at`` on."""

    def __init__(self, at):
        super().__init__()
        self.at, self.snapshots = at, []

    def on_batch_begin(self, batch, logs=None):
        self.model.loss.poison = batch >= self.at

    def on_batch_end(self, batch, logs=None):
        self.snapshots.append(self.model.state_dict())


def test_nan_loss_stops_fit_with_last_good_weights():
    x, y = blobs(n=64)
    m = mlp()
    m.compile(optimizer=optim.SGD(lr=0.1), loss=PoisonableSCE())
    cb = PoisonAt(2)
    with pytest.raises(
        fn.NonFiniteLossError,
        match=r"fit: epoch 1, batch 3: the loss became nan; the update was "
        r"skipped.*learning rate is too high \(lr=0.1\)",
    ):
        m.fit(x, y, epochs=2, batch_size=16, callbacks=[cb], verbose=0)
    assert issubclass(fn.NonFiniteLossError, FloatingPointError)
    last_good = cb.snapshots[1]  # after batch 2, the last finite step
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, last_good[k])


def test_train_on_batch_nan_leaves_weights():
    x, y = blobs(n=16)
    m = mlp()
    m.compile(optimizer=optim.SGD(lr=0.1), loss=PoisonableSCE())
    m.loss.poison = True
    before = m.state_dict()
    with pytest.raises(FloatingPointError, match="train_on_batch: the loss became nan"):
        m.train_on_batch(x, y)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverged_weights_restored_to_epoch_start():
    # A huge learning rate makes the weights overflow to inf in a step whose loss was finite; the
    # next loss is not finite and fit puts the weights of the start of the epoch back.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32) * 10
    y = rng.standard_normal((32, 1)).astype(np.float32)
    m = fn.Sequential([L.Dense(4, 1)])
    m.compile(optimizer=optim.SGD(lr=1e38), loss="mse")
    start = m.state_dict()
    with pytest.raises(fn.NonFiniteLossError, match="overflowed to NaN/inf, so those of the start of this epoch"):
        m.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, start[k])


def test_terminate_on_nan_stops_cleanly():
    x, y = blobs(n=64)
    m = mlp()
    m.compile(optimizer=optim.SGD(lr=0.1), loss=PoisonableSCE())
    cb = PoisonAt(1)
    stop = fn.callbacks.TerminateOnNaN()
    hist = m.fit(x, y, epochs=3, batch_size=16, callbacks=[cb, stop], verbose=0)
    assert stop.terminated_at == 1 and m.stop_training
    assert hist.epoch == []  # the first epoch never finished
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, cb.snapshots[0][k])


def test_dataloader_checked_before_training():
    x, y = blobs(n=20)
    m = compiled()
    with pytest.raises(ValueError, match=r"fit: input of sample shape \(5,\) does not fit the model: Dense"):
        m.fit(fn.DataLoader(x[:, :5], y, batch_size=4), verbose=0)
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 3\)"):
        m.fit(fn.DataLoader(x, y + 3, batch_size=4), verbose=0)


def test_predict_runs_each_batch_once_and_names_a_misfit():
    """predict checks x against the model in its first batch's forward (no extra one-sample probe),
    with the same message as fit's probe."""
    m = compiled()
    calls = []
    dense = m.layers[0]
    forward = dense._forward
    dense._forward = lambda *a, **k: calls.append(len(a[0])) or forward(*a, **k)
    x = np.random.default_rng(0).standard_normal((70, 6)).astype(np.float32)
    assert m.predict(x, batch_size=32).shape[0] == 70
    assert calls == [32, 32, 6]
    misfit = r"predict: input of sample shape \(5,\) does not fit the model: Dense.*\(N, 6\)"
    with pytest.raises(ValueError, match=misfit):
        m.predict(np.ones((4, 5), np.float32))


def test_named_layers_follow_edits_of_the_model_and_of_nested_models():
    """named_layers is cached per plan: editing a Sequential, or one nested in a model, shows at once."""
    inner = fn.Sequential([L.Dense(4, 4)])
    outer = fn.Sequential([inner, L.Dense(4, 2)])
    assert list(outer.named_layers()) == ["0.0", "1"]
    inner.add(L.ReLU())
    assert list(outer.named_layers()) == ["0.0", "0.1", "1"]
    outer.add(L.Sigmoid())
    assert list(outer.named_layers()) == ["0.0", "0.1", "1", "2"]
    outer.named_layers().clear()  # a copy: the model's table is not changed
    assert len(outer.named_layers()) == 4 and len(outer.state_dict()) == 4
