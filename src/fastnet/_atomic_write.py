"""Atomic file writes: a temporary file beside the target, fsync, rename, fsync of the directory.

- The temporary file is named after the target and the writing process
  (``.<target>.fastnet-<pid>.tmp``), so a later write of the same target removes the leftovers of
  a writer that was killed (``kill -9``) and no longer runs, instead of leaving them forever.
- The result gets the mode a plain ``open(path, "w")`` would give: the existing file's mode, or
  0666 minus the umask (0644 usually), not ``mkstemp``'s 0600.
- The directory is fsynced after the rename, so the new name survives a power loss.
- ``check_writable`` lets a command fail before a long job when its output path cannot be written.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading

__all__ = ["atomic_write", "check_writable", "temp_name", "remove_stale_temps"]

_TMP = re.compile(r"^\.(?P<target>.+)\.fastnet-(?P<pid>\d+)(?:-\d+)?\.tmp$")


def temp_name(path: str, pid: int | None = None) -> str:
    """The temporary file of ``path`` written by process ``pid`` (default: this process and thread)."""
    directory, base = os.path.split(os.path.abspath(path))
    who = f"{pid}" if pid is not None else f"{os.getpid()}-{threading.get_ident()}"
    return os.path.join(directory, f".{base}.fastnet-{who}.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep its file
    return True


def remove_stale_temps(path: str) -> list[str]:
    """Delete the temporary files of ``path`` left by writers that no longer run; returns them."""
    directory, base = os.path.split(os.path.abspath(path))
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TMP.match(name)
        if m and m.group("target") == base and not _alive(int(m.group("pid"))):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))
                removed.append(name)
    return removed


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would, briefly, for every thread)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _fsync_directory(directory: str) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows: directories cannot be opened for fsync
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems do not support it; the rename itself is done
    finally:
        os.close(fd)


def atomic_write(path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``.
    A crash at any point leaves the previous ``path`` intact; a failure removes the temporary file."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temps(path)
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _final_mode(path))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def check_writable(path, option: str) -> None:
    """Raise a ValueError naming ``option`` and ``path`` if a file cannot be written there (checked by
    creating and removing a temporary file beside it; the target itself is not touched)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{option} {path}: is a directory")
    if not os.path.isdir(directory):
        raise ValueError(f"{option} {path}: directory {directory} does not exist")
    probe = temp_name(path)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.remove(probe)
    except FileExistsError:
        return  # this process is writing it right now
    except OSError as e:
        raise ValueError(f"{option} {path}: cannot write in {directory} ({e.strerror or e})") from None
    if os.path.exists(path) and not os.access(path, os.W_OK) and not os.access(directory, os.W_OK):
        raise ValueError(f"{option} {path}: not writable")
