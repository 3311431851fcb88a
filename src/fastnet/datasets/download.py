"""Checked downloads: try each mirror, verify the sha256, write atomically.

Nothing here runs unless a dataset is missing everywhere else. Set
``FASTNET_OFFLINE=1`` (or pass ``download=False`` to a loader) to forbid network
access; tests do. ``fetch`` takes an ``opener`` so it can be tested with
``file://`` URLs or a fake.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

OFFLINE_ENV = "FASTNET_OFFLINE"


class DownloadError(OSError):
    """Every mirror failed (network error or checksum mismatch)."""


def offline() -> bool:
    """True when ``$FASTNET_OFFLINE`` is set to anything but "", "0", "false" or "no"."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(urls, dest, sha256: str, opener=None, timeout: float = 60.0) -> Path:
    """Download the first of ``urls`` whose content has ``sha256`` to ``dest``.

    The bytes go to a temporary file next to ``dest`` and are renamed only after the
    checksum matches, so an interrupted or corrupt download never leaves a file at
    ``dest``. Raises :class:`DownloadError` listing every mirror's failure.
    """
    opener = opener or urllib.request.urlopen
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.part{os.getpid()}")
    failures = []
    for url in urls:
        try:
            h = hashlib.sha256()
            with opener(url, timeout=timeout) as response, open(tmp, "wb") as out:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != sha256:
                failures.append(f"{url}: sha256 {h.hexdigest()} != expected {sha256}")
                continue
            os.replace(tmp, dest)
            return dest
        except Exception as e:  # any mirror failure: try the next one
            failures.append(f"{url}: {type(e).__name__}: {e}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(f"could not download {dest.name}: " + "; ".join(failures))
