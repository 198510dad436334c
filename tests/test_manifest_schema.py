"""The manifest's published JSON Schema: the docs show the generated one, real files pass it.

After a change to the manifest's schema, rewrite the block in docs/deployment.md with
``python tests/test_manifest_schema.py``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest

from imgcls.errors import ManifestError
from imgcls.manifest import json_schema, make_manifest, parse_manifest, read_manifest
from imgcls.specs import Preprocess

PAGE = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
HEADING = "## The manifest's JSON Schema"
BLOCK = re.compile(r"(```json\n)(.*?)(^```)", re.MULTILINE | re.DOTALL)


def _published() -> re.Match:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(HEADING)
    match = BLOCK.search(text, start)
    assert match is not None, f"no json block under {HEADING!r} in {PAGE}"
    return match


def _compact(value: object, indent: int = 0, key: str = "", width: int = 92) -> str:
    """JSON with every object or array that fits its line written on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or indent + len(key) + len(flat) <= width:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {_compact(v, indent + 2, json.dumps(k) + ': ')}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _compact(v, indent + 2) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def test_the_docs_show_the_generated_schema():
    assert json.loads(_published().group(2)) == json_schema(), (
        "docs/deployment.md shows an old manifest schema: run python tests/test_manifest_schema.py")


def _validator() -> jsonschema.Validator:
    schema = json.loads(_published().group(2))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_real_manifests_validate_against_the_published_schema(trained, exported):
    """A trained run's checkpoint and its ONNX export (the suite's shared fixtures)."""
    validator = _validator()
    for path in (trained.best_path, exported):
        manifest = read_manifest(path)
        validator.validate(manifest)
        assert {"training", "dataset"} <= set(manifest)
    assert {"export", "versions"} <= set(read_manifest(exported))


def test_an_int8_manifest_section_validates():
    from imgcls.export.int8 import Int8Report

    report = Int8Report(images=40, source="val", top1_agreement=0.975, min_agreement=0.95,
                        float_bytes=10_000, int8_bytes=3_000, float_images_per_second=100.0,
                        int8_images_per_second=250.0, batch=8, threads=2,
                        calibration_images=64, calibration_fingerprint="ab12", weight_bits=7)
    manifest = make_manifest("basic-cnn", {}, ["cat", "dog"], Preprocess())
    manifest["export"] = {"precision": "int8", "quantization": report.manifest_section()}
    manifest = json.loads(json.dumps(manifest))
    _validator().validate(manifest)
    assert parse_manifest(json.dumps(manifest), "int8")["export"]["quantization"]


@pytest.mark.parametrize("change", [
    {"classes": ["cat"]}, {"classes": ["cat", "cat"]}, {"classes": "cat,dog"},
    {"format_version": 2}, {"format_version": True}, {"model": {"options": {}}},
    {"preprocess": {"size": [64, 5000]}}, {"preprocess": {"size": [64, 64.5]}},
    {"preprocess": {"size": [64, 64], "std": [0, 1, 1]}},
    {"preprocess": {"size": [64, 64], "resize": "fit"}},
    {"preprocess": {"size": [64, 64], "crop": 0.9}},
    {"export": {"parity": {"source": "val", "images": 8, "max_abs_diff": "0"}}},
    {"export": {"quantization": {"method": "qdq", "weight_bits": 9}}},
    {"versions": {"torch": 2}},
])
def test_the_schema_and_the_reader_refuse_the_same_manifests(change):
    manifest = make_manifest("basic-cnn", {}, ["cat", "dog"], Preprocess())
    text = json.dumps(manifest | change)
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(json.loads(text))
    with pytest.raises(ManifestError):
        parse_manifest(text, "m")


def _rewrite() -> None:
    text = PAGE.read_text(encoding="utf-8")
    match = _published()
    PAGE.write_text(text[:match.start(2)] + _compact(json_schema()) + "\n" + text[match.end(2):],
                    encoding="utf-8")


if __name__ == "__main__":
    _rewrite()
    sys.exit(0)
