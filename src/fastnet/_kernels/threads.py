"""One switch for every thread pool fastnet uses: Numba, OpenMP (Cython) and BLAS.

Setting them together keeps 2 cores from running 2 x 2 x 2 threads.
The default is the number of CPUs this process may run on (its affinity mask),
or ``FASTNET_NUM_THREADS`` if set.

The state lives here, in the kernel layer that reads it (``parallel``, ``fpenv``);
``fastnet.threads`` re-exports the public functions.
"""

from __future__ import annotations

import os

_state = {"n": None, "limiter": None}


def default_num_threads() -> int:
    env = os.environ.get("FASTNET_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"FASTNET_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"FASTNET_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in Numba kernels, Cython/OpenMP kernels and BLAS."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    import numba
    from threadpoolctl import threadpool_limits

    n_numba = min(n, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n_numba)
    # BLAS and any OpenMP runtime already loaded (the Cython extension's libgomp).
    _state["limiter"] = threadpool_limits(limits=n)
    _state["n"] = n


def get_num_threads() -> int:
    """The thread count fastnet's kernels use (set on first use)."""
    if _state["n"] is None:
        set_num_threads(default_num_threads())
    return _state["n"]


def configured_num_threads() -> int | None:
    """The count set so far, or None before the first ``set_num_threads``/``get_num_threads``
    (for callers that must not initialise the pools, e.g. at import)."""
    return _state["n"]
