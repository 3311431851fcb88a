"""Compiled kernels (Numba and Cython). Same names and signatures as ``reference``."""

MODULES = ("dense", "activations", "conv", "conv_pool", "pool", "norm", "merge", "dropout", "losses", "optim")
