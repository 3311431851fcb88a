"""Serial or parallel: the one decision each compiled kernel's Python entry point makes.

A Numba ``prange`` region wakes every worker thread and ends on a barrier. On the 2-core
target that costs a few microseconds when the cores are idle, but when they are shared
(BLAS threads still spinning after a GEMM, another process) the barrier waits for a
descheduled worker: a 400k-element RMSprop update measured 8x slower in parallel than
serially on a loaded machine, while the serial pass (about 0.1 ms, the state in cache)
already beats NumPy. So a kernel runs its parallel variant only when

- the problem is at least ``min_elements`` (the thresholds are in ``config.py``, by kind of
  per-element work: cheap memory-bound passes need far more elements than transcendental
  ones to pay for the wake-up),
- more than one thread is configured (``fastnet.set_num_threads(1)``), and
- the caller is the main thread, outside a task of ``tasks.py`` (the policy of ``_jit.pjit``:
  never a parallel kernel in a background thread, e.g. a data-loading or a user's inference thread). Two threads in
  parallel Numba kernels at once abort the process under Numba's "workqueue" threading layer.

Numba kernels go through :func:`run`; Cython (OpenMP) kernels take their team size from
:func:`omp_threads` (or :func:`team_size`). ``tests/test_kernel_policy.py`` checks on the
source that no parallel variant and no OpenMP thread count is reached any other way.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numba
import numpy as np

from . import config
from .threads import get_num_threads

_main = threading.main_thread()
_task = threading.local()


def _on_main_thread() -> bool:
    """True where a kernel may start a thread team: the main thread, outside a task of ``tasks.run``
    (a task already runs on one thread of fastnet's team; a team inside it would oversubscribe)."""
    return threading.current_thread() is _main and not getattr(_task, "active", False)


@contextmanager
def task_scope():
    """Mark the calling thread as running tasks of ``tasks.run``: its kernels run serially meanwhile."""
    before = getattr(_task, "active", False)
    _task.active = True
    try:
        yield
    finally:
        _task.active = before


def use_parallel(n: int, min_elements: int) -> bool:
    """True when a kernel over ``n`` elements should run its parallel (``prange``) variant:
    ``n >= min_elements``, more than one thread, and called from the main thread."""
    return n >= min_elements and _on_main_thread() and numba.get_num_threads() > 1


def team_size(threads: int) -> int:
    """OpenMP team size for a region the calling thread starts: ``threads`` on the main thread,
    1 (no team: the region runs in the calling thread) anywhere else."""
    return threads if _on_main_thread() else 1


def omp_threads(n: int, min_elements: int | None = None) -> int:
    """Threads for a Cython (OpenMP) pass over ``n`` elements: ``fastnet.get_num_threads()``
    from ``min_elements`` (default ``config.OMP_MIN_ELEMENTS``) up on the main thread, else 1."""
    if n < (config.OMP_MIN_ELEMENTS if min_elements is None else min_elements):
        return 1
    return team_size(get_num_threads())


_prepared: set = set()


def _key(a):
    return (a.dtype.char, a.ndim) if isinstance(a, np.ndarray) else type(a)


def prepare(dispatcher, args) -> None:
    """Compile (or load from Numba's cache) ``dispatcher`` for ``args``'s types without running
    it, once per type signature: what a call of the parallel variant would have compiled."""
    key = (dispatcher, tuple(_key(a) for a in args))
    if key in _prepared or numba.config.DISABLE_JIT:  # with NUMBA_DISABLE_JIT=1 there is nothing to compile
        return
    dispatcher.compile(tuple(numba.typeof(a) for a in args))
    _prepared.add(key)


def run(n: int, min_elements: int, serial, parallel, args, parallel_args=None):
    """Call ``parallel(*parallel_args)`` (default ``args``) if ``use_parallel(n, min_elements)``,
    else ``serial(*args)``; from ``config.PARALLEL_MIN_ELEMENTS`` up the parallel variant is
    compiled in advance (``prepare``) even when the serial one runs."""
    pargs = args if parallel_args is None else parallel_args
    if use_parallel(n, min_elements):
        return parallel(*pargs)
    if n >= config.PARALLEL_MIN_ELEMENTS:
        prepare(parallel, pargs)
    return serial(*args)
