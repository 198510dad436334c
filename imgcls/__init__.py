"""imgcls: train an image classifier on a folder, export it to ONNX, run batch inference."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from .lazy import lazy_exports

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("imgcls")

__all__ = ["Classifier", "ImgclsError", "__version__", "explain", "fit", "hookimpl",
           "load_checkpoint"]

if TYPE_CHECKING:
    from .checkpoint import load_checkpoint
    from .errors import ImgclsError
    from .explain.api import explain
    from .infer.classifier import Classifier
    from .train.loop import fit

# Lazy, so `import imgcls` in a plugin does not pull in torch and onnxruntime.
__getattr__ = lazy_exports(__name__, {
    "fit": ".train.loop", "load_checkpoint": ".checkpoint",
    "Classifier": ".infer.classifier", "ImgclsError": ".errors", "explain": ".explain.api",
})
