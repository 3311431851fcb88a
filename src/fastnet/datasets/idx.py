"""Reader and writer for the IDX format of MNIST and Fashion-MNIST (raw or gzip).

An IDX file is a 4-byte magic ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the array data (big-endian, row-major). Every way a
file can be broken gives a ``ValueError`` that names the file.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

# IDX type code -> big-endian dtype.
_CODES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    # Decide by content, not by name: a renamed .gz still reads.
    if head == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError) as e:
            raise ValueError(f"IDX file {path}: corrupt or truncated gzip data ({e})") from None
    return path.read_bytes()


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into a native-endian array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"IDX file {path}: only {len(data)} bytes, too short for the 4-byte magic number")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _CODES or ndim == 0:
        raise ValueError(
            f"IDX file {path}: bad magic number 0x{data[:4].hex()} "
            f"(expected 0x0000 then a type code in {sorted(hex(c) for c in _CODES)} and ndim >= 1)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"IDX file {path}: header needs {header} bytes for {ndim} dimensions, file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _CODES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        kind = "short" if got < expected else "long"
        raise ValueError(
            f"IDX file {path}: payload too {kind}: shape {shape} of {dtype.name} needs "
            f"{expected} bytes after the header, found {got}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path, array, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzip if ``compress`` or the name ends in .gz), atomically."""
    path = Path(path)
    arr = np.asarray(array)
    code = next(
        (c for c, dt in _CODES.items() if dt.kind == arr.dtype.kind and dt.itemsize == arr.dtype.itemsize), None
    )
    if code is None or arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"write_idx: cannot store dtype {arr.dtype} with {arr.ndim} dimensions in IDX")
    payload = (
        struct.pack(f">HBB{arr.ndim}I", 0, code, arr.ndim, *arr.shape)
        + np.ascontiguousarray(arr, dtype=_CODES[code]).tobytes()
    )
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def read_idx_pair(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) and labels (N,) from two IDX files, checking they agree."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"IDX images {images_path}: expected 3 dimensions (N, H, W), got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"IDX labels {labels_path}: expected 1 dimension (N,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(
            f"IDX files disagree: {images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images, labels
