"""What ``imgcls explain`` writes: one PNG per image or layer, and explain.html linking them."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoint import atomic_write_bytes
from ..infer.engine import Failure
from ..infer.sources import iter_paths
from .api import Explainer, Explanation
from .feature_maps import FeatureMap
from .figures import explanation_png, feature_map_png, filters_png

PAGE = "explain.html"
FEATURE_DIR = "feature-maps"
FILTERS = "filters.png"


@dataclass
class Written:
    """The files of one ``imgcls explain`` run, for explain.html and the summary line."""

    out_dir: Path
    explained: list[tuple[Explanation, Path]] = field(default_factory=list)
    features: list[tuple[FeatureMap, Path]] = field(default_factory=list)
    filters: tuple[str, Path] | None = None
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
    """One grid PNG per layer, numbered in the order the layers ran."""
    for index, feature in enumerate(explainer.feature_maps(path)):
        target = written.out_dir / FEATURE_DIR / f"{index:02d}-{_safe(feature.name)}.png"
        atomic_write_bytes(target, feature_map_png(feature))
        written.features.append((feature, target))


def write_filters(explainer: Explainer, written: Written) -> None:
    name, tiles = explainer.filters()
    atomic_write_bytes(written.out_dir / FILTERS, filters_png(name, tiles))
    written.filters = (name, written.out_dir / FILTERS)


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


_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
figure{margin:0 0 1.2rem 0}figcaption{font-size:.85rem}img{max-width:100%}
.grid{display:flex;flex-wrap:wrap;gap:1rem}.grid figure{max-width:560px}"""


def _figure(src: Path, root: Path, caption: str) -> str:
    rel = html.escape(os.path.relpath(src, root).replace(os.sep, "/"), quote=True)
    return f'<figure><img src="{rel}" alt=""><figcaption>{caption}</figcaption></figure>'


def render_page(written: Written, checkpoint: str, model: str) -> str:
    """explain.html: every picture of the run, with what it shows."""
    root, esc, parts = written.out_dir, html.escape, []
    if written.explained:
        first = written.explained[0][0]
        parts.append(f"<h2>Class-activation maps ({esc(first.method)} on layer "
                     f"<code>{esc(first.layer)}</code>)</h2><div class='grid'>")
        for item, png in written.explained:
            label, p = item.top(1)[0]
            parts.append(_figure(png, root, f"{esc(item.source)}: <b>{esc(label)}</b> "
                                            f"({p:.0%})"))
        parts.append("</div>")
    if written.features:
        parts.append("<h2>Feature maps</h2>")
        parts += [_figure(png, root, f"<code>{esc(f.name)}</code> {esc(f.module)} "
                                     f"({esc(f.kind)}), {' x '.join(map(str, f.shape))}")
                  for f, png in written.features]
    if written.filters:
        name, png = written.filters
        parts.append(f"<h2>Filters of <code>{esc(name)}</code></h2>{_figure(png, root, '')}")
    if written.failures:
        parts.append("<h2>Unreadable images</h2><ul>" + "".join(
            f"<li>{esc(f.path)}: {esc(f.reason)}</li>" for f in written.failures) + "</ul>")
    title = f"imgcls explain: {esc(checkpoint)}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}'
            f"</title><style>{_STYLE}</style></head><body><h1>{title}</h1>"
            f"<p>model <b>{esc(model)}</b></p>{''.join(parts)}</body></html>\n")


def write_page(written: Written, checkpoint: str, model: str) -> Path:
    atomic_write_bytes(written.page, render_page(written, checkpoint, model).encode("utf-8"))
    return written.page
