"""benchmarks/report.py's "fastnet / best peer" table and the peers' correctness checks (benchmarks/peers_common.py),
on made-up pytest-benchmark entries: no torch, JAX or ONNX Runtime needed, nothing timed."""

import numpy as np
import pytest
from _bench_module import bench_module


@pytest.fixture(scope="module")
def bench_modules():
    with bench_module("report") as report, bench_module("peers_common") as peers_common:
        return report, peers_common


def _entry(group, variant, median):
    return {"name": variant, "group": group, "extra_info": {"variant": variant}, "stats": {"median": median}}


def test_best_peer_ignores_fastnet_and_the_numpy_reference(bench_modules):
    report, _ = bench_modules
    variants = {
        "fast": _entry("g", "fast", 0.001),
        "numpy": _entry("g", "numpy", 0.0005),
        "torch": _entry("g", "torch", 0.004),
        "jax-xla-convs": _entry("g", "jax-xla-convs", 0.003),
    }
    assert report.best_peer(variants) == ("jax-xla-convs", 0.003)
    assert report.best_peer({"fast": variants["fast"]}) is None


def test_targets_follow_issue_8(bench_modules):
    report, _ = bench_modules
    assert report.peer_target("step M1 mlp 784-512-10 rmsprop b128") == 2.0
    assert report.peer_target("step M2 mlp 289-20-26 sigmoid bce sgd b1024") == 2.0
    assert report.peer_target("step M3 lenet5 sgd-momentum b256") == 1.5
    assert report.peer_target("step R20 resnet20 sgd-momentum b128") == 1.5
    assert report.peer_target("predict M4 cnn 32-64 b256") == 1.0


def test_peers_table_names_the_best_peer_and_checks_the_target(bench_modules):
    report, _ = bench_modules
    step, pred = "step M3 lenet5 sgd-momentum b64", "predict M3 lenet5 b256"
    entries = [
        _entry(step, "fast", 0.010),
        _entry(step, "torch-channels_last", 0.012),
        _entry(step, "torch-compile", 0.030),
        _entry(pred, "fast", 0.020),
        _entry(pred, "onnxruntime", 0.010),
    ]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in report.peers_table(report.rows_by_group(entries))}
    assert "PyTorch eager channels-last | 1.20x | >=1.5x | MISSED" in rows[step]
    assert "ONNX Runtime | 0.50x | >=1x | MISSED" in rows[pred]
    entries[0] = _entry(step, "fast", 0.006)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in report.peers_table(report.rows_by_group(entries))}
    assert "| 2.00x | >=1.5x | yes |" in rows[step]


def test_peers_table_is_empty_without_peers(bench_modules):
    report, _ = bench_modules
    assert report.peers_table(report.rows_by_group([_entry("step M1 x b128", "fast", 0.001)])) == []


def test_loss_check_fails_a_step_that_does_not_learn(bench_modules):
    _, pc = bench_modules
    losses = iter([2.3, 2.1, 1.9, 1.7, 1.5])
    assert pc.check_loss_decreases("learns", lambda: next(losses), (), steps=5)[-1] == 1.5
    with pytest.raises(pytest.fail.Exception, match="did not decrease"):
        pc.check_loss_decreases("flat", lambda: 2.3, (), steps=5)
    with pytest.raises(pytest.fail.Exception, match="not finite"):
        pc.check_loss_decreases("nan", lambda: float("nan"), (), steps=5)


def test_output_check_compares_with_fastnets_predict(bench_modules):
    _, pc = bench_modules
    want = np.full((4, 10), 0.1)
    assert pc.check_outputs_match("close", want + 5e-5, want) == pytest.approx(5e-5)
    with pytest.raises(pytest.fail.Exception, match="differ"):
        pc.check_outputs_match("far", want + 1e-3, want)
    with pytest.raises(pytest.fail.Exception, match="shape"):
        pc.check_outputs_match("shape", want[:2], want)
