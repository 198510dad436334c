"""Test helpers: tiny generated data, tiny configs, reading run folders, stopping a run."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgcls import hookimpl
from imgcls.plugins import load_plugins, pm
from imgcls.train import TrainConfig

TINY_SHAPES = {"classes": 3, "train_per_class": 200, "val_per_class": 30, "size": 64}


def write_class_folders(root: Path, classes: dict[str, tuple[int, int, int]], per_class: int,
                        size: int = 40, seed: int = 0) -> Path:
    """Solid-ish colour images, one folder per class: trivially learnable."""
    rng = np.random.default_rng(seed)
    for name, colour in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-20, 21, (size, size, 3))
            pixels = np.clip(np.array(colour)[None, None] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i:03d}.png")
    return root


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 50, 210)}


def colour_data(root: Path, per_class: int = 10, counts: dict[str, int] | None = None) -> Path:
    """Three (or ``counts``-sized) colour classes in train/ and val/, 24 px."""
    for split, seed in (("train", 0), ("val", 1)):
        for name, colour in COLOURS.items():
            n = (counts or {}).get(name, per_class) if split == "train" else max(3, per_class // 2)
            write_class_folders(root / split, {name: colour}, per_class=n, size=24, seed=seed)
    return root


def tiny_config(data: Path, out: Path, **overrides: Any) -> TrainConfig:
    """A config that trains basic-cnn in about a second on ``colour_data``."""
    options = dict(data=str(data), out=str(out), epochs=3, batch_size=8, img_size=16,
                   augment="flip", report=False, warmup_epochs=0.0)
    return TrainConfig(**(options | overrides))


def wait_for_first_epoch(process: subprocess.Popen, run_dir: Path, seconds: float) -> bool:
    """Wait until a training child has logged its first epoch (a signal before it would
    test setup, not training); False if it exited or ``seconds`` passed first."""
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and metrics.read_text():
            return True
        time.sleep(0.2)
    return process.poll() is None and metrics.exists() and bool(metrics.read_text())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class _Recorder:
    """A plugin that records training events and can raise Ctrl-C after an epoch."""

    def __init__(self, stop_after: int | None) -> None:
        self.stop_after = stop_after
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    def on_fit_start(self, config: Any, classes: list[str], run_dir: Any,
                     history: list[dict]) -> None:
        self.events.append(("start", {"classes": classes, "history": len(history)}))

    @hookimpl
    def on_epoch_end(self, epoch: int, metrics: dict, timing: dict) -> None:
        self.events.append(("epoch", {"epoch": epoch, "metrics": metrics, "timing": timing}))
        if epoch == self.stop_after:
            raise KeyboardInterrupt

    @hookimpl
    def on_fit_end(self, result: Any) -> None:
        self.events.append(("end", result))


@contextlib.contextmanager
def recording(stop_after: int | None = None) -> Iterator[_Recorder]:
    """Register a recording plugin for the duration of the block."""
    load_plugins()
    recorder = _Recorder(stop_after)
    pm.register(recorder, name="test-recorder")
    try:
        yield recorder
    finally:
        pm.unregister(name="test-recorder")


class FileServer:
    """A real HTTP server on 127.0.0.1 serving in-memory files; it counts requests.

    A path in ``truncate`` is answered with its full Content-Length but only half its
    bytes before the connection closes, as a server dying mid-file would.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.truncate: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = self.path in server.truncate
                self.wfile.write(body[: len(body) // 2] if cut else body)
                self.close_connection = cut

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    try:
        yield server
    finally:
        server.close()
