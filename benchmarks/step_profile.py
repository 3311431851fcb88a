"""Where a training step spends its time: per layer, GEMM vs data movement vs the rest, and the overhead.

    PYTHONPATH=src python benchmarks/step_profile.py                      # M4 b128, R20 b128, M3 b64 and b256
    PYTHONPATH=src python benchmarks/step_profile.py --models M4 --threads 1 --steps 20 --json m4.json

For each model (``benchmarks/common.py``: M4 the Keras MNIST CNN, R20 ResNet-20 on 28x28, M3 LeNet-5;
``M3`` means both batch sizes, ``M3b64`` one) the script warms up, then alternates an uninstrumented
step (timed as a whole) with an instrumented one (timers attached from outside, see ``step_hooks.py``;
the library is not changed) and prints medians over the instrumented steps:

- per layer (dotted name in the model; a fused activation shows as ``conv2d +re_lu``): forward and
  backward ms; for conv/dense layers the part of both spent in GEMM calls, in data movement
  (im2col/col2im, layout copies) and the rest (allocation, bias/ReLU passes, reductions, Python; and
  the whole of a layer on the direct or blocked convolution kernels, which make no GEMM calls);
  their achieved GFLOP/s counting direct-convolution FLOPs ``2*N*F*C*KH*KW*OH*OW`` per pass (forward
  1 pass, backward 2: dW and dX, 1 where the layer skips dX as a model's first layer does), the same
  over GEMM time only, and the fraction of this machine's float32 GEMM rate at the run's thread count;
- the loss, the optimizer update, ``zero_grad``; ``train_on_batch`` checks (its wall time minus
  ``train_step``) and the graph engine / Python (``train_step`` minus every measured part: the plan
  walk, nested models, the sums where a value fans out to two layers, ``param_slots``);
- the layer rows summed per layer class.

The GEMM rate is a square ``--gemm-size`` float32 product measured in the same run: single-threaded
BLAS (how fastnet calls BLAS: it keeps BLAS at one thread and parallelises itself), and at the run's
and the full thread count the faster of fastnet's column-block GEMM (``_kernels/fast/gemm.py``)
and BLAS's own threads, best of 5 calls, just before each model; "% GEMM rate" divides by the best
rate at the run's thread count or fewer. Not a pytest-benchmark suite (``report.py`` does not run it): it is a view
for aiming work, and a shared machine makes every figure noisy (the load average is printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("fastnet") is None:  # not installed, no PYTHONPATH: the checkout's
    sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import fastnet  # noqa: E402,I001  (before NumPy, as in a user's script: fastnet/_thread_env.py)
import numpy as np  # noqa: E402
from common import SPECS, Batches, dataset_for, fastnet_model  # noqa: E402
from step_hooks import DATA, GEMM, Instrumentation  # noqa: E402


SPLIT_KINDS = ("Conv2D", "Dense")  # layers whose GEMM / data-movement split is shown
FIXED_PARTS = ("loss", "optimizer", "zero_grad")


# ---- running ------------------------------------------------------------------------------------
def _plain_step(net, x, y) -> float:
    t0 = time.perf_counter()
    net.train_on_batch(x, y)
    return time.perf_counter() - t0


def _profiled_step(hooks: Instrumentation, net, x, y):
    rec = hooks.install()
    try:
        wall = _plain_step(net, x, y)
    finally:
        hooks.remove()
    return wall, rec


def profile(net, feeder, steps: int, warmup: int = 3, kernel_split: bool = True) -> dict:
    """Run ``warmup`` plain steps, then ``steps`` rounds of (plain step, instrumented step).

    Returns ``{"plain": [s], "wall": [s], "faults": [n], "parts": [{name: {field: s}}], "notes": [...], "split":
    bool}``; ``faults``: the minor page faults of each plain step (memory the allocator got back from the OS).
    If the kernel timers break a step, the run continues with the per-layer timers only (noted).
    """
    for _ in range(warmup):
        _plain_step(net, *feeder.next())  # compile, fill caches, size the workspace
    hooks = Instrumentation(net, kernel_split=kernel_split)
    notes = []
    try:
        _profiled_step(hooks, net, *feeder.next())  # an untimed instrumented step: does it attach?
    except Exception as e:  # noqa: BLE001  (any failure of the hooks: fall back, say why)
        if not kernel_split:
            raise
        notes.append(f"GEMM/data split not attached: the kernel timers failed ({type(e).__name__}: {e})")
        hooks = Instrumentation(net, kernel_split=False)
        _profiled_step(hooks, net, *feeder.next())
    notes += hooks.notes
    out = {"plain": [], "wall": [], "faults": [], "parts": [], "notes": notes, "split": hooks.kernel_split}
    hits = 0
    for _ in range(steps):
        x, y = feeder.next()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        out["plain"].append(_plain_step(net, x, y))
        out["faults"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        wall, rec = _profiled_step(hooks, net, *feeder.next())
        out["wall"].append(wall)
        out["parts"].append(rec.parts)
        hits += rec.kernel_hits
    if hooks.kernel_split and hits == 0:
        out["split"] = False
        out["notes"].append(
            "GEMM/data split not attached: no GEMM or data-movement call was seen from the kernel modules "
            "(their internals changed, or the work runs inside compiled code); per-layer times only"
        )
    return out


# ---- aggregation --------------------------------------------------------------------------------
def _median(values) -> float:
    return float(np.median(values)) if len(values) else 0.0


def summarise(result: dict, kinds: dict[str, str], fused: dict[str, str] | None = None) -> dict:
    """Medians per part (in ms) from ``profile``'s result; ``kinds`` maps layer name -> class name.

    Layer rows come in call order; each has fwd/bwd/total ms, and for conv/dense layers
    (when the split attached) gemm/data/rest ms and the FLOPs of one step.
    """
    fused = fused or {}
    steps = result["parts"]
    names = [n for n in steps[0] if n in kinds] if steps else []
    layers = []
    for name in names:
        f = [s.get(name, {}) for s in steps]
        row = {
            "name": _label(name, kinds) + "".join(f" +{_label(f, kinds)}" for f in fused.get(name, ())),
            "kind": kinds[name],
            "calls": int(_median([p.get("calls", 0) for p in f])),
            "fwd_ms": 1e3 * _median([p.get("fwd", 0.0) for p in f]),
            "bwd_ms": 1e3 * _median([p.get("bwd", 0.0) for p in f]),
            "total_ms": 1e3 * _median([p.get("fwd", 0.0) + p.get("bwd", 0.0) for p in f]),
        }
        if result["split"] and kinds[name] in SPLIT_KINDS:
            for cat in (GEMM, DATA):
                row[f"{cat}_ms"] = 1e3 * _median([p.get(f"fwd_{cat}", 0.0) + p.get(f"bwd_{cat}", 0.0) for p in f])
            row["rest_ms"] = max(0.0, row["total_ms"] - row["gemm_ms"] - row["data_ms"])
        flops = [p.get("flops_fwd", 0) + p.get("flops_bwd", 0) for p in f]
        if any(flops):
            row["flops"] = int(_median(flops))
            row["skips_dx"] = any(p.get("bwd_skips_dx", False) for p in f)
        layers.append(row)
    fixed = []
    for name in FIXED_PARTS:
        f = [s.get(name, {}) for s in steps]
        fixed.append(
            {"name": name, "total_ms": 1e3 * _median([sum(p.get(k, 0.0) for k in ("fwd", "bwd", "total")) for p in f])}
        )
    checks, engine = [], []
    for s, wall in zip(steps, result["wall"], strict=True):
        inner = s.get("train_step", {}).get("total", wall)
        measured = sum(p.get("fwd", 0.0) + p.get("bwd", 0.0) for n, p in s.items() if n in kinds or n == "loss")
        measured += sum(s.get(n, {}).get("total", 0.0) for n in ("optimizer", "zero_grad"))
        checks.append(wall - inner)
        engine.append(inner - measured)
    fixed.append({"name": "train_on_batch checks", "total_ms": 1e3 * _median(checks)})
    fixed.append({"name": "graph engine / Python", "total_ms": 1e3 * _median(engine)})
    return {
        "layers": layers,
        "other": fixed,
        "step_ms": 1e3 * _median(result["wall"]),
        "plain_step_ms": 1e3 * _median(result["plain"]),
        "steps": len(steps),
        "split": result["split"],
        "notes": list(result["notes"]),
    }


def _label(name: str, kinds: dict[str, str]) -> str:
    """A Sequential's index names (``"0"``, ``"block.2"``) get the class name: ``"0 Conv2D"``."""
    return f"{name} {kinds[name]}" if name.rsplit(".", 1)[-1].isdigit() and name in kinds else name


