"""imgcls.io: atomic writes with the usual permissions, no umask flip at import, no torch."""

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


def test_without_proc_the_umask_is_read_once_and_restored(monkeypatch):
    monkeypatch.setattr(io, "_umask_from_proc", lambda: None)
    io.current_umask.cache_clear()
    try:
        before = os.umask(0o077)
        try:
            assert io.current_umask() == 0o077 and os.umask(0o077) == 0o077
        finally:
            os.umask(before)
    finally:
        io.current_umask.cache_clear()


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
