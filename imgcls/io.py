"""Atomic file writes (temp file + fsync + rename), torch-free, for every writer in imgcls.

A reader never sees a half-written file: it sees the old one or the new one. A process
killed mid-write leaves a hidden ``.NAME.*.tmp`` beside the target, which
:func:`clean_stale_temp_files` removes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """A binary handle on a hidden temp file beside ``path``, renamed over it on success.

    Any exception (Ctrl-C and SIGTERM included) removes the temp file and leaves ``path``
    as it was. The file gets the permissions a plain ``open(path, "w")`` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name is fixed before the file exists, so a signal raised at any bytecode (even
    # inside the open) still finds it to remove: mkstemp hands the name back too late.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
    try:
        # O_EXCL never follows or reuses a planted file; the kernel applies the umask.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` via :func:`atomic_open`: readers see the old file or the new one."""
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)


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
