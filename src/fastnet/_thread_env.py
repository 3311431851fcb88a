"""Environment defaults for the thread pools under fastnet, set before any of them loads.

``fastnet/__init__.py`` imports this first, before NumPy, because each pool reads its
variable once, when its library is loaded. A value the user set is always kept.

- ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads (the Cython kernels' team) sleep instead
  of spinning. With OpenBLAS's own pool on the same cores, spinning workers were measured to
  slow the GEMM between two OpenMP regions by 5-10x on 2 cores.
- ``OPENBLAS_THREAD_TIMEOUT=4``: OpenBLAS workers spin for 2**4 cycles, not the default 2**28
  (about 0.1 s), after a GEMM before they sleep; otherwise they hold the cores the OpenMP and
  Numba passes between two GEMMs need. Measured on the 2-core machine (step medians):
  LeNet-5 batch 64 5.0-5.5 -> 4.3 ms, batch 256 19-30 -> 14.3-14.7 ms; the MLPs unchanged
  within noise.

If NumPy was imported before fastnet, OpenBLAS has already read its setting: export the
variable yourself (``OPENBLAS_THREAD_TIMEOUT=4``) or import fastnet first.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
