"""Fast (Numba) kernels against their NumPy twins: dense, activations, batch-norm, dropout.

Losses and optimizer updates: ``test_fast_kernels_losses_optim.py``; coverage, warmup and
"import compiles nothing": ``test_fast_kernels_meta.py``.

Equality criterion: float32 within 1e-4 and float64 within 1e-10, relative to the
largest reference magnitude (elementwise relative error is meaningless for entries
that cancel to ~0), and the output dtype is the input dtype.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastnet._jit_testing import assert_matches, both, fast, ref  # noqa: F401  (see conftest-free helper)
