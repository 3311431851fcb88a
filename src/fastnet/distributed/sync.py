"""Making every rank hold the same model: architecture check, broadcast from rank 0, buffer averaging."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from . import comm
from .flat import FlatBuffers

__all__ = ["check_same_model", "broadcast_model", "average_buffers"]


def _state_arrays(model) -> list[tuple[str, np.ndarray]]:
    return list(model.named_parameters()) + list(model.named_buffers())


def model_digest(model) -> bytes:
    """sha256 of what must agree across ranks: every parameter's and buffer's name, shape and
    dtype, the layer configuration, and the loss and optimizer classes."""
    layout = [(name, list(a.shape), np.dtype(a.dtype).str) for name, a in _state_arrays(model)]
    config = model.get_config() if hasattr(model, "get_config") else None
    described = {
        "arrays": layout,
        "config": config,
        "loss": repr(getattr(model, "loss", None)),
        "optimizer": type(getattr(model, "optimizer", None)).__name__,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).digest()


def check_same_model(model, where: str = "fastnet.distributed") -> None:
    """Raise ValueError on every rank if any rank built a different model (no rank is left waiting)."""
    c = comm.communicator()
    if c is None:
        return
    mine = np.frombuffer(model_digest(model), dtype=np.uint8).copy()
    every = np.empty((comm.size(), mine.size), dtype=np.uint8)
    c.Allgather(mine, every)
    differ = [r for r in range(comm.size()) if not np.array_equal(every[r], every[0])]
    if differ:
        raise ValueError(
            f"{where}: rank(s) {differ} built a different model than rank 0 (layers, parameter shapes or "
            f"dtypes, loss or optimizer differ); every rank must run the same script with the same arguments"
        )


def broadcast_model(model) -> None:
    """Copy rank 0's parameters, buffers and shuffle seed to every rank, in place.

    Afterwards every rank starts from identical weights whatever it seeded, and draws the same
    epoch permutations. The model must be the same on every rank (``check_same_model``).
    """
    c = comm.communicator()
    if c is None:
        return
    _bcast_from_root(c, [a for _, a in _state_arrays(model)])
    if hasattr(model, "shuffle_seed"):
        seed = np.array([-1 if model.shuffle_seed is None else int(model.shuffle_seed)], dtype=np.int64)
        c.Bcast(seed, root=0)
        model.shuffle_seed = None if seed[0] < 0 else int(seed[0])


def _bcast_from_root(c, arrays) -> None:
    """Overwrite ``arrays`` in place with rank 0's values (packed into few flat messages)."""
    if not arrays:
        return
    flat = FlatBuffers(arrays)
    flat.pack(arrays)
    for buf in flat.buffers:
        c.Bcast(buf, root=0)
    flat.unpack(arrays)


def average_buffers(model) -> None:
    """Make the buffers (BatchNorm running statistics) equal on every rank: float buffers become
    their mean over ranks, integer ones rank 0's."""
    c = comm.communicator()
    if c is None:
        return
    buffers = [b for _, b in model.named_buffers()]
    floats = [b for b in buffers if b.dtype.kind == "f"]
    others = [b for b in buffers if b.dtype.kind != "f"]
    MPI = comm.mpi()
    if floats:
        flat = FlatBuffers(floats)
        flat.pack(floats)
        for buf in flat.buffers:
            c.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        flat.unpack(floats, scale=1.0 / comm.size())
    _bcast_from_root(c, others)
