"""Inference: onnxruntime sessions, provider choice, and a streaming batch engine."""

from __future__ import annotations

import glob
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import MANIFEST_KEY, load_checkpoint, parse_manifest
from .errors import CheckpointError, DataError, DecodeError, DeviceError
from .images import is_image_file, load_pixels, to_pixels
from .specs import Preprocess


def gpu_available() -> bool:
    """True when a CUDA GPU is usable; asked of torch so onnxruntime prints no errors."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def choose_providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    device = device.lower()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    cuda_ok = "CUDAExecutionProvider" in available and gpu_available()
    if device == "cuda" and not cuda_ok:
        raise DeviceError("CUDA was requested but onnxruntime cannot use a GPU here.",
                          "Install onnxruntime-gpu on a machine with an NVIDIA GPU, or use "
                          "--device cpu.")
    if device not in ("auto", "cuda"):
        raise DeviceError(f"Unknown device {device!r}.", "Use --device auto, cpu or cuda.")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_ok else [
        "CPUExecutionProvider"]


def make_session(path: str | os.PathLike, device: str = "auto") -> Any:
    """An onnxruntime session; fails if CUDA was asked for but did not become active."""
    import onnxruntime as ort

    providers = choose_providers(device)
    try:
        session = ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise CheckpointError(f"onnxruntime cannot load {path}: {exc}",
                              "Pass an .onnx file written by `imgcls export onnx`.") from exc
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise DeviceError("CUDA was requested but onnxruntime fell back to the CPU.",
                          "Check the CUDA and cuDNN versions onnxruntime-gpu needs.")
    return session


def read_onnx_manifest(session: Any, path: str | os.PathLike) -> dict[str, Any]:
    props = session.get_modelmeta().custom_metadata_map
    if MANIFEST_KEY not in props:
        raise CheckpointError(f"{path} has no imgcls manifest in its metadata.",
                              "Export the model with `imgcls export onnx`.")
    return parse_manifest(props[MANIFEST_KEY], str(path))


# --------------------------------------------------------------------------- runners


class OnnxRunner:
    """Runs an exported model with onnxruntime; needs nothing but the .onnx file."""

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        self.session = make_session(path, device)
        self.manifest = read_onnx_manifest(self.session, path)
        self.input_name = self.session.get_inputs()[0].name
        outputs = self.session.get_outputs()[0].shape
        if isinstance(outputs[-1], int) and outputs[-1] != len(self.manifest["classes"]):
            raise CheckpointError(
                f"{path}: the model has {outputs[-1]} outputs but its manifest lists "
                f"{len(self.manifest['classes'])} classes.", "Re-export the model.")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


class TorchRunner:
    """Runs a checkpoint with PyTorch."""

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        import torch

        from .devices import resolve_device

        loaded = load_checkpoint(path)
        self.device = resolve_device(device)
        self.model = loaded.model.to(self.device)
        self.manifest = loaded.manifest
        self._torch = torch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            x = self._torch.from_numpy(batch).to(self.device)
            return self.model(x).float().cpu().numpy()


def open_model(path: str | os.PathLike, device: str = "auto") -> OnnxRunner | TorchRunner:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Model file not found: {path}",
                              "Pass an .onnx file or a best.safetensors checkpoint.")
    if path.suffix.lower() == ".onnx":
        return OnnxRunner(path, device)
    return TorchRunner(path, device)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- inputs


def iter_inputs(inputs: Sequence[str | os.PathLike]) -> Iterator[Path]:
    """Files, folders (recursively) and glob patterns -> image paths, each input sorted."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(str(item), recursive=True)
                           if Path(p).is_file() and is_image_file(p))
        if not found:
            raise DataError(
                f"No images found for input {str(item)!r}.",
                "Pass image files, folders of images, or a quoted glob like 'imgs/*.jpg'.")
        yield from found


# --------------------------------------------------------------------------- engine


@dataclass
class Prediction:
    path: str
    labels: list[str]
    scores: list[float]

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def confidence(self) -> float:
        return self.scores[0]


