"""Pretrained weights through timm's own loader (Hugging Face cache, HF_ENDPOINT, offline).

timm adapts a checkpoint to the model it builds (its per-architecture filter resizes
position embeddings, drops a head of another size), so the weights are loaded into a
model timm builds with ``pretrained=True`` and copied over: the same result as
``timm.create_model(name, pretrained=True, num_classes=...)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgcls.errors import ConfigError

OFFLINE_VARIABLES = ("IMGCLS_OFFLINE", "HF_HUB_OFFLINE")
# What timm's Hub loader looks for, in its order: safetensors before pickle-free torch files.
HUB_FILES = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin")


def offline_variable() -> str | None:
    """The environment variable that keeps imgcls (and the Hub client) offline, if set."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def hub_url(hub_id: str, file_name: str = HUB_FILES[0]) -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/{hub_id}/resolve/main/{file_name}"


def cached_hub_file(hub_id: str, file_name: str | None = None) -> Path | None:
    """The Hub file already in the Hugging Face cache, without any request."""
    from huggingface_hub import try_to_load_from_cache

    for name in (file_name,) if file_name else HUB_FILES:
        found = try_to_load_from_cache(hub_id, name)
        if isinstance(found, str):
            return Path(found)
    return None


def _offline_file(cfg: Any, variable: str) -> Path:
    found = cached_hub_file(cfg.hf_hub_id, cfg.hf_hub_filename)
    if found is None:
        url = hub_url(cfg.hf_hub_id, cfg.hf_hub_filename or HUB_FILES[0])
        raise ConfigError(
            f"Weights {cfg.hf_hub_id} are not in the Hugging Face cache and {variable} is set.",
            f"Fetch {url} and pass it with --weights PATH, or run once online "
            "(HF_ENDPOINT names a mirror).")
    return found


def make_load(timm_name: str, cfg: Any) -> Callable[[Any, Path | None], None]:
    """``load(model, path)`` for one pretrained tag: ``path`` is a fetched file, or None
    for Hub weights, which timm fetches into the Hugging Face cache."""

    def load(model: Any, path: Path | None) -> None:
        import timm

        overlay: dict[str, Any] = {}
        variable = offline_variable()
        if path is not None:
            overlay["file"] = str(path)
        elif variable and cfg.hf_hub_id:
            overlay["file"] = str(_offline_file(cfg, variable))
        options = getattr(model, "imgcls_timm_options", {})
        try:
            source = timm.create_model(timm_name, pretrained=True,
                                       num_classes=model.num_classes,
                                       pretrained_cfg_overlay=overlay, **options)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            where = overlay.get("file") or (hub_url(cfg.hf_hub_id) if cfg.hf_hub_id else cfg.url)
            raise ConfigError(f"Cannot load the {timm_name} weights from {where}: {exc}",
                              "Check the network (HF_ENDPOINT for a mirror, HF_HUB_OFFLINE=1 "
                              "to use the cache only), or pass a file with --weights PATH."
                              ) from exc
        model.load_state_dict(source.state_dict())

    return load
