"""DistributedDataParallel: 2 gloo processes on the CPU, launched by torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .helpers import colour_data


@pytest.mark.slow
def test_torchrun_two_processes_write_one_run(tmp_path):
    data = colour_data(tmp_path / "data", per_class=9)
    out = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "imgcls", "train", "--data", str(data),
               "--out", str(out), "-e", "2", "-b", "4", "--img-size", "16", "--device", "cpu",
               "--augment", "flip"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ["basic-cnn"]
    run = out / "basic-cnn"
    assert len(list(run.glob("*.safetensors"))) == 1 and (run / "report.html").is_file()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    # Only rank 0 prints progress.
    assert result.stdout.count("epoch   1 ") == 1 and result.stdout.count("run folder:") == 1
    # Each rank evaluated half the validation set; their summed counts must equal rank 0's
    # single-process evaluation of the best checkpoint at the end.
    best = max((json.loads(line) for line in lines), key=lambda r: r["val_acc"])
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == best["val_acc"]
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["world_size"] == 2 and resolved["device"] == "cpu"
    assert "x 2 processes" in result.stdout


def _agree_on_finiteness(rank: int, store: str, results: str) -> None:
    import torch
    import torch.distributed as dist

    from imgcls.train.distributed import DistEnv, all_finite

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        env = DistEnv(rank, rank, 2)
        nan_on_rank_1 = torch.tensor(float("nan") if rank == 1 else 0.5)
        answers = [all_finite(nan_on_rank_1, env), all_finite(torch.tensor(0.5), env)]
        with open(f"{results}.{rank}", "w") as handle:
            handle.write(json.dumps(answers))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_a_non_finite_loss_on_one_rank_is_seen_by_all(tmp_path):
    # Ranks must skip (or stop on) the same steps, or DDP's gradient sync waits forever.
    import torch.multiprocessing as mp

    mp.spawn(_agree_on_finiteness, args=(str(tmp_path / "store"), str(tmp_path / "out")),
             nprocs=2)
    for rank in range(2):
        assert json.loads((tmp_path / f"out.{rank}").read_text()) == [False, True]
