"""The communicator: ``init``, ``rank``/``size``/``is_main``, and the few collectives fastnet uses.

Everything here is a cheap no-op until ``init()`` found a job of more than one rank, so the
training loop can call these hooks unconditionally. mpi4py is imported only inside ``init``
and only when the launcher started more than one rank.

Collectives use mpi4py's buffer (upper-case) methods on NumPy arrays: no pickling, and the
same calls in the same order on every rank.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from ._launcher import launched_size

__all__ = ["init", "active", "rank", "size", "is_main", "barrier", "allreduce_sum", "any_true", "abort"]

_state = {"comm": None, "MPI": None, "rank": 0, "size": 1, "local_size": 1}


def init(threads: bool = True) -> bool:
    """Join the MPI job this process was launched in; returns whether training is distributed.

    A no-op returning False when the launcher started one rank (or there is no launcher): then
    nothing MPI is imported and fastnet behaves exactly as without this module. With several
    ranks it imports mpi4py (a clear ImportError if it is missing), and with ``threads=True``
    gives each rank its share of the node's cores, (cores) / (ranks on this node), unless
    ``FASTNET_NUM_THREADS`` is set, so ``mpirun -n 2`` on 2 cores does not run 2 x 2 threads.
    It also makes an uncaught exception on one rank abort the whole job instead of leaving the
    other ranks waiting in a reduction forever. Calling it again is harmless.
    """
    if _state["comm"] is not None:
        return True
    n = launched_size()
    if n <= 1:
        return False
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            f"fastnet.distributed.init: this process was launched as one of {n} MPI ranks but mpi4py is "
            f"not installed ({e}); install it with pip install 'fastnet[mpi]', or run without mpirun"
        ) from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() <= 1:
        return False
    _state.update(comm=comm, MPI=MPI, rank=comm.Get_rank(), size=comm.Get_size())
    _state["local_size"] = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
    if threads and not os.environ.get("FASTNET_NUM_THREADS"):
        from ..threads import set_num_threads

        set_num_threads(ranks_threads_share(_state["local_size"]))
    _install_abort_hook()
    return True


def ranks_threads_share(local_size: int) -> int:
    """Threads for one of ``local_size`` ranks on this node: the cores it may run on (a launcher
    that binds ranks to cores already narrowed them), at most the node's cores / ranks."""
    try:
        mine = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        mine = os.cpu_count() or 1
    node = os.cpu_count() or mine
    return max(1, min(mine, node // max(1, local_size)))


def _install_abort_hook() -> None:
    """An exception nobody caught on one rank: print it, then abort every rank (a bounded exit)."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.write(f"fastnet.distributed: rank {_state['rank']} failed; aborting all {_state['size']} ranks\n")
        sys.stderr.flush()
        _state["comm"].Abort(1)

    sys.excepthook = hook


def active() -> bool:
    """True when ``init()`` joined a job of more than one rank."""
    return _state["comm"] is not None


def rank() -> int:
    """This process's rank (0 without MPI)."""
    return _state["rank"]


def size() -> int:
    """The number of ranks (1 without MPI)."""
    return _state["size"]


def is_main() -> bool:
    """Whether this is rank 0, the one that prints and writes files."""
    return _state["rank"] == 0


def communicator():
    """The mpi4py communicator (None when not distributed)."""
    return _state["comm"]


def mpi():
    """The ``mpi4py.MPI`` module (None when not distributed)."""
    return _state["MPI"]


def barrier() -> None:
    if _state["comm"] is not None:
        _state["comm"].Barrier()


def allreduce_sum(values) -> np.ndarray:
    """Element-wise sum over ranks of a small float64 vector (a copy when not distributed)."""
    buf = np.array(values, dtype=np.float64)
    if _state["comm"] is not None:
        _state["comm"].Allreduce(_state["MPI"].IN_PLACE, buf, op=_state["MPI"].SUM)
    return buf


def any_true(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (exact: an integer max)."""
    if _state["comm"] is None:
        return bool(flag)
    buf = np.array([1 if flag else 0], dtype=np.int32)
    _state["comm"].Allreduce(_state["MPI"].IN_PLACE, buf, op=_state["MPI"].MAX)
    return bool(buf[0])


def abort(code: int = 1) -> None:
    """End every rank of the job now (after an error on this rank); returns when not distributed."""
    if _state["comm"] is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        _state["comm"].Abort(int(code))
