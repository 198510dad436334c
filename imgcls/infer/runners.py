"""Model runners: an .onnx file through onnxruntime, or a checkpoint through PyTorch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError, ManifestError
from ..manifest import manifest_from_props, manifest_task
from ..specs import Preprocess
from .providers import make_session, uses_cuda

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                "tensor(uint8)": np.uint8, "tensor(double)": np.float64}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # no overflow for large |logits|


def to_probabilities(outputs: np.ndarray, manifest: dict[str, Any],
                     already: bool = False) -> np.ndarray:
    """A model's outputs as probabilities: softmax, or one sigmoid per class (multi-label)."""
    if already:
        return outputs
    return sigmoid(outputs) if manifest_task(manifest) == "multilabel" else softmax(outputs)


def export_info(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's export section ({} for checkpoints)."""
    info = manifest.get("export")
    return info if isinstance(info, dict) else {}


def finite(probabilities: np.ndarray) -> np.ndarray:
    """``probabilities`` unchanged, or an error: NaN rows must never reach the output."""
    if not np.isfinite(probabilities).all():
        # One bad row means bad weights or preprocessing, not a bad image: stop the run.
        raise CheckpointError("The model produced non-finite outputs (NaN or infinity).",
                              "Its weights or preprocessing constants are damaged; re-train "
                              "or re-export the model.")
    return probabilities


def check_graph_input(inputs: Any, preprocess: Preprocess, embedded: bool,
                      path: str | os.PathLike) -> None:
    """The graph's input must be what the manifest says: layout, dtype and static H/W."""
    shape = list(inputs.shape)
    layout = "uint8 NHWC" if embedded else "float NCHW"
    fits = (len(shape) == 4 and inputs.type in _NUMPY_TYPES
            and (inputs.type == "tensor(uint8)") == embedded)
    channels = (shape[3] if embedded else shape[1]) if fits else None
    if not fits or (isinstance(channels, int) and channels != 3):
        raise ManifestError(f"{path}: the manifest describes a {layout} input but the graph "
                            f"takes {inputs.type} {shape}.", "Re-export the model.")
    hw = shape[1:3] if embedded else shape[2:4]
    if any(isinstance(d, int) and d != want for d, want in zip(hw, preprocess.size, strict=True)):
        raise ManifestError(f"{path}: the manifest's input size {list(preprocess.size)} does not "
                            f"match the graph's input shape {shape}.", "Re-export the model.")


def read_onnx_manifest(session: Any, path: str | os.PathLike) -> dict[str, Any]:
    return manifest_from_props(session.get_modelmeta().custom_metadata_map, path)


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
        check_graph_input(inputs, self.preprocess, self.embedded, path)
        self.input_name, self.output_name = inputs.name, outputs.name
        self.input_dtype = _NUMPY_TYPES[inputs.type]
        self.classes = len(self.manifest["classes"])
        width = outputs.shape[-1] if len(outputs.shape) == 2 else None
        if len(outputs.shape) != 2 or (isinstance(width, int) and width != self.classes):
            raise CheckpointError(
                f"{path}: the model outputs {outputs.shape} but its manifest lists "
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
        return finite(to_probabilities(outputs, self.manifest, self.outputs_probabilities))


class TorchRunner:
    """Runs a checkpoint with PyTorch."""

    def __init__(self, path: str | os.PathLike, device: str = "auto") -> None:
        import torch

        from ..checkpoint import load_checkpoint
        from ..system import resolve_device

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
        return finite(to_probabilities(self(self.preprocess.apply(pixels)).astype(np.float64),
                                       self.manifest))


TTA_MODES = ("none", "flip")


class FlipAveraged:
    """Test-time augmentation: each image and its mirror image, their logits averaged.

    A runner gives probabilities; the mean of the two log-probabilities differs
    from the mean of the logits by a constant per image, so its softmax is the
    softmax of the averaged logits, whatever the model outputs.
    """

    def __init__(self, runner: OnnxRunner | TorchRunner) -> None:
        self.runner = runner
        self.manifest, self.preprocess = runner.manifest, runner.preprocess
        self.providers = runner.providers

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        mirrored = np.ascontiguousarray(pixels[:, :, ::-1])  # NHWC: flip the width
        if manifest_task(self.manifest) == "multilabel":  # each class on its own: the mean
            return finite((self.runner.probabilities(pixels)
                           + self.runner.probabilities(mirrored)) / 2)
        tiny = np.finfo(np.float64).tiny  # a probability that underflowed to 0
        both = sum(np.log(np.clip(self.runner.probabilities(view), tiny, None))
                   for view in (pixels, mirrored))
        return finite(softmax(both / 2))


Runner = OnnxRunner | TorchRunner | FlipAveraged


def check_tta(tta: str) -> str:
    if tta not in TTA_MODES:
        raise ConfigError(f"Unknown --tta {tta!r}.", f"Use one of: {', '.join(TTA_MODES)}.")
    return tta


def with_tta(runner: OnnxRunner | TorchRunner, tta: str) -> Runner:
    """``runner``, or the runner averaging it over ``tta``'s views."""
    if check_tta(tta) == "none":
        return runner
    if export_info(runner.manifest).get("tta") == "flip":
        raise ConfigError("This model already averages each image with its mirror image "
                          "(exported with --tta flip).", "Run it without --tta.")
    return FlipAveraged(runner)


def existing_model(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Model file not found: {path}",
                              "Pass an .onnx file or a best.safetensors checkpoint.")
    return path


def open_model(path: str | os.PathLike, device: str = "auto",
               threads: int | None = None, tta: str = "none") -> Runner:
    """An OnnxRunner for .onnx files, else a TorchRunner for a checkpoint; ``tta="flip"``
    averages each image with its mirror image."""
    check_tta(tta)  # before loading the model
    path = existing_model(path)
    if path.suffix.lower() == ".onnx":
        return with_tta(OnnxRunner(path, device, threads), tta)
    return with_tta(TorchRunner(path, device), tta)
