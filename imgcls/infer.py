"""Inference: model runners, the ``imgcls infer`` job, and the Classifier Python API.

Sessions and providers live in providers.py, the batch engine in engine.py and
input streaming in inputs.py; their public names are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import (
    DEFAULT_BACKEND,
    EngineStats,
    Failure,
    Prediction,
    default_workers,
    predict_stream,
    ranked_labels,
    usable_cores,
)
from .errors import CheckpointError, ConfigError, DecodeError
from .images import load_pixels, to_pixels
from .inputs import check_inputs, in_shard, iter_inputs, iter_paths, parse_shard
from .manifest import MANIFEST_KEY, parse_manifest
from .providers import CPU, choose_providers, gpu_available, make_session, uses_cuda
from .specs import Preprocess

if TYPE_CHECKING:
    from .predictions import Summary

__all__ = ["Classifier", "EngineStats", "Failure", "InferOptions", "OnnxRunner", "Prediction",
           "TorchRunner", "choose_providers", "gpu_available", "iter_inputs", "make_session",
           "open_model", "predict_stream", "read_onnx_manifest", "run_inference", "softmax"]

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                "tensor(uint8)": np.uint8, "tensor(double)": np.float64}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def export_info(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's export section ({} for checkpoints)."""
    info = manifest.get("export")
    return info if isinstance(info, dict) else {}


def read_onnx_manifest(session: Any, path: str | os.PathLike) -> dict[str, Any]:
    props = session.get_modelmeta().custom_metadata_map
    if MANIFEST_KEY not in props:
        raise CheckpointError(f"{path} has no imgcls manifest in its metadata.",
                              "Export the model with `imgcls export onnx`.")
    return parse_manifest(props[MANIFEST_KEY], str(path))


# --------------------------------------------------------------------------- runners


class IoBinding:
    """IO binding: inputs and outputs in reused device buffers, one pair per batch shape.

    On CUDA this saves allocating and copying through onnxruntime's defaults on
    every batch; ``device="cpu"`` exists so the logic can be tested anywhere.
    """

    def __init__(self, session: Any, input_name: str, output_name: str, out_dtype: Any,
                 device: str = "cuda") -> None:
        import onnxruntime as ort

        self._ort = ort
        self.device = device
        self.session = session
        self.input_name, self.output_name, self.out_dtype = input_name, output_name, out_dtype
        self._buffers: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def __call__(self, batch: np.ndarray, classes: int) -> np.ndarray:
        batch = np.ascontiguousarray(batch)
        key = batch.shape
        if key not in self._buffers:
            if len(self._buffers) >= 4:  # full batches plus a few odd last-batch sizes
                self._buffers.clear()
            inputs = self._ort.OrtValue.ortvalue_from_numpy(batch, self.device, 0)
            outputs = self._ort.OrtValue.ortvalue_from_shape_and_type(
                (len(batch), classes), self.out_dtype, self.device, 0)
            self._buffers[key] = (inputs, outputs)
        else:
            self._buffers[key][0].update_inplace(batch)
        inputs, outputs = self._buffers[key]
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, inputs)
        binding.bind_ortvalue_output(self.output_name, outputs)
        self.session.run_with_iobinding(binding)
        # A copy: the buffer is overwritten by the next batch (N x classes, cheap).
        return np.array(outputs.numpy(), copy=True)


class OnnxRunner:
    """Runs an exported model with onnxruntime; needs nothing but the .onnx file."""

    def __init__(self, path: str | os.PathLike, device: str = "auto",
                 threads: int | None = None) -> None:
        self.session = make_session(path, device, threads)
        self.manifest = read_onnx_manifest(self.session, path)
        self.preprocess = Preprocess.from_dict(self.manifest["preprocess"])
        info = export_info(self.manifest)
        self.embedded = info.get("preprocessing") == "embedded"
        self.outputs_probabilities = info.get("outputs") == "probabilities"
        inputs, outputs = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name, self.output_name = inputs.name, outputs.name
        self.input_dtype = _NUMPY_TYPES.get(inputs.type, np.float32)
        self.classes = len(self.manifest["classes"])
        if isinstance(outputs.shape[-1], int) and outputs.shape[-1] != self.classes:
            raise CheckpointError(
                f"{path}: the model has {outputs.shape[-1]} outputs but its manifest lists "
                f"{self.classes} classes.", "Re-export the model.")
        self.providers: list[str] = list(self.session.get_providers())
        self._binding = (IoBinding(self.session, self.input_name, self.output_name,
                                      _NUMPY_TYPES.get(outputs.type, np.float32))
                         if uses_cuda(self.session) else None)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run the graph on its own input (float NCHW, or uint8 NHWC when embedded)."""
        batch = batch.astype(self.input_dtype, copy=False)
        if self._binding is not None:
            return self._binding(batch, self.classes)
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 NHWC pixels from the shared decoder -> class probabilities."""
        outputs = self(pixels if self.embedded else self.preprocess.apply(pixels))
        outputs = outputs.astype(np.float64)
        return outputs if self.outputs_probabilities else softmax(outputs)


class TorchRunner:
    """Runs a checkpoint with PyTorch."""

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        import torch

        from .checkpoint import load_checkpoint
        from .devices import resolve_device

        loaded = load_checkpoint(path)
        self.device = resolve_device(device)
        self.model = loaded.model.to(self.device)
        self.manifest = loaded.manifest
        self.preprocess = loaded.preprocess
        self.providers = [f"torch:{self.device}"]
        self._torch = torch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            x = self._torch.from_numpy(batch).to(self.device)
            return self.model(x).float().cpu().numpy()

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return softmax(self(self.preprocess.apply(pixels)).astype(np.float64))


