"""Compiled kernels (Numba and Cython). Same names and signatures as ``reference``."""

MODULES = ("dense", "activations", "conv", "pool", "norm", "merge", "dropout", "losses", "optim")
