"""imgcls: train an image classifier on a folder, export it to ONNX, run batch inference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("imgcls")

__all__ = ["Classifier", "ImgclsError", "__version__", "fit", "hookimpl", "load_checkpoint"]

if TYPE_CHECKING:
    from .checkpoint import load_checkpoint
    from .errors import ImgclsError
    from .infer import Classifier
    from .train import fit


def __getattr__(name: str) -> Any:
    # Lazy, so `import imgcls` in a plugin does not pull in torch and onnxruntime.
    if name == "fit":
        from .train import fit

        return fit
    if name == "load_checkpoint":
        from .checkpoint import load_checkpoint

        return load_checkpoint
    if name == "Classifier":
        from .infer import Classifier

        return Classifier
    if name == "ImgclsError":
        from .errors import ImgclsError

        return ImgclsError
    raise AttributeError(f"module 'imgcls' has no attribute {name!r}")
