"""Cold and warm time from ``import fastnet`` to the first finished training step, in a fresh interpreter.

cold: an empty ``NUMBA_CACHE_DIR``, so every kernel the step uses is compiled by Numba;
warm: the same directory after a previous run, so the compiled code is loaded from Numba's cache.
The Cython extension is built once by ``setup.py`` (install time) and is not part of either number.
The benchmark's own time includes starting Python; ``extra_info`` has the in-process split
(import, build, first step, second step, total = import through the first step).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.startup

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "first_step.py"


def _env(cache_dir: str) -> dict:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = cache_dir
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _run(model: str, cache_dir: str, threads: int) -> dict:
    env = _env(cache_dir)
    env["FASTNET_NUM_THREADS"] = str(threads)
    proc = subprocess.run([sys.executable, str(SCRIPT), model], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"first_step.py {model} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("cache", ["cold", "warm"])
@pytest.mark.parametrize("model", ["M1", "M3", "M4"])
def test_time_to_first_step(benchmark, model, cache, threads, tmp_path_factory, request):
    benchmark.group = f"startup {model} import->first step"
    cache_root = tmp_path_factory.mktemp(f"numba-{model}-{cache}")
    results = []
    if cache == "warm":
        _run(model, str(cache_root / "shared"), threads)  # fill the cache once, untimed

    def setup():
        # cold: a new empty cache directory for every round; warm: the filled one.
        d = tempfile.mkdtemp(dir=cache_root) if cache == "cold" else str(cache_root / "shared")
        return (d,), {}

    def one(d):
        results.append(_run(model, d, threads))

    n = max(1, request.config.getoption("--fn-startup-rounds"))
    benchmark.pedantic(one, setup=setup, rounds=n, warmup_rounds=0, iterations=1)
    benchmark.extra_info.update(variant=cache, model=model, threads=threads)
    for key in results[0]:
        vals = sorted(r[key] for r in results)
        benchmark.extra_info[f"{key}_s"] = round(vals[len(vals) // 2], 4)
