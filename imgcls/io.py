"""Atomic file writes (temp file + fsync + rename), torch-free, for every writer in imgcls.

A reader never sees a half-written file: it sees the old one or the new one. A process
killed mid-write leaves a hidden ``.NAME.*.tmp`` beside the target, which
:func:`clean_stale_temp_files` removes.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def _umask_from_proc() -> int | None:
    # Linux >= 4.7 reports it without changing it: no window where another thread
    # could create a file under a wrong umask.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


@functools.cache
def current_umask() -> int:
    """The process umask, read once on first use (never at import)."""
    found = _umask_from_proc()
    if found is not None:
        return found
    with _UMASK_LOCK:  # elsewhere it can only be read by setting it and back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write via a temp file in the same folder, fsync, then rename over ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give it (mkstemp's
    are owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):  # not on Windows, where mkstemp's mode is not POSIX
                os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` of ``text`` (UTF-8, newlines as given)."""
    return atomic_write_bytes(path, text.encode(encoding))


def append_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Append and fsync, for logs that grow a record at a time (metrics, manifests):
    a crash loses at most the record being written, never the earlier ones."""
    path = Path(path)
    with open(path, "a", encoding=encoding, newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def clean_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temp files :func:`atomic_write_bytes` leaves when killed mid-write."""
    removed = []
    for tmp in Path(folder).glob(".?*.*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
