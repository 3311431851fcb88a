"""One switch for every thread pool fastnet uses: Numba, OpenMP (Cython) and BLAS.

The implementation and its state are in ``fastnet._kernels.threads`` (the kernels read them;
nothing in ``_kernels`` imports from the package above it).
"""

from ._kernels.threads import default_num_threads, get_num_threads, set_num_threads

__all__ = ["default_num_threads", "get_num_threads", "set_num_threads"]
