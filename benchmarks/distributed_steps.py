"""Data-parallel training steps timed under ``mpirun`` (launched by ``bench_distributed.py``).

    mpirun -n 2 python benchmarks/distributed_steps.py M1 128 --steps 60 --json out.json

Each rank times ``--steps`` steps (after ``--warmup`` untimed ones) of ``train_on_batch`` on its
slice of a global batch, which is the step ``fit`` takes: forward, loss, the loss agreement, backward,
the gradient Allreduce, the update. A barrier before each step lines the ranks up, so a step's time
is that of the slowest rank. Rank 0 writes: median and 10th/90th percentile step time, samples/s
of the global batch, the time per step inside the gradient Allreduce and in packing/unpacking the
flat buffers, the bytes reduced per step, the latency of the one-integer stop agreement ``fit``
adds per batch, and the gradient Allreduce alone after a barrier (the transport's own cost; the
in-step figure also holds the wait for the slower rank).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from common import dataset_for, fastnet_model

import fastnet as fn


def _isolated_allreduce_seconds(net, repeats: int = 50) -> float:
    """Median time of the gradient Allreduce alone, the ranks lined up by a barrier first: the
    transport's cost, without the wait for a slower rank that the in-step figure includes."""
    from mpi4py import MPI

    buf = np.zeros(sum(p.size for p in net.parameters()), dtype=np.float32)
    comm, times = MPI.COMM_WORLD, []
    for _ in range(repeats):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model", choices=("M1", "M3"))
    p.add_argument("batch", type=int, help="global batch")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    fn.distributed.init()
    d, rank, size = fn.distributed, fn.distributed.rank(), fn.distributed.size()
    fn.seed(0)
    net, _ = fastnet_model(args.model)
    ds = dataset_for(args.model)
    d.broadcast_model(net)
    lo, hi = d.local_range(args.batch)
    times = []
    n_batches = len(ds.x) // args.batch
    for i in range(args.warmup + args.steps):
        s = (i % n_batches) * args.batch
        xb, yb = ds.x[s + lo : s + hi], ds.y[s + lo : s + hi]
        if i == args.warmup:
            start_stats = d.reducer_stats(net)
        d.barrier()
        t0 = time.perf_counter()
        net.train_on_batch(xb, yb)
        d.barrier()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    stats = d.reducer_stats(net)
    steps = max(1, stats["steps"] - start_stats["steps"])
    t_stop = time.perf_counter()
    for _ in range(200):
        d.agree_stop(net)
    stop_latency = (time.perf_counter() - t_stop) / 200
    isolated = _isolated_allreduce_seconds(net) if size > 1 else 0.0
    if rank == 0:
        t = np.asarray(times)
        result = {
            "model": args.model,
            "global_batch": args.batch,
            "ranks": size,
            "threads_per_rank": fn.get_num_threads(),
            "data": ds.source,
            "step_median_ms": 1e3 * float(np.median(t)),
            "step_p10_ms": 1e3 * float(np.percentile(t, 10)),
            "step_p90_ms": 1e3 * float(np.percentile(t, 90)),
            "samples_per_s": args.batch / float(np.median(t)),
            "allreduce_ms_per_step": 1e3 * (stats["reduce_seconds"] - start_stats["reduce_seconds"]) / steps,
            "pack_ms_per_step": 1e3 * (stats["copy_seconds"] - start_stats["copy_seconds"]) / steps,
            "bytes_per_step": (stats["bytes"] - start_stats["bytes"]) // steps,
            "stop_agreement_us": 1e6 * stop_latency if size > 1 else 0.0,
            "allreduce_isolated_ms": 1e3 * isolated,
        }
        text = json.dumps(result, indent=1)
        if args.json:
            with open(args.json, "w") as f:
                f.write(text)
        print(text)


if __name__ == "__main__":
    main()
