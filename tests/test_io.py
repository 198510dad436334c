"""imgcls.io: atomic writes with the usual permissions, no umask flip, no temp left, no torch."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from imgcls import io


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_a_write_replaces_the_file_whole_with_the_permissions_of_open(tmp_path):
    target = tmp_path / "sub" / "page.html"
    script = (f"import os\nos.umask(0o027)\nfrom imgcls.io import atomic_write_text\n"
              f"atomic_write_text({str(target)!r}, 'é<ok>')\nprint(oct(os.umask(0)))\n")
    result = _python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0o27"  # reading it left the umask as it was
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_bytes() == "é<ok>".encode()
    io.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and os.listdir(target.parent) == ["page.html"]


def test_importing_writers_sets_no_umask():
    # Setting the umask at import (to read it) races with threads creating files.
    script = ("import os\ndef refuse(mask):\n    raise AssertionError('umask set at import')\n"
              "os.umask = refuse\nimport imgcls.io, imgcls.report, imgcls.checkpoint\n")
    result = _python(script)
    assert result.returncode == 0, result.stderr


def test_an_interrupt_at_any_point_of_a_write_leaves_no_temp(tmp_path, monkeypatch):
    # SIGTERM raises in whatever bytecode runs: even between creating the file and
    # knowing its name (the window mkstemp had, which a CI run once hit).
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")
    real_open, real_replace = os.open, os.replace

    def open_then_interrupt(*args, **kwargs):
        real_open(*args, **kwargs)
        raise KeyboardInterrupt

    for name, broken in [("open", open_then_interrupt),
                         ("fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt())),
                         ("replace", lambda a, b: (real_replace(a, b), _raise())[0])]:
        monkeypatch.setattr(io.os, name, broken)
        with pytest.raises(KeyboardInterrupt):
            io.atomic_write_bytes(target, b"new")
        monkeypatch.undo()
        assert os.listdir(tmp_path) == ["last.pt"], name
    assert target.read_bytes() == b"new"  # only the rename that happened took effect


def _raise():
    raise KeyboardInterrupt


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        io.atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["metrics.json"]


def test_stale_temp_files_are_removed_and_nothing_else(tmp_path):
    stale = tmp_path / ".best.safetensors.x1y2.tmp"
    keep = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / "a.b.tmp"]
    for path in [stale, *keep]:
        path.write_text("x")
    assert io.clean_stale_temp_files(tmp_path) == [stale]
    assert all(path.exists() for path in keep)


def test_append_text_adds_records(tmp_path):
    log = tmp_path / "metrics.csv"
    io.append_text(log, "a,b\r\n")
    io.append_text(log, "1,2\r\n")
    assert log.read_bytes() == b"a,b\r\n1,2\r\n"