@dataclass
class Failure:
    path: str
    reason: str


def _top_k(probs: np.ndarray, classes: list[str], k: int) -> list[tuple[list[str], list[float]]]:
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [([classes[i] for i in row], [float(p[i]) for i in row])
            for row, p in zip(order, probs, strict=True)]


def _decode_or_fail(path: Path, preprocess: Preprocess) -> np.ndarray | Failure:
    try:
        return load_pixels(path, preprocess)
    except DecodeError as exc:
        return Failure(str(path), exc.message)


def predict_stream(
    runner: OnnxRunner | TorchRunner,
    paths: Iterable[Path],
    batch_size: int = 64,
    top_k: int = 1,
    workers: int | None = None,
    prefetch: int = 2,
) -> Iterator[Prediction | Failure]:
    """Decode in worker threads while the model runs; memory stays bounded by prefetch."""
    manifest = runner.manifest
    classes: list[str] = manifest["classes"]
    preprocess = Preprocess.from_dict(manifest["preprocess"])
    outputs_probabilities = manifest.get("export", {}).get("outputs") == "probabilities"
    k = max(1, min(top_k, len(classes)))
    iterator = iter(paths)
    pending: deque[list[tuple[Path, Future]]] = deque()
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        def submit_next() -> bool:
            chunk = list(islice(iterator, batch_size))
            if chunk:
                pending.append([(p, pool.submit(_decode_or_fail, p, preprocess)) for p in chunk])
            return bool(chunk)

        for _ in range(prefetch + 1):
            submit_next()
        while pending:
            batch = pending.popleft()
            submit_next()
            yield from _run_batch(runner, batch, preprocess, classes, k, outputs_probabilities)


def _run_batch(runner: OnnxRunner | TorchRunner, batch: list[tuple[Path, Future]],
               preprocess: Preprocess, classes: list[str], k: int, are_probs: bool
               ) -> Iterator[Prediction | Failure]:
    good: list[tuple[Path, np.ndarray]] = []
    for path, future in batch:
        result = future.result()
        if isinstance(result, Failure):
            yield result
        else:
            good.append((path, result))
    if not good:
        return
    inputs = preprocess.apply(np.stack([pixels for _, pixels in good]))
    outputs = runner(inputs)
    probs = outputs if are_probs else softmax(outputs.astype(np.float64))
    for (path, _), (labels, scores) in zip(good, _top_k(probs, classes, k), strict=True):
        yield Prediction(str(path), labels, scores)


# --------------------------------------------------------------------------- Python API


class Classifier:
    """Load an .onnx model or a checkpoint and classify paths, PIL images or arrays."""

    def __init__(self, runner: OnnxRunner | TorchRunner) -> None:
        self.runner = runner
        self.manifest = runner.manifest
        self.classes: list[str] = list(self.manifest["classes"])
        self.preprocess = Preprocess.from_dict(self.manifest["preprocess"])

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> Classifier:
        return cls(open_model(path, device))

    def predict(self, items: Any, top_k: int = 1, batch_size: int = 64) -> list[Prediction]:
        """Classify one item or a list of items (paths, PIL images, HxWxC arrays)."""
        if not isinstance(items, list | tuple):
            items = [items]
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            pixels = np.stack([self._pixels(item) for item in chunk])
            outputs = self.runner(self.preprocess.apply(pixels))
            are_probs = self.manifest.get("export", {}).get("outputs") == "probabilities"
            probs = outputs if are_probs else softmax(outputs.astype(np.float64))
            k = max(1, min(top_k, len(self.classes)))
            for item, (labels, scores) in zip(chunk, _top_k(probs, self.classes, k), strict=True):
                name = str(item) if isinstance(item, str | os.PathLike) else ""
                results.append(Prediction(name, labels, scores))
        return results

    def _pixels(self, item: Any) -> np.ndarray:
        if isinstance(item, str | os.PathLike):
            return load_pixels(item, self.preprocess)
        return to_pixels(item, self.preprocess)
