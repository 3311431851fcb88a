"""benchmarks/interleaved.py (fastnet against its peers in alternating bursts): a fastnet worker starts, passes its
loss check and answers bursts; the ratio is taken inside each round; bad model or peer names are refused. The peer
workers need PyTorch and JAX (benchmark extras), so they are exercised by running the script, not here."""

from __future__ import annotations

import pytest
from _bench_module import bench_module


@pytest.fixture(scope="module")
def il():
    with bench_module("interleaved") as module:
        yield module


def test_a_fastnet_worker_checks_its_loss_and_answers_bursts(il):
    m2 = next(i for i, s in enumerate(il.SPECS) if s.model == "M2")
    result = il.run_workload(m2, ["fastnet"], threads=1, rounds=2, steps=2, burst=0.0, gap=0.0)
    assert len(result["rounds"]) == 2 and all(r["fastnet"] > 0 for r in result["rounds"])
    first, last = result["loss_check"]["fastnet"]
    assert last < first


def test_the_ratio_is_taken_inside_each_round(il):
    rounds = [{"fastnet": 1.0, "torch": 2.0, "jax-xla": 3.0}, {"fastnet": 2.0, "torch": 2.0, "jax-xla": 1.0}]
    row = il.summarise(il.SPECS[0], {"rounds": rounds})
    # round 1: best peer 2.0 over 1.0; round 2: 1.0 over 2.0 (a peer faster than fastnet)
    assert row["ratio_range"] == [0.5, 2.0] and row["ratio_median"] == 1.25
    assert row["median_ms"] == {"fastnet": 1500.0, "torch": 2000.0, "jax-xla": 2000.0} and row["best_peer"] == "torch"
    text = il.table([row], ["fastnet", "torch", "jax-xla", "compile"])
    assert "| 1500.00 ms | 2000.00 ms | 2000.00 ms | - | torch | 1.25x (0.50-2.00) |" in text


def test_main_refuses_unknown_models_and_peers(il, capsys):
    with pytest.raises(SystemExit):
        il.main(["--threads", "1", "--models", "M9"])
    assert "unknown models ['M9']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        il.main(["--threads", "1", "--peers", "tensorflow"])
    assert "peers ['tensorflow']" in capsys.readouterr().err


def test_a_fastnet_predict_worker_answers_bursts(il):
    m3 = next(i for i, s in enumerate(il.PREDICT_SPECS) if s.model == "M3")
    result = il.run_workload(m3, ["fastnet"], threads=1, rounds=2, steps=2, burst=0.0, gap=0.0, mode="predict")
    assert len(result["rounds"]) == 2 and all(r["fastnet"] > 0 for r in result["rounds"])
    assert result["loss_check"]["fastnet"] == {"max_abs_diff_vs_fastnet": 0.0}
    rounds = [{"fastnet": 1.0, "ort": 0.5}]
    assert il.summarise(il.PREDICT_SPECS[m3], {"rounds": rounds}, "predict M3")["workload"] == "predict M3"


def test_onnx_runtime_predicts_what_fastnet_predicts(il):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from interleaved_predict import build_predict

    run, feeder, err = build_predict("ort", il.PREDICT_SPECS[0], threads=1)
    assert 0.0 <= err <= 1e-4
    x, y = feeder.next()
    assert run(x, y).shape == (len(x), 10)


def test_ort_is_a_peer_of_predict_only(il, capsys):
    with pytest.raises(SystemExit):
        il.main(["--threads", "1", "--peers", "ort"])
    assert "peers ['ort']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        il.main(["--threads", "1", "--predict", "--models", "R20"])
    assert "unknown models ['R20']" in capsys.readouterr().err


def _env_after_loading(argv_tail):
    """The thread-pool variables as they stand when interleaved.py has loaded NumPy, in a fresh process started with
    ``argv_tail`` and none of the variables set."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    keys = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")
    code = (
        f"import sys, os, json; sys.path.insert(0, {str(bench)!r}); sys.argv = ['interleaved.py', *{argv_tail!r}]; "
        "import interleaved; assert 'numpy' in sys.modules; "
        f"print(json.dumps({{k: os.environ.get(k) for k in {keys!r}}}))"
    )
    env = {k: v for k, v in os.environ.items() if k not in keys}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_fastnet_worker_gets_fastnets_thread_pool_defaults_and_the_peers_do_not():
    # fastnet before NumPy in its worker, as in a user's script (it ran without them until 2026-12-02)
    assert _env_after_loading(["--worker", "fastnet"]) == {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
    assert _env_after_loading(["--worker", "torch"]) == {"OMP_WAIT_POLICY": None, "OPENBLAS_THREAD_TIMEOUT": None}
