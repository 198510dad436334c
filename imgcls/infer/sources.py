"""Inference inputs, streamed: files, folders, globs, ``@list.txt`` files and stdin.

Nothing here holds the whole input in memory: lists and stdin are read line by
line, folders are walked one directory at a time (each sorted, so the order is
the same on every machine), and ``--shard`` / ``--resume`` filter the stream.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..images import is_image_file

STDIN = "-"
_NO_IMAGES_HINT = ("Pass image files, folders of images, a quoted glob like 'imgs/*.jpg', "
                   "@list.txt (one path per line) or - for paths on stdin.")


# Called with (path, reason) for an entry that cannot be listed or looked at.
OnError = Callable[[str, str], None]


def _raise(path: str, reason: str) -> None:
    raise DataError(reason, "Check the permissions and links under the input folder.")


def _reason(path: str, exc: OSError | str) -> str:
    why = exc if isinstance(exc, str) else exc.strerror or str(exc)
    return f"Cannot read {path!r}: {why}"


def _walk(folder: str, on_error: OnError = _raise) -> Iterator[str]:
    """Image files under ``folder``, depth first, names sorted in each directory.

    An entry that cannot be listed or looked at (a symlink loop, no permission,
    a broken link named like an image) goes to ``on_error`` instead of raising,
    so one bad entry does not stop a run over millions of files.
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        on_error(folder, _reason(folder, exc))
        return
    for entry in entries:
        try:
            # Symlinked folders are not followed: they can loop.
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path, on_error)
            elif entry.is_file():
                if is_image_file(entry.name):
                    yield entry.path
            elif entry.is_symlink() and is_image_file(entry.name):
                on_error(entry.path, _reason(entry.path, "broken symbolic link"))
        except OSError as exc:
            on_error(entry.path, _reason(entry.path, exc))


def _lines(handle: Iterable[str]) -> Iterator[str]:
    for line in handle:
        path = line.rstrip("\r\n")
        if path.strip():
            yield path


def _list_file(item: str) -> Iterator[str]:
    name = item[1:]
    if not os.path.isfile(name):
        raise DataError(f"Path list not found: {name}.",
                        "@FILE names a text file with one image path per line.")
    with open(name, encoding="utf-8") as handle:
        yield from _lines(handle)


def _one_input(item: str, on_error: OnError = _raise) -> Iterator[str]:
    if item == STDIN:
        yield from _lines(sys.stdin)
    elif item.startswith("@") and not os.path.exists(item):
        yield from _list_file(item)
    elif os.path.isdir(item):
        yield from _walk(item, on_error)
    elif os.path.isfile(item):
        yield item
    else:
        yield from sorted(p for p in glob.iglob(item, recursive=True)
                          if os.path.isfile(p) and is_image_file(p))


class _Counted:
    """An on_error that counts: an input whose only entries are unreadable is not empty."""

    def __init__(self, on_error: OnError) -> None:
        self.on_error, self.count = on_error, 0

    def __call__(self, path: str, reason: str) -> None:
        self.count += 1
        self.on_error(path, reason)


def iter_paths(inputs: Sequence[str | os.PathLike],
               on_error: OnError = _raise) -> Iterator[str]:
    """Every input expanded to image paths (strings), in a deterministic order.

    ``on_error(path, reason)`` gets the entries of a folder that cannot be listed
    or looked at; by default they raise DataError.
    """
    for item in inputs:
        name = os.fspath(item)
        errors = _Counted(on_error)
        found = False
        for path in _one_input(name, errors):
            found = True
            yield path
        if not found and not errors.count and name != STDIN:
            raise DataError(f"No images found for input {name!r}.", _NO_IMAGES_HINT)


def iter_inputs(inputs: Sequence[str | os.PathLike]) -> Iterator[Path]:
    """Files, folders (recursively), globs, @lists and stdin -> image paths."""
    return (Path(p) for p in iter_paths(inputs))


def check_inputs(inputs: Sequence[str | os.PathLike]) -> None:
    """Fail early, before any output is written, when an input yields no path.

    An entry that cannot be read counts as found: the run reports it per file.
    """
    class _Found(Exception):
        pass

    def found(path: str, reason: str) -> None:
        raise _Found

    for item in inputs:
        name = os.fspath(item)
        try:
            if name == STDIN or next(_one_input(name, found), None) is not None:
                continue
        except _Found:
            continue
        raise DataError(f"No images found for input {name!r}.", _NO_IMAGES_HINT)


# --------------------------------------------------------------------------- shards


def _hash64(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"),
                                          digest_size=8).digest(), "little")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> (2, 8); shards are numbered 0..n-1."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard expects i/n with 0 <= i < n, got {text!r}.",
                          "For example: --shard 0/4 ... --shard 3/4 for four machines.")
    return i, n


def in_shard(paths: Iterable[str], index: int, count: int) -> Iterator[str]:
    """The paths whose hash falls in shard ``index`` of ``count``.

    By hash of the path, not by position, so every machine picks the same files
    however its listing is ordered, and the shards never overlap.
    """
    if count == 1:
        yield from paths
        return
    for path in paths:
        if _hash64(path) % count == index:
            yield path


# --------------------------------------------------------------------------- resume


class PathSet:
    """A set of paths in 8 bytes each (64-bit hashes), for ``--resume`` on huge runs.

    Two different paths share a hash with probability about n^2 / 2^65: about
    3e-8 for a million paths.
    """

    def __init__(self, paths: Iterable[str] = ()) -> None:
        parts: list[np.ndarray] = []
        block: list[int] = []
        for path in paths:
            block.append(_hash64(path))
            if len(block) == 65536:
                parts.append(np.array(block, dtype=np.uint64))
                block = []
        parts.append(np.array(block, dtype=np.uint64))
        self._hashes = np.unique(np.concatenate(parts))

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str) or not len(self._hashes):
            return False
        value = np.uint64(_hash64(path))
        slot = int(np.searchsorted(self._hashes, value))
        return slot < len(self._hashes) and self._hashes[slot] == value

    def skip(self, paths: Iterable[str]) -> Iterator[str]:
        return (path for path in paths if path not in self)
