"""The run folder's plots and self-contained report.html."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np

from imgcls.report import plot_confusion, render_report


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, str] = {}
        self.links: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images[attrs.get("id") or f"img{len(self.images)}"] = attrs["src"]
        for key in ("href", "src", "action"):
            if key in attrs:
                self.links.append(attrs[key])
        self._in_cell = tag == "td"

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data)


def test_run_folder_has_plots_and_csvs(trained):
    run = trained.run_dir
    for name in ("curves.png", "confusion.png", "report.html", "per_class.csv",
                 "confusion.csv", "misclassified.csv", "metrics.json", "metrics.csv",
                 "config.toml", "last.pt"):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run / "metrics.json").read_text())
    # The final evaluation is of the best weights, so it matches the best epoch.
    assert summary["accuracy"] == trained.best["val_acc"]


def test_report_is_self_contained_with_curves_confusion_and_per_class_table(trained):
    text = (trained.run_dir / "report.html").read_text()
    page = _Collector()
    page.feed(text)
    assert page.images["curves"].startswith("data:image/png;base64,")
    assert page.images["confusion"].startswith("data:image/png;base64,")
    assert all(link.startswith("data:") for link in page.links)
    assert "http://" not in text and "https://" not in text
    for name in trained.classes:
        assert name in page.cells
    # The options table shows the device the run used, not the `auto` it was given.
    device = page.cells[page.cells.index("device") + 1]
    assert device in ("cpu (auto)", "cuda (auto)"), device
    mistakes = [line for line in (trained.run_dir / "misclassified.csv").read_text()
                .splitlines()[1:]]
    thumbnails = [src for key, src in page.images.items() if src.startswith("data:image/jpeg")]
    assert len(thumbnails) == min(len(mistakes), 24)


def test_report_escapes_names_and_handles_no_mistakes(tmp_path):
    confusion = plot_confusion(np.array([[3, 0], [0, 2]]), ["<a>", "b"], tmp_path / "c.png")
    png = confusion.read_bytes()
    text = render_report("t", {"k": "<v>"}, png, png,
                         [{"class": "<a>", "precision": 1, "recall": 1, "f1": 1, "support": 3}],
                         [], {"augment": "<script>"})
    assert "<script>" not in text and "&lt;a&gt;" in text
    assert "No misclassified validation images." in text
