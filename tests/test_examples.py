"""Each script in examples/ runs on tiny generated data and does what it says.

The scripts run in this process through runpy, as ``python examples/NAME.py ...``
would run them, except the deployment example: it runs in a fresh interpreter, to
show that it needs neither imgcls nor torch.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls import Classifier

from .test_docs_snippets import (  # noqa: F401 (fixtures)
    base_sandbox,
    make_data,
    one_torch_thread,
    page_files,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_script(name: str, args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [name, *args])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return out.getvalue()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_data(tmp_path / "work")


def test_cats_vs_dogs_runs_the_tutorial(data, monkeypatch):
    out = run_script("cats_vs_dogs.py", ["path/to/cats-dogs", "--epochs", "1", "--deep-epochs",
                                         "1", "--photos", "path/to/photos"], data, monkeypatch)
    for command in ("data check", "train --model basic-cnn", "--augment none",
                    "train --model deep-cnn", "eval", "export onnx", "infer"):
        assert f"$ imgcls {command}" in out or command in out
    assert "best validation accuracy:" in out and "example-deep" in out
    rows = list(csv.DictReader((data / "runs" / "preds.csv").open()))
    assert len(rows) == 13 and set(rows[0]) == {"path", "label", "confidence", "label_2",
                                                "confidence_2"}
    for run in ("example-basic", "example-noaug", "example-deep"):
        assert (data / "runs" / run / "best.safetensors").is_file()


def test_train_and_predict_uses_the_python_api(data, monkeypatch):
    out = run_script("train_and_predict.py", ["path/to/cats-dogs", "--epochs", "2", "--predict",
                                              "path/to/photos"], data, monkeypatch)
    run_dir = data / "runs" / "basic-cnn-api"
    assert (run_dir / "best.safetensors").is_file() and (run_dir / "model.onnx").is_file()
    assert "best val accuracy" in out and "classes: cats, dogs" in out
    predictions = [line for line in out.splitlines() if line.startswith("path/to/photos/")]
    assert len(predictions) == 8 and all(", " in line for line in predictions)


def test_deploy_with_onnxruntime_alone_matches_imgcls(base_sandbox, tmp_path):  # noqa: F811
    model = base_sandbox / "pretrained" / "model.onnx"
    photos = sorted(str(p) for p in (base_sandbox / "path/to/photos").rglob("*.*"))
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['deploy', {str(model)!r}, *{photos!r}, '--top-k', '2']\n"
        f"runpy.run_path({str(EXAMPLES / 'deploy_onnxruntime.py')!r}, run_name='__main__')\n"
        "assert not {'torch', 'imgcls'} & set(sys.modules), 'imported torch or imgcls'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = Classifier.load(model).predict(photos, top_k=2)
    assert [row["path"] for row in rows] == photos
    for row, prediction in zip(rows, expected, strict=True):
        assert [row["label"], row["label_2"]] == prediction.labels
        got = [float(row["confidence"]), float(row["confidence_2"])]
        np.testing.assert_allclose(got, prediction.scores, atol=2e-6)


def test_deploy_decodes_like_imgcls_for_every_preprocessing(tmp_path):
    from imgcls.images import load_pixels
    from imgcls.specs import Preprocess

    deploy = _load_module(EXAMPLES / "deploy_onnxruntime.py", "deploy_example")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(500, 375), (375, 500), (64, 64), (90, 300)]):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        exif = Image.Exif()
        exif[0x0112] = 6 if i == 1 else 1  # the second one is stored rotated
        path = tmp_path / f"{i}.jpg"
        image.save(path, quality=90, exif=exif)
        paths.append(path)
    image.convert("L").save(tmp_path / "gray.png")
    paths.append(tmp_path / "gray.png")
    preprocesses = [
        Preprocess(size=(64, 64)),
        Preprocess(size=(224, 224), resize="shorter", crop_fraction=0.875,
                   mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        Preprocess(size=(48, 80), resize="shorter", interpolation="bicubic",
                   channel_order="BGR", value_range=(-1.0, 1.0)),
    ]
    for pre in preprocesses:
        for path in paths:
            expected = load_pixels(path, pre)
            got = deploy.load_pixels(str(path), pre.to_dict())
            assert np.array_equal(got, expected), (path.name, pre)
            np.testing.assert_array_equal(deploy.model_input(got[None], pre.to_dict()),
                                          pre.apply(expected[None]))


def test_plugin_example_is_the_one_the_tutorial_builds():
    written = page_files("docs/writing-a-plugin.md")
    assert written, "docs/writing-a-plugin.md writes no files"
    for name, text in written.items():
        assert (EXAMPLES / name).read_text() == text, f"{name} differs from the tutorial's"
    sources = {path.relative_to(EXAMPLES).as_posix()
               for path in (EXAMPLES / "my-imgcls-plugin").rglob("*")
               if path.suffix in (".py", ".toml") and not {"build", "__pycache__"} & {*path.parts}}
    assert sources == set(written)


def test_plugin_example_registers_and_trains(data, tmp_path, monkeypatch, capsys):
    from imgcls.plugins import load_plugins, pm
    from imgcls.train import fit

    module = _load_module(EXAMPLES / "my-imgcls-plugin" / "my_imgcls_plugin.py", "my_imgcls_plugin")
    load_plugins()
    pm.register(module, name="my-plugin")
    try:
        tests = _load_module(EXAMPLES / "my-imgcls-plugin" / "tests" / "test_my_plugin.py",
                             "test_my_plugin_example")
        tests.test_the_model_gives_one_logit_per_class()
        tests.test_posterize_keeps_the_top_bits()
        (tmp_path / "names").mkdir()
        tests.test_labels_come_from_file_names(tmp_path / "names")

        monkeypatch.chdir(data)
        result = fit(model="convmixer", data="filenames:path/to/cats-dogs",
                     augment="seed,posterize=3", epochs=2, out="runs", report=False)
        assert result.classes == ["cat", "dog"]
        assert f"my-plugin: {result.run_dir} best val_acc" in capsys.readouterr().out
    finally:
        pm.unregister(name="my-plugin")
        for name in ("my_imgcls_plugin", "test_my_plugin_example"):
            sys.modules.pop(name, None)


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_examples_are_listed_in_their_readme():
    readme = (EXAMPLES / "README.md").read_text()
    for entry in sorted(os.listdir(EXAMPLES)):
        if entry != "README.md" and not entry.startswith((".", "__")):
            assert entry in readme, f"examples/{entry} is not in examples/README.md"
