"""What compile's fusion gains: the same model fused and unfused in one process, training steps alternated.

    PYTHONPATH=src python benchmarks/fusion_steps.py --models R20 --threads 2

Each model is built twice from seed 0; one runs the fused plan (``compile``'s default: Conv2D/Dense/BatchNorm/Add
with the ReLU after them as one step, a Conv2D with the 2x2 max-pool after it too), the other ``unfuse()``\\ d.
Steps alternate between the two on the same batch (the order swapped every round), then ``predict`` the same way;
medians and the unfused / fused ratio are printed. ``--batch`` sets every model's batch size; ``--against no-pool``
makes the other model fused but for Conv2D+MaxPool2D (what that one fusion gains).
A view for aiming work, not a pytest-benchmark suite.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fastnet  # noqa: E402,F401,I001  (before NumPy, as in a user's script: fastnet/_thread_env.py)
import numpy as np  # noqa: E402

from common import fastnet_model  # noqa: E402

SHAPES = {"M1": (784,), "M2": (289,)}  # the rest take 1x28x28 images
BATCH = {"M2": 1024}  # the rest 128


def compare(fused, unfused, x, y, rounds: int) -> dict:
    """Median seconds of train_on_batch and predict for the two models, alternated (the order swapped each round)."""
    nets = {"fused": fused, "unfused": unfused}
    for net in nets.values():  # compile and warm up, untimed
        net.train_on_batch(x, y)
        net.predict(x, batch_size=len(x))
    times = {f"{k} {what}": [] for k in nets for what in ("step", "predict")}
    for r in range(rounds):
        for k in ("fused", "unfused") if r % 2 else ("unfused", "fused"):
            t = time.perf_counter()
            nets[k].train_on_batch(x, y)
            times[f"{k} step"].append(time.perf_counter() - t)
            t = time.perf_counter()
            nets[k].predict(x, batch_size=len(x))
            times[f"{k} predict"].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def refuse_pools(model):
    """``model`` with compile's fusions but no Conv2D+MaxPool2D one: each Conv2D refuses its pool (an instance
    attribute shadowing ``Conv2D.accepts_pool``), and the fused plan is rebuilt. Models nested in ``model`` keep
    their own plans (the benchmark's models have none). Returns the model."""
    for layer in model.named_layers().values():
        if hasattr(layer, "accepts_pool"):
            layer.accepts_pool = lambda pool: False
    model._fused_plan = None  # the cached rewrite, if compile or a step built it already
    return model


def main(argv=None) -> int:
    import fastnet as fn

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="R20,M4,M3", help="comma-separated, of M1, M2, M3, M4, R20")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--batch", type=int, default=None, help="batch size of every model (default: 1024 for M2, else 128)")
    p.add_argument(
        "--against",
        choices=("unfused", "no-pool"),
        default="unfused",
        help="the other model: unfuse()d, or compile's fusions without Conv2D+MaxPool2D (what that one fusion gains)",
    )
    args = p.parse_args(argv)
    if args.threads:
        fn.set_num_threads(args.threads)
    print("| model | fused step | unfused step | speed-up | fused predict | unfused predict | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for model in [m for m in args.models.split(",") if m]:
        pair = []
        for _ in range(2):
            fn.seed(0)
            pair.append(fastnet_model(model))
        (fused, onehot), (unfused, _) = pair
        if args.against == "unfused":
            unfused.unfuse()
        else:
            refuse_pools(unfused)
        rng = np.random.default_rng(0)
        n = args.batch or BATCH.get(model, 128)
        x = rng.standard_normal((n, *SHAPES.get(model, (1, 28, 28)))).astype(np.float32)
        y = np.eye(26, dtype=np.float32)[rng.integers(0, 26, n)] if onehot else rng.integers(0, 10, n)
        t = compare(fused, unfused, x, y, args.rounds)
        cells = []
        for what in ("step", "predict"):
            a, b = t[f"fused {what}"], t[f"unfused {what}"]
            cells += [f"{a * 1e3:.2f} ms", f"{b * 1e3:.2f} ms", f"{b / a:.2f}x"]
        print(f"| {model} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
