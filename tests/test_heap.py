"""``import fastnet`` keeps glibc's freed heap mapped between steps (``fastnet/_heap.py``): set in a fresh process,
left alone when the user tuned malloc or opted out, and the page faults it exists to save are gone."""

import json
import os
import subprocess
import sys

import pytest

from fastnet import _heap

pytestmark = pytest.mark.skipif(_heap._glibc() is None, reason="glibc only")

# Six 16 MiB arrays allocated, filled and freed, three times after a first round: the minor page faults per round.
PROBE = """
import json, resource
import fastnet
import numpy as np
def one_round():
    arrays = [np.ones(4 << 20, np.float32) for _ in range(6)]
    del arrays
one_round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    one_round()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
print(json.dumps({"applied": fastnet._heap.applied(), "faults": faults}))
"""


def _probe(**env):
    clean = {k: v for k, v in os.environ.items() if k not in _heap.USER_VARIABLES and k != "FASTNET_KEEP_HEAP"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_keeps_the_heap_and_steps_stop_faulting_pages_in():
    kept, default = _probe(), _probe(FASTNET_KEEP_HEAP="0")
    assert kept["applied"] and not default["applied"]
    assert kept["faults"] < 100  # 96 MiB a round is 24,576 pages
    assert default["faults"] > 10 * max(kept["faults"], 100), (kept, default)  # glibc's default gives them back


@pytest.mark.parametrize("variable", _heap.USER_VARIABLES)
def test_a_user_tuned_malloc_is_left_alone(variable):
    assert not _probe(**{variable: str(64 << 20)})["applied"]


def test_keep_heap_declines_when_opted_out(monkeypatch):
    monkeypatch.setenv("FASTNET_KEEP_HEAP", "0")
    assert _heap.keep_heap() is False
