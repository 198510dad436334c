"""The Classifier Python API: classify paths, PIL images or arrays in a few lines."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import ConfigError, DecodeError
from ..images import item_pixels
from ..specs import Preprocess
from .engine import Failure, LabelSets, Prediction, predict_stream, predictions
from .runners import Runner, open_model


class Classifier:
    """Load an .onnx model or a checkpoint and classify paths, PIL images or arrays.

    >>> clf = Classifier.load("model.onnx")
    >>> clf.predict(["a.jpg", "b.jpg"], top_k=2)[0].label

    A multi-label model's predictions carry ``label_set`` (the classes at or above
    their thresholds, possibly none) and ``class_probs``; ``threshold`` replaces the
    model's per-class thresholds.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.manifest = runner.manifest
        self.classes: list[str] = list(self.manifest["classes"])
        self.preprocess = Preprocess.from_dict(self.manifest["preprocess"])

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto",
             tta: str = "none") -> Classifier:
        """``tta="flip"`` averages each image's logits with its mirror image's."""
        return cls(open_model(path, device, tta=tta))

    def predict(self, items: Any, top_k: int = 1, batch_size: int = 64,
                threshold: float | None = None) -> list[Prediction]:
        """Classify one item or a list of items (paths, PIL images, HxWxC arrays).

        An NxHxWxC array is a batch of N images. Unreadable files raise DecodeError.
        """
        check_counts(top_k, batch_size)
        items = _as_list(items)
        k = min(top_k, len(self.classes))
        decider = LabelSets.of(self.manifest, threshold)
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            pixels = np.stack([self._pixels(item) for item in chunk])
            names = [os.fspath(item) if isinstance(item, str | os.PathLike) else ""
                     for item in chunk]
            results.extend(predictions(names, self.runner.probabilities(pixels), self.classes,
                                       k, decider))
        return results

    def stream(self, paths: Iterable[str | os.PathLike], top_k: int = 1, batch_size: int = 64,
               workers: int | None = None, threshold: float | None = None
               ) -> Iterator[Prediction | Failure]:
        """Classify many files with the streaming engine; failures are yielded, not raised."""
        check_counts(top_k, batch_size)
        return predict_stream(self.runner, paths, batch_size, top_k, workers,
                              threshold=threshold)

    def _pixels(self, item: Any) -> np.ndarray:
        if isinstance(item, np.ndarray):
            check_array(item)
        return item_pixels(item, self.preprocess)


def check_counts(top_k: int, batch_size: int) -> None:
    """top_k and batch_size of at least 1: 0 or -1 would silently mean something else."""
    for name, value in (("top_k", top_k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}.",
                              f"For example: {name}=1." if name == "top_k" else
                              f"For example: {name}=64.")


def check_array(array: np.ndarray) -> None:
    """A float image must hold finite values in [0, 1] or [0, 255]: anything else is a bug
    upstream that would otherwise give normal-looking scores."""
    if array.dtype.kind != "f" or array.size == 0:
        return
    if not np.isfinite(array).all():
        raise DecodeError("The image array holds NaN or infinite values.",
                          "Pass pixels in [0, 1] or [0, 255] (uint8 is safest).")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 255:
        raise DecodeError(f"The image array's values run from {low:g} to {high:g}, outside "
                          "[0, 255].", "Pass pixels in [0, 1] or [0, 255] (uint8 is safest).")


def _as_list(items: Any) -> list[Any]:
    if isinstance(items, np.ndarray) and items.ndim == 4:
        return list(items)
    if isinstance(items, list | tuple):
        return list(items)
    return [items]
