"""Layers used from several Python threads at once must not break the process.

Numba's "workqueue" threading layer (what Numba falls back to where neither OpenMP nor TBB is
available) aborts the whole process (SIGABRT, "Concurrent access has been detected") when two
threads enter parallel kernels at the same time. fastnet's rule is that only the main thread
runs parallel kernels (``fastnet._kernels.parallel``), so two user threads plus the main thread
running BatchNorm, Dropout, Conv2D and pooling at sizes above every parallel threshold must
work. The run is a subprocess: the threading layer is chosen when Numba starts one, and an
abort must fail this test, not kill pytest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

WORKLOAD = textwrap.dedent(
    """
    import threading

    import numpy as np

    import fastnet as fn
    from fastnet import layers as L

    assert fn.get_backend() == "fast"
    fn.set_num_threads(2)  # parallel variants reachable even on a 1-core machine


    def work(seed, barrier, errors, rounds=8):
        try:
            rng = np.random.default_rng(seed)
            x = rng.standard_normal((16, 8, 32, 32)).astype(np.float32)  # 131072 elements
            bn, drop = L.BatchNorm2d(8), L.Dropout(0.3)
            conv = L.Conv2D(8, 8, 3, padding=1)
            mx, avg = L.MaxPool2D(2), L.AvgPool2D(2)
            barrier.wait()
            for _ in range(rounds):
                y = bn.forward(x, training=True)
                bn.backward(np.ones_like(y))
                bn.forward(x, training=False)
                y = drop.forward(x, training=True)
                drop.backward(y)
                y = conv.forward(x)
                conv.backward(np.ones_like(y))
                y = mx.forward(x)
                mx.backward(np.ones_like(y))
                y = avg.forward(x)
                avg.backward(np.ones_like(y))
        except BaseException as e:  # reported by the main thread
            errors.append(repr(e))


    barrier, errors = threading.Barrier(3), []
    threads = [threading.Thread(target=work, args=(s, barrier, errors)) for s in (1, 2)]
    for t in threads:
        t.start()
    work(0, barrier, errors)  # the main thread runs the same layers (its kernels may go parallel)
    for t in threads:
        t.join()
    assert not errors, errors
    import numba

    print("threading layer:", numba.threading_layer())
    """
)


def test_layers_from_two_threads_under_workqueue():
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2", FASTNET_BACKEND="fast")
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FASTNET_NUM_THREADS", None)
    proc = subprocess.run(
        [sys.executable, "-c", WORKLOAD], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    aborted = proc.returncode == -signal.SIGABRT
    assert proc.returncode == 0, (
        f"{'SIGABRT' if aborted else f'exit {proc.returncode}'}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    )
    assert "threading layer: workqueue" in proc.stdout