def fused_pairs(model) -> dict[str, tuple]:
    """Dotted layer name -> the dotted names of the layers fused into it (its activation, its pool; nested models
    too). A fused pool's time is in its conv's row (the pool layer's own row times only its training-mode call)."""
    dotted = {id(leaf): name for name, leaf in model.named_layers().items()}
    out, todo = {}, [model]
    while todo:
        m = todo.pop()
        for label, *fused in m.fusions():
            leaf = m.get_layer(label.split(":")[0])
            if id(leaf) in dotted:
                out[dotted[id(leaf)]] = tuple(dotted.get(id(m.get_layer(f.split(":")[0])), f) for f in fused)
        todo.extend(layer for layer in m.layers if isinstance(layer, fastnet.Model))
    return out


# ---- the machine's GEMM rate --------------------------------------------------------------------
def _gflops(fn, n: int, reps: int) -> float:
    """The best of ``reps`` timed calls (after one untimed): on a shared machine the least disturbed one."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def gemm_rates(thread_counts, n: int = 1024, reps: int = 5) -> dict[int, dict]:
    """Best-of-``reps`` GFLOP/s of an ``n``-cubed float32 product per thread count:
    ``{"blas": .., "fastnet": .., "best": ..}`` (fastnet: its column-block GEMM, BLAS at one thread)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    before = fastnet.get_num_threads()
    rates = {}
    try:
        for t in sorted(set(thread_counts)):
            with threadpool_limits(limits=t, user_api="blas"):
                blas = _gflops(lambda: np.matmul(a, b, out=c), n, reps)
            fastnet.set_num_threads(t)
            try:
                from fastnet._kernels.fast import gemm

                ours = _gflops(lambda: gemm.matmul(a, b, c), n, reps)
            except (ImportError, AttributeError, TypeError):  # the GEMM module changed: BLAS only
                ours = None
            rates[t] = {"blas": blas, "fastnet": ours, "best": max(blas, ours or 0.0)}
    finally:
        fastnet.set_num_threads(before)
    return rates


