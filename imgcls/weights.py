"""Pretrained weights: fetch (verified, atomic, offline-aware), resolve a choice, apply.

A model spec names its weights (:class:`imgcls.specs.WeightsSpec`); training applies
them once, before the first step. Building a model never touches them, so loading a
checkpoint (eval, export, infer, explain, resume) neither fetches nor loads anything.
Nothing here unpickles: files are read with safetensors or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, ImgclsError
from .io import atomic_open
from .specs import ModelSpec, WeightsSpec

OFFLINE_VARIABLES = ("IMGCLS_OFFLINE", "HF_HUB_OFFLINE")
MIRROR_VARIABLE = "IMGCLS_WEIGHTS_MIRROR"
DEFAULT_CHOICES = ("imagenet", "default")
# torchvision's file names end in the first 8+ hex digits of their sha256 (resnet18-f37072fd.pth).
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.[A-Za-z0-9]+$")
CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(ImgclsError):
    """A weights file could not be downloaded or failed its hash check."""


# --------------------------------------------------------------------------- fetch


def cache_dir() -> Path:
    """torch hub's checkpoints folder (``$TORCH_HOME/hub/checkpoints``), as torchvision uses."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def offline_variable() -> str | None:
    """The environment variable that makes imgcls offline, if one is set."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def expected_hash(sha256: str | None, file_name: str) -> str | None:
    """The digest (or prefix) to check: the given one, else the one in a torchvision name."""
    if sha256:
        return sha256.strip().lower()
    match = HASH_IN_NAME.search(file_name)
    return match.group(1) if match else None


def source_url(url: str, file_name: str, mirror: str | None = None) -> str:
    """Where to download from: ``mirror`` (or $IMGCLS_WEIGHTS_MIRROR) + file name, else url."""
    base = mirror or os.environ.get(MIRROR_VARIABLE, "").strip()
    return f"{base.rstrip('/')}/{file_name}" if base else url


def fetch(url: str, sha256: str | None = None, file_name: str | None = None, *,
          progress: bool = True, mirror: str | None = None) -> Path:
    """The verified local copy of ``url`` in torch hub's cache, downloaded on first use.

    A cached file is used without any request. A download goes to a temporary file in
    the cache folder, is checked against ``sha256`` (a prefix will do; torchvision's
    names carry one) and only then renamed into place, so an interrupted, truncated or
    tampered download leaves nothing that a later run would trust.
    """
    name = file_name or os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ConfigError(f"Cannot tell a file name from the weights URL {url!r}.",
                          "Give the WeightsSpec a file_name.")
    path = cache_dir() / name
    if path.is_file():
        return path
    wanted = source_url(url, name, mirror)
    offline = offline_variable()
    if offline:
        raise ConfigError(f"Offline ({offline}=1): download {wanted} and save it as {path}",
                          f"Or unset {offline}, or set {MIRROR_VARIABLE} to a mirror.")
    path.parent.mkdir(parents=True, exist_ok=True)
    _download(wanted, path, expected_hash(sha256, name), progress)
    return path


def _download(url: str, path: Path, sha256: str | None, progress: bool) -> None:
    with atomic_open(path, suffix=".part") as out:
        digest = _copy(url, out, path.name, progress)
        if sha256 and not digest.startswith(sha256):
            raise DownloadError(f"{url} failed its hash check: sha256 {digest} does not start "
                                f"with {sha256}; the file was removed.",
                                "The download was damaged or the file was replaced; try again "
                                "or check the mirror.")


def _copy(url: str, out: Any, label: str, progress: bool) -> str:
    """Stream ``url`` into ``out``; the sha256 hex digest of what was written."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            for chunk in _chunks(response, total, label, progress):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DownloadError(f"Cannot download {url}: {exc}",
                            "Check the network, or set IMGCLS_WEIGHTS_MIRROR to a reachable "
                            "mirror, or download the file yourself.") from exc
    if total is not None and done != total:
        raise DownloadError(f"Cannot download {url}: the connection closed after {done} of "
                            f"{total} bytes; nothing was kept.", "Try again.")
    return digest.hexdigest()


