"""The one place that sets Numba policy for every fastnet kernel.

- ``cache=True``: compiled machine code is written next to the module (or, if
  that directory is read-only, to Numba's user cache; set ``NUMBA_CACHE_DIR`` to
  choose) so only the first run of a new install pays compile time.
- ``fastmath`` without ``nnan``/``ninf``: reassociation and contraction (FMA,
  vectorised reductions) are allowed, but NaN and inf stay observable so a
  diverging loss is still caught.
- ``nogil=True``: kernels release the GIL.
- ``parallel`` only in :func:`pjit`, for kernels with enough work per call.

Decorating a function compiles nothing: Numba compiles lazily at the first call
(or eagerly in :func:`fastnet.warmup`). Never build an ``njit`` inside a function.

Stale caches: Numba revalidates a cached kernel only against its own source file. A kernel
that inlines a function from another module (the fused dense passes call the activation
blocks) would keep running the old machine code after that module changed, and a change
of the flags here would not be noticed at all. So every decorated kernel is checked against
a fingerprint of all compiled-kernel sources (``fast/*.py``, this file and ``config.py``), kept per module
in the cache directory (``<module>.fastnet-sources``); on a mismatch the module's cached
kernels are dropped and recompiled once.
"""

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numba

FASTMATH = {"contract", "arcp", "reassoc", "nsz", "afn"}  # Numba wants a plain set

_COMMON = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")


def _sources_fingerprint() -> str:
    """sha256 over the compiled kernels' sources: every ``fast/*.py``, this module and
    ``config.py`` (whose constants the kernels compile in)."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in [Path(__file__).resolve(), here / "config.py"] + sorted((here / "fast").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


_stamps = {"fingerprint": None, "flushing": set(), "checked": set()}


def _drop_if_stale(dispatcher) -> None:
    """Flush ``dispatcher``'s on-disk cache if its module's stamp is not the current sources'
    fingerprint (see the module docstring). Never raises: without a writable cache there is
    nothing stale to drop."""
    module = dispatcher.py_func.__module__
    try:
        if _stamps["fingerprint"] is None:
            _stamps["fingerprint"] = _sources_fingerprint()
        if module not in _stamps["checked"]:
            _stamps["checked"].add(module)
            stamp = Path(dispatcher._cache.cache_path) / f"{module}.fastnet-sources"
            if not stamp.is_file() or stamp.read_text() != _stamps["fingerprint"]:
                _stamps["flushing"].add(module)
                fd, tmp = tempfile.mkstemp(dir=stamp.parent, prefix=stamp.name, suffix=".tmp")
                with os.fdopen(fd, "w") as f:
                    f.write(_stamps["fingerprint"])
                os.replace(tmp, stamp)
        if module in _stamps["flushing"]:  # all kernels of a module are decorated during its import
            dispatcher._cache.flush()
    except OSError as e:
        warnings.warn(
            f"fastnet: could not check the Numba cache of {module} for stale kernels: {e}", RuntimeWarning, stacklevel=3
        )


def _njit(args, kwargs, **policy):
    def build(func, signature=()):
        dispatcher = numba.njit(*signature, **policy, **_COMMON, **kwargs)(func)
        if not numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1 (coverage runs): plain Python, no cache
            _drop_if_stale(dispatcher)
        return dispatcher

    if len(args) == 1 and callable(args[0]):  # @jit
        return build(args[0])
    return lambda func: build(func, args)  # @jit(signature)


def jit(*args, **kwargs):
    """Serial kernel: ``@jit`` or ``@jit(signature)``."""
    return _njit(args, kwargs)


def pjit(*args, **kwargs):
    """Parallel kernel (``prange``). Never call one from a background thread."""
    return _njit(args, kwargs, parallel=True)
