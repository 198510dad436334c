"""imgcls tune: search spaces, pruning, a resumable SQLite study shared by processes, outputs."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from imgcls.cli import main
from imgcls.errors import ConfigError
from imgcls.registry import get_model
from imgcls.train import TrainConfig, fit
from imgcls.train.config import read_config_file
from imgcls.tune.config import TuneConfig, parse_duration
from imgcls.tune.space import (
    apply_params,
    augment_for,
    check_space,
    default_space,
    read_space,
    space_to_toml,
)
from imgcls.tune.study import PruningReporter, make_sampler, make_storage, open_study

from .helpers import colour_data, read_metrics, recording, tiny_config

# Trials share these (tiny_config's settings), so each trains in well under a second.
BASE_TOML = 'img_size = 16\nbatch_size = 8\naugment = "flip"\nwarmup_epochs = 0.0\n'
SMALL_SPACE = """
optimizer = ["adamw", "sgd"]

[lr]
low = 0.001
high = 0.01
log = true

[model_options.hidden]
low = 8
high = 32
"""
TRIAL_LINE = re.compile(r"^trial +(\d+) ", re.MULTILINE)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    # Two shared cores: one compute thread per process is several times faster.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return colour_data(tmp_path_factory.mktemp("tune-data") / "colours")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "base.toml").write_text(BASE_TOML)
    (tmp_path / "space.toml").write_text(SMALL_SPACE)
    return {"base": tmp_path / "base.toml", "space": tmp_path / "space.toml",
            "runs": tmp_path / "runs"}


def tune_args(data: Path, files: dict[str, Path], *extra: str) -> list[str]:
    return ["tune", "--data", str(data), "--config", str(files["base"]), "--space",
            str(files["space"]), "--out-dir", str(files["runs"]), "--study", "t",
            "--epochs", "2", "--pruner", "none", *extra]


def load(files: dict[str, Path], name: str = "t") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{files['runs'] / 'tune.db'}")


# --------------------------------------------------------------------------- options and spaces


def test_parse_duration():
    assert [parse_duration(t) for t in ("90", "90s", "30m", "1.5h", "1d")] == [
        90.0, 90.0, 1800.0, 5400.0, 86400.0]
    assert parse_duration(None) is None
    for bad in ("ten", "5 weeks", "-3m", "0"):
        with pytest.raises(ConfigError, match="is not a duration") as info:
            parse_duration(bad)
        assert "30m" in info.value.hint


def test_default_space_follows_each_model_family():
    names = {name: [p.name for p in default_space(get_model(name).spec)]
             for name in ("basic-cnn", "deep-cnn", "vgg-bn", "resnet-s")}
    common = ["lr", "weight_decay", "optimizer", "batch_size", "label_smoothing",
              "augment_strength"]
    assert names["basic-cnn"] == [*common, "model_options.hidden"]
    assert names["deep-cnn"] == [*common, "model_options.hidden", "model_options.dropout"]
    assert names["vgg-bn"] == [*common, "model_options.width", "model_options.depth",
                               "model_options.dropout"]
    assert names["resnet-s"] == [*common, "model_options.depth", "model_options.width"]
    depth = next(p for p in default_space(get_model("resnet-s").spec) if p.name.endswith("depth"))
    assert all((d - 2) % 6 == 0 for d in depth.choices)  # resnet-s only builds 6n+2
    lr = default_space(get_model("basic-cnn").spec)[0]
    assert (lr.kind, lr.log, lr.low, lr.high) == ("float", True, 1e-4, 1e-2)
    for name in names:  # every default range is one TrainConfig accepts
        spec = get_model(name).spec
        check_space(default_space(spec), TrainConfig(model=name), spec, "default")


def test_the_default_space_from_pretrained_weights_is_the_fine_tuning_one(tmp_path, capsys):
    spec = get_model("resnet-s").spec
    base = TrainConfig(model="resnet-s", weights="pretrained.pth", epochs=4)
    space = {p.name: p for p in default_space(spec, base)}
    assert list(space)[:3] == ["lr", "backbone_lr_scale", "weight_decay"]
    assert (space["lr"].low, space["lr"].high) == (1e-4, 3e-3)  # around the default 1e-3
    assert space["backbone_lr_scale"].high == 1.0 and space["backbone_lr_scale"].log
    assert (space["freeze_backbone_epochs"].low, space["freeze_backbone_epochs"].high) == (0, 2)
    assert "model_options.depth" in space
    check_space(list(space.values()), base, spec, "default")
    one_epoch = default_space(spec, TrainConfig(weights="x.pth", epochs=1))
    assert "freeze_backbone_epochs" not in [p.name for p in one_epoch]
    assert "backbone_lr_scale" not in [p.name for p in default_space(spec)]
    path = tmp_path / "space.toml"
    path.write_text(space_to_toml(list(space.values())))
    assert read_space(path, spec) == list(space.values())
    capsys.readouterr()
    assert main(["tune", "--model", "resnet-s", "--weights", "w.pth", "--print-space"]) == 0
    assert "[freeze_backbone_epochs]" in capsys.readouterr().out


def test_a_printed_space_reads_back_the_same(tmp_path):
    spec = get_model("vgg-bn").spec
    path = tmp_path / "space.toml"
    path.write_text(space_to_toml(default_space(spec)))
    assert read_space(path, spec) == default_space(spec)


@pytest.mark.parametrize(("text", "message", "hint"), [
    ("[lrr]\nlow = 0.1\nhigh = 1.0\n", "'lrr' cannot be tuned", "Did you mean 'lr'?"),
    ("[epochs]\nlow = 1\nhigh = 5\n", "'epochs' cannot be tuned", "fixed for the whole study"),
    ("[lr]\nlo = 0.1\nhigh = 1.0\n", "unknown key 'lo' for type float", "Did you mean 'low'?"),
    ("[lr]\nlow = 0.1\nhigh = 1.0\nchoices = [1]\n", "both choices and a low/high", "or low"),
    ("[lr]\ntype = \"int\"\nlow = 1\nhigh = 3\nlog = 1\n", "log must be true or false", "[lr]"),
    ("[optimizer]\ntype = \"categorical\"\nlow = 1\n", "unknown key 'low' for type categ",
     "A categorical takes: type, choices"),
    ("[lr]\ntype = \"normal\"\nlow = 0.1\nhigh = 1.0\n", "unknown type 'normal'", "categorical"),
    ("[lr]\nlow = 0.1\nhigh = 0.01\n", "low must be below high", "Fix [lr]"),
    ("[lr]\nlow = 0.0\nhigh = 0.1\nlog = true\n", "a log range needs low > 0", "Fix [lr]"),
    ("lr = 0.1\n", "is not a range or a list", "Write a table"),
    ("optimizer = []\n", "non-empty list of choices", "For example"),
    ("[model_options.widht]\nlow = 1\nhigh = 2\n", "'widht' cannot be tuned",
     "Did you mean 'width'?"),
    ("", "defines no dimensions", "Add one"),
    ("[lr\n", "is not valid TOML", "as a table"),
])
def test_space_file_mistakes_are_clear_errors(tmp_path, text, message, hint):
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        read_space(path, get_model("vgg-bn").spec)
    assert hint in info.value.hint and str(path) in info.value.message


@pytest.mark.parametrize(("text", "message"), [
    ('optimizer = ["adamw", "adamx"]\n', "optimizer = 'adamx' is not usable: Unknown --optimizer"),
    ("[batch_size]\nlow = 0\nhigh = 8\n", "batch_size = 0 is not usable: --batch-size must be"),
    ("batch_size = [8.5]\n", "batch_size must be an integer"),
    ('augment = ["seed", "fliip"]\n', "augment = 'fliip' is not usable: Unknown augmentation"),
    ("augment = [\"flip\"]\n[augment_strength]\nlow = 0.0\nhigh = 1.0\n", "searched twice"),
])
def test_values_that_training_would_refuse_are_refused_first(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text)
    spec = get_model("basic-cnn").spec
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_space(read_space(path, spec), TrainConfig(), spec, str(path))


def test_trial_values_become_a_train_config():
    base = TrainConfig(model_options={"hidden": 16}, lr=0.5)
    config = apply_params(base, {"lr": 0.01, "model_options.dropout": 0.2,
                                 "augment_strength": 0.5, "batch_size": 16})
    assert (config.lr, config.batch_size) == (0.01, 16)
    assert config.model_options == {"hidden": 16, "dropout": 0.2}
    assert config.augment == "flip,translate=0.05,zoom=0.1,color-jitter=0.15"
    assert augment_for(0.0) == "flip" and base.lr == 0.5  # the base is left as it was
    with pytest.raises(ConfigError, match="batch_size must be an integer"):
        apply_params(base, {"batch_size": 8.5})


def test_tune_options_are_checked():
    for kwargs, message in (({"trials": 0}, "--trials must be at least 1"),
                            ({"metric": "f1"}, "Unknown --metric 'f1'"),
                            ({"pruner": "hyper"}, "Unknown --pruner 'hyper'"),
                            ({"study": "a/b"}, "not a usable folder name")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            TuneConfig(**kwargs).validate()
    config = TuneConfig(base=TrainConfig(model="vgg-bn", data="path/to/cats dogs/", out="o"))
    assert config.study_name == "vgg-bn-cats-dogs"
    assert config.tune_dir == Path("o/tune-vgg-bn-cats-dogs")
    assert config.storage_url == "sqlite:///o/tune.db"


# --------------------------------------------------------------------------- sampler, storage


def first_proposals(seed: int | None, n: int = 3) -> list[dict]:
    study = optuna.create_study(sampler=make_sampler(seed), direction="maximize")
    space = default_space(get_model("basic-cnn").spec)
    proposals = []
    for i in range(n):
        trial = study.ask()
        proposals.append({p.name: p.suggest(trial) for p in space})
        study.tell(trial, 0.1 * i)
    return proposals


def test_the_same_seed_proposes_the_same_first_params():
    first = first_proposals(7)
    assert first == first_proposals(7)
    assert first != first_proposals(8)
    assert len({p["lr"] for p in first}) == 3  # three different proposals, not one repeated


def test_a_study_keeps_its_model_data_and_metric(tmp_path):
    base = TrainConfig(data="d", out=str(tmp_path))
    open_study(TuneConfig(base=base, study="s"))
    assert load(files={"runs": tmp_path}, name="s").user_attrs["imgcls"] == {
        "model": "basic-cnn", "data": "d", "metric": "accuracy"}
    open_study(TuneConfig(base=base, study="s"))  # the same settings: resumed
    with pytest.raises(ConfigError, match="tunes metric 'accuracy', not 'loss'") as info:
        open_study(TuneConfig(base=base, study="s", metric="loss"))
    assert "--metric accuracy" in info.value.hint
    with pytest.raises(ConfigError, match="tunes data 'd', not 'e'"):
        open_study(TuneConfig(base=replace(base, data="e"), study="s"))


def test_a_bad_storage_url_is_a_clear_error():
    with pytest.raises(ConfigError, match="Cannot open --storage nosuchdb://x") as info:
        make_storage("nosuchdb://x")
    assert "sqlite:///" in info.value.hint


# --------------------------------------------------------------------------- trials


class StubTrial:
    """Records reports; says prune after ``prune_at``."""

    def __init__(self, prune_at: int) -> None:
        self.prune_at, self.reported = prune_at, {}

    def report(self, value: float, step: int) -> None:
        self.reported[step] = value

    def should_prune(self) -> bool:
        return max(self.reported) >= self.prune_at


def test_a_pruned_trial_stops_training_after_that_epoch(data, tmp_path):
    trial = StubTrial(prune_at=2)
    config = tiny_config(data, tmp_path, epochs=4, name="pruned")
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 2"):
        fit(config, PruningReporter(trial, "val_macro_f1"))
    records = read_metrics(tmp_path / "pruned")
    assert [r["epoch"] for r in records] == [1, 2]
    assert trial.reported == {r["epoch"]: r["val_macro_f1"] for r in records}
    assert (tmp_path / "pruned" / "best.safetensors").is_file()


def test_tune_writes_best_config_checkpoint_and_report_then_resumes(data, files, capsys):
    assert main(tune_args(data, files, "--trials", "2", "--seed", "3")) == 0
    out = capsys.readouterr().out
    assert TRIAL_LINE.findall(out) == ["0", "1"] and "complete (2 epochs)" in out
    study = load(files)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert set(study.best_params) == {"lr", "optimizer", "model_options.hidden"}
    tune_dir = files["runs"] / "tune-t"
    best = study.best_trial
    assert f"best trial {best.number}: accuracy {best.value:.4f}" in out
    assert (tune_dir / "best.safetensors").read_bytes() == (
        tune_dir / f"trial-{best.number}" / "best.safetensors").read_bytes()
    html = (tune_dir / "tune-report.html").read_text()
    pngs = re.findall(r'id="(\w+)" alt="[^"]+" src="data:image/png;base64,([^"]+)"', html)
    assert [name for name, _ in pngs] == ["history", "importances"]
    assert all(base64.b64decode(png).startswith(b"\x89PNG") for _, png in pngs)

    # best.toml reruns the best trial exactly: the same value, epoch by epoch.
    config = read_config_file(tune_dir / "best.toml")
    assert config["lr"] == best.params["lr"] and config["seed"] == 3
    assert config["model_options"] == {"hidden": best.params["model_options.hidden"]}
    rerun = fit(replace(TrainConfig(**config), name="rerun"))
    assert [r["val_acc"] for r in rerun.history] == [best.intermediate_values[e] for e in (1, 2)]
    assert rerun.best["val_acc"] == best.value and rerun.run_dir.parent == files["runs"]

    # The same command with more trials continues the study; finished trials count.
    assert main(tune_args(data, files, "--trials", "3", "--seed", "3")) == 0
    assert TRIAL_LINE.findall(capsys.readouterr().out) == ["2"]
    assert main(tune_args(data, files, "--trials", "3", "--seed", "3")) == 0
    out = capsys.readouterr().out
    assert TRIAL_LINE.findall(out) == [] and "study t: 3 complete" in out
    assert len(load(files).trials) == 3


def test_an_interrupted_tune_continues_with_the_same_command(data, files, capsys):
    with recording(stop_after=1):  # Ctrl-C after the first epoch of the first trial
        assert main(tune_args(data, files, "--trials", "2")) == 130
    assert "Run the same command again to continue" in capsys.readouterr().err
    fail, complete = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE
    assert [t.state for t in load(files).trials] == [fail]
    assert main(tune_args(data, files, "--trials", "2")) == 0
    assert TRIAL_LINE.findall(capsys.readouterr().out) == ["1", "2"]
    assert [t.state for t in load(files).trials] == [fail, complete, complete]


def test_unpromising_trials_are_pruned(data, files, capsys, monkeypatch):
    # A threshold no accuracy reaches: every trial is pruned at its first epoch.
    monkeypatch.setattr("imgcls.tune.study.make_pruner",
                        lambda name: optuna.pruners.ThresholdPruner(lower=2.0))
    assert main(tune_args(data, files, "--trials", "2", "--epochs", "3")) == 1
    captured = capsys.readouterr()
    assert captured.out.count("pruned after epoch 1") == 2
    assert "study t: 2 pruned" in captured.out and "no trial completed yet" in captured.err
    assert [len(t.intermediate_values) for t in load(files).trials] == [1, 1]
    assert (files["runs"] / "tune-t" / "tune-report.html").is_file()
    assert not (files["runs"] / "tune-t" / "best.toml").exists()


def test_median_and_halving_pruners_are_optunas(tmp_path):
    from imgcls.tune.study import make_pruner

    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("halving"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)


def test_two_processes_share_one_sqlite_study(data, files):
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")
    # Each process its own seed: with one seed both would propose the same trials.
    processes = [subprocess.Popen(
        [sys.executable, "-m", "imgcls", *tune_args(data, files, "--trials", "4", "--epochs",
                                                    "1", "--seed", str(seed))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for seed in (1, 2)]
    outputs = [process.communicate(timeout=240) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, out + err
    numbers = [{int(n) for n in TRIAL_LINE.findall(out)} for out, _ in outputs]
    # Never the same trial twice. Which process trains how many depends on which one
    # finishes importing torch first, so one of them may find the study already full.
    assert not numbers[0] & numbers[1]
    trials = load(files).trials
    assert {t.number for t in trials} == numbers[0] | numbers[1]
    # Each stops once both together have 4; the one finishing second may add its last.
    assert 4 <= len(trials) <= 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_tune_help_imports_neither_torch_nor_optuna():
    script = ("import sys\nfrom imgcls.cli import main\nassert main(['tune', '--help']) == 0\n"
              "print([m for m in ('torch', 'optuna') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--print-space" in result.stdout and result.stdout.splitlines()[-1] == "[]"


def test_print_space_shows_the_space_a_tune_would_search(data, files, capsys):
    assert main(["tune", "--model", "resnet-s", "--print-space"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["model_options"]["depth"] == {"type": "categorical", "choices": [8, 14, 20]}
    assert main(["tune", "--space", str(files["space"]), "--print-space"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["optimizer"]["choices"] == ["adamw", "sgd"] and "lr" in printed
    assert "weight_decay" not in printed
