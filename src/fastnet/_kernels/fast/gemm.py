"""2-D matrix products whose result never depends on the thread count.

OpenBLAS's own threads split a product differently at each thread count (measured: a
(128, 784) @ (784, 512) product differs in 80% of its elements between 1 and 2 BLAS threads),
and they run in lock-step: with another process keeping a core busy, a 2-thread GEMM waited
for its descheduled half and took up to 9x longer than one thread. So fastnet keeps BLAS
single-threaded (``_kernels/threads.py``) and runs a large product as blocks of the output, one
single-threaded BLAS call each, as tasks of ``_kernels/tasks.py``.

The blocks are a function of the shape only, never of the thread count: above ``MIN_WORK``
a product is always cut into ``config.GEMM_BLOCKS`` blocks, run one per thread or one after another on one
thread. An earlier version cut one block per thread and relied on OpenBLAS computing each element
the same way whichever rows or columns surround it; that held on the Intel machine, but on an AMD
EPYC (Zen 5) with OpenBLAS's Haswell kernels (``OPENBLAS_CORETYPE=Haswell``) 3-36% of the elements of
a row or column block differed from one call's (2026-12-02, ``tests/test_threads.py``). Splitting
costs efficiency because every block packs the whole of one operand again: row blocks repack ``b``
(k x n), column blocks repack ``a`` (m x k). So the longer side of the output is cut, and the smaller
operand is the one packed twice. Interleaved at 2 threads (2026-12-01, a slow phase of the Intel
machine): (128, 784) @ (784, 512) took 1.41 ms in one call, 1.13 as row blocks and 1.02 as column
blocks; (128, 128) @ (128, 9216) 4.76, 3.26 and 2.53 ms. On one thread the two calls run one after
the other: ``benchmarks/step_profile.py`` prints fastnet's blocks against one BLAS call at each thread
count (a 1024^3 product; AMD, 2026-12-02, 1 thread: 106.1 against 107.7 GFLOP/s).
"""

from __future__ import annotations

import numpy as np

from .. import config, tasks, threads

# m*n*k below this: one BLAS call. Handing blocks to the pool costs ~0.14 ms (measured with a
# 1024x20 @ 20x26 product: 32 us in one call, 174 us split), so splitting pays only above ~10M:
# interleaved at 2 threads (2026-12-01), M2's 1024x289 @ 289x20 (5.9M) 223 us in one call, 314 split;
# 128x784 @ 784x128 (12.8M) 359 / 363; 256x400 @ 400x120 (12.3M) 335 / 275; M1's (51M) 1397 / 858.
MIN_WORK = 1 << 23
_ALIGN = 16  # block heights are multiples of 16 rows (OpenBLAS's register blocking; never a 1-row GEMV)


def _blocks(m: int, count: int) -> list[tuple[int, int]]:
    """``count`` row ranges (fewer if ``m`` is short), multiples of ``_ALIGN`` rows but the last."""
    count = max(1, min(count, m // _ALIGN))
    height = (m // count) // _ALIGN * _ALIGN
    edges = [i * height for i in range(count)] + [m]
    return list(zip(edges[:-1], edges[1:], strict=True))


def dot(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` in one single-threaded BLAS call (``np.dot`` writes into ``out`` directly
    when it is C-contiguous and of the result dtype; otherwise through a temporary)."""
    # The first use decides the thread count and limits BLAS to one thread. Without this, a process whose first
    # products were all small (one call, no task) ran them on OpenBLAS's own threads until some other kernel
    # decided it, so a resumed run's steps differed in the last bits from the uninterrupted run's (2026-12-02).
    threads.get_num_threads()
    if out.flags.c_contiguous and a.dtype == b.dtype == out.dtype:
        return np.dot(a, b, out=out)
    out[...] = np.dot(a, b)
    return out


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` for 2-D arrays; above ``MIN_WORK``, ``config.GEMM_BLOCKS`` blocks of rows (or of columns,
    when the output is wider than tall), run as tasks: the same calls, so the same bits, at any thread count."""
    m, k = a.shape
    n = b.shape[1]
    by_columns = n > m
    big = m * n * k >= MIN_WORK and out.flags.c_contiguous
    blocks = _blocks(n if by_columns else m, config.GEMM_BLOCKS) if big else []
    if len(blocks) < 2:  # a small product (or a strided out): one call
        return dot(a, b, out)

    def block(i):
        i0, i1 = blocks[i]
        # matmul, not dot: dot copies a strided operand first (a column view, or the row block of a transposed
        # a, as in a weight gradient x.T @ dz), matmul hands its strides to BLAS. M4's Dense dW, (9216, 128) =
        # x.T @ dz with 2 row blocks: 8.2 ms with dot, 4.2 with matmul at 1 thread (Zen 4, 2026-12-02).
        if by_columns:
            np.matmul(a, b[:, i0:i1], out=out[:, i0:i1])
        else:
            np.matmul(a[i0:i1], b, out=out[i0:i1])

    tasks.run(block, len(blocks))
    return out
