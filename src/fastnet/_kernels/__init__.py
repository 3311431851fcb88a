"""Compiled kernels and their NumPy reference twins, behind one dispatch table."""
from .registry import ops, kernel, get_backend, set_backend, use_backend  # noqa: F401
