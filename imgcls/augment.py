"""Parse ``--augment`` strings and build the augmentation pipeline from plugins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, ImgclsError
from .registry import get_augmentation

# Named pipelines; `seed` is the Keras tutorial's ImageDataGenerator settings.
PRESETS: dict[str, str] = {
    "none": "",
    "seed": "flip,shear=0.2,zoom=0.2",
}
DEFAULT_AUGMENT = "seed"


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.2' -> 0.2, 'true' -> True, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_augment(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Split ``"flip,shear=0.2,color-jitter:brightness=0.3:contrast=0.2"`` into steps."""
    text = PRESETS.get(text.strip(), text)
    steps: list[tuple[str, dict[str, Any]]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item in PRESETS:
            steps.extend(parse_augment(PRESETS[item]))
            continue
        name, _, rest = item.partition(":")
        params: dict[str, Any] = {}
        if "=" in name:
            name, value = name.split("=", 1)
            params[""] = parse_value(value)
        for pair in filter(None, rest.split(":")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError(f"Bad augmentation parameter {pair!r} in {item!r}.",
                                  "Write parameters as name:key=value:key=value.")
            params[key.strip().replace("-", "_")] = parse_value(value)
        steps.append((name.strip(), params))
    return steps


@dataclass
class Pipeline:
    """Per-sample transforms, then batch-level transforms (mixup, cutmix)."""

    sample: list[Callable] = field(default_factory=list)
    batch: list[Callable] = field(default_factory=list)
    description: str = "none"

    def __call__(self, image: Any) -> Any:
        for transform in self.sample:
            image = transform(image)
        return image


def build_pipeline(text: str) -> Pipeline:
    """Build the augmentation pipeline named by an ``--augment`` string."""
    pipeline = Pipeline(description=text or "none")
    for name, params in parse_augment(text):
        spec = get_augmentation(name).spec
        if "" in params:
            if spec.primary is None:
                raise ConfigError(f"Augmentation {name!r} takes no value.",
                                  f"Write it as {name!r} or with name:key=value parameters.")
            params[spec.primary] = params.pop("")
        try:
            transform = spec.build(**params)
        except ImgclsError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Invalid parameters for augmentation {name!r}: {exc}",
                              "Run `imgcls plugins --augmentations` to see each one's options."
                              ) from exc
        (pipeline.batch if spec.level == "batch" else pipeline.sample).append(transform)
    return pipeline
