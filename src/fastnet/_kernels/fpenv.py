"""Flush denormals to zero in every thread that runs fastnet's kernels.

Why: float32 values below ~1.2e-38 (subnormals) take a slow microcode path on x86. In a long
run, optimizer state that only decays (RMSprop's mean square for a dead ReLU unit) sinks into
subnormals after a few hundred steps and every step becomes 2-3x slower. Flush-to-zero (FTZ:
subnormal results become 0) plus denormals-are-zero (DAZ: subnormal inputs read as 0), MXCSR
bits 0x8040 on x86-64 (FPCR.FZ on AArch64), remove that cliff; the values lost are below
1.2e-38 (2.2e-308 in float64) and irrelevant to training.

The mode is per thread, and Linux threads inherit it from the thread that creates them.
:func:`set_flush_denormals` therefore sets it in

- the calling thread (normally the main thread, which runs fastnet's kernels and creates
  the pools below when they do not exist yet);
- the OpenMP team (the Cython kernels' threads; Numba's "omp" threading layer shares the same
  libgomp team), through a parallel region that sets it in each member;
- OpenBLAS's worker threads, which exist from the moment NumPy is imported: they are shut
  down and restarted from the calling thread so they inherit the mode (only from the main
  thread; skipped with a RuntimeWarning if the OpenBLAS build does not export the calls).

``import fastnet`` applies the default: on, unless the environment variable
``FASTNET_FLUSH_DENORMALS=0``. Switching it on also affects your own NumPy code in those
threads (e.g. ``np.float32(1e-39) * 1`` gives 0), which is the point of the switch.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings

from . import parallel, threads
from .fast._extension import check_backend as _check_backend

_state = {"on": False}


def _env_default() -> bool:
    env = os.environ.get("FASTNET_FLUSH_DENORMALS", "1").strip().lower()
    if env in ("1", "true", "yes", "on", ""):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"FASTNET_FLUSH_DENORMALS must be 0 or 1, got {env!r}")


def _restart_openblas() -> int:
    """Restart OpenBLAS thread pools from this thread so new workers inherit its FP mode."""
    from threadpoolctl import threadpool_info

    restarted = 0
    for info in threadpool_info():
        if info.get("internal_api") != "openblas" or not info.get("filepath"):
            continue
        lib = ctypes.CDLL(info["filepath"])  # already loaded: same handle, no second copy
        try:
            shutdown, init = lib.blas_thread_shutdown_, lib.blas_thread_init
        except AttributeError:
            warnings.warn(f"cannot set flush-to-zero in OpenBLAS threads of {info['filepath']}", RuntimeWarning, 2)
            continue
        shutdown()
        init()
        restarted += 1
    return restarted


def set_flush_denormals(enabled: bool = True) -> None:
    """Turn flush-to-zero + denormals-are-zero on (default) or off in fastnet's threads.

    Raises ImportError (with how to build it) if the compiled extension is missing, and
    RuntimeError on a CPU architecture without such a mode when asked to turn it on.
    """
    if not isinstance(enabled, bool):
        raise ValueError(f"set_flush_denormals: enabled must be True or False, got {enabled!r}")
    from .threads import get_num_threads

    _apply(enabled, get_num_threads())


def _apply(enabled: bool, team: int) -> None:
    from .fast._extension import load

    ext = load("_fpenv")
    if not ext.supported():
        if enabled:
            raise RuntimeError("set_flush_denormals: this CPU architecture has no flush-to-zero mode fastnet can set")
        return
    ext.set_current_thread(enabled)
    # Off the main thread the team is the calling thread alone: there the Cython kernels run
    # serially (parallel.omp_threads), so no other team would ever run them for this thread.
    ext.set_openmp_threads(enabled, parallel.team_size(team))
    if threading.current_thread() is threading.main_thread():
        _restart_openblas()
    _state["on"] = enabled


def flush_denormals_enabled() -> bool:
    """Whether FTZ + DAZ are set in the calling thread right now."""
    try:
        from .fast._extension import load

        return bool(load("_fpenv").current_thread_on())
    except ImportError:
        return False


def _apply_default() -> None:
    """Apply the environment's default. A missing extension is not an error here: the fast
    backend reports it when it loads (and the numpy backend does not need it). Thread
    settings are not initialised here (import stays light and never fails on them): the
    OpenMP team is sized from the default count, and larger teams made later inherit the
    mode from the main thread."""
    try:
        team = threads.configured_num_threads() or threads.default_num_threads()
    except ValueError:  # bad FASTNET_NUM_THREADS: reported by get_num_threads(), not by import
        team = 1
    try:
        if _env_default():
            _apply(True, team)
    except ImportError:
        pass


# ``import fastnet`` imports this module once: it fails there, clearly, if the fast backend's
# compiled extensions are missing, then applies the flush-to-zero default.
_check_backend()
_apply_default()