# ---- printing -----------------------------------------------------------------------------------
def _cell(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)


def table(summary: dict, peak_gflops: float | None) -> str:
    """The summary as a markdown table (one row per layer, then the fixed parts and the step)."""
    step = summary["step_ms"] or 1.0
    head = (
        "| part | fwd ms | bwd ms | total ms | % step | GEMM ms | data ms | rest ms | GFLOP/s | in GEMM | % GEMM rate |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in summary["layers"]:
        secs = r["total_ms"] / 1e3
        rate = r["flops"] / secs / 1e9 if r.get("flops") and secs > 0 else None
        in_gemm = r["flops"] / (r["gemm_ms"] / 1e3) / 1e9 if r.get("flops") and r.get("gemm_ms") else None
        frac = 100 * rate / peak_gflops if rate and peak_gflops else None
        name = r["name"] + (f" x{r['calls']}" if r["calls"] > 1 else "") + (" (no dX)" if r.get("skips_dx") else "")
        times = f"{r['fwd_ms']:.2f} | {r['bwd_ms']:.2f} | {r['total_ms']:.2f} | {100 * r['total_ms'] / step:.1f}"
        split = " | ".join(_cell(r.get(k)) for k in ("gemm_ms", "data_ms", "rest_ms"))
        rates = f"{_cell(rate, '{:.1f}')} | {_cell(in_gemm, '{:.1f}')} | {_cell(frac, '{:.0f}%')}"
        lines.append(f"| {name} | {times} | {split} | {rates} |")
    for r in summary["other"]:
        lines.append(f"| {r['name']} | | | {r['total_ms']:.2f} | {100 * r['total_ms'] / step:.1f} | | | | | | |")
    return "\n".join(lines)


def by_kind(summary: dict) -> str:
    """Layer rows summed per layer class (medians summed, so an approximation of the step's split)."""
    kinds: dict[str, dict] = {}
    for r in summary["layers"]:
        k = kinds.setdefault(r["kind"], {"n": 0, "total_ms": 0.0, "gemm_ms": None, "data_ms": None})
        k["n"] += 1
        k["total_ms"] += r["total_ms"]
        for key in ("gemm_ms", "data_ms"):
            if key in r:
                k[key] = (k[key] or 0.0) + r[key]
    step = summary["step_ms"] or 1.0
    lines = ["| layer class | layers | total ms | % step | GEMM ms | data ms |", "|---|---|---|---|---|---|"]
    for kind, k in sorted(kinds.items(), key=lambda kv: -kv[1]["total_ms"]):
        lines.append(
            f"| {kind} | {k['n']} | {k['total_ms']:.2f} | {100 * k['total_ms'] / step:.1f} "
            f"| {_cell(k['gemm_ms'])} | {_cell(k['data_ms'])} |"
        )
    return "\n".join(lines)


def parse_models(text: str):
    """``"M4,R20,M3"`` -> the matching ``common.SPECS`` (``M3`` every batch size, ``M3b64`` one)."""
    out = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        model, _, batch = token.upper().partition("B")
        found = [s for s in SPECS if s.model == model and (not batch or str(s.batch) == batch)]
        if not found:
            known = ", ".join(f"{s.model}b{s.batch}" for s in SPECS)
            raise SystemExit(f"step_profile: unknown model {token!r}; known: {known}")
        out += [s for s in found if s not in out]
    return out


def _positive(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="M4,R20,M3", help="comma-separated: M4, R20, M3 (both batches), M3b64, ...")
    p.add_argument("--steps", type=_positive, default=10, help="instrumented (and as many plain) steps per model")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=_positive, default=None, help="fastnet.set_num_threads(N); default: every CPU")
    p.add_argument("--gemm-size", type=_positive, default=1024)
    p.add_argument("--no-split", action="store_true", help="per-layer times only (no kernel-module timers)")
    p.add_argument("--json", help="also write the summaries here")
    args = p.parse_args(argv)
    specs = parse_models(args.models)
    full = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = args.threads or fastnet.threads.default_num_threads()
    fastnet.set_num_threads(threads)
    print(f"threads {threads} (of {full} CPUs); float32 GEMM rate measured before each model ({args.gemm_size}^3)")
    report = {"threads": threads, "cpus": full, "models": []}
    for spec in specs:
        fastnet.seed(0)
        net, onehot = fastnet_model(spec.model)
        ds = dataset_for(spec.model)
        feeder = Batches(ds.x, ds.y_onehot if onehot else ds.y, spec.batch)
        load0 = os.getloadavg()[0]
        rates = gemm_rates({1, threads, full}, n=args.gemm_size)
        # at N threads the machine does at least what fewer threads do (a loaded core can make 2 slower than 1)
        peak = max(r["best"] for t, r in rates.items() if t <= threads)
        result = profile(net, feeder, args.steps, args.warmup, kernel_split=not args.no_split)
        kinds = {name: type(layer).__name__ for name, layer in net.named_layers().items()}
        summary = summarise(result, kinds, fused_pairs(net))
        summary.update(model=f"{spec.model} b{spec.batch}", title=spec.title, data=ds.source)
        summary["loadavg_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        summary["page_faults_per_step"] = _median(result["faults"])
        summary["gemm_gflops"] = rates
        report["models"].append(summary)
        print(f"\n## {spec.model} b{spec.batch} ({spec.title}); data: {ds.source}")
        print(
            f"step median {summary['plain_step_ms']:.2f} ms uninstrumented, {summary['step_ms']:.2f} ms instrumented "
            f"({summary['steps']} each after {args.warmup} warm-up), "
            f"{summary['page_faults_per_step']:.0f} page faults a step; load avg {summary['loadavg_1min']}; "
            f"% GEMM rate against {peak:.1f} GFLOP/s (best at <= {threads} thread(s))"
        )
        for t, r in rates.items():
            print(f"GEMM {t} thread(s): BLAS {r['blas']:.1f}, fastnet blocks {_cell(r['fastnet'], '{:.1f}')} GFLOP/s")
        for note in summary["notes"]:
            print(f"note: {note}")
        print(table(summary, peak))
        print()
        print(by_kind(summary), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
