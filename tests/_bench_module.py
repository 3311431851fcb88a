"""Import a script of ``benchmarks/`` for a test (they are not a package): its directory goes on ``sys.path``
for the test's duration and off again (the scripts add it themselves too)."""

from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager
from pathlib import Path

BENCH = str(Path(__file__).resolve().parents[1] / "benchmarks")


@contextmanager
def bench_module(name: str):
    """The module ``benchmarks/<name>.py``, importable inside the ``with`` block."""
    sys.path.insert(0, BENCH)
    try:
        yield importlib.import_module(name)
    finally:
        while BENCH in sys.path:
            sys.path.remove(BENCH)
