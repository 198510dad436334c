"""Training events reach plugins; a plugin failing inside a hook is named, never anonymous."""

from __future__ import annotations

import types

import pytest

from imgcls import hookimpl, plugins
from imgcls.cli import main
from imgcls.errors import PluginError
from imgcls.train import TrainConfig, fit


@pytest.fixture
def event_plugin():
    module = types.ModuleType("recorder")
    module.events = []

    @hookimpl
    def on_fit_start(config, classes):
        module.events.append(("start", tuple(classes)))

    @hookimpl
    def on_epoch_end(epoch, metrics, run_dir):
        module.events.append(("epoch", epoch, round(metrics["val_acc"], 6)))

    @hookimpl
    def on_fit_end(result):
        module.events.append(("end", result.best_path.name))

    module.on_fit_start, module.on_epoch_end, module.on_fit_end = (
        on_fit_start, on_epoch_end, on_fit_end)
    plugins.load_plugins()
    plugins.pm.register(module, name="recorder")
    yield module
    plugins.pm.unregister(module)


@pytest.fixture
def failing_plugin():
    module = types.ModuleType("exploder")

    @hookimpl
    def on_epoch_end(epoch, metrics, run_dir):
        raise RuntimeError("disk full on the metrics server")

    module.on_epoch_end = on_epoch_end
    plugins.load_plugins()
    plugins.pm.register(module, name="exploder")
    yield module
    plugins.pm.unregister(module)


def test_events_arrive_in_order(event_plugin, colour_folder, tmp_path):
    result = fit(TrainConfig(data=str(colour_folder), epochs=2, batch_size=8, out=str(tmp_path)))
    kinds = [event[0] for event in event_plugin.events]
    assert kinds == ["start", "epoch", "epoch", "end"]
    assert event_plugin.events[0] == ("start", ("green", "red"))
    assert [e[2] for e in event_plugin.events[1:3]] == [
        round(h["val_acc"], 6) for h in result.history]


def test_failing_hook_is_reported_by_plugin_name(failing_plugin, colour_folder, tmp_path,
                                                  capsys):
    with pytest.raises(PluginError, match="'exploder' failed in on_epoch_end"):
        fit(TrainConfig(data=str(colour_folder), epochs=1, batch_size=8, out=str(tmp_path)))
    code = main(["train", "--data", str(colour_folder), "--epochs", "1", "--out",
                 str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "exploder" in err and "disk full" in err and "Traceback" not in err
