"""benchmarks/bench_targets.py's interleaving and report.py's targets table, on fake peers and made-up entries:
no torch, JAX or ONNX Runtime, nothing timed."""

import pytest
from _bench_module import bench_module


@pytest.fixture(scope="module")
def modules():
    with bench_module("bench_targets") as targets, bench_module("report") as report:
        return targets, report


class _FakeBenchmark:
    """pytest-benchmark's ``pedantic`` as far as _interleaved uses it: setup before every call, no timing."""

    def __init__(self):
        self.calls = 0

    def pedantic(self, target, setup, rounds, warmup_rounds, iterations):
        assert iterations == 1 and warmup_rounds == 0
        for _ in range(rounds):
            args, kwargs = setup()
            target(*args, **kwargs)
            self.calls += 1


class _FakePeers:
    """Records the order of the bursts; every peer "takes" a fixed time, so the ratios are known."""

    def __init__(self, names, seconds):
        self.names, self.seconds, self.rounds, self.order = list(names), seconds, [], []

    def burst(self, names):
        for fw in names:
            self.order.append((len(self.rounds) - 1, fw))
            self.rounds[-1][fw] = self.seconds[fw]


class _Feeder:
    def next(self):
        return (None, None)


def test_every_round_times_every_peer_once_and_fastnet_moves_through_the_order(modules, monkeypatch):
    targets, _ = modules
    monkeypatch.setattr(targets, "GAP", 0.0)
    peers = _FakePeers(["a", "b"], {"a": 0.004, "b": 0.002})
    steps = []

    def step(x, y):
        steps.append(1)
        r = len(peers.rounds) - 1
        if (r, "fastnet") not in peers.order:  # where fastnet's burst starts in this round's order
            peers.order.append((r, "fastnet"))

    bench = _FakeBenchmark()
    ratios, med, per_round = targets._interleaved(bench, step, _Feeder(), peers, [0.1], 4)
    assert per_round == targets.STEPS  # 0.1 s a step: the step count, not the burst length, sets the round
    assert bench.calls == len(steps) == 4 * per_round
    assert [sorted(r) for r in peers.rounds] == [["a", "b", "fastnet"]] * 4
    orders = [[fw for i, fw in peers.order if i == r] for r in range(4)]
    assert orders == [["fastnet", "a", "b"], ["a", "fastnet", "b"], ["a", "b", "fastnet"], ["fastnet", "a", "b"]]
    assert len(ratios) == 4
    assert med["a"] == 0.004 and med["b"] == 0.002


def test_the_ratio_is_the_best_peer_over_fastnet_inside_each_round(modules, monkeypatch):
    targets, _ = modules
    monkeypatch.setattr(targets, "GAP", 0.0)
    peers = _FakePeers(["a", "b"], {"a": 0.004, "b": 0.002})
    ratios, med, _ = targets._interleaved(_FakeBenchmark(), lambda x, y: None, _Feeder(), peers, [0.1], 3)
    for r, ratio in zip(peers.rounds, ratios, strict=True):
        assert ratio == pytest.approx(0.002 / r["fastnet"])
    assert med["fastnet"] > 0


def test_mlp_gemm_flops_count_forward_weight_and_input_gradients(modules):
    targets, _ = modules
    # M1: 784-512-10 at b128; the first layer has no input gradient
    want = 2 * 128 * (784 * 512 * 2 + 512 * 10 * 3) / 1e9
    assert targets._mlp_gflop("M1", 128) == pytest.approx(want)


def _target_entry(group, threads, **extra):
    info = {"variant": "fast", "threads": threads, **extra}
    return {"name": group, "group": f"target {group} {threads}t", "extra_info": info, "stats": {"median": 0.01}}


def test_targets_table_puts_thread_counts_side_by_side_and_says_met_or_missed(modules):
    _, report = modules
    step = "step M4 cnn 32-64 dropout adam b128"
    common = {"target_kind": "training step", "target": 1.5, "best_peer": "torch"}
    entries = [
        _target_entry(
            step, 2, ratio=1.6, ratio_range=[1.5, 1.7], met=True, median_ms={"fastnet": 50.0, "torch": 80.0}, **common
        ),
        _target_entry(
            step, 1, ratio=1.2, ratio_range=[1.1, 1.3], met=False, median_ms={"fastnet": 90.0, "torch": 108.0}, **common
        ),
        _target_entry(
            "conv 32->64 3x3 128x32x26x26 fwd+bwd",
            2,
            target_kind="conv rate",
            target=0.7,
            ratio=0.9,
            met=True,
            conv_gflops=150.0,
            gemm_gflops=170.0,
        ),
    ]
    lines = report.targets_table(entries)
    row = next(line for line in lines if line.startswith(f"| {step} |"))
    assert "50.00 ms vs torch 80.00 ms: **1.60x** (1.50-1.70)" in row
    assert "90.00 ms vs torch 108.00 ms: **1.20x** (1.10-1.30)" in row
    assert row.endswith("| >= 1.5x | met / missed |")
    conv = next(line for line in lines if "conv 32->64" in line)
    assert "150 GFLOP/s, GEMM 170: 90%" in conv and "| >= 70% of GEMM | met |" in conv
    assert report.targets_table([]) == []
