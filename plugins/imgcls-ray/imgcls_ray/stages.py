"""The pipeline's two stages, as Ray Data runs them on the workers.

They call the same code as ``imgcls infer``: the decode workers' ``decode_chunk``
(the shared decoder, with its failures), ``OnnxRunner.probabilities`` and
``ranked_labels``, so a row here equals the local engine's row for the same file.
Nothing here imports Ray or torch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from imgcls.errors import DecodeError
from imgcls.images import load_pixels
from imgcls.infer.engine import LabelSets, decode_chunk, predictions, ranked_labels
from imgcls.infer.runners import OnnxRunner, with_tta
from imgcls.infer.writers import csv_header
from imgcls.specs import Preprocess

from .inputs import decode_uri, is_uri

Batch = dict[str, np.ndarray]


def decode_batch(batch: Batch, preprocess: Preprocess) -> Batch:
    """paths -> uint8 pixels; an unreadable file keeps its row, with zeros and its error."""
    paths = [str(path) for path in batch["path"]]
    chunk = decode_chunk([p for p in paths if not is_uri(p)], preprocess)
    pixels = dict(zip(chunk.paths, chunk.pixels, strict=True))
    errors = {failure.path: failure.reason for failure in chunk.failures}
    for uri in (p for p in paths if is_uri(p)):
        try:
            pixels[uri] = decode_uri(uri, lambda data: load_pixels(data, preprocess))
        except DecodeError as exc:
            errors[uri] = exc.message
    height, width = preprocess.size
    out = np.zeros((len(paths), height, width, 3), np.uint8)
    for row, path in enumerate(paths):
        if path in pixels:
            out[row] = pixels[path]
    return {"path": np.array(paths, dtype=object), "pixels": out,
            "error": np.array([errors.get(p, "") for p in paths], dtype=object)}


def rank_columns(top_k: int, classes: list[str] | None = None) -> list[str]:
    """``label, confidence, label_2, confidence_2, ...``: the CSV's columns after path
    (a multi-label model's: ``labels, prob_<class>, ...``)."""
    return csv_header(top_k, classes)[1:]


class Classify:
    """One onnxruntime session per actor; the model comes as bytes, so no node needs the file."""

    def __init__(self, model: bytes, device: str, threads: int, top_k: int,
                 tta: str = "none", threshold: float | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="imgcls-ray-") as folder:
            path = Path(folder) / "model.onnx"
            path.write_bytes(model)
            self.runner = with_tta(OnnxRunner(path, device, threads), tta)
        self.classes: list[str] = self.runner.manifest["classes"]
        self.k = min(top_k, len(self.classes))
        self.decider = LabelSets.of(self.runner.manifest, threshold)

    def __call__(self, batch: Batch) -> Batch:
        errors = batch["error"]
        good = np.array([not error for error in errors], dtype=bool)
        if self.decider is not None:
            return self._label_sets(batch, good)
        started = time.perf_counter()
        ranked = (ranked_labels(self.runner.probabilities(batch["pixels"][good]),
                                self.classes, self.k) if good.any() else [])
        seconds = time.perf_counter() - started
        n = len(errors)
        labels = np.full((n, self.k), "", dtype=object)
        scores = np.full((n, self.k), np.nan, dtype=np.float64)
        for row, (names, probabilities) in zip(np.flatnonzero(good), ranked, strict=True):
            labels[row], scores[row] = names, probabilities
        out: Batch = {"path": batch["path"], "error": errors}
        columns = rank_columns(self.k)
        for rank in range(self.k):
            out[columns[2 * rank]] = labels[:, rank]
            out[columns[2 * rank + 1]] = scores[:, rank]
        out["batch_seconds"] = np.full(n, seconds)
        out["provider"] = np.full(n, self.runner.providers[0], dtype=object)
        return out

    def _label_sets(self, batch: Batch, good: np.ndarray) -> Batch:
        """A multi-label model's rows: the label set and each class's probability, made
        by the local engine's ``predictions``."""
        started = time.perf_counter()
        probs = (self.runner.probabilities(batch["pixels"][good]) if good.any()
                 else np.zeros((0, len(self.classes))))
        seconds = time.perf_counter() - started
        n = len(good)
        labels = np.full(n, "", dtype=object)
        values = np.full((n, len(self.classes)), np.nan, dtype=np.float64)
        rows = predictions([""] * len(probs), probs, self.classes, self.k, self.decider)
        for row, prediction in zip(np.flatnonzero(good), rows, strict=True):
            labels[row] = ";".join(prediction.label_set or ())
            values[row] = prediction.class_probs
        columns = rank_columns(self.k, self.classes)
        out: Batch = {"path": batch["path"], "error": batch["error"], columns[0]: labels}
        for j, name in enumerate(columns[1:]):
            out[name] = values[:, j]
        out["batch_seconds"] = np.full(n, seconds)
        out["provider"] = np.full(n, self.runner.providers[0], dtype=object)
        return out
