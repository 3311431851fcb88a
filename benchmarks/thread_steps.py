"""What a second thread gains fastnet: one model, one process, its training steps alternated between thread counts.

    PYTHONPATH=src python benchmarks/thread_steps.py --models M3b64,M1 --counts 1,2

For each workload of ``common.SPECS`` (``M3b64``, ``M4``, ...) the model is built once from seed 0; every round runs
a burst of ``--steps`` steps on fresh batches at each thread count (``fastnet.set_num_threads``, the order rotated
every round) and keeps the burst's median. The table shows the median over rounds per count and the median (and
range) of the per-round ratio of the first count over each other one: above 1, the other count is faster. In one
process the machine's speed phases hit every count alike, which runs one after another do not.
A view for aiming work, not a pytest-benchmark suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fastnet  # noqa: E402,I001  (before NumPy, as in a user's script: fastnet/_thread_env.py)
import numpy as np  # noqa: E402

from common import SPECS, Batches, dataset_for, fastnet_model, spec_names, time_steps  # noqa: E402


def compare(spec, counts, rounds: int, steps: int) -> dict:
    """{count: [burst medians in seconds, one per round]} for training steps of ``spec`` at each thread count."""
    fastnet.seed(0)
    net, onehot = fastnet_model(spec.model)
    ds = dataset_for(spec.model)
    feeder = Batches(ds.x, ds.y_onehot if onehot else ds.y, spec.batch)
    for n in counts:  # warm up at every count: compiles, and the parallel variants' first calls
        fastnet.set_num_threads(n)
        for _ in range(3):
            net.train_on_batch(*feeder.next())
    out = {n: [] for n in counts}
    for r in range(rounds):
        for n in counts[r % len(counts) :] + counts[: r % len(counts)]:
            fastnet.set_num_threads(n)
            out[n].append(float(np.median(time_steps(net, feeder, steps))))
    return out


def row(spec, result) -> str:
    counts = list(result)
    first = result[counts[0]]
    cells = [f"{np.median(result[n]) * 1e3:.2f} ms" for n in counts]
    for n in counts[1:]:
        ratios = [a / b for a, b in zip(first, result[n], strict=True)]
        cells.append(f"{np.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
    return f"| {spec.group} | " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = spec_names(SPECS)
    p.add_argument("--models", default="M3b64,M3b256,M1", help="comma-separated, of " + ", ".join(names))
    p.add_argument("--counts", default="1,2", help="comma-separated thread counts; ratios are against the first")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="steps per burst (their median)")
    args = p.parse_args(argv)
    wanted = [m for m in args.models.split(",") if m]
    unknown = [m for m in wanted if m not in names]
    counts = [int(c) for c in args.counts.split(",") if c]
    if unknown or len(counts) < 2 or min(counts) < 1:
        p.error(f"unknown models {unknown} (known: {list(names)}) or fewer than two positive counts {counts}")
    head = [f"{n} thread(s)" for n in counts] + [f"{counts[0]} / {n} (range)" for n in counts[1:]]
    print("| workload | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(head))
    for m in wanted:
        spec = SPECS[names[m]]
        print(row(spec, compare(spec, counts, args.rounds, args.steps)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
