"""imgcls against Ultralytics' classify mode, from scratch, at equal CPU-second budgets.

    python -m venv ../yolo-venv && ../yolo-venv/bin/pip install ultralytics
    python benchmarks/peer_ultralytics.py --data ../shared/data/cats-dogs \\
        --yolo-python ../yolo-venv/bin/python --budgets 300 1200 2400

Opt-in: Ultralytics runs in its own virtual environment (``--yolo-python``), so it never
enters imgcls's dependencies. Both tools train on the same ``train/`` folder and select
their best epoch on one half of ``val/``; both are evaluated on the other half (the
``train_recipes.py --holdout`` split, links, no copies; ``--swap-halves`` exchanges them).

Each tool gets a CPU-second budget through its own wall-clock knob (imgcls ``--time``,
Ultralytics ``time=``, both re-plan their schedule to fit): the wall budget is the CPU
budget over the tool's CPU/wall ratio, measured in a short calibration run of each tool
(imgcls: its budget recipe for 60 s on ``--threads 1``; Ultralytics: one epoch on its
own one torch thread plus its data workers). The table prints the CPU-seconds each run
really used (the whole process tree), wall seconds and the load average, then accuracy
on the held-out half. Both train in fp32 (no autocast), so the figures hold on a plain
AVX2 CPU. Last, both tools' batch inference on the same held-out files: ``imgcls
infer`` on the exported ONNX model, ``YOLO.predict`` on its PyTorch checkpoint (its
default path), when both tools ran. ``--tools imgcls`` or ``--tools ultralytics`` runs
one alone (a 2,400 CPU-s run takes 40 minutes; one at a time keeps the machine quiet).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardware import print_header  # benchmarks/hardware.py
from train_recipes import holdout_split  # benchmarks/train_recipes.py

YOLO_MODEL = "yolo26n-cls.yaml"  # Ultralytics' nano classifier, built from scratch
YOLO_SIZE = 128  # the size the comparison used; its own default is larger
TOOLS = {"imgcls": "imgcls", "ultralytics": "Ultralytics"}
CALIBRATION_SECONDS = 60  # imgcls's calibration run: the recipe a short budget picks

YOLO_TRAIN = f"""
import json, sys
from ultralytics import YOLO
root, out, hours, epochs, size = sys.argv[1:6]
model = YOLO({YOLO_MODEL!r})
kwargs = dict(time=float(hours)) if float(hours) > 0 else dict(epochs=int(epochs))
model.train(data=root, imgsz=int(size), device="cpu", amp=False, plots=False,
            project=out, name="run", exist_ok=True, verbose=False, **kwargs)
best = model.trainer.best
top1 = YOLO(str(best)).val(data=root, split="test", imgsz=int(size), plots=False,
                           verbose=False).top1
print(json.dumps({{"best": str(best), "test": float(top1)}}))
"""

YOLO_PREDICT = """
import sys
from ultralytics import YOLO
weights, folder, size = sys.argv[1:4]
rows = sum(1 for _ in YOLO(weights).predict(source=folder + "/*/*", imgsz=int(size),
                                            stream=True, batch=32, verbose=False,
                                            device="cpu"))
print(rows)
"""


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float]:
    """Run ``command``; its stdout, wall seconds and CPU seconds (it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command[:4])} ...")
    return proc.stdout, wall, cpu


def imgcls_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "imgcls", *args]


def train_and_score(root: Path, test: Path, out: Path, name: str, *options: str) -> dict:
    """``imgcls train`` on ``root`` with ``options``, its best weights scored on ``test``:
    wall and CPU seconds of the training, held-out accuracy, the weights, what it printed."""
    printed, wall, cpu = timed(imgcls_command("train", "--data", str(root), "--out-dir",
                                              str(out), "--name", name, "--no-report",
                                              *options))
    best = out / name / "best.safetensors"
    timed(imgcls_command("eval", str(best), "--data", str(test), "--split", "all",
                         "--out-dir", str(out / name / "test")))
    metrics = json.loads((out / name / "test" / "metrics.json").read_text(encoding="utf-8"))
    return {"wall": wall, "cpu": cpu, "test": metrics["accuracy"], "best": best,
            "printed": printed}


