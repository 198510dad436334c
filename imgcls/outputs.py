"""The output rule, checked before any work: a command writes only what the user named.

Every output is a regular file (new, or one that the command replaces), in a
folder this process can write, never a file the command reads, never inside a
folder it reads, and never the same file as another output of the same command.
Torch-free: every command calls this before it imports anything heavy.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import itertools
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from .errors import OutputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

PathLike = str | os.PathLike


def _real(path: PathLike) -> Path:
    # realpath resolves every symlink of the parts that exist; the rest stays as given.
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _same(a: Path, b: Path) -> bool:
    """Whether two real paths name one file (hard links included)."""
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet: then they differ
        return False


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_kind(flag: str, path: PathLike) -> None:
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # new: check_writable looks at its place
        return
    except OSError as exc:
        raise OutputError(f"Cannot use {path} as {flag}: {exc.strerror}.",
                          f"Name a new file for {flag}.") from exc
    if not stat.S_ISREG(mode):
        hint = (f"{flag} names a file, not a folder: add a file name"
                if stat.S_ISDIR(mode) else
                f"imgcls writes only regular files; name a new file for {flag}")
        raise OutputError(f"{flag} {path} is {_kind(mode)}, not a regular file.", hint + ".")


def check_writable(flag: str, path: PathLike, *, folder: bool = False) -> None:
    """Refuse ``path`` (a file, or with ``folder`` a folder to create) in a read-only place.

    The nearest existing folder above it is probed with a temporary file, which
    catches read-only file systems and pseudo-file systems that root cannot write
    either; the probe is removed at once.
    """
    target = Path(os.path.expanduser(os.fspath(path)))
    place = target if (folder and target.is_dir()) or not target.name else target.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    verb = "create" if folder else "write"
    if not place.is_dir():
        raise OutputError(f"Cannot {verb} {flag} {path}: {place} is not a folder.",
                          f"Name a path under an existing folder for {flag}.")
    if target.is_file() and not os.access(target, os.W_OK):
        raise OutputError(f"Cannot write {flag} {path}: the file is read-only.",
                          f"Name another file for {flag}.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".imgcls-probe-", dir=place)
    except OSError as exc:
        raise OutputError(f"Cannot {verb} {flag} {path}: {place} is not writable "
                          f"({exc.strerror}).", f"Name a writable place for {flag}.") from exc
    os.close(fd)
    os.unlink(probe)


GLOB_MATCHES = 100_000  # a quoted glob is expanded this far to check outputs against


def input_paths(args: Iterable[PathLike | None]) -> tuple[list[Path], list[Path]]:
    """Command-line inputs as (files, folders).

    A glob is kept as a pattern (an output it would match is refused) and its
    matches so far are files. Names that are no path (a dataset name like
    ``shapes``) are left out.
    """
    files: list[Path] = []
    folders: list[Path] = []
    for arg in args:
        if arg is None or os.fspath(arg) in ("", "-"):
            continue
        text = os.fspath(arg)
        text = text[1:] if text.startswith("@") and os.path.isfile(text[1:]) else text
        if os.path.isdir(text):
            folders.append(Path(text))
        elif os.path.exists(text):
            files.append(Path(text))
        elif glob.has_magic(text):
            files.append(Path(text))
            matches = glob.iglob(os.path.expanduser(text), recursive=True)
            files.extend(Path(match) for match in itertools.islice(matches, GLOB_MATCHES))
    return files, folders


def _is_input(path: PathLike, real: Path, given: Path, source: Path) -> bool:
    if glob.has_magic(str(given)):  # a pattern: would the output be one of its files?
        return fnmatch.fnmatchcase(os.path.abspath(path), os.path.abspath(given))
    return _same(real, source)


def check_outputs(outputs: Mapping[str, PathLike | None], inputs: Iterable[PathLike] = (),
                  input_folders: Iterable[PathLike] = ()) -> None:
    """Refuse, before any work, outputs that break the output rule (see the module doc).

    ``outputs`` maps how the user named each output (``-o``, ``--summary-json``,
    ``the parity report``) to its path; None entries are outputs not asked for.
    """
    named = {flag: path for flag, path in outputs.items() if path is not None}
    real_inputs = [(Path(p), _real(p)) for p in inputs]
    real_folders = [(Path(p), _real(p)) for p in input_folders]
    seen: list[tuple[str, Path]] = []
    for flag, path in named.items():
        _check_kind(flag, path)
        real = _real(path)
        for given, source in real_inputs:
            if _is_input(path, real, given, source):
                raise OutputError(f"{flag} {path} is an input of this command ({given}); "
                                  "writing it would destroy what is being read.",
                                  f"Name a new file for {flag}.")
        for given, folder in real_folders:
            if _inside(real, folder):
                raise OutputError(f"{flag} {path} is inside the input folder {given}; it would "
                                  "overwrite or be read as an input.",
                                  f"Write {flag} outside {given}.")
        for other, other_real in seen:
            if _same(real, other_real):
                raise OutputError(f"{flag} and {other} are the same file ({path}); one would "
                                  "overwrite the other.", f"Name a different file for {flag}.")
        seen.append((flag, real))
        check_writable(flag, path)


def check_out_dir(flag: str, folder: PathLike, inputs: Iterable[PathLike] = (),
                  input_folders: Iterable[PathLike] = (), *, writes: Iterable[str] = (),
                  holds_inputs: bool = False) -> None:
    """Refuse an output folder that is a file, is or lies in an input folder, or would
    write over an input.

    ``writes`` are the names the command writes in the folder; each must be a
    regular file (or new) and no input. ``holds_inputs`` refuses any input inside
    the folder, for commands that name their files after their inputs (explain).
    """
    target = Path(os.path.expanduser(os.fspath(folder)))
    if target.exists() and not target.is_dir():
        raise OutputError(f"{flag} {folder} exists and is not a folder.",
                          f"Name a new or existing folder for {flag}.")
    real = _real(target)
    inputs, input_folders = list(inputs), list(input_folders)
    for given in input_folders:
        if _inside(real, _real(given)):
            raise OutputError(f"{flag} {folder} is or lies inside the input folder {given}; "
                              "its files would overwrite or be read as inputs.",
                              f"Write {flag} outside {given}.")
    check_writable(flag, target, folder=True)
    named = {f"{flag} file {name}": target / name for name in writes}
    check_outputs(named, inputs)
    for given in [*inputs, *input_folders] if holds_inputs else ():
        if _inside(_real(given), real):
            raise OutputError(f"{flag} {folder} holds the input {given}; the files written "
                              "there are named after their inputs and could overwrite them.",
                              f"Write {flag} to a folder of its own.")


def check_run_name(flag: str, name: str) -> None:
    """A run or study name is one folder name: never a path that leaves --out-dir."""
    if (not name or name in (".", "..") or "/" in name or os.sep in name
            or (os.altsep and os.altsep in name) or "\0" in name):
        raise OutputError(f"{flag} {name!r} is not a folder name: the run must stay inside "
                          "--out-dir.", f"Use a plain name such as {flag} my-run, and "
                          "--out-dir to choose where runs go.")


@contextlib.contextmanager
def locked_output(path: PathLike | None, flag: str = "-o") -> Iterator[None]:
    """Hold an exclusive lock on the output ``path`` (None: no lock) while appending to it.

    The lock is on the output file itself (flock), so no lock file is left behind
    and a killed process releases it; a second writer is refused at once.
    """
    if path is None or fcntl is None:  # no flock on this platform: nothing to hold
        yield
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError as exc:
        raise OutputError(f"Cannot open {flag} {path}: {exc.strerror}.",
                          f"Name a writable file for {flag}.") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise OutputError(f"{flag} {path} is being written by another imgcls process.",
                              "Wait for it to finish (then --resume again), or write to "
                              "another file.") from exc
        yield
    finally:
        os.close(fd)
