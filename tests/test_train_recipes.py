"""imgcls train --time with no --model: the budget's recipe, printed, overridable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imgcls.cli.train import build_config
from imgcls.train import recipes
from imgcls.train.recipes import (
    LONG_BUDGET,
    SIZES,
    SMALL_DATA_BUDGET,
    SMALL_DATA_EPOCHS,
    budget_recipe,
)

from .helpers import write_class_folders


@pytest.mark.parametrize(("time", "size"), [("90s", 64), ("5m", 64), ("15m", 64),
                                            ("20m", 80), ("40m", 80), ("2h", 96)])
def test_the_input_size_grows_with_the_budget(time, size):
    recipe = budget_recipe(time)
    assert recipe["model"] == "resnet-s" and recipe["img_size"] == size
    assert recipe["optimizer"] == "sgd" and recipe["scheduler"] == "onecycle"
    assert [limit for limit, _ in SIZES] == sorted(limit for limit, _ in SIZES)


@pytest.mark.parametrize(("time", "long"), [("5m", False), ("30m", False), ("31m", True),
                                            ("2h", True)])
def test_a_long_budget_regularises_more(time, long):
    recipe = budget_recipe(time)
    assert LONG_BUDGET == 1800
    assert recipe.get("ema", False) is long
    assert ("cutmix" in recipe["augment"]) is long and ("color-jitter" in recipe["augment"]) is long
    assert "random-resized-crop=0.35" in recipe["augment"]


def test_the_long_recipe_is_printed_and_its_ema_can_be_turned_off(capsys):
    config = build_config(None, {"time": "40m"})
    assert config.ema and "cutmix:p=0.5" in config.augment and config.img_size == 80
    assert "EMA of the weights" in capsys.readouterr().out
    config = build_config(None, {"time": "40m", "ema": False})
    assert not config.ema and "EMA" not in capsys.readouterr().out


def test_a_budget_without_a_model_trains_the_recipe_and_says_so(capsys):
    config = build_config(None, {"time": "5m", "data": "photos"})
    assert (config.model, config.img_size, config.lr, config.model_options) == (
        "resnet-s", 64, 0.1, {"depth": 20})
    printed = capsys.readouterr().out
    assert "recipe for a 5m budget (no --model given): resnet-s (depth 20), 64 px" in printed
    assert "any option you give overrides it" in printed


def test_options_given_keep_their_value_and_are_not_listed(capsys):
    config = build_config(None, {"time": "5m", "lr": 0.05, "img_size": 48,
                                 "model_opt": ["width=2"]})
    assert (config.lr, config.img_size, config.optimizer) == (0.05, 48, "sgd")
    assert config.model_options == {"depth": 20, "width": 2}
    printed = capsys.readouterr().out
    assert "64 px" not in printed and "48 px" not in printed and "lr as given" in printed


@pytest.mark.parametrize("given", [{"model": "vgg-bn"}, {"weights": "imagenet"}, {}])
def test_a_named_model_weights_or_no_budget_keep_the_usual_defaults(given, capsys):
    values = {"time": "5m"} if given else {}
    config = build_config(None, values | given)
    assert config.model == given.get("model", "basic-cnn")
    assert config.optimizer == "adamw" and capsys.readouterr().out == ""


def test_the_recipe_is_chosen_without_importing_torch():
    code = ("import sys; from imgcls.cli.train import build_config; "
            "build_config(None, {'time': '5m'}); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_a_small_folder_without_model_epochs_or_time_gets_the_recipe(tmp_path, capsys):
    write_class_folders(tmp_path / "photos", {"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=4)
    config = build_config(None, {"data": str(tmp_path / "photos")})
    assert (config.model, config.time, config.img_size, config.epochs) == (
        "resnet-s", SMALL_DATA_BUDGET, 64, SMALL_DATA_EPOCHS)
    printed = capsys.readouterr().out
    assert (f"recipe for a {SMALL_DATA_BUDGET} budget (a folder of 8 images, and no --model, "
            f"--epochs or --time given; at most {SMALL_DATA_EPOCHS} epochs): resnet-s (depth "
            "20), 64 px") in printed


@pytest.mark.parametrize("given", [{"epochs": 3}, {"model": "basic-cnn"}, {"time": "20m"}])
def test_a_small_folder_with_model_epochs_or_time_keeps_them(given, tmp_path, capsys):
    write_class_folders(tmp_path / "photos", {"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=4)
    config = build_config(None, {"data": str(tmp_path / "photos")} | given)
    assert config.time == given.get("time") and "a folder of" not in capsys.readouterr().out
    assert config.model == ("resnet-s" if "time" in given else "basic-cnn")


def test_a_larger_folder_or_a_dataset_name_keeps_the_tutorial_defaults(tmp_path, monkeypatch):
    write_class_folders(tmp_path / "photos", {"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=4)
    monkeypatch.setattr(recipes, "SMALL_DATA", 7)
    assert build_config(None, {"data": str(tmp_path / "photos")}).model == "basic-cnn"
    assert recipes.count_images(tmp_path / "photos", 100) == 8
    (tmp_path / "photos" / "a" / "loop").symlink_to(tmp_path / "photos")  # walked once
    assert recipes.count_images(tmp_path / "photos", 100) == 8
    assert build_config(None, {"data": "shapes"}).model == "basic-cnn"
    assert build_config(None, {}).model == "basic-cnn"
