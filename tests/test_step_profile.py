"""benchmarks/step_profile.py on a tiny model: every part is measured, and training is unchanged.

The profile attaches its timers from outside (benchmarks/step_hooks.py); these tests check the parts
it reports, the FLOP count it rates layers by, that the model trains bit for bit as without it,
that nothing stays attached, and that it degrades to per-layer times when the kernel timers fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from _bench_module import bench_module

import fastnet as fn
from fastnet import layers as L


@pytest.fixture(scope="module")
def sp():
    with bench_module("step_profile") as module:
        yield module


def _tiny(seed=0):
    fn.seed(seed)
    net = fn.Sequential([L.Conv2D(1, 4, 3), L.ReLU(), L.Flatten(), L.Dense(4 * 6 * 6, 3)])
    net.compile(optimizer=fn.optim.SGD(lr=0.1, momentum=0.9), loss="softmax_cross_entropy")
    return net


def _data():
    rng = np.random.default_rng(1)
    return rng.random((32, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 32)


def _run(sp, net, steps=2, warmup=1):
    from common import Batches

    x, y = _data()
    result = sp.profile(net, Batches(x, y, 8), steps=steps, warmup=warmup)
    kinds = {name: type(layer).__name__ for name, layer in net.named_layers().items()}
    return result, sp.summarise(result, kinds, sp.fused_pairs(net))


def _no_timers_left(net):
    from step_hooks import _StandIn, kernel_modules

    for layer in net.named_layers().values():
        assert "_forward" not in vars(layer) and "_backward" not in vars(layer)
    assert not {"zero_grad", "train_step"} & set(vars(net))
    for module in kernel_modules():
        assert not any(isinstance(v, _StandIn) for v in vars(module).values()), module.__name__


def test_parts_flops_and_no_change_to_training(sp, monkeypatch):
    from fastnet._kernels import config

    monkeypatch.setattr(config, "DIRECT_MAX_K", None)  # the 1-channel layer on im2col: GEMM and data parts to see
    monkeypatch.setattr(config, "BLOCKED_MAX_CF", None)
    net = _tiny()
    result, summary = _run(sp, net)
    assert [r["name"] for r in summary["layers"]] == ["0 Conv2D +1 ReLU", "2 Flatten", "3 Dense"]
    assert [r["name"] for r in summary["other"]] == [
        "loss", "optimizer", "zero_grad", "train_on_batch checks", "graph engine / Python"
    ]  # fmt: skip
    conv, _, dense = summary["layers"]
    assert conv["fwd_ms"] > 0 and conv["bwd_ms"] > 0 and dense["total_ms"] > 0
    # direct-convolution FLOPs 2*N*F*C*KH*KW*OH*OW; the first layer's backward skips dX (1 pass, not 2)
    conv_fwd = 2 * 8 * 4 * 1 * 3 * 3 * 6 * 6
    assert conv["flops"] == conv_fwd * 2 and conv["skips_dx"]
    assert dense["flops"] == 2 * 8 * 144 * 3 * 3 and not dense["skips_dx"]
    if summary["split"]:
        assert conv["gemm_ms"] > 0 and conv["data_ms"] > 0  # im2col + the GEMMs were seen
    else:
        assert summary["notes"], "a missing split must say why"
    assert len(result["plain"]) == len(result["wall"]) == 2
    _no_timers_left(net)
    # 1 warm-up + 1 trial instrumented step + 2 x (plain, instrumented): the same 6 batches without timers
    twin = _tiny()
    x, y = _data()
    for i in range(6):
        s = slice(8 * (i % 4), 8 * (i % 4) + 8)
        twin.train_on_batch(x[s], y[s])
    for k, v in twin.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[k], v, err_msg=k)


def test_kernel_timers_failing_fall_back_to_layer_times(sp, monkeypatch):
    import step_hooks

    def broken():
        raise RuntimeError("kernel modules moved")

    monkeypatch.setattr(step_hooks, "kernel_modules", broken)
    net = _tiny()
    _, summary = _run(sp, net, steps=1)
    assert not summary["split"] and "kernel modules moved" in summary["notes"][0]
    assert [r["name"] for r in summary["layers"]][0] == "0 Conv2D +1 ReLU"
    assert "gemm_ms" not in summary["layers"][0] and summary["layers"][0]["total_ms"] > 0
    monkeypatch.undo()  # the check below walks the real kernel modules
    _no_timers_left(net)


def test_split_that_sees_no_kernel_call_says_so(sp, monkeypatch):
    import step_hooks

    monkeypatch.setattr(step_hooks, "classify", lambda name: None)  # as if every internal name changed
    _, summary = _run(sp, _tiny(), steps=1)
    assert not summary["split"] and "no GEMM or data-movement call was seen" in summary["notes"][0]


def test_model_selection(sp):
    assert [(s.model, s.batch) for s in sp.parse_models("M4,M3")] == [("M4", 128), ("M3", 64), ("M3", 256)]
    assert [(s.model, s.batch) for s in sp.parse_models("m3b256, R20")] == [("M3", 256), ("R20", 128)]
    with pytest.raises(SystemExit, match="unknown model 'M9'"):
        sp.parse_models("M9")
