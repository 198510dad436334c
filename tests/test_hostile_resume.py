"""Hostile resume states: a bad last.pt is one CheckpointError line, never a traceback."""

from __future__ import annotations

import contextlib
import copy
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgcls.checkpoint import load_resume_state
from imgcls.cli import main
from imgcls.errors import CheckpointError, ConfigError, ImgclsError
from imgcls.train import fit

from .helpers import colour_data, tiny_config

FUZZ = settings(max_examples=25, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A two-epoch run whose last.pt the tests copy and damage."""
    root = tmp_path_factory.mktemp("hostile-resume")
    fit(tiny_config(colour_data(root / "data"), root / "runs", name="run", epochs=2))
    return root / "runs" / "run"


@pytest.fixture(scope="module")
def state(finished) -> dict:
    return torch.load(finished / "last.pt", weights_only=True)


def _run_with(folder: Path, state: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "last.pt")
    return folder


def _damaged(state: dict, change) -> dict:
    state = copy.deepcopy(state)
    change(state)
    return state


def _first_weight(s: dict) -> str:
    return next(iter(s["model"]))


DAMAGE = {
    "missing config": lambda s: s.pop("config"),
    "missing model": lambda s: s.pop("model"),
    "unknown option": lambda s: s["config"].update(bogus=1),
    "wrong option type": lambda s: s["config"].update(lr="fast"),
    "epoch is text": lambda s: s.update(epoch="2"),
    "epoch is negative": lambda s: s.update(epoch=-1),
    "history not a list": lambda s: s.update(history={"epoch": 1}),
    "best lacks its metric": lambda s: s.update(best={"epoch": 1}),
    "rng not a dict": lambda s: s.update(rng=[1, 2]),
    "rng of the wrong size": lambda s: s["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)),
    "python rng damaged": lambda s: s["rng"].update(python=[3, [1, 2], None]),
    "model weight reshaped": lambda s: s["model"].update({_first_weight(s): torch.zeros(1)}),
    "model weight missing": lambda s: s["model"].pop(_first_weight(s)),
    "stepper empty": lambda s: s.update(stepper={}),
    "optimizer moments reshaped": lambda s: [
        v.update(exp_avg=torch.zeros(2)) for v in s["stepper"]["optimizer"]["state"].values()],
    "format_version is text": lambda s: s.update(format_version="1"),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_each_damaged_field_is_one_checkpoint_error(state, tmp_path, capsys, name):
    run = _run_with(tmp_path / "run", _damaged(state, DAMAGE[name]))
    with pytest.raises(CheckpointError):
        fit(resume=run, epochs=3)
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("Error:") and len(lines) <= 2 and "Traceback" not in err


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3), max_leaves=8)


@FUZZ
@given(key=st.sampled_from(["epoch", "config", "classes", "model", "stepper", "best",
                            "history", "rng", "format_version"]), value=json_like)
def test_any_value_in_any_field_is_refused_or_resumed(state, tmp_path, key, value):
    run = _run_with(tmp_path / "fuzz", {**state, key: value})
    with contextlib.suppress(ImgclsError):
        fit(resume=run, epochs=3)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_malicious_state_is_refused_in_one_line_without_torch_advice(tmp_path, capsys):
    run = tmp_path / "evil"
    run.mkdir()
    torch.save({"format": "imgcls.resume", "x": Payload()}, run / "last.pt")
    with pytest.raises(CheckpointError, match="refused") as caught:
        load_resume_state(run)
    assert "weights_only" not in str(caught.value)
    assert main(["train", "--resume", str(run)]) == 1
    captured = capsys.readouterr()
    assert "must never run" not in captured.out
    assert "weights_only" not in captured.err and "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) <= 2 and lines[0].startswith("Error:")  # the error (+ its hint)


def test_a_resumed_run_removes_stale_temp_files(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    stale = [run / ".last.pt.k2j4_x.tmp", run / ".best.safetensors.a1b2.tmp"]
    for path in stale:
        path.write_bytes(b"half written")
    keep = [run / "notes.tmp", run / "x.last.pt.tmp"]
    for path in keep:
        path.write_text("mine")
    fit(resume=run, epochs=3)
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in keep)


def test_resuming_a_complete_run_says_so(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with pytest.raises(ConfigError, match="run is complete") as caught:
        fit(resume=run)
    assert "--epochs" in caught.value.hint
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert "run is complete" in err and "of 2" in err and "epoch 3 of 2" not in err
