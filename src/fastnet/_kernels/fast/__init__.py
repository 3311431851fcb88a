"""Compiled kernels (Numba and Cython). Same names and signatures as ``reference``."""
MODULES = ()
