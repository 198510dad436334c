"""Checkpoints: one .safetensors file holding weights and a JSON manifest; resume state.

Loading never unpickles anything, so a checkpoint from a stranger cannot run code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn

from .errors import CheckpointError
from .manifest import FORMAT_VERSION, MANIFEST_KEY, read_manifest
from .registry import get_model
from .specs import Preprocess

# mkstemp creates files readable by the owner only; written files get the usual
# permissions instead. The umask can only be read by setting it, once, at import.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_UMASK)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | os.PathLike, model: nn.Module, manifest: dict[str, Any]) -> Path:
    """Write weights and manifest atomically to ``path``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = save_bytes(tensors, metadata={MANIFEST_KEY: json.dumps(manifest)})
    atomic_write_bytes(Path(path), data)
    return Path(path)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    manifest = read_manifest(path)  # validates the header before any tensor is read
    try:
        tensors = load_bytes(path.read_bytes())
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not an imgcls checkpoint (its tensors cannot be read).",
            "The file is damaged; re-train or copy it again.",
        ) from exc
    return tensors, manifest


def build_model(manifest: dict[str, Any]) -> nn.Module:
    """Instantiate the manifest's architecture (untrained) through its plugin."""
    spec = get_model(manifest["model"]["name"]).spec
    preprocess = Preprocess.from_dict(manifest["preprocess"])
    options = dict(manifest["model"].get("options", {}))
    return spec.build(len(manifest["classes"]), image_size=preprocess.size, **options)


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    manifest: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return self.manifest["classes"]

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess.from_dict(self.manifest["preprocess"])


def load_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    """Rebuild the model from a checkpoint, in eval mode on the CPU."""
    tensors, manifest = _read(Path(path))
    model = build_model(manifest)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match model {manifest['model']['name']!r}.",
                              "The checkpoint is damaged or from an incompatible plugin version."
                              ) from exc
    return LoadedCheckpoint(model.eval(), manifest)


# --------------------------------------------------------------------------- resume state

RESUME_FORMAT = "imgcls.resume"
RESUME_FILE = "last.pt"


def save_resume_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a resume state (tensors, numbers, strings only) atomically."""
    buffer = io.BytesIO()
    torch.save({"format": RESUME_FORMAT, "format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def resume_path(run: str | os.PathLike) -> Path:
    """``runs/<name>`` or ``runs/<name>/last.pt`` -> the resume state file."""
    path = Path(run)
    return path / RESUME_FILE if path.is_dir() else path


def load_resume_state(run: str | os.PathLike) -> dict[str, Any]:
    """Read a resume state with ``torch.load(weights_only=True)``: nothing is unpickled."""
    path = resume_path(run)
    if not path.is_file():
        raise CheckpointError(f"No resume state at {path}.",
                              "Pass a run folder written by `imgcls train`, e.g. runs/basic-cnn.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable imgcls resume state: {exc}",
                              "The file is damaged; start a new run.") from exc
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise CheckpointError(f"{path} is not an imgcls resume state.",
                              "Pass the run folder that holds last.pt.")
    if state.get("format_version", 1) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer imgcls.",
                              "Upgrade imgcls: pip install -U imgcls.")
    return state
