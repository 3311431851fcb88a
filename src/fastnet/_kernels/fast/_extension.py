"""Load the compiled Cython extensions, or fail loudly.

The fast backend must never quietly fall back to NumPy: if an extension is missing, building
the fast kernel table raises an ImportError that says what is missing, how to build it, and
how to choose the slow path on purpose.
"""

from __future__ import annotations

import importlib

EXTENSIONS = ("_im2col", "_pool", "_fpenv", "_blocked_conv")

_HOW_TO_FIX = (
    "fastnet's fast backend needs the compiled extension {mod}, which is missing or failed to load "
    "({err}). Build it with a C compiler: `pip install -e .` (or `python setup.py build_ext --inplace` "
    "in a source checkout). To run on the slow pure-NumPy kernels on purpose instead, set "
    "FASTNET_BACKEND=numpy or call fastnet.set_backend('numpy')."
)


def load(name: str):
    """Import ``fastnet._kernels.fast.<name>`` or raise the explanatory ImportError."""
    if name not in EXTENSIONS:
        raise ValueError(f"unknown extension {name!r}; expected one of {EXTENSIONS}")
    mod = f"fastnet._kernels.fast.{name}"
    try:
        return importlib.import_module(mod)
    except ImportError as exc:
        raise ImportError(_HOW_TO_FIX.format(mod=mod, err=exc), name=mod) from exc


def check() -> None:
    """Raise the explanatory ImportError unless every compiled extension imports."""
    for name in EXTENSIONS:
        load(name)


def check_backend() -> None:
    """Run by ``import fastnet``: if the active backend is "fast", fail now, with the fix,
    rather than at the first layer call (FASTNET_BACKEND=numpy skips the check)."""
    from ..registry import get_backend

    if get_backend() == "fast":
        check()
