"""Inputs: local ones exactly as ``imgcls infer`` lists them, URIs through pyarrow.

A URI (``s3://bucket/photos``, ``gs://...``, ``hdfs://...``, ``file:///...``) names a
file or a folder that pyarrow's filesystem layer (the one Ray Data reads with) can
open; a folder is listed recursively, sorted, image extensions only. Lines of an
``@list`` file may be URIs too. Reading needs the filesystem's support in pyarrow and
its credentials (for S3, the usual AWS variables or instance role) on every node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from imgcls.errors import DataError, DecodeError
from imgcls.images import is_image_file
from imgcls.infer.sources import OnError, check_inputs, iter_paths

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HINT = ("URIs are read through pyarrow's filesystems (s3://, gs://, hdfs://, file://); "
         "check the name, that your pyarrow build has that filesystem, and its credentials.")


def is_uri(path: str) -> bool:
    return bool(_URI.match(path))


def check_all(inputs: Sequence[str]) -> None:
    """Fail before any cluster starts when a local input names nothing (as infer does)."""
    check_inputs([item for item in inputs if not is_uri(item)])


def list_inputs(inputs: Sequence[str], on_error: OnError) -> Iterator[str]:
    """Every input expanded to image paths or URIs, in a deterministic order."""
    for item in inputs:
        if is_uri(item):
            yield from _list_uri(item)
        else:
            yield from iter_paths([item], on_error)


def _from_uri(uri: str) -> tuple[Any, str]:
    import pyarrow as pa
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"Cannot open {uri!r}: {exc}", _HINT) from exc


def _list_uri(uri: str) -> Iterator[str]:
    from pyarrow import fs

    filesystem, path = _from_uri(uri)
    try:
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.File:
            yield uri
            return
        if info.type != fs.FileType.Directory:
            raise DataError(f"No images found for input {uri!r}: it does not exist.", _HINT)
        entries = filesystem.get_file_info(fs.FileSelector(path, recursive=True))
    except OSError as exc:
        raise DataError(f"Cannot list {uri!r}: {exc}", _HINT) from exc
    base, root = uri.rstrip("/"), path.rstrip("/")
    found = sorted(entry.path for entry in entries
                   if entry.type == fs.FileType.File and is_image_file(entry.path))
    if not found:
        raise DataError(f"No images found for input {uri!r}.", _HINT)
    for name in found:
        yield base + name[len(root):]


@lru_cache(maxsize=256)
def _folder(uri_folder: str) -> tuple[Any, str]:
    # One filesystem per folder, not per file: making an S3 filesystem costs a round trip.
    return _from_uri(uri_folder + "/")


def read_uri(uri: str) -> bytes:
    """The bytes of the file at ``uri``; DecodeError (a per-file failure) if unreadable."""
    folder, _, name = uri.rstrip("/").rpartition("/")
    try:
        filesystem, path = _folder(folder)
        with filesystem.open_input_file(f"{path.rstrip('/')}/{name}") as handle:
            return handle.read()
    except (OSError, DataError) as exc:
        raise DecodeError(f"Cannot read {uri!r}: {exc}", _HINT) from exc


def decode_uri(uri: str, decode: Callable[[bytes], Any]) -> Any:
    """``decode(bytes)`` of the file at ``uri``; errors name the URI, not "<bytes>"."""
    data = read_uri(uri)
    try:
        return decode(data)
    except DecodeError as exc:
        raise DecodeError(exc.message.replace("<bytes>", repr(uri), 1), exc.hint) from exc
