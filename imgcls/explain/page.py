"""What ``imgcls explain`` writes: one PNG per image or layer, and explain.html linking them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import report
from ..infer.engine import Failure
from ..infer.sources import iter_paths
from ..io import atomic_write_bytes, atomic_write_text
from .api import Explainer, Explanation
from .feature_maps import FeatureMap
from .figures import explanation_png, feature_map_png, filters_png
from .names import LayerName, named

PAGE = "explain.html"
FEATURE_DIR = "feature-maps"
FILTERS = "filters.png"


@dataclass
class Written:
    """The files of one ``imgcls explain`` run, for explain.html and the summary line."""

    out_dir: Path
    explained: list[tuple[Explanation, Path]] = field(default_factory=list)
    features: list[tuple[FeatureMap, Path]] = field(default_factory=list)
    filters: tuple[LayerName, tuple[int, ...], Path] | None = None  # layer, tiles' shape
    failures: list[Failure] = field(default_factory=list)

    @property
    def page(self) -> Path:
        return self.out_dir / PAGE


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "image"


def write_cams(explainer: Explainer, paths: Iterable[str], written: Written,
               target: str | None = None, top_k: int = 5) -> None:
    """One PNG per readable image (overlays and votes); unreadable ones become Failures."""
    taken: set[str] = set()
    for item in explainer.stream(paths, target):
        if isinstance(item, Failure):
            written.failures.append(item)
            continue
        stem = _safe(Path(item.source).stem)
        name, n = f"{stem}.png", 2
        while name in taken:  # photos of the same name in different folders
            name, n = f"{stem}-{n}.png", n + 1
        taken.add(name)
        atomic_write_bytes(written.out_dir / name, explanation_png(item, top_k))
        written.explained.append((item, written.out_dir / name))


def write_feature_maps(explainer: Explainer, path: str, written: Written) -> None:
    """One grid PNG per layer, numbered in the order the layers ran, named as ``--layer``
    names it (``01-relu1.png``)."""
    for index, feature in enumerate(explainer.feature_maps(path)):
        option = feature.layer.option if feature.layer else feature.name
        target = written.out_dir / FEATURE_DIR / f"{index:02d}-{_safe(option)}.png"
        atomic_write_bytes(target, feature_map_png(feature))
        written.features.append((feature, target))


def write_filters(explainer: Explainer, written: Written) -> None:
    name, tiles = explainer.filters()
    layer = explainer.named(name)
    atomic_write_bytes(written.out_dir / FILTERS, filters_png(layer.short, tiles))
    written.filters = (layer, tiles.shape, written.out_dir / FILTERS)


def write_explanations(explainer: Explainer, images: list[str], out_dir: str | os.PathLike, *,
                       feature_maps: bool = False, filters: bool = False,
                       target: str | None = None, top_k: int = 5) -> Written:
    """What ``imgcls explain`` writes: CAM figures of ``images`` (files, folders, globs),
    or with ``feature_maps`` the grids of the first one; with ``filters`` the kernels."""
    written = Written(Path(out_dir))

    def unlisted(path: str, reason: str) -> None:  # a folder entry that cannot be read
        written.failures.append(Failure(path, reason))

    if feature_maps:
        write_feature_maps(explainer, images[0], written)
    elif images:
        write_cams(explainer, iter_paths(images, unlisted), written, target, top_k)
    if filters:
        write_filters(explainer, written)
    return written


def _link(src: Path, root: Path) -> str:
    # The PNGs sit beside the page: relative links keep the folder movable as a whole.
    return os.path.relpath(src, root).replace(os.sep, "/")


def render_page(written: Written, checkpoint: str, model: str) -> str:
    """explain.html: every picture of the run, with what it shows."""
    root = written.out_dir
    first = written.explained[0][0] if written.explained else None
    cams = [{"src": _link(png, root), "source": item.source, "label": item.top(1)[0][0],
             "p": item.top(1)[0][1]} for item, png in written.explained]
    features = [{"src": _link(png, root), "name": f.name, "module": f.module,
                 "label": f.label, "option": f.layer.option if f.layer else f.name,
                 "shape": f.shape} for f, png in written.features]
    filters = None
    if written.filters:
        layer, shape, png = written.filters
        filters = {"layer": layer, "count": shape[0], "kernel": shape[1:3],
                   "src": _link(png, root)}
    layer = first and (first.layer_name or named({}, first.layer))
    return report.render_page(
        "explain.html.j2", title=f"imgcls explain: {checkpoint}", model=model, cams=cams,
        method=first.method if first else "", layer=layer, features=features,
        filters=filters, failures=written.failures)


def write_page(written: Written, checkpoint: str, model: str) -> Path:
    return atomic_write_text(written.page, render_page(written, checkpoint, model))
