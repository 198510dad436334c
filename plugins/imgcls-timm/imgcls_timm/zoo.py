"""timm's pretrained configs as imgcls specs: preprocessing, weights, head and CAM layer.

Everything here reads timm's registry of pretrained configs; nothing builds a model, so
registering the whole zoo (~3,000 names) stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from imgcls.specs import ModelSpec, Preprocess, WeightsSpec

NAMESPACE = "timm"
DEFAULT_CROP_PCT = 0.875  # timm's own default when a config gives none
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")


def preprocess_from_cfg(cfg: Any) -> Preprocess:
    """imgcls's Preprocess for a timm pretrained config (timm's eval transform).

    timm's ``center`` mode resizes the shorter side to ``floor(size / crop_pct)`` and
    centre-crops ``size``: imgcls's ``shorter`` with ``crop_fraction = crop_pct``.
    ``squash`` stretches to ``size / crop_pct`` and centre-crops: imgcls's ``stretch``,
    exact when ``crop_pct`` is 1. :func:`is_exact` says when the mapping is not exact.
    """
    _, height, width = cfg.input_size
    crop_pct = cfg.crop_pct or DEFAULT_CROP_PCT
    squash = cfg.crop_mode == "squash"
    interpolation = cfg.interpolation if cfg.interpolation in INTERPOLATIONS else "bilinear"
    return Preprocess(size=(height, width), resize="stretch" if squash else "shorter",
                      crop_fraction=1.0 if squash else min(crop_pct, 1.0),
                      interpolation=interpolation, mean=tuple(cfg.mean), std=tuple(cfg.std))


def is_exact(cfg: Any) -> bool:
    """Whether :func:`preprocess_from_cfg` reproduces timm's eval transform exactly."""
    crop_pct = cfg.crop_pct or DEFAULT_CROP_PCT
    mode = cfg.crop_mode or "center"
    return ((mode == "center" and crop_pct <= 1.0) or (mode == "squash" and crop_pct == 1.0)) \
        and cfg.interpolation in INTERPOLATIONS


def cam_layer(model: Any) -> str:
    """The module of the model's last feature level (timm's ``feature_info``), else its last
    conv: the deepest spatial features, as class-activation maps want. A ViT's blocks give
    tokens, not a feature map, so its CAM layer is its last conv (the patch embedding)."""
    from torch import nn

    modules = dict(model.named_modules())
    tokens = getattr(model, "pos_embed", None) is not None
    info = [] if tokens else getattr(model, "feature_info", None) or []
    last = info[-1] if isinstance(info, list) and info else {}
    if isinstance(last, dict) and last.get("module") in modules:
        return last["module"]
    convs = [name for name, module in modules.items() if isinstance(module, nn.Conv2d)]
    return convs[-1] if convs else ""


@functools.lru_cache(maxsize=1)
def imagenet_1k_names() -> tuple[str, ...]:
    """ImageNet-1k's class descriptions, as timm ships them (read once)."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo("imagenet-1k").label_descriptions())


def _categories(cfg: Any) -> tuple[str, ...]:
    from timm.data import infer_imagenet_subset

    # Only ImageNet-1k's names are loaded: the larger label sets cost a read each and
    # matter only to the pretrained head, which fine-tuning replaces anyway.
    if cfg.num_classes == 1000 and not cfg.label_offset and \
            infer_imagenet_subset(cfg) == "imagenet-1k":
        return imagenet_1k_names()
    return ()


def weights_spec(cfg: Any, load: Callable[[Any, Any], None]) -> WeightsSpec:
    """One pretrained tag: fetched from the Hub by timm, or from its URL by imgcls."""
    hub_id = cfg.hf_hub_id or None
    url = None if hub_id else (cfg.url or None)
    return WeightsSpec(tag=cfg.tag, preprocess=preprocess_from_cfg(cfg), hub_id=hub_id, url=url,
                       categories=_categories(cfg), load=load)


def pretrained_tags() -> dict[str, list[str]]:
    """Architecture -> its pretrained tags, the default (timm's first) first."""
    from timm.models import get_pretrained_cfg, list_pretrained

    tags: dict[str, list[str]] = {}
    for full in list_pretrained():
        arch, _, tag = full.partition(".")
        tags.setdefault(arch, []).append(tag)
    for arch, found in tags.items():
        default = get_pretrained_cfg(arch).tag
        if default in found:
            found.remove(default)
            found.insert(0, default)
    return tags


def _describe(arch: str, tag: str | None, cfg: Any, count: int) -> str:
    if tag is None:
        weights = f"{count} pretrained weights, default {cfg.tag}" if count else "no weights"
        text = f"timm {arch} ({weights})"
    else:
        text = f"timm {arch} with {tag} weights ({cfg.num_classes or 'no'} classes)"
    return text if is_exact(cfg) else text + "; preprocessing approximated"


def iter_specs(make_build: Callable[[str, Any], Callable[..., Any]],
               make_load: Callable[[str, Any], Callable[[Any, Any], None]]
               ) -> Iterator[ModelSpec]:
    """``timm/<arch>`` for every architecture and ``timm/<arch>.<tag>`` for every weight."""
    from timm.models import get_pretrained_cfg, list_models

    tags = pretrained_tags()
    for arch in list_models():
        cfg = get_pretrained_cfg(arch)
        if cfg is None or len(cfg.input_size) != 3 or cfg.input_size[0] != 3:
            continue  # imgcls feeds RGB images
        named = [(tag, get_pretrained_cfg(f"{arch}.{tag}")) for tag in tags.get(arch, [])]
        weights = tuple(weights_spec(c, make_load(f"{arch}.{tag}", c)) for tag, c in named)
        yield _spec(arch, None, cfg, weights, make_build(arch, cfg))
        for (tag, tag_cfg), one in zip(named, weights, strict=True):
            yield _spec(arch, tag, tag_cfg, (one,), make_build(f"{arch}.{tag}", tag_cfg))


def _spec(arch: str, tag: str | None, cfg: Any, weights: tuple[WeightsSpec, ...],
          build: Callable[..., Any]) -> ModelSpec:
    name = f"{NAMESPACE}/{arch}" + (f".{tag}" if tag else "")
    head = cfg.classifier if isinstance(cfg.classifier, str) else None
    min_size = cfg.min_input_size[1] if cfg.min_input_size else 32
    return ModelSpec(name, build, preprocess_from_cfg(cfg), _describe(arch, tag, cfg,
                                                                      len(weights)),
                     min_size=min_size, cam_layer=cam_layer, weights=weights, head=head)
