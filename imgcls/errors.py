"""Errors raised by imgcls. Each carries a message and a hint for the user."""

from __future__ import annotations

import importlib
from types import ModuleType


class ImgclsError(Exception):
    """Base error: ``message`` says what went wrong, ``hint`` what to do about it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class PluginError(ImgclsError):
    """A plugin failed to load or registered something invalid."""


class UnknownNameError(ImgclsError):
    """A model, augmentation or dataset name is not registered."""


class DuplicateNameError(PluginError):
    """Two plugins registered the same component name."""


class DataError(ImgclsError):
    """A data set is missing, empty or malformed."""


class DecodeError(DataError):
    """An image file could not be decoded."""


class CheckpointError(ImgclsError):
    """A file is not a valid imgcls checkpoint or model."""


class ManifestError(CheckpointError):
    """A model file's imgcls manifest is missing or invalid."""


class ExportError(ImgclsError):
    """ONNX export failed or did not pass its parity check."""


class ConfigError(ImgclsError):
    """An option or configuration value is invalid."""


class DeviceError(ImgclsError):
    """The requested device or execution provider is not available."""


class NonFiniteLossError(ImgclsError):
    """The training loss became NaN or infinite."""


class OutputError(ConfigError):
    """An output would overwrite an input or another output, or is no regular file."""


class DataWarning(UserWarning):
    """Something in the data is likely a mistake, but training can go on."""


class MissingExtraError(ImgclsError):
    """An optional dependency, installed with one of imgcls's extras, is missing."""


# import name -> (what needs it, its distribution, the extra that installs it). `pip install
# imgcls` is enough to train, export and infer; these commands' libraries are opt-in.
EXTRAS = {"optuna": ("imgcls tune", "optuna", "tune"),
          "cleanlab": ("imgcls data audit", "cleanlab", "audit"),
          "pytorch_grad_cam": ("imgcls explain (class-activation maps)", "grad-cam", "explain")}


def require_extra(module: str) -> ModuleType:
    """``module`` imported, or a MissingExtraError naming the extra that installs it."""
    needed_by, distribution, extra = EXTRAS[module]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{needed_by} needs {distribution}, which is not installed; it comes with the "
            f"imgcls[{extra}] extra.", f"pip install 'imgcls[{extra}]'") from exc
