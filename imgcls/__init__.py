"""imgcls: train an image classifier on a folder, export it to ONNX, run batch inference."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pluggy

# The explain package, imported now (its __init__ is lazy: no torch) because importing
# it binds `imgcls.explain` to the package: later, that would hide the function below.
from . import explain as _explain_package  # noqa: F401
from .lazy import lazy_exports
from .version import __version__

hookimpl = pluggy.HookimplMarker("imgcls")

__all__ = ["Classifier", "ImgclsError", "__version__", "explain", "fit", "hookimpl",
           "load_checkpoint"]

if TYPE_CHECKING:
    from .checkpoint import load_checkpoint
    from .errors import ImgclsError
    from .explain.api import Explanation
    from .infer.classifier import Classifier
    from .train.loop import fit

# Lazy, so `import imgcls` in a plugin does not pull in torch and onnxruntime.
__getattr__ = lazy_exports(__name__, {
    "fit": ".train.loop", "load_checkpoint": ".checkpoint",
    "Classifier": ".infer.classifier", "ImgclsError": ".errors",
})


def explain(checkpoint: str | os.PathLike, images: Any, method: str = "gradcam",
            layer: str | None = None, target: str | int | None = None,
            device: str = "auto") -> list[Explanation]:
    """Class-activation maps of a checkpoint: :func:`imgcls.explain.api.explain`."""
    from .explain.api import explain as run

    return run(checkpoint, images, method=method, layer=layer, target=target, device=device)
