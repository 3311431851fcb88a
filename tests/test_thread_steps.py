"""benchmarks/thread_steps.py (one model's steps alternated between thread counts in one process): every count is
timed in every round, the ratio is taken inside each round, and bad names or counts are refused."""

from __future__ import annotations

import pytest
from _bench_module import bench_module


@pytest.fixture(scope="module")
def ts():
    with bench_module("thread_steps") as module:
        yield module


def test_every_count_is_timed_in_every_round(ts, keep_threads):
    spec = ts.SPECS[ts.spec_names(ts.SPECS)["M2"]]
    result = ts.compare(spec, [1, 2], rounds=2, steps=1)
    assert list(result) == [1, 2] and all(len(v) == 2 and min(v) > 0 for v in result.values())


def test_the_ratio_is_taken_inside_each_round(ts):
    spec = ts.SPECS[0]
    text = ts.row(spec, {1: [2.0, 1.0], 2: [1.0, 2.0]})  # round 1: 2.0x, round 2: 0.5x
    assert text == f"| {spec.group} | 1500.00 ms | 1500.00 ms | 1.25x (0.50-2.00) |"


def test_main_refuses_unknown_models_and_single_counts(ts, capsys):
    with pytest.raises(SystemExit):
        ts.main(["--models", "M9"])
    assert "unknown models ['M9']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ts.main(["--models", "M2", "--counts", "2"])
