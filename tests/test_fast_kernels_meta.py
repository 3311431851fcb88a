"""The fast backend as a whole: every reference kernel has a compiled twin, ``import
fastnet`` compiles nothing, and ``fastnet.warmup`` compiles every kernel's entry points."""

import importlib
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import fastnet
from fastnet._kernels import registry
from fastnet._kernels.warmup import warmup_calls

# Reference kernels allowed to run as NumPy under the "fast" backend, with the reason.
# Empty: every kernel of the contract (docs/KERNELS.md) is compiled. A kernel added to the
# reference without a fast twin must be listed here with a justification, or get a twin.
ALLOWED_WITHOUT_FAST_TWIN: dict[str, str] = {}


def _fast_dispatchers():
    """(module, name, dispatcher) for every Numba function defined in a fast kernel module."""
    pkg = importlib.import_module("fastnet._kernels.fast")
    out = []
    for m in pkg.MODULES:
        mod = importlib.import_module(f"fastnet._kernels.fast.{m}")
        for name, obj in vars(mod).items():
            if isinstance(obj, numba.core.dispatcher.Dispatcher) and obj.py_func.__module__ == mod.__name__:
                out.append((m, name, obj))
    return out


def test_every_reference_kernel_has_a_fast_twin():
    missing = set(registry.kernel_names()) - set(registry.fast_kernel_names())
    assert missing == set(ALLOWED_WITHOUT_FAST_TWIN), f"kernels without a fast twin: {sorted(missing)}"
    assert set(ALLOWED_WITHOUT_FAST_TWIN) <= set(registry.kernel_names()), "stale allowlist entry"


def test_warmup_calls_every_fast_kernel():
    assert {name for name, _ in warmup_calls("float32")} == set(registry.fast_kernel_names())


def test_import_fastnet_compiles_nothing():
    src = os.path.dirname(os.path.dirname(fastnet.__file__))
    code = textwrap.dedent("""
        import importlib, numba, fastnet
        from fastnet._kernels import registry
        registry.fast_kernel_names()  # imports every fast module
        pkg = importlib.import_module("fastnet._kernels.fast")
        n = 0
        for m in pkg.MODULES:
            mod = importlib.import_module("fastnet._kernels.fast." + m)
            for name, obj in vars(mod).items():
                if isinstance(obj, numba.core.dispatcher.Dispatcher):
                    n += 1
                    assert not obj.signatures, f"{m}.{name} was compiled at import: {obj.signatures}"
        print(n)
    """)
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[-1]) > 20  # the check really saw the Numba kernels


_CACHE_PROBE = textwrap.dedent("""
    import sys, numpy as np
    from fastnet._kernels import registry
    from fastnet._kernels.fast import activations as mod
    registry.kernel("relu_forward", "fast")(np.ones(8, np.float32))
    hits = misses = 0
    for obj in vars(mod).values():
        stats = getattr(obj, "stats", None)
        own = getattr(getattr(obj, "py_func", None), "__module__", None) == mod.__name__  # not _vecmath's
        if own and stats is not None and hasattr(stats, "cache_hits"):
            hits += sum(stats.cache_hits.values()); misses += sum(stats.cache_misses.values())
    print(hits, misses)
""")


def _probe_cache(cache_dir):
    src = os.path.dirname(os.path.dirname(fastnet.__file__))
    env = dict(
        os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    res = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    hits, misses = map(int, res.stdout.split()[-2:])
    return hits, misses


def test_numba_cache_is_dropped_when_kernel_sources_change(tmp_path):
    """Numba checks a cached kernel only against its own file; fastnet stamps each module's cache
    with a fingerprint of all kernel sources and recompiles when it no longer matches."""

    def compiled(counts):
        return counts[0] == 0 and counts[1] > 0

    def loaded(counts):
        return counts[0] > 0 and counts[1] == 0

    assert compiled(_probe_cache(tmp_path))  # empty cache
    assert loaded(_probe_cache(tmp_path))
    stamps = list(tmp_path.rglob("fastnet._kernels.fast.activations.fastnet-sources"))
    assert len(stamps) == 1
    stamps[0].write_text("sources of an older fastnet")  # as if a module it inlines had changed
    assert compiled(_probe_cache(tmp_path))  # stale: dropped and compiled again
    assert loaded(_probe_cache(tmp_path))


def test_warmup_compiles_every_entry_point():
    seconds = fastnet.warmup(dtypes=("float64",))
    assert isinstance(seconds, float) and seconds >= 0.0
    # Entry points are the *_serial / *_parallel drivers; the block routines they call
    # are compiled into them (and list no signature of their own).
    drivers = [(m, n, d) for m, n, d in _fast_dispatchers() if n.endswith(("_serial", "_parallel"))]
    assert len(drivers) >= 20
    for m, n, d in drivers:
        f64 = [sig for sig in d.signatures if any(getattr(a, "dtype", None) == numba.float64 for a in sig)]
        floats = [sig for sig in d.signatures if any(getattr(a, "dtype", None) == numba.float32 for a in sig)]
        dtype_free = d.signatures and not floats  # e.g. the dropout mask: integers in, bytes out
        assert f64 or dtype_free, f"{m}.{n} was not compiled for float64 by warmup"


@pytest.mark.parametrize("bad", ["int32", np.float16, "nonsense"])
def test_warmup_rejects_other_dtypes(bad):
    with pytest.raises(ValueError, match="warmup: dtypes must be float32 or float64, got"):
        fastnet.warmup(dtypes=(bad,))
