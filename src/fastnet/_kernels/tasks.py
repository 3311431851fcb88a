"""Independent tasks on a team of threads with dynamic scheduling: fastnet's own thread pool.

BLAS runs single-threaded (see ``threads.py``); fastnet parallelises above it by cutting work
into independent tasks (sample chunks in ``fast/conv.py``, GEMM row blocks in ``fast/gemm.py``).
The calling thread and ``team - 1`` pool threads take tasks as they finish them, so a thread the
OS deschedules holds back at most one task (lock-step BLAS threads waited for it, up to 9x
longer on a shared machine). Where the way work is cut changes the rounding (conv's per-chunk
weight-gradient parts), the tasks depend only on the shapes and their parts are combined in a
fixed order, so one thread computes the same tasks one after the other, bit for bit.

The work inside a task must release the GIL to run in parallel: BLAS calls through NumPy do,
and so do the Cython kernels' serial loops (``nogil``). Inside a task every kernel is serial
(``parallel.task_scope``), and a ``run`` inside a task runs its tasks inline: teams never nest.

The team size is ``parallel.team_size(get_num_threads())``: 1 off the main thread, so a user's
thread never starts a team.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from . import parallel, threads

_pool: dict = {"executor": None, "size": 0, "pid": None}
_fp = threading.local()


def _executor(workers: int) -> ThreadPoolExecutor:
    if _pool.get("pid") != os.getpid():  # a forked child has the executor but not its threads
        _pool.update(executor=None, size=0, pid=os.getpid())
    if _pool["size"] < workers:
        if _pool["executor"] is not None:
            _pool["executor"].shutdown(wait=True)
        _pool["executor"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastnet-task")
        _pool["size"] = workers
    return _pool["executor"]


def _match_fp_mode() -> None:
    """A pool thread takes the main thread's flush-to-zero setting (it may change after the thread started)."""
    from . import fpenv

    on = fpenv._state.get("on")
    if getattr(_fp, "on", None) != on and on is not None:
        from .fast._extension import load

        load("_fpenv").set_current_thread(bool(on))
        _fp.on = on


def per_task(n: int, min_tasks: int) -> int:
    """Items per task so that ``n`` items make at least ``min_tasks`` tasks when there are that many: a function of
    ``n`` only, never of the thread count (the tasks' order fixes how their parts are combined)."""
    return max(1, -(-n // min_tasks))


def chunks(n: int, min_tasks: int) -> list[slice]:
    """``range(n)`` cut into consecutive slices of ``per_task(n, min_tasks)`` items (the last may be shorter)."""
    step = per_task(n, min_tasks)
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


def team(n_tasks: int) -> int:
    """Threads that would run ``n_tasks`` tasks from the calling thread (1: run them inline)."""
    return max(1, min(parallel.team_size(threads.get_num_threads()), n_tasks))


def run(task, n_tasks: int) -> None:
    """Call ``task(i)`` for ``i`` in ``range(n_tasks)``, each exactly once, on ``team(n_tasks)``
    threads (the caller among them); returns when all are done, re-raising the first error."""
    workers = team(n_tasks)
    if workers == 1:
        for i in range(n_tasks):
            task(i)
        return
    lock = threading.Lock()
    queue = iter(range(n_tasks))
    failed: list = []

    def work(pool_thread: bool):
        if pool_thread:
            _match_fp_mode()
        with parallel.task_scope():
            _work()

    def _work():
        while not failed:
            with lock:
                i = next(queue, None)
            if i is None:
                return
            try:
                task(i)
            except BaseException as exc:  # stop handing out tasks, report it from the caller
                failed.append(exc)
                raise

    futures = [_executor(workers - 1).submit(work, True) for _ in range(workers - 1)]
    try:
        work(False)
    finally:
        for f in futures:
            f.exception()  # wait for each; the error itself is in ``failed``
    if failed:
        raise failed[0]
