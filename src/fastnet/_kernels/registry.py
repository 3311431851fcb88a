"""Kernel dispatch: one table of kernels per backend, chosen at call time.

Layers never import a kernel module directly; they call ``ops.<name>(...)``,
which looks the name up in the active backend's table. The ``numpy`` table is
built from ``fastnet._kernels.reference`` (the ground truth). The ``fast`` table
starts as a copy of it and is overwritten by every name the compiled modules in
``fastnet._kernels.fast`` export, so ``fast_kernel_names()`` tells which kernels
are really compiled; tests assert that list is complete.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading

BACKENDS = ("fast", "numpy")

_lock = threading.Lock()
_tables: dict[str, dict] = {}
_fast_names: set[str] = set()
_state = {"backend": None}  # the process-wide backend (set_backend, FASTNET_BACKEND)
_local = threading.local()  # a thread's use_backend override: other threads keep their backend


def _collect(package_name: str) -> dict:
    """Every name in ``__all__`` of every module listed in the package's ``MODULES``."""
    pkg = importlib.import_module(package_name)
    table = {}
    for mod_name in pkg.MODULES:
        mod = importlib.import_module(f"{package_name}.{mod_name}")
        for name in mod.__all__:
            if name in table:
                raise RuntimeError(f"kernel {name!r} defined twice in {package_name}")
            table[name] = getattr(mod, name)
    return table


def _table(backend: str) -> dict:
    tab = _tables.get(backend)
    if tab is not None:
        return tab
    with _lock:
        if backend in _tables:
            return _tables[backend]
        ref = _collect("fastnet._kernels.reference")
        if backend == "numpy":
            tab = ref
        else:
            fast = _collect("fastnet._kernels.fast")
            unknown = set(fast) - set(ref)
            if unknown:
                raise RuntimeError(f"fast kernels without a NumPy twin: {sorted(unknown)}")
            _fast_names.update(fast)
            tab = dict(ref)
            tab.update(fast)
        _tables[backend] = tab
        return tab


def _check_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


def get_backend() -> str:
    """The active backend of the calling thread: ``"fast"`` (compiled kernels) or ``"numpy"`` (reference)."""
    override = getattr(_local, "backend", None)
    if override is not None:
        return override
    if _state["backend"] is None:
        _state["backend"] = _check_name(os.environ.get("FASTNET_BACKEND", "fast").strip().lower() or "fast")
    return _state["backend"]


def set_backend(name: str) -> None:
    """Select ``"fast"`` or ``"numpy"`` kernels for every layer, loss and optimizer, in every thread
    (inside a ``use_backend`` block it also replaces that block's choice for the calling thread)."""
    _check_name(name)
    _table(name)  # fail here, not at the first layer call, if the backend cannot load
    _state["backend"] = name
    if getattr(_local, "backend", None) is not None:
        _local.backend = name


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager: run the block with backend ``name`` in the calling thread only (thread-local,
    so a block in one thread never changes the kernels another thread runs), then restore."""
    _check_name(name)
    _table(name)
    previous = getattr(_local, "backend", None)
    _local.backend = name
    try:
        yield
    finally:
        _local.backend = previous


def kernel(name: str, backend: str | None = None):
    """The function implementing kernel ``name`` on ``backend`` (default: the active one)."""
    try:
        return _table(backend or get_backend())[name]
    except KeyError:
        raise AttributeError(f"no kernel named {name!r}") from None


def kernel_names() -> list[str]:
    return sorted(_table("numpy"))


def fast_kernel_names() -> list[str]:
    _table("fast")
    return sorted(_fast_names)


class _Ops:
    """``ops.name(...)`` calls kernel ``name`` of the active backend."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return kernel(name)


ops = _Ops()