def _chunks(response: Any, total: int | None, label: str, progress: bool) -> Iterator[bytes]:
    """The response's bytes, chunk by chunk, under a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                   DownloadColumn(), TransferSpeedColumn(), console=Console(stderr=True),
                   disable=not progress)
    with bar:
        task = bar.add_task(f"downloading {label}", total=total)
        while chunk := response.read(CHUNK):
            bar.advance(task, len(chunk))
            yield chunk


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- choose


def resolve_weights(spec: ModelSpec, choice: str) -> tuple[WeightsSpec | None, Path | None]:
    """``imagenet``/``DEFAULT`` (the first weights), a tag, or a local file path.

    Returns ``(weights, None)`` for named weights and ``(None, path)`` for a file; touches
    neither the disk nor the network.
    """
    text = str(choice).strip()
    if text.lower() in DEFAULT_CHOICES:
        if not spec.weights:
            raise ConfigError(f"Model {spec.name!r} has no pretrained weights to start from.",
                              "Pass a weights file with --weights PATH, or pick a model that "
                              "lists weights in `imgcls models`.")
        return spec.weights[0], None
    tags = {w.tag.lower(): w for w in spec.weights}
    if text.lower() in tags:
        return tags[text.lower()], None
    looks_like_path = os.sep in text or "/" in text or Path(text).suffix != ""
    if looks_like_path or not spec.weights:
        return None, Path(text).expanduser()
    raise ConfigError(f"Model {spec.name!r} has no weights {text!r}.",
                      f"Choose imagenet, DEFAULT, {', '.join(w.tag for w in spec.weights)}, "
                      "or a file path.")


def find_head(model: Any, head: str | None = None) -> str:
    """The classification head's dotted name: ``head`` if given, else the last nn.Linear."""
    from torch import nn

    if head:
        return head
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ConfigError("This model has no nn.Linear head to fine-tune.",
                          "Drop --freeze-backbone and --backbone-lr-scale for this model, or "
                          "name its head in the ModelSpec (head=...).")
    return names[-1]


def apply_weights(spec: ModelSpec, model: Any, choice: str, *, progress: bool = True,
                  mirror: str | None = None) -> dict[str, Any]:
    """Load the chosen weights into ``model``; the manifest's record of where they came from."""
    weights, path = resolve_weights(spec, choice)
    if weights is None:
        if not path.is_file():
            raise ConfigError(f"Weights file not found: {path}",
                              "Pass an existing file, or imagenet / a tag listed by "
                              f"`imgcls models --details {spec.name}`.")
        load_state_dict_file(model, path, spec.head, spec.name)
        return {"file": str(path.resolve()), "sha256": file_sha256(path)}
    record: dict[str, Any] = {"tag": weights.tag}
    local = None
    if weights.url:
        local = fetch(weights.url, weights.sha256, weights.file_name, progress=progress,
                      mirror=mirror)
        record |= {"url": weights.url, "sha256": expected_hash(weights.sha256, local.name)}
    elif weights.hub_id:
        record["hub_id"] = weights.hub_id
    if weights.load is not None:
        weights.load(model, local)
    elif local is not None:
        load_state_dict_file(model, local, spec.head, spec.name)
    else:
        raise ConfigError(f"Weights {weights.tag!r} of {spec.name!r} name no file and no "
                          "loader.", "The model's plugin must give a url or a load function.")
    return record


# --------------------------------------------------------------------------- load


def read_state_dict(path: Path) -> Mapping[str, Any]:
    """Tensors from a .safetensors or a torch file, never unpickling code."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many unrelated types
        raise ConfigError(f"Cannot read weights file {path}: {exc}",
                          "Pass a state-dict file (.pth, .pt or .safetensors).") from exc
    for key in ("state_dict", "model"):  # training checkpoints wrap the state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict) and len(state) <= 4:
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ConfigError(f"{path} is not a state dict.", "Save one with torch.save("
                          "model.state_dict(), path) or safetensors.")
    return state


def load_state_dict_file(model: Any, path: Path, head: str | None = None,
                         architecture: str | None = None) -> None:
    """Load a state-dict file into ``model`` as :func:`load_state_dict` does."""
    load_state_dict(model, read_state_dict(path), head, source=str(path),
                    architecture=architecture)


def load_state_dict(model: Any, state: Mapping[str, Any], head: str | None = None, *,
                    source: str = "the weights", architecture: str | None = None) -> None:
    """Load ``state``; head keys of another shape are dropped (the new head stays).

    Every other key must match the model, else one ConfigError naming ``source`` and
    the architecture.
    """
    state = dict(state)
    own = model.state_dict()
    prefix = find_head(model, head) + "."
    for key in [k for k in state if k.startswith(prefix)]:
        if key in own and tuple(state[key].shape) != tuple(own[key].shape):
            del state[key]
    problems = _mismatches(state, own, prefix)
    if problems:
        name = architecture or type(model).__name__
        raise ConfigError(f"{source} does not fit {name}: {'; '.join(problems)}.",
                          "Use weights saved from this exact architecture.")
    model.load_state_dict(state, strict=False)


def _mismatches(state: Mapping[str, Any], own: Mapping[str, Any], head: str) -> list[str]:
    missing = [k for k in own if k not in state and not k.startswith(head)]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected),
                       ("of another shape", shapes)):
        if keys:
            problems.append(f"{len(keys)} keys {what} (e.g. {', '.join(keys[:3])})")
    return problems
