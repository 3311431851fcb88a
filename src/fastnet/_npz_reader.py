"""Read an untrusted ``.npz`` archive without trusting it: the zip directory and each member's ``.npy``
header are checked before any array data is decompressed, and only the members asked for are read.

Why not ``np.load``: it decompresses whatever a member claims to hold, and for a file that is not an
archive it suggests ``allow_pickle=True``. Every problem here is a ``ValueError`` naming the file and
the member (``FileNotFoundError`` for a missing file).
"""

from __future__ import annotations

import ast
import os
import struct
import zipfile
import zlib

import numpy as np

__all__ = ["ArrayHeader", "NpzArchive", "READ_ERRORS", "max_archive_bytes"]

# Exceptions that malformed bytes can raise from zipfile, zlib and numpy's header parser.
READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    SyntaxError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    UnicodeError,
    RuntimeError,
    AttributeError,
)
MAX_MEMBERS = 100_000
MAX_HEADER_BYTES = 10_000  # numpy's own default limit for .npy headers
_ZIP_MAGIC, _NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"


def max_archive_bytes() -> int:
    """Cap on the total uncompressed size of a model file: ``$FASTNET_MAX_MODEL_BYTES`` or 8 GiB."""
    text = os.environ.get("FASTNET_MAX_MODEL_BYTES", "")
    try:
        return int(text) if text.strip() else 8 << 30
    except ValueError:
        return 8 << 30


class ArrayHeader:
    """A member's ``.npy`` header: dtype, shape, order, and where its data starts."""

    def __init__(self, dtype: np.dtype, shape: tuple, fortran: bool, data_offset: int):
        self.dtype, self.shape, self.fortran, self.data_offset = dtype, shape, fortran, data_offset

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


class NpzArchive:
    """An opened archive: ``members`` (name without ``.npy`` -> ZipInfo); ``header(name)`` and
    ``read(name)`` check and read one member. Use as a context manager."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.where = repr(self.path)
        try:
            with open(self.path, "rb") as f:
                head = f.read(8)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise self.error(f"cannot be read ({e})") from None
        if head.startswith(_NPY_MAGIC):
            raise self.error("is not a fastnet model file (it holds a single .npy array, not an .npz archive)")
        if not head.startswith(_ZIP_MAGIC):
            kind = "is empty" if not head else f"starts with {head[:8]!r}"
            raise self.error(f"is not a fastnet model file (it is not an .npz archive: it {kind})")
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except READ_ERRORS as e:
            raise self.error(f"is not a fastnet model file (damaged zip archive: {type(e).__name__}: {e})") from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        self._headers: dict[str, ArrayHeader] = {}
        try:
            self._index(infos)
        except BaseException:
            self.close()
            raise

    def _index(self, infos) -> None:
        if len(infos) > MAX_MEMBERS:
            raise self.error(f"has {len(infos)} members, more than the limit {MAX_MEMBERS}")
        total, cap = 0, max_archive_bytes()
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise self.error(f"has member {info.filename!r}, which is not an .npy array")
            name = info.filename[: -len(".npy")]
            if name in self.members:
                raise self.error(f"has member {info.filename!r} twice")
            if info.flag_bits & 0x1:
                raise self.error(f"member {info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.error(f"member {info.filename!r} uses unsupported compression {info.compress_type}")
            total += info.file_size
            if info.file_size > cap or total > cap:
                raise self.error(
                    f"member {info.filename!r} brings the uncompressed size to {total} bytes, more than the "
                    f"limit of {cap} (set FASTNET_MAX_MODEL_BYTES to raise it)"
                )
            self.members[name] = info

    def error(self, message: str) -> ValueError:
        return ValueError(f"load: {self.where} {message}")

    def close(self) -> None:
        z = getattr(self, "_zip", None)
        if z is not None:
            z.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def header(self, name: str) -> ArrayHeader:
        """The checked ``.npy`` header of member ``name`` (no array data is read)."""
        if name in self._headers:
            return self._headers[name]
        info = self.members.get(name)
        if info is None:
            raise self.error(f"has no member {name!r}")
        try:
            with self._zip.open(info) as f:
                hdr = _parse_header(f)
        except ValueError as e:
            raise self.error(f"member {name!r} has a bad .npy header ({e})") from None
        except READ_ERRORS as e:
            raise self.error(f"member {name!r} cannot be read ({type(e).__name__}: {e})") from None
        if hdr.dtype.hasobject or hdr.dtype.kind not in "biufU" or hdr.dtype.fields is not None:
            raise self.error(f"member {name!r} has dtype {hdr.dtype}; only plain numeric arrays are read")
        if hdr.data_offset + hdr.nbytes != info.file_size:
            raise self.error(
                f"member {name!r} declares shape {hdr.shape} of {hdr.dtype} ({hdr.nbytes} bytes) but holds "
                f"{info.file_size - hdr.data_offset} bytes of data"
            )
        self._headers[name] = hdr
        return hdr

    def read(self, name: str) -> np.ndarray:
        """Member ``name`` as an array, after its header was checked against the zip directory."""
        hdr = self.header(name)
        try:
            with self._zip.open(self.members[name]) as f:
                f.read(hdr.data_offset)
                data = f.read(hdr.nbytes)
                if len(data) != hdr.nbytes:
                    raise EOFError(f"{len(data)} of {hdr.nbytes} bytes")
        except READ_ERRORS as e:
            raise self.error(f"member {name!r} cannot be read ({type(e).__name__}: {e})") from None
        arr = np.frombuffer(data, dtype=hdr.dtype)
        return arr.reshape(hdr.shape, order="F" if hdr.fortran else "C").copy()


def _parse_header(f) -> ArrayHeader:
    """Magic, version and header dict of a ``.npy`` stream, checked field by field."""
    magic = f.read(8)
    if len(magic) != 8 or not magic.startswith(_NPY_MAGIC):
        raise ValueError("no .npy magic")
    major = magic[6]
    if major == 1:
        (hlen,), offset = struct.unpack("<H", f.read(2)), 10
    elif major in (2, 3):
        (hlen,), offset = struct.unpack("<I", f.read(4)), 12
    else:
        raise ValueError(f"unknown .npy version {major}")
    if hlen > MAX_HEADER_BYTES:
        raise ValueError(f"header of {hlen} bytes, more than {MAX_HEADER_BYTES}")
    raw = f.read(hlen)
    if len(raw) != hlen:
        raise ValueError("truncated header")
    text = raw.decode("utf8" if major == 3 else "latin1")
    d = ast.literal_eval(text)  # literals only: never runs code
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"header is not a dict with descr, fortran_order and shape: {text.strip()[:80]!r}")
    shape, fortran, descr = d["shape"], d["fortran_order"], d["descr"]
    if not isinstance(shape, tuple) or not all(type(s) is int and 0 <= s < 2**62 for s in shape) or len(shape) > 32:
        raise ValueError(f"bad shape {shape!r}")
    if type(fortran) is not bool or not isinstance(descr, str):
        raise ValueError(f"bad fortran_order {fortran!r} or descr {descr!r}")
    dtype = np.dtype(descr)
    return ArrayHeader(dtype, shape, fortran, offset + hlen)