Runner = OnnxRunner | TorchRunner


def _existing_model(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Model file not found: {path}",
                              "Pass an .onnx file or a best.safetensors checkpoint.")
    return path


def open_model(path: str | os.PathLike, device: str = "auto",
               threads: int | None = None) -> Runner:
    """An OnnxRunner for .onnx files, else a TorchRunner for a checkpoint."""
    path = _existing_model(path)
    if path.suffix.lower() == ".onnx":
        return OnnxRunner(path, device, threads)
    return TorchRunner(path, device)


# --------------------------------------------------------------------------- the infer job


@dataclass
class InferOptions:
    """Everything ``imgcls infer`` takes besides the model and inputs."""

    output: Path | None = None
    fmt: str = "csv"
    top_k: int = 1
    batch_size: int = 64
    device: str = "auto"
    workers: int | None = None
    backend: str = DEFAULT_BACKEND
    threads: int | None = None
    resume: bool = False
    shard: str | None = None
    strict: bool = False
    errors_path: Path | None = None

    def validate(self) -> None:
        from .predictions import FORMATS

        if self.fmt not in FORMATS:
            raise ConfigError(f"Unknown --format {self.fmt!r}.",
                              "Use --format csv or --format jsonl.")
        if self.batch_size < 1 or self.top_k < 1:
            raise ConfigError("--batch-size and --top-k must be at least 1.",
                              "For example: -b 64 -k 1.")
        if self.resume and self.output is None:
            raise ConfigError("--resume needs an output file.", "Add -o preds.csv.")


def _count_skipped(paths: Iterable[str], done: Any, skipped: list[int]) -> Iterator[str]:
    for path in paths:
        if path in done:
            skipped[0] += 1
        else:
            yield path


def run_inference(model: str | os.PathLike, inputs: Sequence[str],
                  options: InferOptions) -> Summary:
    """Classify ``inputs`` into ``options.output``; returns the predictions Summary."""
    from .engine import DecodePool
    from .predictions import errors_path_for, paths_done, write_predictions

    options.validate()
    shard = parse_shard(options.shard) if options.shard else (0, 1)
    _existing_model(model)
    check_inputs(inputs)
    errors_path = options.errors_path or (
        errors_path_for(options.output) if options.output else None)
    gpu = choose_providers(options.device)[0] != CPU
    workers = options.workers or default_workers(gpu)
    # Start the decode workers before onnxruntime starts its threads: forking a
    # single-threaded process is the safe kind of fork.
    with DecodePool(workers, options.backend) as pool:
        runner = open_model(model, options.device, options.threads or _ort_threads(workers))
        k = min(options.top_k, len(runner.manifest["classes"]))
        paths = in_shard(iter_paths(inputs), *shard)
        skipped = [0]
        if options.resume and options.output is not None:
            paths = _count_skipped(paths, paths_done(options.output, options.fmt, k), skipped)
        stats = EngineStats()
        results = predict_stream(runner, paths, options.batch_size, k, stats=stats, pool=pool)
        summary = write_predictions(results, options.output, options.fmt, k,
                                    append=options.resume, errors_path=errors_path,
                                    strict=options.strict, stats=stats)
    summary.skipped = skipped[0]
    summary.provider = runner.providers[0]
    if summary.failed == 0:
        summary.errors_path = None
    return summary


def _ort_threads(workers: int) -> int:
    # On the CPU, decode workers and onnxruntime share the cores: give onnxruntime
    # what the workers leave (at least one), not a second thread per core.
    return max(1, usable_cores() - workers)


# --------------------------------------------------------------------------- Python API


class Classifier:
    """Load an .onnx model or a checkpoint and classify paths, PIL images or arrays.

    >>> clf = Classifier.load("model.onnx")
    >>> clf.predict(["a.jpg", "b.jpg"], top_k=2)[0].label
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.manifest = runner.manifest
        self.classes: list[str] = list(self.manifest["classes"])
        self.preprocess = Preprocess.from_dict(self.manifest["preprocess"])

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> Classifier:
        return cls(open_model(path, device))

    def predict(self, items: Any, top_k: int = 1, batch_size: int = 64) -> list[Prediction]:
        """Classify one item or a list of items (paths, PIL images, HxWxC arrays).

        An NxHxWxC array is a batch of N images. Unreadable files raise DecodeError.
        """
        items = _as_list(items)
        k = max(1, min(top_k, len(self.classes)))
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            pixels = np.stack([self._pixels(item) for item in chunk])
            ranked = ranked_labels(self.runner.probabilities(pixels), self.classes, k)
            for item, (labels, scores) in zip(chunk, ranked, strict=True):
                name = os.fspath(item) if isinstance(item, str | os.PathLike) else ""
                results.append(Prediction(name, labels, scores))
        return results

    def stream(self, paths: Iterable[str | os.PathLike], top_k: int = 1, batch_size: int = 64,
               workers: int | None = None) -> Iterator[Prediction | Failure]:
        """Classify many files with the streaming engine; failures are yielded, not raised."""
        return predict_stream(self.runner, paths, batch_size, top_k, workers)

    def _pixels(self, item: Any) -> np.ndarray:
        if isinstance(item, str | os.PathLike):
            return load_pixels(item, self.preprocess)
        if isinstance(item, np.ndarray) or hasattr(item, "mode"):
            return to_pixels(item, self.preprocess)
        raise DecodeError(f"Cannot classify a {type(item).__name__}.",
                          "Pass file paths, PIL images or HxWxC numpy arrays.")


def _as_list(items: Any) -> list[Any]:
    if isinstance(items, np.ndarray) and items.ndim == 4:
        return list(items)
    if isinstance(items, list | tuple):
        return list(items)
    return [items]

