"""The parity gate's figures: how far onnxruntime's outputs may be from PyTorch's.

Free of torch, so the command line can show the defaults without importing it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..outputs import check_outputs, input_paths

PARITY_IMAGES = 64
CALIBRATION_SCAN = 10_000  # paths listed from --calibration before sampling PARITY_IMAGES
DEFAULT_TOLERANCE = 1e-4
# fp16 keeps ~3 significant digits: logits of a few units differ by ~1e-2, and
# images whose top two classes are that close may swap places.
FP16_TOLERANCE = 5e-2
FP16_MIN_TOP1 = 0.98


@dataclass
class ParityReport:
    images: int
    source: str
    max_abs_diff: float
    top1_agreement: float
    tolerance: float
    top5_overlap: float = 1.0
    mean_abs_diff: float = 0.0
    min_top1: float = 1.0
    outputs: str = "logits"

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_agreement >= self.min_top1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


def _top5_overlap(expected: np.ndarray, actual: np.ndarray) -> float:
    k = min(5, expected.shape[1])
    top_e = np.argsort(-expected, axis=1)[:, :k]
    top_a = np.argsort(-actual, axis=1)[:, :k]
    shared = [len(set(e) & set(a)) / k for e, a in zip(top_e, top_a, strict=True)]
    return float(np.mean(shared))


def compare_outputs(expected: np.ndarray, actual: np.ndarray, source: str, tolerance: float, *,
                    min_top1: float = 1.0, outputs: str = "logits") -> ParityReport:
    """The parity figures of ``actual`` (onnxruntime) against ``expected`` (PyTorch)."""
    diff = np.abs(expected - actual)
    return ParityReport(
        images=len(expected), source=source,
        max_abs_diff=float(diff.max()), top1_agreement=float(
            (expected.argmax(1) == actual.argmax(1)).mean()),
        tolerance=tolerance, top5_overlap=_top5_overlap(expected, actual),
        mean_abs_diff=float(diff.mean()), min_top1=min_top1, outputs=outputs,
    )


def checked_outputs(output: str | os.PathLike, inputs: list[Any]) -> tuple[Path, Path]:
    """``output`` and its parity report's path, once neither would hit an input."""
    output = Path(output)
    report_path = output.with_name(output.name + ".parity.json")
    files, folders = input_paths(inputs)
    check_outputs({"-o": output, "the parity report (-o ... .parity.json)": report_path},
                  files, folders)
    return output, report_path
