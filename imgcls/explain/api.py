"""``imgcls.explain``: class-activation maps, feature maps and filters of a checkpoint.

Images go through the shared decoder and the model's own ``Preprocess`` (with the
``NormaliseLayer`` module training uses), so what is explained is exactly what the model
sees: the decoded image resized (and cropped) to the model's input size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..data.loader import NormaliseLayer
from ..errors import CheckpointError, ConfigError, DecodeError
from ..images import item_pixels
from ..infer.engine import Failure
from ..manifest import manifest_task
from ..multilabel import decide, thresholds_for
from ..registry import get_model
from ..system import resolve_device
from .cam import CLASS_AGNOSTIC, check_method, library_cams
from .feature_maps import CHANNELS, FeatureMap, feature_maps, first_conv_filters
from .layers import check_layer, default_cam_layer, map_layers
from .names import LayerName, layer_names, named

BATCH = 16


@dataclass
class Explanation:
    """One image explained.

    ``pixels`` (H x W x 3 uint8) is the image as the model saw it, at its input size;
    ``probs`` the class probabilities; ``cams`` one H x W float32 map in [0, 1] per
    explained class: the predicted one (multi-label: each predicted label), and the
    ``target`` when one was asked for. ``layer`` is the CAM layer's module name,
    ``layer_name`` its names for people ("after ReLU 2", ``--layer relu2``).
    """

    source: str
    pixels: np.ndarray
    classes: list[str]
    probs: np.ndarray
    cams: dict[str, np.ndarray]
    method: str
    layer: str
    layer_name: LayerName | None = None

    @property
    def predicted(self) -> str:
        return self.classes[int(self.probs.argmax())]

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes and their probabilities, best first."""
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(self.classes[i], float(self.probs[i])) for i in order]


def checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` when it can be explained: a checkpoint file, never an .onnx model."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(
            f"{path} is an ONNX model: it has no gradients, so its class-activation maps "
            "and feature maps cannot be computed.",
            "Pass the checkpoint it was exported from, e.g. runs/<name>/best.safetensors.")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}",
                              "Pass a best.safetensors file written by imgcls train.")
    return path


class Explainer:
    """A checkpoint ready to explain: CAMs with ``method`` on ``layer`` (default: the model's).

    >>> explainer = Explainer("runs/basic-cnn/best.safetensors")
    >>> explainer.explain(["cat.jpg"])[0].cams["cats"].shape
    """

    def __init__(self, checkpoint: str | os.PathLike, method: str = "gradcam",
                 layer: str | None = None, device: str = "auto") -> None:
        loaded = load_checkpoint(checkpoint_path(checkpoint))
        # Multi-label: sigmoid probabilities, and a CAM per label at or above its threshold.
        self.thresholds = (thresholds_for(loaded.manifest)
                           if manifest_task(loaded.manifest) == "multilabel" else None)
        self.method = check_method(method)
        self.device = resolve_device(device)
        self.classes: list[str] = list(loaded.classes)
        self.preprocess = loaded.preprocess
        self.model = loaded.model.to(self.device).eval()
        self.spec = get_model(loaded.manifest["model"]["name"]).spec
        self.names = layer_names(self.model)
        self.normalise = NormaliseLayer(self.preprocess).to(self.device)
        self._requested = layer
        self._layer: str | None = None

    @property
    def layer(self) -> str:
        """The CAM layer's module name, checked against the layers that output a feature map;
        ``--layer`` may name it as the captions do (``relu2``, ``after ReLU 2``)."""
        if self._layer is None:
            blank = np.zeros((1, *self.preprocess.size, 3), dtype=np.uint8)
            valid = map_layers(self.model, self.inputs(blank))
            wanted = self._requested or default_cam_layer(self.model, self.spec)
            self._layer = check_layer(wanted, valid, self.names, self.spec.name,
                                      requested=self._requested is not None)
        return self._layer

    def named(self, module: str) -> LayerName:
        """A module's names for people: "conv 1 (32 filters)", ``--layer conv1``."""
        return named(self.names, module)

    def inputs(self, pixels: np.ndarray) -> torch.Tensor:
        """N x H x W x 3 uint8 pixels -> the model's float input, on its device."""
        batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)
        return self.normalise(batch.to(self.device))

    def pixels(self, item: Any) -> np.ndarray:
        """A path, PIL image or H x W x C array, decoded and resized as the model sees it."""
        return item_pixels(item, self.preprocess, "explain")

    def target_index(self, target: str | int | None) -> int | None:
        """A class name (or index) -> its index; None stays None."""
        if target is None:
            return None
        if isinstance(target, str) and target in self.classes:
            return self.classes.index(target)
        if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(
                self.classes):
            return target
        raise ConfigError(f"Unknown target class {target!r}.",
                          f"The model's classes are: {', '.join(self.classes)}.")

    def explain(self, items: Any, target: str | int | None = None) -> list[Explanation]:
        """Explain one item or a list (paths, PIL images, arrays); unreadable files raise."""
        items = list(items) if isinstance(items, list | tuple) else [items]
        results: list[Explanation] = []
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            names = [os.fspath(i) if isinstance(i, str | os.PathLike) else "" for i in chunk]
            results += self.explain_pixels(np.stack([self.pixels(i) for i in chunk]), names,
                                           target)
        return results

    def stream(self, paths: Iterable[str | os.PathLike], target: str | int | None = None
               ) -> Iterator[Explanation | Failure]:
        """Explain files in order; an unreadable one is yielded as a Failure, as infer does."""
        batch: list[tuple[str, np.ndarray | Failure]] = []
        for path in paths:
            try:
                batch.append((os.fspath(path), self.pixels(path)))
            except DecodeError as exc:
                batch.append((os.fspath(path), Failure(os.fspath(path), exc.message)))
            if len(batch) == BATCH:
                yield from self._stream_batch(batch, target)
                batch = []
        yield from self._stream_batch(batch, target)

    def _stream_batch(self, batch: list[tuple[str, np.ndarray | Failure]],
                      target: str | int | None) -> Iterator[Explanation | Failure]:
        good = [(name, item) for name, item in batch if isinstance(item, np.ndarray)]
        explained = iter(self.explain_pixels(np.stack([p for _, p in good]),
                                             [n for n, _ in good], target) if good else [])
        for _, item in batch:
            yield item if isinstance(item, Failure) else next(explained)

    def explain_pixels(self, pixels: np.ndarray, names: Sequence[str],
                       target: str | int | None = None) -> list[Explanation]:
        """Explain N x H x W x 3 uint8 pixels at the model's input size."""
        wanted = self.target_index(target)
        layer = self.model.get_submodule(self.layer)
        inputs = self.inputs(pixels)
        maps, logits = library_cams(self.model, inputs, layer, self.method, None)
        if self.thresholds is not None:
            probs = torch.sigmoid(logits.float()).cpu().numpy()
            cams = self._label_set_cams(inputs, layer, probs, maps)
        else:
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
            cams = [{self.classes[int(p.argmax())]: m} for p, m in zip(probs, maps, strict=True)]
        if wanted is not None:
            extra = (maps if self.method in CLASS_AGNOSTIC else
                     library_cams(self.model, inputs, layer, self.method, [wanted] * len(maps))[0])
            for per_image, m in zip(cams, extra, strict=True):
                per_image.setdefault(self.classes[wanted], m)
        return [Explanation(name, pix, self.classes, prob, cam, self.method, self.layer,
                            self.named(self.layer))
                for name, pix, prob, cam in zip(names, pixels, probs, cams, strict=True)]

    def _label_set_cams(self, inputs: torch.Tensor, layer: torch.nn.Module, probs: np.ndarray,
                        maps: np.ndarray) -> list[dict[str, np.ndarray]]:
        """A multi-label model's CAMs: one per predicted label (in class order); an image
        with no label gets its most probable class's, so every image shows a map."""
        chosen = decide(probs, self.thresholds)
        chosen[np.arange(len(probs)), probs.argmax(1)] |= ~chosen.any(1)
        cams: list[dict[str, np.ndarray]] = [{} for _ in probs]
        for c in np.flatnonzero(chosen.any(0)):
            if self.method in CLASS_AGNOSTIC:
                per_class = maps
            else:
                per_class = library_cams(self.model, inputs, layer, self.method,
                                         [int(c)] * len(probs))[0]
            for i in np.flatnonzero(chosen[:, c]):
                cams[i][self.classes[c]] = per_class[i]
        return cams

    def feature_maps(self, item: Any, channels: int = CHANNELS) -> list[FeatureMap]:
        """The maps after each conv, activation and pool for one image."""
        return feature_maps(self.model, self.inputs(self.pixels(item)[None]), channels)

    def filters(self) -> tuple[str, np.ndarray]:
        """The first conv layer's name and its kernels as (out, kh, kw, 3) RGB tiles."""
        return first_conv_filters(self.model, bgr=self.preprocess.flip_channels)


def explain(checkpoint: str | os.PathLike, images: Any, method: str = "gradcam",
            layer: str | None = None, target: str | int | None = None,
            device: str = "auto") -> list[Explanation]:
    """Class-activation maps of a checkpoint for images (paths, PIL images or arrays).

    ``method`` is gradcam, gradcam++, layercam, hirescam or eigencam; ``layer`` a module name
    or a caption's name such as ``relu2`` (default: the model's last conv block);
    ``target`` a class to explain besides the predicted one. Each :class:`Explanation`
    holds the model-sized pixels, the class probabilities and an H x W map in [0, 1] per
    explained class.
    """
    return Explainer(checkpoint, method, layer, device).explain(images, target)
