"""Scratch memory for the convolution kernels: one growing buffer per thread and dtype.

The im2col columns (C*KH*KW x samples*OH*OW) and the GEMM's (F x samples*OH*OW) partner
are carved from a flat buffer that is reused from call to call and only grows. Kernels size
their batch chunks with :func:`chunk_size` so that the buffer stays within the limit:

    workspace bytes <= max(limit, bytes needed by ONE sample)   (per thread, per dtype)

The limit defaults to 64 MiB; change it with :func:`set_workspace_limit` or the environment
variable ``FASTNET_WORKSPACE_MB`` (read at import). A call with a larger batch than fits is
split into chunks of whole samples; the results are identical, only the peak memory differs.
Buffers never escape: kernels copy results into fresh arrays.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np

from .config import DEFAULT_WORKSPACE_BYTES as DEFAULT_LIMIT


def _env_limit() -> int:
    env = os.environ.get("FASTNET_WORKSPACE_MB")
    if not env:
        return DEFAULT_LIMIT
    try:
        mb = float(env)
    except ValueError:
        raise ValueError(f"FASTNET_WORKSPACE_MB must be a positive number, got {env!r}") from None
    if not mb > 0:
        raise ValueError(f"FASTNET_WORKSPACE_MB must be a positive number, got {env!r}")
    return max(1, int(mb * (1 << 20)))


_state = {"limit": _env_limit()}
_local = threading.local()  # one set of buffers per thread: kernels may run concurrently


def get_workspace_limit() -> int:
    """The byte limit a kernel aims to keep its workspace under."""
    return _state["limit"]


def set_workspace_limit(nbytes: int) -> None:
    """Set the workspace byte limit (bigger batches are processed in chunks). Frees buffers."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 1:
        raise ValueError(f"set_workspace_limit: nbytes must be a positive int, got {nbytes!r}")
    _state["limit"] = int(nbytes)
    release()


def chunk_size(n: int, bytes_per_sample: int) -> int:
    """How many of ``n`` samples to process at once so the workspace stays within the limit."""
    if bytes_per_sample <= 0:
        return max(1, n)
    return max(1, min(n, _state["limit"] // bytes_per_sample))


def take(dtype, *shapes) -> tuple:
    """Views of consecutive, C-contiguous regions of this thread's ``dtype`` buffer.

    The views are only valid until the next ``take`` on the same thread and dtype.
    """
    dtype = np.dtype(dtype)
    sizes = [math.prod(s) for s in shapes]  # not np.prod: ~5 us a call, and conv passes take thousands
    need = sum(sizes)
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(dtype)
    if buf is None or buf.size < need:
        buf = bufs[dtype] = np.empty(need, dtype=dtype)
    out, start = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        out.append(buf[start : start + size].reshape(shape))
        start += size
    return tuple(out)


def nbytes() -> int:
    """Bytes currently held by this thread's workspace buffers (all dtypes)."""
    return sum(b.nbytes for b in getattr(_local, "bufs", {}).values())


def release() -> None:
    """Drop this thread's buffers (they are reallocated on demand)."""
    _local.bufs = {}
