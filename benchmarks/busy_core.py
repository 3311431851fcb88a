"""Training-step time on a busy machine: fastnet's automatic thread count against fixed counts.

    PYTHONPATH=src python benchmarks/busy_core.py                 # M1 and LeNet-5, idle and one core busy
    PYTHONPATH=src python benchmarks/busy_core.py --rounds 40 --json busy.json

For each model (M1 ``784-512-10`` RMSprop batch 128, M3 LeNet-5 SGD-momentum batch 64) and each
condition ("idle": nothing started by the script; "one core busy": a spinning child process, like
``yes > /dev/null``), the configurations ``auto`` (``set_num_threads(None)``, re-decided when
switched to, as at a fresh start), ``1`` and ``2`` are timed INTERLEAVED: each round runs
``--steps`` steps of every configuration in turn, so a change of the machine's load (other users)
hits all of them alike. Printed: median step time per configuration, ``auto / best fixed``, and the
load average seen (the machine is not idle when other processes run; the report says so).
Not a pytest-benchmark suite because the interleaving is the point; ``report.py`` does not run it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("fastnet") is None:  # not installed, no PYTHONPATH: the checkout's
    sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from common import SPECS, Batches, dataset_for, fastnet_model, time_steps  # noqa: E402

import fastnet  # noqa: E402  (first: thread-pool environment defaults)


def set_config(config) -> int:
    if config == "auto":
        if hasattr(fastnet.threads, "automatic"):
            fastnet.set_num_threads(None)
        else:  # an older fastnet without the automatic mode: its default count
            fastnet.set_num_threads(fastnet.threads.default_num_threads())
    else:
        fastnet.set_num_threads(int(config))
    return fastnet.get_num_threads()


def measure(spec, configs, rounds, steps):
    fastnet.seed(0)
    net, onehot = fastnet_model(spec.model)
    ds = dataset_for(spec.model)
    feeder = Batches(ds.x, ds.y_onehot if onehot else ds.y, spec.batch)
    times = {c: [] for c in configs}
    chosen = {c: [] for c in configs}
    for c in configs:  # compile and warm every configuration
        set_config(c)
        time_steps(net, feeder, 3)
    for _ in range(rounds):
        for c in configs:
            chosen[c].append(set_config(c))
            time_steps(net, feeder, 2)  # settle (pools wake, caches fill)
            times[c] += time_steps(net, feeder, steps)
            chosen[c][-1] = fastnet.get_num_threads()  # after any re-decision during the steps
    return {c: (float(np.median(t)), sorted(set(chosen[c]))) for c, t in times.items()}, ds.source


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=25)
    p.add_argument("--steps", type=int, default=5, help="timed steps per configuration per round")
    p.add_argument("--configs", default="auto,1,2")
    p.add_argument("--conditions", default="idle,busy")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    configs = args.configs.split(",")
    specs = [s for s in SPECS if (s.model, s.batch) in (("M1", 128), ("M3", 64))]
    results = []
    for condition in args.conditions.split(","):
        spinner = None
        if condition == "busy":
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for spec in specs:
                load0 = os.getloadavg()[0]
                figures, source = measure(spec, configs, args.rounds, args.steps)
                load1 = os.getloadavg()[0]
                best = min(figures[c][0] for c in configs if c != "auto")
                row = {
                    "model": f"{spec.model} b{spec.batch}",
                    "condition": "one core busy" if condition == "busy" else "idle (script starts nothing)",
                    "data": source,
                    "loadavg_1min": [round(load0, 2), round(load1, 2)],
                    "median_ms": {c: round(1e3 * figures[c][0], 3) for c in configs},
                    "threads_chosen": {c: figures[c][1] for c in configs},
                    "auto_over_best_fixed": round(figures["auto"][0] / best, 3) if "auto" in figures else None,
                }
                results.append(row)
                print(json.dumps(row), flush=True)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print()
    print("| model | condition | load avg | " + " | ".join(f"{c} (ms)" for c in configs) + " | auto / best fixed |")
    print("|---|---|---|" + "---|" * len(configs) + "---|")
    for r in results:
        cells = " | ".join(f"{r['median_ms'][c]:.2f}" for c in configs)
        la = f"{r['loadavg_1min'][0]}-{r['loadavg_1min'][1]}"
        print(f"| {r['model']} | {r['condition']} | {la} | {cells} | {r['auto_over_best_fixed']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
