"""benchmarks/fusion_steps.py (fused against unfused steps, interleaved): both models are timed and the printed
row compares them; the two start from the same weights, so only the plan differs."""

from __future__ import annotations

import numpy as np
import pytest
from _bench_module import bench_module

import fastnet as fn
from fastnet import layers as L


@pytest.fixture(scope="module")
def fs():
    with bench_module("fusion_steps") as module:
        yield module


def _block(fuse: bool):
    fn.seed(1)
    x = fn.Input((2, 5, 5))
    h = L.ReLU()(L.BatchNorm2d(2)(L.Conv2D(2, 2, 3, padding=1)(x)))
    out = L.Dense(2, 3)(L.GlobalAvgPool2D()(L.ReLU()(L.Add()([h, x]))))
    m = fn.Model(x, out)
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    return m if fuse else m.unfuse()


def test_both_plans_are_timed(fs):
    fused, unfused = _block(True), _block(False)
    assert fused.fusions() and not unfused.fusions()
    x = np.random.default_rng(0).standard_normal((4, 2, 5, 5)).astype(np.float32)
    t = fs.compare(fused, unfused, x, np.array([0, 1, 2, 0]), rounds=2)
    assert set(t) == {f"{k} {w}" for k in ("fused", "unfused") for w in ("step", "predict")}
    assert all(v > 0 for v in t.values())
    np.testing.assert_allclose(fused.predict(x), unfused.predict(x), rtol=1e-5, atol=1e-6)


def test_main_prints_a_row_per_model(fs, capsys):
    fs.main(["--models", "M2", "--rounds", "1"])
    assert "| M2 | " in capsys.readouterr().out


def test_refuse_pools_keeps_every_fusion_but_conv_pool(fs):
    fn.seed(0)
    m = fn.Sequential([L.Conv2D(1, 3, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(3 * 3 * 3, 2), L.ReLU()])
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    assert m.fusions() == [("0", "1", "2"), ("4", "5")]
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    before = m.predict(x)
    assert fs.refuse_pools(m).fusions() == [("0", "1"), ("4", "5")]
    assert np.array_equal(m.predict(x), before)
