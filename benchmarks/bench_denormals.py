"""Denormals: a long M1 run (RMSprop, batch 128, real MNIST when present) timed step by step.

With RMSprop (rho 0.9) the squared-gradient state of ReLU units that stopped firing decays by 0.9 per step and
reaches float32 subnormals after roughly 700 steps; on x86 every arithmetic operation touching a subnormal then
takes a slow microcode path and whole steps get 2-3x slower. fastnet's switch ``fastnet.set_flush_denormals``
sets flush-to-zero / denormals-are-zero in the threads that run its kernels. This file runs the same training
with the switch on and off (and PyTorch with ``torch.set_flush_denormal`` on and off) and records in
``extra_info`` the median and 10th-percentile step time early (steps 50-250) and late (the last 200 steps), their
ratios, and the share of subnormal numbers in the optimizer state and weights at the end.

It takes a while (``--fn-denormal-steps``, default 1500, per variant): deselect it with ``-m "not denormals"``.
Each variant is one timed round (the whole run); the interesting numbers are in ``extra_info``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from common import Batches, dataset_for, fastnet_model, torch_batches, torch_model, torch_step

pytestmark = pytest.mark.denormals

EARLY = slice(50, 250)


def _subnormal_share(arrays) -> float:
    """Share of float32 values that are subnormal, read from the bits: with denormals-are-zero set in this thread,
    ``x != 0`` would call a subnormal zero."""
    total = sub = 0
    for a in arrays:
        if isinstance(a, np.ndarray) and a.dtype == np.float32:
            bits = np.ascontiguousarray(a).view(np.uint32)
            total += a.size
            sub += int(np.count_nonzero(((bits & 0x7F800000) == 0) & ((bits & 0x007FFFFF) != 0)))
    return sub / max(total, 1)


def _arrays(obj):
    """Every ndarray inside nested dicts / lists / tuples (optimizer state, whatever its layout)."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _arrays(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _arrays(v)


def _timed_run(step, feeder, n_steps):
    times = np.empty(n_steps)
    for i in range(n_steps):
        x, y = feeder.next()
        t = time.perf_counter()
        step(x, y)
        times[i] = time.perf_counter() - t
    return times


def _record(benchmark, times):
    late = slice(max(len(times) - 200, EARLY.stop), len(times))
    early, late = times[EARLY], times[late]
    ms = {
        "early_ms": np.median(early),
        "late_ms": np.median(late),
        # a busy shared machine only ever adds time, so the fast tail shows the step's own cost best
        "early_p10_ms": np.percentile(early, 10),
        "late_p10_ms": np.percentile(late, 10),
    }
    benchmark.extra_info.update({k: round(float(v) * 1e3, 3) for k, v in ms.items()})
    benchmark.extra_info.update(
        steps=len(times),
        late_over_early=round(float(ms["late_ms"] / ms["early_ms"]), 2),
        late_over_early_p10=round(float(ms["late_p10_ms"] / ms["early_p10_ms"]), 2),
        # median step time per block of 100 steps, to see where a slowdown starts
        ms_per_100_steps=[round(float(np.median(times[i : i + 100])) * 1e3, 3) for i in range(0, len(times), 100)],
    )


@pytest.fixture
def n_steps(request):
    n = request.config.getoption("--fn-denormal-steps")
    if n < 400:
        pytest.skip("--fn-denormal-steps must be >= 400 to compare early and late steps")
    return n


@pytest.mark.parametrize(
    "backend,flush",
    [("fast", True), ("fast", False), ("numpy", False)],
    ids=["fast-flush_on", "fast-flush_off", "numpy-flush_off"],
)
def test_denormals_fastnet(benchmark, backend, flush, n_steps, threads):
    import fastnet

    set_flush = getattr(fastnet, "set_flush_denormals", None)
    if set_flush is None:
        pytest.skip("fastnet.set_flush_denormals is not available yet")
    fastnet.seed(0)
    ds = dataset_for("M1")
    feeder = Batches(ds.x, ds.y, 128)
    benchmark.group = "denormals M1 long run"
    benchmark.extra_info.update(variant=f"{backend}-flush_{'on' if flush else 'off'}", threads=threads, data=ds.source)
    previous = fastnet.flush_denormals_enabled() if hasattr(fastnet, "flush_denormals_enabled") else None
    set_flush(flush)
    try:
        with fastnet.use_backend(backend):
            net, _ = fastnet_model("M1")
            out = {}
            benchmark.pedantic(
                lambda: out.setdefault("t", _timed_run(net.train_on_batch, feeder, n_steps)),
                rounds=1,
                warmup_rounds=0,
                iterations=1,
            )
    finally:
        if previous is not None:
            set_flush(previous)
    _record(benchmark, out["t"])
    opt_state = net.optimizer.state_dict() if hasattr(net.optimizer, "state_dict") else {}
    benchmark.extra_info["subnormal_share_optimizer_state"] = _subnormal_share(_arrays(opt_state))
    benchmark.extra_info["subnormal_share_weights"] = _subnormal_share(net.parameters())


@pytest.mark.parametrize("flush", [True, False], ids=["torch-flush_on", "torch-flush_off"])
def test_denormals_torch(benchmark, flush, n_steps, torch_mod):
    torch = torch_mod
    torch.manual_seed(0)
    ds = dataset_for("M1")
    net, loss_fn, opt, _ = torch_model("M1")
    feeder = torch_batches(ds, 128, onehot=False)
    benchmark.group = "denormals M1 long run"
    benchmark.extra_info.update(
        variant=f"torch-flush_{'on' if flush else 'off'}", threads=torch.get_num_threads(), data=ds.source
    )
    torch.set_flush_denormal(flush)
    try:
        out = {}
        step = torch_step(net, loss_fn, opt)
        benchmark.pedantic(
            lambda: out.setdefault("t", _timed_run(step, feeder, n_steps)), rounds=1, warmup_rounds=0, iterations=1
        )
    finally:
        torch.set_flush_denormal(False)
    _record(benchmark, out["t"])
    state = [v.numpy() for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
    benchmark.extra_info["subnormal_share_optimizer_state"] = _subnormal_share(state)
    benchmark.extra_info["subnormal_share_weights"] = _subnormal_share([p.detach().numpy() for p in net.parameters()])
