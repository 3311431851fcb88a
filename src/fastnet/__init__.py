"""fastnet: a readable CPU deep-learning library with compiled hot paths.

Public API only; see README.md.
"""
from ._kernels.registry import get_backend, set_backend, use_backend  # noqa: F401
from .random import seed  # noqa: F401
from .threads import get_num_threads, set_num_threads  # noqa: F401
from . import layers  # noqa: F401

__version__ = "0.1.0"
# Helpers append imports below as their modules land.
