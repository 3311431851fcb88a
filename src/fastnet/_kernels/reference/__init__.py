"""Plain NumPy kernels: the ground truth for tests and the baseline for benchmarks.

Each module exports its kernels in ``__all__``; the fast backend must export the
same names with the same signatures and return conventions.
"""

MODULES = (
    "dense",
    "activations",
    "conv",
    "conv_pool",
    "pool",
    "dropout",
    "norm",
    "merge",
    "losses",
    "optim",
)  # helpers: add your module name here when it exists
