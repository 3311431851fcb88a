"""benchmarks/conv_engines.py (the interleaved before/after view behind config.py's tables): it times both
engines of a layer, restores the shipped dispatch rule, switches the engine it is asked to, and refuses an unknown
layer by name."""

from __future__ import annotations

import pytest
from _bench_module import bench_module

from fastnet._kernels import config


@pytest.fixture(scope="module")
def ce():
    with bench_module("conv_engines") as module:
        yield module


def test_both_engines_are_timed_and_the_rule_is_restored(ce):
    shipped = config.BLOCKED_MAX_CF, config.BLOCKED_WINOGRAD_CF
    rows = ce.layer_rows(["LeNet-5 6->16 5x5", "ResNet-20 stem 1->16"], batch=2, rounds=1, reps=1)
    assert shipped == (config.BLOCKED_MAX_CF, config.BLOCKED_WINOGRAD_CF)  # restored
    for times in rows.values():
        assert set(times) == {(e, p) for e in ("before", "after") for p in ("fwd", "bwd")}
        assert all(t > 0 for t in times.values())


def test_the_blocked_column_runs_the_blocked_kernels_on_a_layer_winograd_takes(ce, monkeypatch):
    from fastnet._kernels.fast import blocked, winograd

    calls = {"blocked": 0, "winograd": 0}
    for name, module in (("blocked", blocked), ("winograd", winograd)):
        real = module.conv2d_forward

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "conv2d_forward", counted)
    monkeypatch.setattr(config, "WINOGRAD_MIN_CHANNELS", 16)  # Winograd takes the layer in the "before" column
    monkeypatch.setattr(config, "BLOCKED_WINOGRAD_CF", 1024)  # below its C*F = 2048: only the column lifts it
    ce.layer_rows(["Keras CNN 32->64 3x3"], batch=1, rounds=1, reps=1)
    assert calls["blocked"] > 0 and calls["winograd"] > 0


@pytest.mark.parametrize("switch, module", [("strided", "strided"), ("gemm-dw", "blocked")])
def test_the_switch_names_the_engine_that_runs_after(ce, monkeypatch, switch, module):
    """--switch strided runs a stride-2 layer by its phases only in the "after" column; --switch gemm-dw a 7x7 layer's
    backward on the blocked kernels' own dW only "before"; both restore the shipped value."""
    from fastnet._kernels.fast import blocked, strided

    engine = {"strided": strided, "blocked": blocked}[module]
    name = "conv2d_forward" if switch == "strided" else "conv2d_backward"
    setting = ce.SWITCHES[switch][0][0]
    calls = []  # the switch's value at each call
    real = getattr(engine, name)
    monkeypatch.setattr(engine, name, lambda *a, **kw: calls.append(getattr(config, setting)) or real(*a, **kw))
    shipped = config.STRIDED_PHASES, config.BLOCKED_GEMM_DW_MAX_OUTPUT
    layer = "ResNet-20 16->32 1x1 s2" if switch == "strided" else "ResNet-20 64->64 7x7"
    rows = ce.layer_rows([layer], batch=1, rounds=1, reps=1, switch=switch)
    assert shipped == (config.STRIDED_PHASES, config.BLOCKED_GEMM_DW_MAX_OUTPUT)
    assert calls and set(calls) == ({True} if switch == "strided" else {None})
    assert set(rows[layer]) == {(e, p) for e in ("before", "after") for p in ("fwd", "bwd")}


def test_main_prints_a_row_per_layer_and_refuses_unknown_names(ce, capsys):
    ce.main(["--batch", "2", "--rounds", "1", "--reps", "1", "--layers", "LeNet-5 6->16 5x5"])
    out = capsys.readouterr().out
    assert "| LeNet-5 6->16 5x5 |" in out
    with pytest.raises(SystemExit, match="unknown layer"):
        ce.main(["--layers", "LeNet-7"])
