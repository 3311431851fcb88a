"""Data-parallel steps: 1 rank x 2 threads and 1 x 1 against 2 ranks x 1 thread (``mpirun``), M1 and LeNet-5 (M3).

Each case runs ``distributed_steps.py`` in a fresh job (plain python for 1 rank, ``mpirun -n 2`` for 2) and
puts its figures in ``extra_info``: median / p10 / p90 step time of the global batch, samples/s, time per step
inside the gradient Allreduce and in packing the flat buffers, bytes reduced per step, and the latency of the
per-batch stop agreement. The pytest-benchmark time itself is the whole job (start-up included), one round:
read ``extra_info``. Skipped with a reason without mpi4py/mpirun.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parent / "src")
MPIRUN = next(
    (str(p) for p in (Path(sys.executable).parent / "mpirun", shutil.which("mpirun")) if p and Path(p).is_file()),
    None,
)
pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(
        MPIRUN is None or importlib.util.find_spec("mpi4py") is None, reason="needs mpi4py and mpirun (.[mpi])"
    ),
]


def _job(model, batch, ranks, threads, out):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    env.update(
        PYTHONPATH=SRC + os.pathsep + str(HERE),
        FASTNET_NUM_THREADS=str(threads),
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
    )
    cmd = [sys.executable, str(HERE / "distributed_steps.py"), model, str(batch), "--json", str(out)]
    if ranks > 1:
        # no --oversubscribe: with it Open MPI yields the core while waiting, and on a loaded machine a
        # 250 KB Allreduce then took ~40 ms instead of ~0.08 ms (the ranks fit the 2 cores anyway)
        cmd = [MPIRUN, "-n", str(ranks), *cmd]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(Path(out).read_text())


@pytest.mark.parametrize("model,batch", [("M1", 128), ("M3", 64), ("M3", 256)])
@pytest.mark.parametrize(
    "ranks,threads", [(1, 2), (1, 1), (2, 1)], ids=["1rank-x-2threads", "1rank-x-1thread", "2ranks-x-1thread"]
)
def bench_data_parallel_step(benchmark, tmp_path, model, batch, ranks, threads):
    benchmark.group = f"data-parallel {model} global batch {batch}"
    result = {}
    benchmark.pedantic(
        lambda: result.update(_job(model, batch, ranks, threads, tmp_path / "r.json")), rounds=1, iterations=1
    )
    benchmark.extra_info.update(result)
