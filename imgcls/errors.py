"""Errors raised by imgcls. Each carries a message and a hint for the user."""

from __future__ import annotations


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
