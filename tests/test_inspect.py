"""`imgcls inspect` and the manifest reader: torch-free, one error class for bad manifests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imgcls.errors import CheckpointError, ManifestError
from imgcls.manifest import MANIFEST_KEY, read_manifest, read_safetensors_header


def _safetensors(path: Path, metadata: dict | None) -> Path:
    header = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0\0\0\0")
    return path


def test_inspect_on_a_checkpoint_imports_no_torch(trained):
    script = (
        "import sys\n"
        "from imgcls.cli import main\n"
        f"assert main(['inspect', {str(trained.best_path)!r}]) == 0\n"
        "print('loaded:', [m for m in ('torch', 'torchvision') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []"
    assert "basic-cnn" in result.stdout


def test_read_manifest_reads_the_header_only(trained):
    manifest = read_manifest(trained.best_path)
    assert manifest["model"]["name"] == "basic-cnn" and len(manifest["classes"]) == 3
    assert MANIFEST_KEY in read_safetensors_header(trained.best_path)["__metadata__"]


def test_missing_and_invalid_manifests_raise_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="without an imgcls manifest"):
        read_manifest(_safetensors(tmp_path / "plain.safetensors", None))
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(_safetensors(tmp_path / "bad.safetensors", {MANIFEST_KEY: "{"}))
    with pytest.raises(ManifestError, match="classes"):
        read_manifest(_safetensors(tmp_path / "one.safetensors",
                                   {MANIFEST_KEY: json.dumps({"model": {"name": "x"},
                                                              "classes": ["a"]})}))


@pytest.mark.parametrize("data", [b"", b"\xff" * 8 + b"{}", (40).to_bytes(8, "little") + b"{"])
def test_a_file_that_is_not_safetensors_is_a_checkpoint_error(tmp_path, data):
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="not an imgcls checkpoint"):
        read_manifest(path)
