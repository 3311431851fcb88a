"""The one place that sets Numba policy for every fastnet kernel.

- ``cache=True``: compiled machine code is written next to the module (or, if
  that directory is read-only, to Numba's user cache; set ``NUMBA_CACHE_DIR`` to
  choose) so only the first run of a new install pays compile time.
- ``fastmath`` without ``nnan``/``ninf``: reassociation and contraction (FMA,
  vectorised reductions) are allowed, but NaN and inf stay observable so a
  diverging loss is still caught.
- ``nogil=True``: kernels release the GIL.
- ``parallel`` only in :func:`pjit`, for kernels with enough work per call.

Decorating a function compiles nothing: Numba compiles lazily at the first call
(or eagerly in :func:`fastnet.warmup`). Never build an ``njit`` inside a function.
"""
import numba

FASTMATH = {"contract", "arcp", "reassoc", "nsz", "afn"}  # Numba wants a plain set

_COMMON = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")


def jit(*args, **kwargs):
    """Serial kernel: ``@jit`` or ``@jit(signature)``."""
    return numba.njit(*args, **_COMMON, **kwargs)


def pjit(*args, **kwargs):
    """Parallel kernel (``prange``). Never call one from a background thread."""
    return numba.njit(*args, parallel=True, **_COMMON, **kwargs)


# Below this many elements a kernel runs its serial variant: the thread wake-up
# (a few microseconds) costs more than it saves.
PARALLEL_MIN_ELEMENTS = 1 << 16
