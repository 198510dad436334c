"""Make docs/explain.md's pictures from the cats-vs-dogs photos.

    python benchmarks/explain_figures.py [--data ../shared/data/cats-dogs] [--epochs 10]
                                         [--checkpoint runs/basic-cnn/best.safetensors]

Trains the tutorial's basic-cnn for ``--epochs`` (or takes ``--checkpoint``), then draws
with imgcls.explain what ``imgcls explain`` draws: the Grad-CAM figures (both classes'
maps) of the first validation cat and dog, two of the first cat's feature-map grids (the
first conv's ReLU, the last pool) and the first conv layer's filters. They are written,
palette-reduced to stay small, to docs/images/explain-*.png. Without the photos it says
so and exits.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from hardware import print_header  # benchmarks/hardware.py

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "../shared/data/cats-dogs"
IMAGES = ROOT / "docs" / "images"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="cats-dogs folder (from the repo)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--checkpoint", default=None, help="explain this one, do not train")
    args = parser.parse_args(argv)
    print_header()
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    data = (ROOT / args.data).resolve()
    if not (data / "val" / "cats").is_dir():
        print(f"skipped: the cats-vs-dogs photos are not at {data}")
        return 0
    with tempfile.TemporaryDirectory() as out:
        checkpoint = args.checkpoint or train(data, args.epochs, Path(out))
        draw(Path(checkpoint), data)
    return 0


def train(data: Path, epochs: int, out: Path) -> Path:
    from imgcls.train import fit

    result = fit(model="basic-cnn", data=str(data), epochs=epochs, out=str(out), report=False)
    print(f"basic-cnn, {epochs} epochs: validation accuracy {result.best['val_acc']:.1%}")
    return result.best_path


def _save(name: str, pngs: list[bytes]) -> None:
    from PIL import Image

    parts = [Image.open(io.BytesIO(png)).convert("RGB") for png in pngs]
    sheet = Image.new("RGB", (max(p.width for p in parts), sum(p.height for p in parts)),
                      "white")
    top = 0
    for part in parts:
        sheet.paste(part, (0, top))
        top += part.height
    path = IMAGES / name
    sheet.quantize(128).save(path, optimize=True)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} KB)")


def draw(checkpoint: Path, data: Path) -> None:
    from imgcls.explain import Explainer
    from imgcls.explain.figures import explanation_png, feature_map_png, filters_png

    cat = sorted((data / "val" / "cats").glob("*.jpg"))[0]
    dog = sorted((data / "val" / "dogs").glob("*.jpg"))[0]
    explainer = Explainer(checkpoint, device="cpu")
    explained = explainer.explain([cat, dog], target="cats")
    for item, other in zip(explained, explainer.explain([cat, dog], target="dogs"),
                           strict=True):
        item.cams = {name: item.cams.get(name, other.cams.get(name))
                     for name in explainer.classes}  # both classes' maps, in class order
    _save("explain-cams.png", [explanation_png(e, top_k=2) for e in explained])
    features = {f.name: f for f in explainer.feature_maps(cat)}
    _save("explain-feature-maps.png", [feature_map_png(features[n]) for n in ("1", "5")])
    name, tiles = explainer.filters()
    _save("explain-filters.png", [filters_png(explainer.named(name).short, tiles)])
    for item in explained:
        print(f"{item.source}: {', '.join(f'{n} {p:.0%}' for n, p in item.top(2))}")


if __name__ == "__main__":
    raise SystemExit(main())
