"""Atomic file writes for the exporters: a reader never sees half a file."""

from __future__ import annotations

import os


def check_path(path, where: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` atomically (``fastnet._atomic_write``: temp file, fsync, rename, directory fsync,
    umask-respecting mode, a killed writer's leftover removed by the next write)."""
    from .._atomic_write import atomic_write

    atomic_write(path, lambda f: f.write(data))
