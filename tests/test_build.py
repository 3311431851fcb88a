"""The compiled extensions: built, loaded, loud when missing; flush-to-zero switch."""

import os
import pathlib
import re
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastnet
from fastnet._kernels import fpenv
from fastnet._kernels._jit import pjit
from fastnet._kernels.fast import _extension

SRC = pathlib.Path(fastnet.__file__).resolve().parent.parent
ROOT = SRC.parent
# a float32 subnormal (2**-127 ~ 5.9e-39) made from its bits: no FP operation that FTZ could flush
SUBNORMAL_BITS = np.uint32(0x00400000)


def subnormals(*shape):
    return np.full(shape, SUBNORMAL_BITS, dtype=np.uint32).view(np.float32)


def run_python(code, **env):
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_every_extension_loads():
    _extension.check()
    for name in _extension.EXTENSIONS:
        assert _extension.load(name).__name__ == f"fastnet._kernels.fast.{name}"


def test_setup_py_builds_every_extension_the_package_loads():
    setup = (ROOT / "setup.py").read_text()
    names = re.search(r"for name in \(([^)]*)\)", setup).group(1)
    assert sorted(re.findall(r'"(\w+)"', names)) == sorted(_extension.EXTENSIONS)
    assert '"-fopenmp"' in setup and '"-O3"' in setup


def test_compiled_modules_are_not_older_than_their_source():
    for name in _extension.EXTENSIONS:
        so = pathlib.Path(_extension.load(name).__file__)
        pyx = so.parent / f"{name}.pyx"
        if pyx.exists():  # source checkout: a stale build would test old code
            assert so.stat().st_mtime >= pyx.stat().st_mtime, (
                f"{so.name} is older than {pyx.name}: run build_ext --inplace"
            )


def test_unknown_extension_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown extension '_nope'"):
        _extension.load("_nope")


HIDE_IM2COL = "import sys; sys.modules['fastnet._kernels.fast._im2col'] = None\n"


def test_import_fails_clearly_when_extension_missing():
    res = run_python(HIDE_IM2COL + "import fastnet")
    assert res.returncode != 0
    msg = res.stderr
    assert "ImportError" in msg
    assert "compiled extension fastnet._kernels.fast._im2col" in msg
    assert "pip install -e ." in msg and "build_ext --inplace" in msg
    assert "FASTNET_BACKEND=numpy" in msg and "set_backend('numpy')" in msg


def test_numpy_backend_works_without_extension_but_fast_never_falls_back():
    code = HIDE_IM2COL + (
        "import fastnet\n"
        "assert fastnet.get_backend() == 'numpy'\n"
        "try:\n"
        "    fastnet.set_backend('fast')\n"
        "except ImportError as e:\n"
        "    print('REFUSED', 'fastnet._kernels.fast._im2col' in str(e))\n"
        "else:\n"
        "    print('SILENT FALLBACK')\n"
    )
    res = run_python(code, FASTNET_BACKEND="numpy")
    assert res.returncode == 0, res.stderr
    assert "REFUSED True" in res.stdout


@pytest.fixture
def restore_flush():
    before = fpenv.flush_denormals_enabled()
    yield
    fpenv.set_flush_denormals(before)


@pytest.mark.skipif(not _extension.load("_fpenv").supported(), reason="no flush-to-zero mode on this CPU")
def test_flush_denormals_in_main_thread(restore_flush):
    x = subnormals(8)
    fastnet.set_flush_denormals(True)
    assert fastnet.flush_denormals_enabled()
    assert np.all(x * np.float32(1.0) == 0)  # DAZ: the input reads as zero
    assert np.all(np.float32(1e-30) * np.float32(1e-10) == 0)  # FTZ: a subnormal result becomes 0
    fastnet.set_flush_denormals(False)
    assert not fastnet.flush_denormals_enabled()
    assert np.all(x * np.float32(1.0) == x) and np.all(x > 0)


@pytest.mark.skipif(not _extension.load("_fpenv").supported(), reason="no flush-to-zero mode on this CPU")
def test_flush_denormals_reaches_openmp_and_blas_threads(restore_flush):
    n = fastnet.get_num_threads()
    fastnet.set_flush_denormals(True)
    assert _extension.load("_fpenv").set_openmp_threads(True, n) == n
    # a GEMM big enough for OpenBLAS to split across its workers: every block of the result
    # is 0 only if every worker reads the subnormal inputs as 0
    a, b = subnormals(256, 256), np.full((256, 256), 1e30, np.float32)
    assert np.all(a @ b == 0)
    fastnet.set_flush_denormals(False)
    assert _extension.load("_fpenv").set_openmp_threads(False, n) == n
    assert np.all(a @ b > 0)


@pjit
def _scaled(x, s):
    out = np.empty_like(x)
    for i in numba.prange(x.size):
        out[i] = x[i] * s
    return out


@pytest.mark.skipif(not _extension.load("_fpenv").supported(), reason="no flush-to-zero mode on this CPU")
def test_flush_denormals_reaches_numba_parallel_threads(restore_flush):
    fastnet.set_flush_denormals(True)
    x = subnormals(1 << 16)
    assert np.all(_scaled(x, np.float32(1e30)) == 0)


def test_flush_denormals_switch_validation_and_env():
    with pytest.raises(ValueError, match="set_flush_denormals: enabled must be True or False, got 1"):
        fastnet.set_flush_denormals(1)
    res = run_python("import fastnet; print(fastnet.flush_denormals_enabled())", FASTNET_FLUSH_DENORMALS="0")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


_ENV_PROBE = """
import os, sys
seen = {}
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and "numpy" not in seen:
            seen["numpy"] = (os.environ.get("OPENBLAS_THREAD_TIMEOUT"), os.environ.get("OMP_WAIT_POLICY"))
        return None
sys.meta_path.insert(0, Spy())
import fastnet
print(*seen["numpy"])
"""


@pytest.mark.parametrize(
    "preset, expected", [({}, "4 PASSIVE"), ({"OPENBLAS_THREAD_TIMEOUT": "9", "OMP_WAIT_POLICY": "ACTIVE"}, "9 ACTIVE")]
)
def test_thread_pool_variables_are_set_before_numpy_loads(preset, expected):
    """OpenBLAS and libgomp read their variables once, when loaded: fastnet sets its defaults
    before it imports NumPy, and keeps any value the user set."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")}
    env.update(preset)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", _ENV_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == expected.split()
