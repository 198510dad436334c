"""Training: a short run beats chance and writes a complete run folder."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from imgcls.checkpoint import load_checkpoint
from imgcls.errors import ConfigError
from imgcls.manifest import MANIFEST_KEY
from imgcls.train import TrainConfig, fit


def test_short_run_beats_chance_on_shapes(trained):
    # 3 classes: chance is 33%.
    assert trained.best["val_acc"] >= 0.6
    assert trained.classes == ["circle", "square", "triangle"]


def test_run_folder_contents(trained):
    run = trained.run_dir
    assert (run / "best.safetensors").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "basic-cnn" and config["epochs"] == 6 and config["device"] == "cpu"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr"} <= set(
        lines[0])
    # Timings vary between runs, so they stay out of metrics.jsonl (it is reproducible).
    assert "epoch_seconds" not in lines[0]
    assert 'model = "basic-cnn"' in (run / "config.toml").read_text()


def test_checkpoint_manifest(trained):
    with safe_open(str(trained.best_path), framework="pt") as handle:
        manifest = json.loads(handle.metadata()[MANIFEST_KEY])
    assert manifest["model"]["name"] == "basic-cnn"
    assert manifest["classes"] == trained.classes
    assert manifest["preprocess"]["size"] == [64, 64]
    assert manifest["training"]["best"]["val_acc"] == trained.best["val_acc"]
    loaded = load_checkpoint(trained.best_path)
    assert loaded.classes == trained.classes


def test_train_on_folder_with_img_size_and_augment(colour_folder, tmp_path):
    result = fit(TrainConfig(data=str(colour_folder), epochs=2, batch_size=8, img_size=32,
                             augment="flip,shear=0.2,zoom=0.2", out=str(tmp_path), name="c"))
    assert load_checkpoint(result.best_path).preprocess.size == (32, 32)
    # Two colours are learnt in two epochs; chance is 0.5.
    assert result.best["val_acc"] >= 0.9


def test_unreadable_training_images_are_skipped(colour_folder, tmp_path):
    (colour_folder / "red" / "broken.png").write_bytes(b"not a png")
    result = fit(TrainConfig(data=str(colour_folder), epochs=1, batch_size=8, out=str(tmp_path),
                             augment="none"))
    assert [path.name for path, _ in result.skipped] == ["broken.png"]


def test_one_epoch_runs_with_the_default_warmup(colour_folder, tmp_path, capsys):
    from imgcls.cli import main

    code = main(["train", "--data", str(colour_folder), "-e", "1", "-b", "8", "--out",
                 str(tmp_path), "--no-report"])
    out = capsys.readouterr().out
    assert code == 0 and "class histogram" in out and "red" in out


def test_run_folders_do_not_overwrite_and_fit_says_where_it_writes(colour_folder, tmp_path,
                                                                    capsys):
    config = dict(data=str(colour_folder), epochs=1, batch_size=8, out=str(tmp_path),
                  augment="none", report=False)
    first = fit(TrainConfig(**config))
    out, err = capsys.readouterr()
    # fit() prints one line per epoch, as Keras does, and where the run went.
    assert f"run folder: {first.run_dir}" in out and out.count("epoch   1  train loss") == 1
    assert "best val accuracy" in out and not err
    second = fit(TrainConfig(**config))
    assert first.run_dir.name == "basic-cnn" and second.run_dir.name == "basic-cnn-2"
    out, err = capsys.readouterr()
    assert f"{first.run_dir} exists already, so this run writes {second.run_dir}" in err
    with pytest.raises(ConfigError, match="already exists"):
        fit(TrainConfig(**config, name="basic-cnn"))
    fit(TrainConfig(**config, name="basic-cnn", exist_ok=True), verbose=False)
    assert capsys.readouterr() == ("", "")  # verbose=False: silent


def test_an_existing_run_folder_is_reused_only_with_a_warning(colour_folder, tmp_path, capsys):
    from imgcls.cli import main

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "best.safetensors").write_bytes(b"an earlier run")
    code = main(["train", "--data", str(colour_folder), "-e", "1", "-b", "8", "--out-dir",
                 str(tmp_path), "--name", "mine", "--exist-ok", "--no-report"])
    out, err = capsys.readouterr()
    assert code == 0 and "is reused (--exist-ok): its files are replaced" in err
    assert out.count("epoch   1  train loss") == 1  # the CLI prints each epoch once
    # No blank line per epoch (a progress bar's) when the output is not a terminal.
    assert all(line.strip() for line in (out + err).splitlines())


@pytest.mark.parametrize("field,value,message", [
    ("epochs", 0, "--epochs"), ("batch_size", 0, "--batch-size"), ("lr", -1.0, "--lr"),
    ("img_size", 4, "minimum"), ("optimizer", "lion", "--optimizer"),
    ("scheduler", "poly", "--scheduler"), ("select_metric", "f1", "--select-metric"),
    ("sampler", "weighted", "--sampler"), ("class_weights", "manual", "--class-weights"),
    ("label_smoothing", 1.0, "--label-smoothing"), ("patience", -1, "--patience"),
    ("ema_decay", 1.0, "--ema-decay"), ("grad_clip", -1.0, "--grad-clip"),
])
def test_invalid_options(field, value, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        fit(TrainConfig(out=str(tmp_path), **{field: value}))
