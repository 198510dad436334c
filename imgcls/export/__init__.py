"""Export: a checkpoint to a self-describing ONNX file, behind a parity gate (and, for
int8, an accuracy gate)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["ExportError", "ExportResult", "Int8Report", "ParityReport", "export_onnx"]

if TYPE_CHECKING:
    from ..errors import ExportError
    from .int8 import Int8Report
    from .onnx import ExportResult, export_onnx
    from .parity import ParityReport

# Lazy: `imgcls export --help` and the parity constants need no torch.
__getattr__ = lazy_exports(__name__, {
    "export_onnx": ".onnx", "ExportResult": ".onnx", "ParityReport": ".parity",
    "Int8Report": ".int8",
    "ExportError": "..errors",
})
