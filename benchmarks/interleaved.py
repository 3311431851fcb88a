"""fastnet against its peers, interleaved: every framework in its own process, all of them alive at once, timed
in alternating short bursts, so a change of the machine's speed hits every framework alike.

    PYTHONPATH=src python benchmarks/interleaved.py --threads 2                      # every training step of SPECS
    PYTHONPATH=src python benchmarks/interleaved.py --threads 1 --models M4,R20 --rounds 9 --json m4.json
    PYTHONPATH=src python benchmarks/interleaved.py --threads 2 --predict            # predict M3, M4 at b256

Why: ``report.py`` runs one pytest suite per framework, one after another, and this VM's speed drifts by up to 1.6x
within the hour (its 1024^3 GEMM rate moved between 52 and 154 GFLOP/s in one day), so a ratio between two suites
measures the drift as much as the code. Here each workload starts one worker per framework (fastnet; PyTorch eager
NCHW and channels-last; ``torch.compile`` NCHW and channels-last; JAX ``jit`` of the whole step with XLA's own
convolutions or YNNPACK, in the layout ``bench_peers.py`` finds faster). Each builds, checks (its loss falls over
the warm-up steps) and compiles untimed; then the driver asks them in turn, for ``--rounds`` rounds in a rotating
order, for the median of a burst of training steps on fresh batches (at least ``--steps`` of them and ``--burst``
seconds), with ``--gap`` seconds of idle machine before each burst (PyTorch's OpenMP threads and XLA's keep
spinning for a while after their work). The ratio "fastnet / best peer" is taken inside each round (the best
peer's median over fastnet's, above 1: fastnet is faster), and the table shows its median over rounds and its
range.

The models, data, optimizers and thread settings are the pytest suites' own (``common.py``, ``peers_jax.py``):
same seed-0 weights where the suites share them, float32, the same thread count everywhere (JAX pinned to the
first ``--threads`` CPUs, as in ``conftest.py``). ``--predict`` times ``predict`` at batch 256 instead (M3, M4; the
peers add ONNX Runtime, each checked against fastnet's probabilities first: ``interleaved_predict.py``).
Not a pytest-benchmark suite: the saved JSON holds every round's medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# The fastnet worker loads fastnet before NumPy, as a user's script does, so fastnet's defaults for the thread pools
# (fastnet/_thread_env.py: read when NumPy loads) apply to it. Until 2026-12-02 it loaded NumPy first and ran without
# them. The driver and the peers' workers do not load fastnet here: the peers keep their libraries' own defaults.
if sys.argv[1:3] == ["--worker", "fastnet"]:
    import fastnet  # noqa: F401

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import SPECS, Batches, dataset_for, spec_names  # noqa: E402
from interleaved_predict import PREDICT_PEERS, build_predict  # noqa: E402
from peers_common import PREDICT_SPECS, predict_group  # noqa: E402

PEERS = ("torch", "torch-cl", "compile", "compile-cl", "jax-xla", "jax-ynnpack")
WARMUP = 20  # steps before timing: compiles, and the loss must fall over them (the suites' CHECK_STEPS)
PREDICT_WARMUP = 5  # predictions before timing (after the check of the outputs)


# ---- workers: one framework, one workload, steps on demand ----------------------------------------
def _fastnet_step(spec, threads):
    from common import fastnet_model

    import fastnet

    fastnet.set_num_threads(threads)
    fastnet.seed(0)
    net, onehot = fastnet_model(spec.model)
    ds = dataset_for(spec.model)
    feeder = Batches(ds.x, ds.y_onehot if onehot else ds.y, spec.batch)
    return net.train_on_batch, feeder


def _torch_step(spec, threads, channels_last, compiled):
    import torch
    from common import torch_batches, torch_model, torch_step

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net, loss_fn, opt, onehot = torch_model(spec.model, channels_last=channels_last)
    net.train()
    step = torch_step(net, loss_fn, opt, compiled=compiled)
    return step, torch_batches(dataset_for(spec.model), spec, onehot, channels_last=channels_last)


def _jax_step(spec, threads, convs):
    import peers_jax

    peers_jax.configure(threads, "xla" if convs == "jax-xla" else "ynnpack")
    nhwc = spec.model in ("M3", "M4")  # the layouts the suite's probe of both picks here (ResNet-20: NCHW)
    init = None
    if spec.model != "R20":  # fastnet's seed-0 weights in PyTorch layout, as the suite does
        from common import fastnet_model

        import fastnet
        from fastnet.interop.safetensors_io import torch_state

        fastnet.seed(0)
        init = peers_jax.params_from_torch_state(spec.model, torch_state(fastnet_model(spec.model)[0]), nhwc)
    jitted, state = peers_jax.train_step(spec.model, nhwc, init)
    box = [state]

    def step(x, y):
        box[0], loss = jitted(box[0], x, y)
        return float(loss)

    ds = dataset_for(spec.model)
    y = ds.y_onehot if spec.model == "M2" else ds.y.astype(np.int32)
    return step, Batches(peers_jax.to_layout(ds.x, nhwc), y, spec.batch)


def _build(framework, spec, threads):
    if framework == "fastnet":
        return _fastnet_step(spec, threads)
    if framework.startswith("torch") or framework.startswith("compile"):
        return _torch_step(spec, threads, framework.endswith("-cl"), framework.startswith("compile"))
    if framework.startswith("jax"):
        return _jax_step(spec, threads, framework)
    raise ValueError(f"unknown framework {framework!r}")


def worker(framework: str, spec_index: int, threads: int, mode: str = "step") -> None:
    """Build, warm up and check, print "ready <first loss> <last loss>" (``mode`` "predict": "ready <largest
    difference from fastnet's probabilities>"), then answer each "run N B" on stdin with the median seconds of at
    least N steps (or predictions) and B seconds of them (each on the next batch)."""
    if mode == "predict":
        step, feeder, err = build_predict(framework, PREDICT_SPECS[spec_index], threads)
        for _ in range(PREDICT_WARMUP):
            step(*feeder.next())
        print(f"ready {err:.6g}", flush=True)
    else:
        step, feeder = _build(framework, SPECS[spec_index], threads)
        losses = [step(*feeder.next()) for _ in range(WARMUP)]
        print(f"ready {losses[0]:.6g} {losses[-1]:.6g}", flush=True)
    for line in sys.stdin:
        _, n, burst = line.split()
        times = []
        while len(times) < int(n) or sum(times) < float(burst):
            batch = feeder.next()
            t = time.perf_counter()
            step(*batch)
            times.append(time.perf_counter() - t)
        print(f"{float(np.median(times)):.9f}", flush=True)


# ---- the driver ---------------------------------------------------------------------------------------
def _start(framework, spec_index, threads, mode):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, str(spec_index), str(threads), mode]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def _ready(framework, proc):
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        proc.kill()
        raise RuntimeError(f"{framework}: the worker failed to start (run it alone to see why)")
    if len(line) == 2:  # a predict worker: its outputs were checked against fastnet's
        return {"max_abs_diff_vs_fastnet": float(line[1])}
    first, last = float(line[1]), float(line[2])
    if not last < first:
        raise RuntimeError(f"{framework}: the loss did not fall over {WARMUP} warm-up steps ({first} -> {last})")
    return first, last


def run_workload(
    spec_index: int, frameworks, threads: int, rounds: int, steps: int, burst: float, gap: float, mode: str = "step"
) -> dict:
    """Every framework's median step time per round, for SPECS[spec_index] (``mode`` "predict": prediction time,
    for PREDICT_SPECS[spec_index])."""
    procs, checks = {}, {}
    try:
        for fw in frameworks:  # one at a time: a compiling worker would slow the others' start, not their timing
            procs[fw] = _start(fw, spec_index, threads, mode)
            checks[fw] = _ready(fw, procs[fw])
        per_round = []
        for r in range(rounds):
            order = list(frameworks[r % len(frameworks) :]) + list(frameworks[: r % len(frameworks)])
            times = {}
            for fw in order:
                time.sleep(gap)  # the last burst's idle threads (OpenMP, XLA) stop spinning before the next one
                procs[fw].stdin.write(f"run {steps} {burst}\n")
                procs[fw].stdin.flush()
                times[fw] = float(procs[fw].stdout.readline())
            per_round.append(times)
        return {"rounds": per_round, "loss_check": checks}
    finally:
        for p in procs.values():
            p.stdin.close()
            p.wait(timeout=60)


def summarise(spec, result, workload=None) -> dict:
    rounds = result["rounds"]
    frameworks = list(rounds[0])
    peers = [fw for fw in frameworks if fw != "fastnet"]
    med = {fw: float(np.median([r[fw] for r in rounds])) for fw in frameworks}
    ratios = [min(r[p] for p in peers) / r["fastnet"] for r in rounds]
    best = min(peers, key=lambda p: med[p])
    return {
        "workload": workload or spec.group,
        "median_ms": {fw: round(v * 1e3, 3) for fw, v in med.items()},
        "best_peer": best,
        "ratio_median": round(float(np.median(ratios)), 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
    }


def table(rows, frameworks) -> str:
    head = "| workload | " + " | ".join(frameworks) + " | best peer | fastnet / best peer (range over rounds) |"
    out = [head, "|" + "---|" * (len(frameworks) + 3)]
    for row in rows:
        cells = [f"{row['median_ms'][fw]:.2f} ms" if fw in row["median_ms"] else "-" for fw in frameworks]
        lo, hi = row["ratio_range"]
        out.append(
            f"| {row['workload']} | " + " | ".join(cells) + f" | {row['best_peer']} | {row['ratio_median']:.2f}x "
            f"({lo:.2f}-{hi:.2f}) |"
        )
    return "\n".join(out)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], int(argv[2]), int(argv[3]), argv[4])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=_positive, required=True)
    p.add_argument("--models", default="", help="comma-separated: M1, M2, M3b64, M3b256, M4, R20 (default: all)")
    p.add_argument("--predict", action="store_true", help="time predict at batch 256 (M3, M4) instead of steps")
    p.add_argument("--peers", default="", help=f"comma-separated, of {', '.join(PEERS)} (--predict: and ort)")
    p.add_argument("--rounds", type=_positive, default=7)
    p.add_argument("--steps", type=_positive, default=5, help="at least this many steps per framework per round")
    p.add_argument("--burst", type=float, default=0.5, help="and at least this many seconds of them (their median)")
    p.add_argument("--gap", type=float, default=0.5, help="seconds of idle machine before each burst")
    p.add_argument("--json", help="also write every round's medians here")
    args = p.parse_args(argv)
    mode, specs, known = ("predict", PREDICT_SPECS, PREDICT_PEERS) if args.predict else ("step", SPECS, PEERS)
    names = spec_names(specs)
    wanted = [m for m in args.models.split(",") if m] or list(names)
    unknown = [m for m in wanted if m not in names]
    peers = [x for x in args.peers.split(",") if x] or list(known)
    bad = [x for x in peers if x not in known]
    if unknown or bad:
        p.error(f"unknown models {unknown} or peers {bad}; models: {sorted(names)}, peers: {list(known)}")
    indices = list(dict.fromkeys(names[m] for m in wanted))
    frameworks = ["fastnet", *peers]
    rows, saved = [], []
    for i in indices:
        spec = specs[i]
        group = predict_group(spec) if args.predict else spec.group
        fws = [fw for fw in frameworks if not (fw.endswith("-cl") and not spec.images)]  # no layout choice for MLPs
        result = run_workload(i, fws, args.threads, args.rounds, args.steps, args.burst, args.gap, mode)
        rows.append(summarise(spec, result, group))
        saved.append({"workload": group, **result, **rows[-1]})
        print(f"# {group}: {rows[-1]['ratio_median']:.2f}x vs {rows[-1]['best_peer']}", file=sys.stderr)
    print(
        f"threads {args.threads}; {args.rounds} rounds of >= {args.steps} steps and >= {args.burst} s per framework; "
        f"load average {[round(v, 2) for v in os.getloadavg()]}"
    )
    print(table(rows, frameworks))
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "mode": mode, "workloads": saved}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
