"""imgcls inspect: what an exported model (or checkpoint) says about itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ..manifest import inspect_model
from .console import console


def _line(label: str, value: Any) -> None:
    console.print(f"{label:<14}{value}", highlight=False, markup=False)


def _shape(io: dict[str, Any]) -> str:
    return f"{io['name']} {io['dtype']} [{', '.join(str(d) for d in io['shape'])}]"


def _quantization(section: dict[str, Any]) -> None:
    calibration, gate = section["calibration"], section["gate"]
    bits = " (7-bit range)" if section.get("weight_bits") == 7 else ""
    _line("quantization", f"{section['method']} {section.get('format', '')}, "
                          f"{section.get('weights')}{bits} weights, {section.get('activations')} "
                          f"activations, {section.get('calibration_method')} calibration on "
                          f"{calibration['images']} images from {calibration['source']}, "
                          f"fingerprint {calibration['fingerprint']}")
    _line("int8 gate", f"top-1 agreement with float {gate['top1_agreement']:.1%} on "
                       f"{gate['images']} held-out images (minimum {gate['min_agreement']:.1%})")


def inspect(
    model: Path = typer.Argument(..., help="An .onnx file or a .safetensors checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole manifest as JSON."),
) -> None:
    """Print the manifest an exported model carries: classes, preprocessing, versions."""
    info = inspect_model(model)
    if as_json:
        typer.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    manifest = info["manifest"]
    export = manifest.get("export") or {}
    options = manifest["model"].get("options") or {}
    _line("file", info["file"])
    _line("model", manifest["model"]["name"] + (f" {options}" if options else ""))
    _line("classes", f"{len(manifest['classes'])}: {', '.join(manifest['classes'])}")
    _line("preprocess", json.dumps(manifest["preprocess"]))
    if export:
        _line("export", f"opset {export.get('opset')}, {export.get('precision')}, "
                        f"preprocessing {export.get('preprocessing')}, "
                        f"outputs {export.get('outputs')}")
    for io in info.get("graph", {}).get("inputs", []):
        _line("input", _shape(io))
    for io in info.get("graph", {}).get("outputs", []):
        _line("output", _shape(io))
    quantization = export.get("quantization")
    parity = export.get("parity")
    if parity:
        _line("parity", f"max |Δ| {parity['max_abs_diff']:.2e} on {parity['images']} images "
                        f"from {parity['source']}, top-1 agreement "
                        f"{parity['top1_agreement']:.1%}"
                        + (" (the float model, before int8)" if quantization else ""))
    if quantization:
        _quantization(quantization)
    if manifest.get("training"):
        _line("training", json.dumps(manifest["training"]))
    if manifest.get("versions"):
        _line("versions", ", ".join(f"{k} {v}" for k, v in manifest["versions"].items()))
