"""2-D matrix products whose result never depends on the thread count.

OpenBLAS's own threads split a product differently at each thread count (measured: a
(128, 784) @ (784, 512) product differs in 80% of its elements between 1 and 2 BLAS threads),
and they run in lock-step: with another process keeping a core busy, a 2-thread GEMM waited
for its descheduled half and took up to 9x longer than one thread. So fastnet keeps BLAS
single-threaded (``_kernels/threads.py``) and runs a large product as ``BLOCKS`` fixed row
blocks of the output, one single-threaded ``np.dot`` each (``np.dot`` releases the GIL,
``np.matmul`` does not), as tasks of ``_kernels/tasks.py``: threads take blocks as they finish,
and the blocks depend only on the shapes. Row blocks of one product give the same bits as the
whole product in one call (each row of ``out`` is the same dot products over the same packed
panels; tested at 1, 2 and 3 threads), so 1 thread, or a caller already inside a task, makes that one call.
"""

from __future__ import annotations

import numpy as np

from .. import tasks

MIN_WORK = 1 << 22  # m*n*k below this: one BLAS call (~0.1 ms; splitting would cost more than it saves)
BLOCKS = 4  # fixed for every thread count (so results are too); 4 balances over 1, 2 or 4 threads
_ALIGN = 8  # block heights are multiples of 8 rows (OpenBLAS's register blocking)


def _blocks(m: int) -> list[tuple[int, int]]:
    """Up to ``BLOCKS`` row ranges, each a multiple of ``_ALIGN`` rows but the last, which takes the
    rest (so never a one-row block, which NumPy would send to a GEMV with other rounding)."""
    count = max(1, min(BLOCKS, m // _ALIGN))
    height = (m // count) // _ALIGN * _ALIGN
    edges = [i * height for i in range(count)] + [m]
    return list(zip(edges[:-1], edges[1:], strict=True))


def dot(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` in one single-threaded BLAS call that releases the GIL (``out`` C-contiguous)."""
    if out.flags.c_contiguous and a.dtype == b.dtype == out.dtype:
        return np.dot(a, b, out=out)
    out[...] = np.dot(a, b)  # np.dot's out= takes only a C-contiguous array of the result dtype
    return out


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` for 2-D arrays, in fixed row blocks of ``out`` above ``MIN_WORK``."""
    m, k = a.shape
    n = b.shape[1]
    if m * n * k < MIN_WORK or m < 2 * _ALIGN or not out.flags.c_contiguous or tasks.team(BLOCKS) == 1:
        return dot(a, b, out)  # one thread (or inside a task): one call; blocks would only repack b
    blocks = _blocks(m)

    def block(i):
        i0, i1 = blocks[i]
        np.dot(a[i0:i1], b, out=out[i0:i1])

    tasks.run(block, len(blocks))
    return out
