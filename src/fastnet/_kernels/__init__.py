"""Compiled kernels and their NumPy reference twins, behind one dispatch table."""

from .registry import get_backend, kernel, ops, set_backend, use_backend  # noqa: F401