def train_imgcls(root: Path, out: Path, name: str, wall_seconds: float | None) -> dict:
    """The budget's recipe for ``wall_seconds`` (calibration: the same recipe, shortly)."""
    seconds = wall_seconds or CALIBRATION_SECONDS
    return train_and_score(root, root / "test", out, name, "--threads", "1",
                           "--time", f"{seconds:.0f}s")


def train_yolo(python: str, root: Path, out: Path, wall_seconds: float | None) -> dict:
    hours = f"{wall_seconds / 3600:.6f}" if wall_seconds else "0"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    text, wall, cpu = timed([python, "-c", YOLO_TRAIN, str(root), str(out), hours, "1",
                             str(YOLO_SIZE)], env)
    result = json.loads(text.strip().splitlines()[-1])
    return {"wall": wall, "cpu": cpu, "test": result["test"], "best": Path(result["best"])}


def line(tool: str, budget: int, run: dict) -> str:
    return (f"| {budget} | {tool} | {run['cpu']:.0f} | {run['wall']:.0f} | "
            f"{os.getloadavg()[0]:.1f} | {run['test']:.1%} |")


def infer_table(python: str, test: Path, imgcls_best: Path, yolo_best: Path,
                out: Path) -> None:
    onnx = out / "imgcls.onnx"
    timed(imgcls_command("export", "onnx", str(imgcls_best), "-o", str(onnx)))
    files = sum(1 for p in test.rglob("*") if p.is_file())
    _, wall, cpu = timed(imgcls_command("infer", str(onnx), str(test), "-o",
                                        str(out / "preds.csv")))
    print(f"\nbatch inference on the {files} held-out files (process start included)\n")
    print("| tool | CPU-s | wall s | CPU-ms / image | load average |")
    print("|---|---|---|---|---|")
    print(f"| imgcls infer (ONNX) | {cpu:.1f} | {wall:.1f} | {1000 * cpu / files:.1f} | "
          f"{os.getloadavg()[0]:.1f} |")
    _, wall, cpu = timed([python, "-c", YOLO_PREDICT, str(yolo_best), str(test),
                          str(YOLO_SIZE)])
    print(f"| YOLO.predict (PyTorch) | {cpu:.1f} | {wall:.1f} | {1000 * cpu / files:.1f} | "
          f"{os.getloadavg()[0]:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a folder with train/ and val/")
    parser.add_argument("--yolo-python", required=True,
                        help="the python of a virtual environment with ultralytics")
    parser.add_argument("--budgets", type=int, nargs="+", default=[300, 1200, 2400])
    parser.add_argument("--swap-halves", action="store_true")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS),
                        help="run only these (each one alone keeps the machine quiet for it)")
    args = parser.parse_args()
    print_header()
    with tempfile.TemporaryDirectory(prefix="imgcls-peer-") as tmp:
        out = Path(tmp)
        root, test = holdout_split(Path(args.data), out / "holdout", args.swap_halves)
        trainers = {"imgcls": lambda dest, name, wall: train_imgcls(root, dest, name, wall),
                    "ultralytics": lambda dest, name, wall: train_yolo(
                        args.yolo_python, root, dest / name, wall)}
        # calibration: each tool's CPU/wall ratio (Ultralytics one epoch, imgcls 60 s)
        ratios = {}
        for tool in args.tools:
            run = trainers[tool](out / tool, "calibrate", None)
            ratios[tool] = run["cpu"] / run["wall"]
        print("CPU/wall ratios from the calibration runs: "
              + ", ".join(f"{tool} {ratio:.2f}" for tool, ratio in ratios.items()) + "\n")
        print(f"training from scratch (Ultralytics {YOLO_MODEL} at {YOLO_SIZE} px; imgcls "
              "the recipe `imgcls train --time` picks); held-out accuracy\n")
        print("| budget CPU-s | tool | CPU-s used | wall s | load average | held-out |")
        print("|---|---|---|---|---|---|")
        last = {}
        for budget in args.budgets:
            for tool in args.tools:
                last[tool] = trainers[tool](out / tool, f"b{budget}", budget / ratios[tool])
                print(line(TOOLS[tool], budget, last[tool]), flush=True)
        if len(last) == len(TOOLS):
            infer_table(args.yolo_python, test, last["imgcls"]["best"],
                        last["ultralytics"]["best"], out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
