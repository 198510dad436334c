"""--threads: a fixed count, or the cores other processes leave idle, counted each epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgcls.errors import ConfigError
from imgcls.registry import get_model
from imgcls.train import Reporter, fit
from imgcls.train import threads as threads_module
from imgcls.train.threads import ThreadPolicy, busy_cpu_seconds, idle_threads

from .helpers import colour_data, tiny_config


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class Machine:
    """A stand-in for /proc/stat and the clocks: ``others`` cores busy besides us."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, others: float) -> None:
        self.others, self.busy, self.wall, self.own = others, 1000.0, 0.0, 0.0
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(threads_module, "busy_cpu_seconds", lambda path=None: self.busy)
        monkeypatch.setattr(threads_module, "machine_sample",
                            lambda: (self.busy, self.own, self.wall))
        monkeypatch.setattr(threads_module, "pause", self.advance)
        monkeypatch.setattr(threads_module, "usable_cores", lambda: 2)

    def advance(self, seconds: float, own_cores: float = 1.0) -> None:
        self.wall += seconds
        self.own += own_cores * seconds
        self.busy += (self.others + own_cores) * seconds


@pytest.mark.parametrize(("others", "expected"), [(0.0, 2), (0.4, 2), (0.6, 1), (1.3, 1),
                                                  (5.0, 1)])
def test_the_idle_cores_decide_and_at_least_one_thread_runs(others, expected):
    assert idle_threads(others, cores=2) == expected


def test_a_busy_machine_gets_one_thread_and_a_quiet_one_all_cores(monkeypatch):
    machine = Machine(monkeypatch, others=1.5)
    policy = ThreadPolicy()
    assert policy.cores == 2 and policy.start() == 1  # another job keeps 1.5 cores busy
    assert "other processes kept 1.5 busy" in str(policy)
    machine.others = 0.0  # the other job ended during epoch 1
    machine.advance(10.0, own_cores=1.0)
    assert policy.recount() == 2 and torch.get_num_threads() == 2
    machine.advance(10.0, own_cores=2.0)  # our own two threads are not "others"
    assert policy.recount() is None and torch.get_num_threads() == 2


def test_a_requested_count_or_omp_num_threads_is_kept(monkeypatch):
    Machine(monkeypatch, others=1.9)
    assert ThreadPolicy(requested=2, cores=2).start() == 2
    assert "(--threads)" in str(ThreadPolicy(requested=2, cores=2))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    policy = ThreadPolicy(cores=2)
    assert policy.start() == 2 and policy.recount() is None
    assert "OMP_NUM_THREADS" in str(policy)


def test_busy_seconds_are_read_from_a_proc_stat_file(tmp_path):
    stat = tmp_path / "stat"
    ticks = threads_module.os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal: idle and iowait are not busy
    stat.write_text(f"cpu  {ticks} 0 {ticks} {50 * ticks} {7 * ticks} 0 0 {ticks} 0 0\n"
                    "cpu0 1 2 3 4\n")
    assert busy_cpu_seconds(str(stat)) == pytest.approx(3.0)
    assert busy_cpu_seconds(str(tmp_path / "missing")) is None


class Notes(Reporter):
    def __init__(self) -> None:
        self.info: dict = {}
        self.notes: list[str] = []
        self.threads: list[int] = []

    def start(self, info: dict) -> None:
        self.info = info

    def epoch_end(self, record: dict, is_best: bool) -> None:
        self.threads.append(record["threads"])

    def note(self, message: str) -> None:
        self.notes.append(message)


def test_training_uses_the_threads_asked_and_logs_them_per_epoch(tmp_path: Path):
    data = colour_data(tmp_path / "data")
    notes = Notes()
    fit(tiny_config(data, tmp_path / "runs", epochs=2, threads=1), notes)
    assert notes.info["threads"] == "1 (--threads)" and notes.threads == [1, 1]


def test_training_moves_to_one_thread_when_another_job_starts(tmp_path, monkeypatch):
    machine = Machine(monkeypatch, others=0.0)

    class Busy(Notes):  # another job starts during epoch 1
        def epoch_end(self, record: dict, is_best: bool) -> None:
            super().epoch_end(record, is_best)
            machine.others = 1.4
            machine.advance(5.0)

    notes = Busy()
    fit(tiny_config(colour_data(tmp_path / "data"), tmp_path / "runs", epochs=2), notes)
    assert notes.info["threads"].startswith("2 of 2 cores")
    assert notes.notes[0] == "threads: 1 from epoch 2 (other processes kept 1.4 of 2 cores busy)"
    assert notes.threads == [2, 1]


def test_a_thread_count_below_one_is_refused():
    with pytest.raises(ConfigError, match="--threads"):
        tiny_config(Path("data"), Path("runs"), threads=0).validate(get_model("basic-cnn").spec)
