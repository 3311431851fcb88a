"""What the benchmarks ran on: CPU, cores, threads, library versions and the BLAS threadpoolctl sees.

Stored in pytest-benchmark's JSON (``machine_info["fastnet"]``, via the conftest hook) so a saved run can be
reported later with the machine it was measured on.
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")
VECTOR_FLAGS += ("avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def vector_flags() -> str:
    """The SIMD extensions /proc/cpuinfo lists (what lscpu's "Flags" says about vector width), in a fixed order."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(v for v in VECTOR_FLAGS if v in have) or "none of " + " ".join(VECTOR_FLAGS)
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str | None:
    # Read the installed metadata: importing torch here would start its thread pool in a fastnet-only run.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine_info() -> dict:
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    import fastnet

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture') or i.get('threading_layer', '')}, "
        f"{i.get('num_threads')} threads)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return {
        "cpu": cpu_model(),
        "vector_flags": vector_flags(),
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": affinity,
        "fastnet_threads": fastnet.get_num_threads(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "torch": _version("torch"),
        "peers": {d: _version(d) for d in ("jax", "jaxlib", "optax", "onnxruntime")},
        "fastnet": getattr(fastnet, "__version__", None),
        "blas": "; ".join(blas) or "unknown",
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "(unset)"),
        "FASTNET_NUM_THREADS": os.environ.get("FASTNET_NUM_THREADS", "(unset)"),
        "flush_denormals": (fastnet.flush_denormals_enabled() if hasattr(fastnet, "flush_denormals_enabled") else None),
    }
