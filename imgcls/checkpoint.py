"""Checkpoints: one .safetensors file holding weights and a JSON manifest; resume state.

Loading never unpickles anything, so a checkpoint from a stranger cannot run code.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, InstanceOf, TypeAdapter, with_config
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn
from typing_extensions import TypedDict

from .errors import CheckpointError, ManifestError
from .io import atomic_write_bytes
from .manifest import FORMAT_VERSION, MANIFEST_KEY, read_manifest
from .options import builder_options, unknown_options
from .registry import get_model
from .schema import validate
from .specs import Preprocess


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


def _model_options(spec: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's model options, checked against the builder's signature."""
    options = dict(manifest["model"].get("options", {}))
    unknown = unknown_options(spec.build, options)
    if unknown:
        names, _ = builder_options(spec.build)
        raise ManifestError(f"The manifest gives model {spec.name!r} options it does not take: "
                            f"{', '.join(unknown)}.",
                            f"Its options are: {', '.join(names) or 'none'}; the file is damaged "
                            "or from another plugin version.")
    return options


def build_model(manifest: dict[str, Any], device: str | None = None) -> nn.Module:
    """Instantiate the manifest's architecture (untrained) through its plugin.

    ``device="meta"`` builds it without allocating memory, to check shapes first.
    """
    spec = get_model(manifest["model"]["name"]).spec
    preprocess = Preprocess.from_dict(manifest["preprocess"])
    options = _model_options(spec, manifest)
    where = torch.device(device) if device else contextlib.nullcontext()
    try:
        with where, warnings.catch_warnings():
            # A plugin whose build loads weights copies them into meta tensors, a no-op
            # torch warns about once per tensor; the real build after it loads them.
            warnings.filterwarnings("ignore", message=r".*non-meta parameter.*is a no-op")
            return spec.build(len(manifest["classes"]), image_size=preprocess.size, **options)
    except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError) as exc:
        raise ManifestError(f"Model {spec.name!r} rejected the manifest's options "
                            f"{options}: {exc}",
                            "The file is damaged or from another plugin version.") from exc


def _weights_mismatch(path: Path, manifest: dict[str, Any]) -> CheckpointError:
    return CheckpointError(f"{path}: weights do not match model {manifest['model']['name']!r}.",
                           "The checkpoint is damaged or from an incompatible plugin version.")


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
    path = Path(path)
    tensors, manifest = _read(path)
    # Shapes are compared on a memory-free skeleton first: a hostile manifest can ask
    # for a model far larger than its weights (and than this machine's memory).
    skeleton = build_model(manifest, device="meta")
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if expected != {k: tuple(v.shape) for k, v in tensors.items()}:
        raise _weights_mismatch(path, manifest)
    model = build_model(manifest)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise _weights_mismatch(path, manifest) from exc
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


def _unreadable(path: Path) -> CheckpointError:
    return CheckpointError(f"{path} is not a readable imgcls resume state.",
                           "The file is damaged; start a new run.")


def load_resume_state(run: str | os.PathLike) -> dict[str, Any]:
    """Read a resume state with ``torch.load(weights_only=True)``: nothing is unpickled."""
    path = resume_path(run)
    if not path.is_file():
        raise CheckpointError(f"No resume state at {path}.",
                              "Pass a run folder written by `imgcls train`, e.g. runs/basic-cnn.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message advises weights_only=False, i.e. running the file's code.
        raise CheckpointError(
            f"{path} is not a readable imgcls resume state: it holds objects other than "
            "tensors and plain values, so it was refused.",
            "Resume only runs written by imgcls; start a new run.") from None
    except Exception as exc:  # damaged zip/pickle data surfaces as many exception types
        raise _unreadable(path) from exc
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise CheckpointError(f"{path} is not an imgcls resume state.",
                              "Pass the run folder that holds last.pt.")
    version = state.get("format_version")
    if type(version) is int and version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer imgcls.",
                              "Upgrade imgcls: pip install -U imgcls.")
    check_resume_state(state, path)
    return state


# --------------------------------------------------------------------------- its schema
# Everything fit() reads back, with the type it expects; torch.load has already refused
# anything but tensors and plain values. Tensor shapes are checked when restored.
_RESUME = ConfigDict(strict=True, extra="allow")
Tensor = InstanceOf[torch.Tensor]
Figures = dict[str, float]  # one epoch's metrics; a float field takes ints, refuses bools


class EpochRecord(BaseModel):
    model_config = _RESUME
    __pydantic_extra__: Figures
    epoch: Annotated[int, Field(ge=0)]


@with_config(_RESUME)
class RngState(TypedDict):
    python: list[Any]
    numpy: list[Any]
    torch: Tensor
    cuda: list[Any]


@with_config(_RESUME)
class ResumeState(TypedDict):
    format: Literal["imgcls.resume"]
    format_version: Annotated[int, Field(ge=1, le=FORMAT_VERSION)]
    epoch: Annotated[int, Field(ge=0)]
    config: dict[str, Any]  # checked as a TrainConfig when the run resumes
    classes: list[str]
    model: dict[str, Tensor]
    stepper: dict[str, Any]
    best: Figures
    history: list[EpochRecord]
    rng: RngState


@functools.cache
def _resume_schema() -> TypeAdapter:
    return TypeAdapter(ResumeState)


def check_resume_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Each field of a resume state exists and has the type fit() expects."""
    validate(_resume_schema(), state, CheckpointError,
             f"{path} is not a usable imgcls resume state: ",
             "The file is damaged or from another imgcls version; start a new run.")
