"""How many threads fastnet's kernels use: the one place that decides.

Pools: Numba (``prange`` kernels), OpenMP (the Cython kernels' team, sized per call) and fastnet's
own GEMM blocks (``_kernels/fast/gemm.py``). BLAS itself always runs single-threaded: its
threads change a product's rounding with their count and run in lock-step, which on a shared
machine made the default the slow setting (see ``gemm.py``). With BLAS out of the way the result
of every kernel is the same at any thread count, so the count can follow the machine's load:

- ``FASTNET_NUM_THREADS=N`` or ``set_num_threads(N)``: always N.
- otherwise (automatic): the CPUs this process may use (its affinity mask) minus those other
  processes keep busy, at least 1; all of them when the others already want every core
  (``choose``). Decided at first use from a 20 ms sample of the run queue (``/proc/loadavg``),
  then again about once a second during training (``tick``, called by every training step) from
  ``/proc/stat``'s busy time minus this process's own CPU time. On a machine
  without ``/proc`` it is the affinity count.

The state lives here, in the kernel layer that reads it (``parallel``, ``fpenv``, ``fast/gemm``);
``fastnet.threads`` re-exports the public functions.
"""

from __future__ import annotations

import os
import time

_state = {"n": None, "auto": False, "blas": None, "since": None}
CHECK_EVERY = 1.0  # seconds between two decisions in automatic mode
_STALE = 10.0  # an interval longer than this (no training in between) is replaced by a fresh sample


def _env_threads() -> int | None:
    env = os.environ.get("FASTNET_NUM_THREADS")
    if not env:
        return None
    try:
        n = int(env)
    except ValueError:
        raise ValueError(f"FASTNET_NUM_THREADS must be a positive integer, got {env!r}") from None
    if n < 1:
        raise ValueError(f"FASTNET_NUM_THREADS must be a positive integer, got {env!r}")
    return n


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_num_threads() -> int:
    """``FASTNET_NUM_THREADS`` if set, else the affinity count (the most the automatic mode uses)."""
    return _env_threads() or available_cpus()


# ---- load measurement ------------------------------------------------------------------------------
def _proc_stat():
    """(busy, total) jiffies over all CPUs, and the number of CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    v = [int(x) for x in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return sum(v) - v[3] - v[4], sum(v), max(1, cpus)


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _snapshot():
    busy, total, cpus = _proc_stat()
    return time.monotonic(), busy, total, cpus, _own_cpu_seconds()


def others_busy_now(samples: int = 20, gap: float = 0.001) -> float:
    """Threads of other processes running right now (mean of ``samples`` reads of the run queue)."""
    running = 0
    for _ in range(samples):
        with open("/proc/loadavg") as f:
            running += int(f.read().split()[3].split("/")[0]) - 1  # minus the thread reading it
        time.sleep(gap)
    return max(0.0, running / samples)


def others_busy_since(snap) -> float:
    """CPUs other processes kept busy (on average) since ``snap`` (``/proc/stat`` minus our own time)."""
    _, busy0, total0, cpus, own0 = snap
    busy1, total1, _ = _proc_stat()
    d_total = total1 - total0
    if d_total <= 0:
        return 0.0
    hz = os.sysconf("SC_CLK_TCK")
    others = (busy1 - busy0) - (_own_cpu_seconds() - own0) * hz
    return max(0.0, cpus * others / d_total)


def choose(others_busy: float, cpus: int | None = None) -> int:
    """Threads for ``cpus`` CPUs when other processes keep ``others_busy`` of them busy.

    The cores the others leave free (at least 1): with one of two cores busy, one thread runs on
    the free core instead of waiting in lock-step for a descheduled partner. When the others
    already want every core (oversubscribed), the scheduler shares time per thread, so all ``cpus``
    threads get the most of it (measured on the shared 2-core machine, see benchmarks/busy_core.py).
    """
    cpus = available_cpus() if cpus is None else cpus
    free = cpus - others_busy
    if free < 0.5:
        return cpus
    return max(1, min(cpus, int(free + 0.5)))


# ---- the switch ----------------------------------------------------------------------------------
def _apply(n: int) -> None:
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    from threadpoolctl import threadpool_limits

    # every time: a BLAS library loaded since the last call (e.g. a second OpenBLAS) gets the limit too
    _state["blas"] = threadpool_limits(limits=1, user_api="blas")  # see the module docstring
    _state["n"] = n


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads in Numba kernels, OpenMP kernels and fastnet's GEMM blocks;
    ``None`` returns to the automatic count (see the module docstring)."""
    if n is None:
        _state["auto"], _state["n"] = True, None
        get_num_threads()
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int or None (automatic), got {n!r}")
    _state["auto"] = False
    _apply(n)


def _decide_now() -> None:
    try:
        others = others_busy_now()
        _state["since"] = _snapshot()
    except (OSError, ValueError, IndexError):  # no /proc: use every CPU
        others, _state["since"] = 0.0, None
    _apply(choose(others))


def get_num_threads() -> int:
    """The thread count fastnet's kernels use now (decided on first use)."""
    if _state["n"] is None:
        fixed = _env_threads() if not _state["auto"] else None
        if fixed is not None:
            _apply(fixed)
        else:
            _state["auto"] = True
            _decide_now()
    return _state["n"]


def automatic() -> bool:
    """True when the count follows the load (no ``FASTNET_NUM_THREADS``, no ``set_num_threads(n)``)."""
    get_num_threads()
    return _state["auto"]


def tick() -> None:
    """In automatic mode, re-decide the count if ``CHECK_EVERY`` seconds passed (cheap otherwise)."""
    if not _state["auto"]:
        return
    snap = _state["since"]
    if snap is None:
        return
    elapsed = time.monotonic() - snap[0]
    if elapsed < CHECK_EVERY:
        return
    if elapsed > _STALE:
        _decide_now()
        return
    try:
        others = others_busy_since(snap)
        _state["since"] = _snapshot()
    except (OSError, ValueError, IndexError):
        return
    n = choose(others)
    if n != _state["n"]:
        _apply(n)


def configured_num_threads() -> int | None:
    """The count set so far, or None before the first ``set_num_threads``/``get_num_threads``
    (for callers that must not initialise the pools, e.g. at import)."""
    return _state["n"]
