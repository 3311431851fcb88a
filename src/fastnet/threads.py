"""One switch for every thread pool fastnet uses: Numba, OpenMP (Cython) and fastnet's GEMM blocks
(BLAS itself runs single-threaded); by default the count follows the machine's load.

The implementation and its state are in ``fastnet._kernels.threads`` (the kernels read them;
nothing in ``_kernels`` imports from the package above it).
"""

from ._kernels.threads import automatic, default_num_threads, get_num_threads, set_num_threads, tick

__all__ = ["automatic", "default_num_threads", "get_num_threads", "set_num_threads", "tick"]
