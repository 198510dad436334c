"""Inference: runners, the Classifier API, the streaming engine, sources, writers, providers.

Nothing here imports torch: an .onnx file is all that inference needs.
"""

from __future__ import annotations

from .batch import InferOptions, run_inference
from .classifier import Classifier
from .engine import EngineStats, Failure, Prediction, predict_stream
from .providers import choose_providers, make_session
from .runners import OnnxRunner, TorchRunner, open_model, read_onnx_manifest, softmax
from .sources import iter_inputs, iter_paths
from .writers import Summary

__all__ = ["Classifier", "EngineStats", "Failure", "InferOptions", "OnnxRunner", "Prediction",
           "Summary", "TorchRunner", "choose_providers", "iter_inputs", "iter_paths",
           "make_session", "open_model", "predict_stream", "read_onnx_manifest",
           "run_inference", "softmax"]
