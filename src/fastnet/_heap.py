"""Keep the C heap mapped between training steps (glibc's ``mallopt``), set once at import.

A training step allocates its activations and gradients and frees nearly all of them at the
end. glibc gives the free top of its heap back to the OS once it exceeds a trim threshold, and
serves blocks above an mmap threshold with fresh mappings; by default both follow the largest
block freed so far. So each step's arrays came back as fresh, zero-filled pages. ResNet-20 at batch
128 (``PYTHONPATH=src python benchmarks/step_profile.py --models R20 --no-split``, which prints the
page faults a step; ``FASTNET_KEEP_HEAP=0`` for glibc's default; 2026-12-02, 2-core AMD EPYC, two runs
each): 14,866 faults (58 MB) and 247-250 ms a step by default, 0 faults and 177-204 ms with the
thresholds fixed. Peak RSS 546 -> 549 MB; LeNet-5, the Keras CNN and the MLPs had no faults either way.

``import fastnet`` fixes glibc's mmap threshold at ``MMAP_THRESHOLD`` (glibc's largest: blocks up to
it come from the heap) and its trim threshold at ``TRIM_THRESHOLD`` (that much free heap stays
mapped): the tuning other CPU frameworks get by preloading jemalloc or tcmalloc. The cost: up to
``TRIM_THRESHOLD`` of freed memory stays in the process (its resident size after a large step,
not its peak). This module imports nothing of fastnet's: ``fastnet/__init__.py`` may load it first.

Left alone when the user set any of glibc's ``MALLOC_*_`` tuning variables, when
``FASTNET_KEEP_HEAP=0``, and on anything but Linux with glibc (musl, macOS, Windows).
``applied()`` tells whether it was set.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
# mallopt's parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# the variables through which a user tunes glibc's malloc: any of them set means the user decides
USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_state = {"applied": False}


def _glibc():
    """The process's C library if it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def keep_heap() -> bool:
    """Fix glibc's thresholds unless the user tuned malloc or opted out; True if they are set now."""
    if os.environ.get("FASTNET_KEEP_HEAP", "1").strip() == "0" or any(v in os.environ for v in USER_VARIABLES):
        return False
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    _state["applied"] = ok
    return ok


def applied() -> bool:
    """Whether ``import fastnet`` fixed glibc's heap thresholds in this process."""
    return _state["applied"]


keep_heap()
