"""2-D matrix products whose result never depends on the thread count.

OpenBLAS's own threads split a product differently at each thread count (measured: a
(128, 784) @ (784, 512) product differs in 80% of its elements between 1 and 2 BLAS threads),
and they run in lock-step: with another process keeping a core busy, a 2-thread GEMM waited
for its descheduled half and took up to 9x longer than one thread. So fastnet keeps BLAS
single-threaded (``_kernels/threads.py``) and runs a large product as ``BLOCKS`` fixed column blocks,
one single-threaded BLAS call each; ``get_num_threads()`` threads take blocks as they finish
(dynamic scheduling), so a descheduled thread holds back at most one block. The blocks depend
only on the shapes: 1 thread computes them one after the other, bit for bit the same.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import parallel, threads

MIN_WORK = 1 << 22  # m*n*k below this: one BLAS call (~0.1 ms; splitting would cost more than it saves)
BLOCKS = 4  # fixed for every thread count (so results are too); 4 balances over 1, 2 or 4 threads
_ALIGN = 16  # block widths are multiples of 16 columns (whole SIMD vectors)

_pool: dict = {"executor": None, "size": 0}
_fp = threading.local()


def _blocks(n: int) -> list[tuple[int, int]]:
    width = -(-n // BLOCKS)
    width = -(-width // _ALIGN) * _ALIGN
    return [(j, min(n, j + width)) for j in range(0, n, width)]


def _executor(workers: int) -> ThreadPoolExecutor:
    if _pool.get("pid") != os.getpid():  # a forked child has the executor but not its threads
        _pool.update(executor=None, size=0, pid=os.getpid())
    if _pool["size"] < workers:
        if _pool["executor"] is not None:
            _pool["executor"].shutdown(wait=True)
        _pool["executor"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastnet-gemm")
        _pool["size"] = workers
    return _pool["executor"]


def _match_fp_mode() -> None:
    """A pool thread takes the main thread's flush-to-zero setting (it may change after the thread started)."""
    from .. import fpenv

    on = fpenv._state.get("on")
    if getattr(_fp, "on", None) != on and on is not None:
        from ._extension import load

        load("_fpenv").set_current_thread(bool(on))
        _fp.on = on


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` for 2-D arrays, in fixed column blocks above ``MIN_WORK``."""
    m, k = a.shape
    n = b.shape[1]
    if m * n * k < MIN_WORK or n < 2 * _ALIGN:
        return np.matmul(a, b, out=out)
    blocks = _blocks(n)
    workers = min(parallel.team_size(threads.get_num_threads()), len(blocks))  # 1 off the main thread
    if workers == 1:
        for j0, j1 in blocks:
            np.matmul(a, b[:, j0:j1], out=out[:, j0:j1])
        return out
    lock = threading.Lock()
    queue = iter(blocks)

    def work(pool_thread: bool):
        if pool_thread:
            _match_fp_mode()
        while True:
            with lock:
                block = next(queue, None)
            if block is None:
                return
            j0, j1 = block
            np.matmul(a, b[:, j0:j1], out=out[:, j0:j1])  # releases the GIL

    futures = [_executor(workers - 1).submit(work, True) for _ in range(workers - 1)]
    try:
        work(False)
    finally:
        for f in futures:
            f.result()
    return out
