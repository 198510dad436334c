"""Config files: any option in TOML, flags override it, and config.toml reproduces a run."""

from __future__ import annotations

from dataclasses import fields

import pytest

from imgcls.cli import main
from imgcls.cli.train import build_config
from imgcls.errors import ConfigError
from imgcls.train.config import TrainConfig, config_from_dict, read_config_file

from .helpers import colour_data, read_metrics


def test_every_option_round_trips_through_toml(tmp_path):
    config = TrainConfig(model="deep-cnn", epochs=7, lr=1e-4, optimizer="sgd", nesterov=False,
                         warmup_epochs=0.5, img_size=48, ema=True, label_smoothing=0.1,
                         model_options={"hidden": 32, "dropout": 0.25},
                         data_options={"classes": 3, "image_root": "/x y", "flag": True})
    path = tmp_path / "run.toml"
    path.write_text(config.to_toml())
    assert TrainConfig(**read_config_file(path)) == config
    # Everything but the run's name (and options left at None) is saved, so the file
    # alone reproduces the run.
    unset = {f.name for f in fields(TrainConfig) if getattr(config, f.name) is None}
    assert set(read_config_file(path)) == {f.name for f in fields(TrainConfig)} - {
        "name", "exist_ok"} - unset


def test_config_files_accept_kebab_case_and_reject_unknown_or_mistyped_keys(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('batch-size = 16\nwarmup-epochs = 2\n')
    assert read_config_file(path) == {"batch_size": 16, "warmup_epochs": 2.0}
    path.write_text("epocs = 3\n")
    with pytest.raises(ConfigError, match="unknown option 'epocs'") as caught:
        read_config_file(path)
    assert "epochs" in caught.value.hint
    path.write_text('epochs = "ten"\n')
    with pytest.raises(ConfigError, match="epochs must be an integer"):
        read_config_file(path)
    path.write_text("epochs = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(path)
    with pytest.raises(ConfigError, match="not found"):
        read_config_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="ema must be true or false"):
        config_from_dict({"ema": 1})


def test_flags_override_the_file_and_options_merge(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('epochs = 4\nlr = 0.01\n[data_options]\nclasses = 3\nsize = 40\n')
    config = build_config(str(path), {"lr": 0.5, "data_opt": ["size=64"],
                                      "label_column": "species", "path_column": None})
    assert (config.epochs, config.lr) == (4, 0.5)
    assert config.data_options == {"classes": 3, "size": 64, "label_column": "species"}


def test_saved_config_reproduces_the_run(tmp_path, capsys):
    data = colour_data(tmp_path / "data")
    runs = tmp_path / "runs"
    first = ["train", "--data", str(data), "--out", str(runs), "--name", "a", "-e", "2",
             "-b", "8", "--img-size", "16", "--optimizer", "sgd", "--lr", "0.05",
             "--label-smoothing", "0.1", "--no-report", "--seed", "3"]
    assert main(first) == 0
    saved = runs / "a" / "config.toml"
    assert 'optimizer = "sgd"' in saved.read_text()
    assert main(["train", "--config", str(saved), "--name", "b"]) == 0
    capsys.readouterr()
    assert read_metrics(runs / "a") == read_metrics(runs / "b")
    assert (runs / "a" / "config.toml").read_text() == (runs / "b" / "config.toml").read_text()


def test_cli_rejects_bad_choices(tmp_path, capsys):
    for args, message in ((["--optimizer", "lion"], "Unknown --optimizer 'lion'"),
                          (["--cache", "ram"], "Unknown --cache 'ram'"),
                          (["--config", str(tmp_path / "nope.toml")], "Config file not found")):
        assert main(["train", "--out", str(tmp_path), *args]) == 1
        assert message in capsys.readouterr().err


def test_help_lists_generated_options(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--weight-decay", "--warmup-epochs", "--no-ema", "--select-metric",
                 "--class-weights", "--resume", "--config", "--path-column", "--image-root"):
        assert flag in out
