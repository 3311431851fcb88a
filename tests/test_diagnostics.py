"""fastnet.diagnostics.LayerStats: per-layer gradient norms and activation statistics recorded
during fit, kept on the History, JSON-able, drawn by plot_gradient_norms."""

import json

import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L
from fastnet.diagnostics import LayerStats, named_layers


def _names(model, *positions):
    """The recorded names of the layers at these positions of a Sequential."""
    names = [n for n, _ in named_layers(model)]
    return [names[i] for i in positions]


def _data(n=96, features=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, features), dtype=np.float32), rng.integers(0, classes, n)


def _mlp(seed=0):
    fn.seed(seed)
    model = fn.Sequential([L.Dense(12, 16), L.ReLU(), L.Dense(16, 8), L.Sigmoid(), L.Dense(8, 3)])
    model.compile(optimizer=fn.optim.SGD(lr=0.1, momentum=0.9), loss="softmax_cross_entropy")
    return model


def test_records_finite_values_at_the_chosen_steps_and_keeps_them_on_the_history():
    x, y = _data()
    model = _mlp()
    stats = LayerStats(every=2, probe=x[:20])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[stats])  # 6 batches an epoch
    rec = history.layer_stats
    assert rec is stats.record
    assert rec["steps"] == [0, 2, 4, 6, 8, 10]
    assert rec["epochs"] == [0, 0, 0, 1, 1, 1]
    dense = _names(model, 0, 2, 4)
    relu, sigmoid = _names(model, 1, 3)
    assert rec["layers"] == dense == rec["weighted"]
    for key in ("grad_norm", "param_norm"):
        assert list(rec[key]) == dense
        assert all(len(v) == 6 and np.isfinite(v).all() and min(v) > 0 for v in rec[key].values())
    assert set(rec["act_mean"]) == set(rec["act_std"]) == set(_names(model, 0, 1, 2, 3, 4))
    assert set(rec["dead_fraction"]) == set(rec["zero_fraction"]) == {relu}
    assert all(0.0 <= v <= 1.0 for v in rec["dead_fraction"][relu] + rec["zero_fraction"][relu])
    assert all(v >= 0 for v in rec["act_std"][sigmoid]) and all(0 < v < 1 for v in rec["act_mean"][sigmoid])
    assert json.loads(json.dumps(rec)) == rec


def test_gradient_norm_is_that_steps_gradient():
    x, y = _data(n=16)
    model = _mlp()
    stats = LayerStats(every=1)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[stats])
    # The last recorded step is the last step; its gradients are still on the layers.
    for name, layer in zip(_names(model, 0, 2, 4), [model.layers[0], model.layers[2], model.layers[4]], strict=True):
        expected = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in layer.grads.values()))
        assert stats.record["grad_norm"][name][-1] == pytest.approx(expected, rel=1e-6)
        params = np.sqrt(sum(np.sum(p.astype(np.float64) ** 2) for p in layer.params.values()))
        assert stats.record["param_norm"][name][-1] == pytest.approx(params, rel=1e-6)
    assert "act_mean" not in stats.record  # no probe batch, no activation statistics


def test_probing_does_not_change_training():
    x, y = _data()
    plain = _mlp()  # built and trained before the other: the shuffle seed comes from fastnet.seed
    plain.fit(x, y, epochs=2, batch_size=16, verbose=0)
    probed = _mlp()
    probed.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[LayerStats(every=1, probe=x[:32])])
    for a, b in zip(plain.parameters(), probed.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_dead_relu_units_are_counted():
    x, y = _data(n=32)
    fn.seed(0)
    model = fn.Sequential([L.Dense(12, 10), L.ReLU(), L.Dense(10, 3)])
    model.layers[0].params["bias"][:4] = -100.0  # four units can never fire on inputs in [0, 1)
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="softmax_cross_entropy")
    stats = LayerStats(every=1, probe=x)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[stats])
    h = np.maximum(x @ model.layers[0].params["weight"] + model.layers[0].params["bias"], 0)
    (relu,) = _names(model, 1)
    assert stats.record["dead_fraction"][relu] == [pytest.approx(np.mean(~(h > 0).any(axis=0)))]
    assert stats.record["dead_fraction"][relu][0] >= 0.4
    assert stats.record["zero_fraction"][relu] == [pytest.approx(np.mean(h == 0))]


def test_conv_units_are_channels():
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 1, 6, 6), dtype=np.float32), rng.integers(0, 2, 8)
    fn.seed(0)
    conv = L.Conv2D(1, 4, 3, padding=1)
    model = fn.Sequential([conv, L.ReLU(), L.GlobalAvgPool2D(), L.Dense(4, 2)])
    conv.params["bias"][1] = -100.0  # channel 1 is dead everywhere
    conv.params["bias"][[0, 2, 3]] = 100.0  # the others are always on
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="softmax_cross_entropy")  # fused Conv2D+ReLU
    stats = LayerStats(every=1, probe=x)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[stats])
    (relu,) = _names(model, 1)
    assert stats.record["dead_fraction"][relu] == [0.25]
    assert stats.record["zero_fraction"][relu] == [0.25]


def test_bad_arguments():
    with pytest.raises(ValueError, match="LayerStats: every must be a positive int, got 0"):
        LayerStats(every=0)
    with pytest.raises(ValueError, match=r"LayerStats: probe must be a numeric batch"):
        LayerStats(probe=np.array(["a", "b"]))


def test_save_writes_json(tmp_path):
    x, y = _data(n=32)
    stats = LayerStats(every=1, probe=x[:8])
    _mlp().fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[stats])
    assert json.loads(stats.save(tmp_path / "s.json").read_text()) == stats.record


def test_plot_gradient_norms_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = _data()
    runs = {}
    for name in ("a", "b"):
        stats = LayerStats(every=1, probe=x[:8])
        runs[name] = _mlp().fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[stats])
    first = runs["b"].layer_stats["layers"][:1]
    for target, arg in (("one.png", runs["a"]), ("two.png", runs), ("rec.png", runs["b"].layer_stats)):
        path = fn.plot_gradient_norms(arg, tmp_path / target, title="t", layers=None if target != "rec.png" else first)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="plot_gradient_norms: no gradient record for layers"):
        fn.plot_gradient_norms(runs["a"], tmp_path / "x.png", layers=["nope"])
    with pytest.raises(ValueError, match="plot_gradient_norms: expected a LayerStats"):
        fn.plot_gradient_norms({"loss": [1.0]}, tmp_path / "x.png")
