"""Arrays packed by dtype into a few contiguous buffers, so a reduction is a few large MPI calls.

One reduction per array would pay MPI's per-call latency dozens of times a step; one buffer
per dtype (split only past ``cap_bytes``) pays it once or twice. Packing copies: the layers
keep their own gradient arrays (a layer may hold references to them), and a copy of a few MB
costs far less than the step that produced it.
"""

from __future__ import annotations

import numpy as np

DEFAULT_CAP_BYTES = 64 << 20  # a few buckets for big models; a small model gets one per dtype


class FlatBuffers:
    """A fixed layout: for each buffer, the (array index, offset, size) it holds."""

    def __init__(self, arrays, cap_bytes: int = DEFAULT_CAP_BYTES):
        self.signature = _signature(arrays)
        self.buffers: list[np.ndarray] = []
        self.members: list[list[tuple[int, int, int]]] = []
        by_dtype: dict[np.dtype, list[int]] = {}
        for i, a in enumerate(arrays):
            by_dtype.setdefault(np.dtype(a.dtype), []).append(i)
        for dtype, indices in by_dtype.items():
            group, used = [], 0
            for i in indices:
                n = int(arrays[i].size)
                if group and (used + n) * dtype.itemsize > cap_bytes:
                    self._add(dtype, group, used)
                    group, used = [], 0
                group.append((i, used, n))
                used += n
            self._add(dtype, group, used)

    def _add(self, dtype, group, used):
        self.buffers.append(np.empty(used, dtype=dtype))
        self.members.append(group)

    @property
    def nbytes(self) -> int:
        return int(sum(b.nbytes for b in self.buffers))

    def matches(self, arrays) -> bool:
        return _signature(arrays) == self.signature

    def pack(self, arrays, scale: float = 1.0) -> None:
        """Copy ``arrays`` into the buffers, multiplied by ``scale`` in the same pass."""
        for buf, group in zip(self.buffers, self.members, strict=True):
            for i, off, n in group:
                dst, src = buf[off : off + n], arrays[i].reshape(-1)
                if scale == 1.0:
                    np.copyto(dst, src)
                else:
                    np.multiply(src, buf.dtype.type(scale), out=dst)

    def unpack(self, arrays, scale: float = 1.0) -> None:
        """Copy the buffers back into ``arrays`` in place (times ``scale``)."""
        for buf, group in zip(self.buffers, self.members, strict=True):
            for i, off, n in group:
                src = buf[off : off + n].reshape(arrays[i].shape)
                if scale == 1.0:
                    arrays[i][...] = src
                else:
                    np.multiply(src, buf.dtype.type(scale), out=arrays[i])


def _signature(arrays) -> tuple:
    return tuple((tuple(a.shape), np.dtype(a.dtype).str) for a in arrays)
