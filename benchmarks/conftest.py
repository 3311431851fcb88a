"""Benchmark configuration: options, thread count, and helpers shared by the bench_*.py suites.

Run from the repository root:  ``python -m pytest benchmarks/ --benchmark-only``
(``benchmarks/pytest.ini`` makes pytest collect ``bench_*.py``; the normal test run never sees them).

Every benchmark runs in pytest-benchmark's pedantic mode: ``--fn-warmup`` untimed rounds first (so Numba's
compile time, paid at the first call, is never in a timing; ``bench_startup.py`` measures it separately), then
``--fn-rounds`` timed rounds of one call each. Medians are what ``report.py`` prints.

Environment: ``OPENBLAS_CORETYPE`` (set on some machines to pick OpenBLAS's kernels) is left as it is and
recorded in the machine info; ``FASTNET_NUM_THREADS`` or ``--fn-threads`` picks the thread count.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
# The package may not be installed: run against the checkout next to this directory.
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# fastnet before NumPy, so the thread-pool defaults of fastnet/_thread_env.py take effect in the
# benchmark processes as they do for users (NumPy's reference runs in the same process and gets them too).
import fastnet  # noqa: E402,F401


def pytest_addoption(parser):
    g = parser.getgroup("fastnet benchmarks")
    g.addoption("--fn-rounds", type=int, default=15, help="timed rounds per benchmark (default 15)")
    g.addoption("--fn-warmup", type=int, default=3, help="untimed warm-up rounds (default 3; JIT compiles here)")
    g.addoption(
        "--fn-budget",
        type=float,
        default=20.0,
        help="seconds of timed rounds per benchmark before the round count is cut (min 5 rounds; default 20)",
    )
    g.addoption(
        "--fn-threads",
        type=int,
        default=None,
        help="threads for fastnet and PyTorch (default: fastnet's default, the CPU affinity mask)",
    )
    g.addoption("--fn-denormal-steps", type=int, default=1500, help="training steps of the denormals run")
    g.addoption("--fn-startup-rounds", type=int, default=2, help="fresh-interpreter runs per startup benchmark")
    g.addoption("--fn-target-rounds", type=int, default=5, help="interleaved rounds per target (bench_targets.py)")
    g.addoption(
        "--fn-jax-convs",
        choices=["ynnpack", "xla"],
        default="ynnpack",
        help="JAX peers' CPU convolutions: ynnpack (JAX 0.10's default) or xla (XLA_FLAGS="
        "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution); one per process, XLA reads its flags once",
    )


@pytest.fixture(scope="session")
def threads(request):
    """Set fastnet's (and so Numba's, OpenMP's and BLAS's) thread count once; PyTorch uses the same number."""

    n = request.config.getoption("--fn-threads")
    if n:
        fastnet.set_num_threads(n)
    return fastnet.get_num_threads()


@pytest.fixture(scope="session")
def rounds(request):
    return (
        max(1, request.config.getoption("--fn-rounds")),
        max(1, request.config.getoption("--fn-warmup")),
        float(request.config.getoption("--fn-budget")),
    )


@pytest.fixture(scope="session")
def torch_mod(threads):
    """PyTorch with the same thread count as fastnet, or a skip saying how to get it."""
    try:
        import torch
    except ImportError:
        pytest.skip(
            "PyTorch comparison skipped: torch is not installed (pip install torch==2.13.0, CPU build; "
            "a benchmark extra, never a fastnet dependency)"
        )
    torch.set_num_threads(threads)
    # fastnet (imported for its thread count) may have set flush-to-zero in this thread; give PyTorch its own default.
    torch.set_flush_denormal(False)
    return torch


@pytest.fixture(scope="session")
def jax_mod(request, threads):
    """JAX configured for this run (XLA_FLAGS, threads via the CPU affinity; see peers_jax.configure), or a skip."""
    import importlib.util

    missing = [m for m in ("jax", "optax") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(
            f"JAX peer skipped: {', '.join(missing)} not installed (pip install -e '.[jax]'; a benchmark extra only)"
        )
    import peers_jax

    convs = request.config.getoption("--fn-jax-convs")
    setting = peers_jax.configure(threads, convs)
    import jax

    return jax, convs, setting


@pytest.fixture(scope="session")
def ort_mod(threads):
    """ONNX Runtime and onnx (fastnet's exporter needs it), or a skip saying how to get them."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        pytest.skip("ONNX Runtime peer skipped: onnx/onnxruntime not installed (pip install -e '.[onnxruntime]')")
    return onnxruntime


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record fastnet's view of the machine (CPU, threads, versions, BLAS) in the saved JSON."""
    from machine import machine_info as fastnet_machine_info

    n = config.getoption("--fn-threads")
    if n:
        import fastnet

        fastnet.set_num_threads(n)
    machine_info["fastnet"] = fastnet_machine_info()
