"""Serial or parallel: the one decision each compiled kernel's Python entry point makes.

A Numba ``prange`` region wakes every worker thread and ends on a barrier. On the 2-core
target that costs a few microseconds when the cores are idle, but when they are shared
(BLAS threads still spinning after a GEMM, another process) the barrier waits for a
descheduled worker: a 400k-element RMSprop update measured 8x slower in parallel than
serially on a loaded machine, while the serial pass (about 0.1 ms, the state in cache)
already beats NumPy. So a kernel runs its parallel variant only when

- the problem is at least ``min_elements`` (each module sets its own, from what its
  per-element cost is: cheap memory-bound passes need far more elements than
  transcendental ones to pay for the wake-up),
- more than one Numba thread is configured (``fastnet.set_num_threads(1)``), and
- the caller is the main thread (the policy of ``_jit.pjit``: never a parallel kernel in a
  background thread, e.g. a data-loading or a user's inference thread).
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from ._jit import PARALLEL_MIN_ELEMENTS

_main = threading.main_thread()

# Thresholds by kind of per-element work (elements of the call's arrays), measured on the
# 2-core target with the other core busy (serial / parallel / NumPy medians):
# - memory-bound passes (ReLU and LeakyReLU, every backward product, optimizer updates, MSE):
#   RMSprop 401k elements 115 us / 941 us / 452 us, 4M 1.7 ms / 17 ms / 26 ms. One core streams
#   them at cache speed; threads only pay for arrays far out of cache, on idle cores.
MEMORY_BOUND_MIN = 1 << 22
# - passes with exp/tanh/log polynomials (sigmoid, tanh, GELU, softmax, the losses): ~10x more
#   arithmetic per element. tanh 65k 20 / 69 / 25 us, 262k 76 / 102 / 98 us, 1M 295 / 222 / 380 us.
COMPUTE_BOUND_MIN = 1 << 19
# Both are at least PARALLEL_MIN_ELEMENTS, the size fastnet.warmup() calls every kernel at:
# calls from that size up get their parallel variant compiled (not run) by ``prepare``, so
# warmup still leaves both variants ready.


def use_parallel(n: int, min_elements: int) -> bool:
    """True when a kernel over ``n`` elements should run its parallel (``prange``) variant:
    ``n >= min_elements``, more than one thread, and called from the main thread."""
    return n >= min_elements and threading.current_thread() is _main and numba.get_num_threads() > 1


_prepared: set = set()


def _key(a):
    return (a.dtype.char, a.ndim) if isinstance(a, np.ndarray) else type(a)


def prepare(dispatcher, args) -> None:
    """Compile (or load from Numba's cache) ``dispatcher`` for ``args``'s types without running
    it, once per type signature: what a call of the parallel variant would have compiled."""
    key = (dispatcher, tuple(_key(a) for a in args))
    if key in _prepared:
        return
    dispatcher.compile(tuple(numba.typeof(a) for a in args))
    _prepared.add(key)


def run(n: int, min_elements: int, serial, parallel, args, parallel_args=None):
    """Call ``parallel(*parallel_args)`` (default ``args``) if ``use_parallel(n, min_elements)``,
    else ``serial(*args)``; from ``PARALLEL_MIN_ELEMENTS`` up the parallel variant is compiled
    in advance (``prepare``) even when the serial one runs."""
    pargs = args if parallel_args is None else parallel_args
    if use_parallel(n, min_elements):
        return parallel(*pargs)
    if n >= PARALLEL_MIN_ELEMENTS:
        prepare(parallel, pargs)
    return serial(*args)
