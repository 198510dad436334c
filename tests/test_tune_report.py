"""tune-report.html reads well: a table that fits the page, whole trial numbers, caveats."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from imgcls.tune.report import (  # noqa: E402
    IMPORTANCE_TRIALS,
    TuneResult,
    best_rows,
    history_figure,
    importance_caveat,
    render_tune_report,
)
from imgcls.tune.space import COMMON, FAMILY_RANGES, OPTION_RANGES  # noqa: E402

CSS = Path(__file__).resolve().parents[1] / "imgcls" / "templates" / "pages.css"
CONTENT_PX = 1200  # pages.css's body at a 1,280 px window (its max-width, 2rem margins)
REM_PX = 16
CHAR_EM = 0.62  # a generous average width of a digit or letter, in ems
# Every default range at once (a default space has at most 9): 10 parameters.
WIDEST = [*COMMON, *OPTION_RANGES.values(), *FAMILY_RANGES["vgg-bn"].values()]


def _study(trials: int, params: list | None = None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial):
        values = [p.suggest(trial) for p in params or []]
        return trial.number / 100 + (0 if values else trial.suggest_float("lr", 0, 1))

    study.optimize(objective, n_trials=trials)
    counts = {"complete": trials}
    return study, TuneResult("s", "memory", Path("."), "val_macro_f1", counts, best_rows(study))


class _Table(HTMLParser):
    """Each column's unbreakable pieces of text (split where <wbr> allows a break)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[list[str]] = []
        self.wrapper: str | None = None
        self._parents: list[tuple[str, str]] = []
        self._column = -1

    def handle_starttag(self, tag, attrs):
        if tag == "table" and self.wrapper is None:
            self.wrapper = self._parents[-1][1] if self._parents else ""
        if tag == "tr":
            self._column = -1
        if tag in ("td", "th"):
            self._column += 1
            while len(self.cells) <= self._column:
                self.cells.append([])
            self.cells[self._column].append("")
        if tag == "wbr":
            self.cells[self._column].append("")
        self._parents.append((tag, dict(attrs).get("class", "")))

    def handle_endtag(self, tag):
        if tag != "wbr":
            self._parents.pop()

    def handle_data(self, data):
        if self._parents and self._parents[-1][0] in ("td", "th"):
            self.cells[self._column][-1] += data


def _rule(selector: str) -> str:
    css = re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.DOTALL)
    return next(body for sel, body in re.findall(r"([^{}]+)\{([^}]*)\}", css)
                if selector in [s.strip() for s in sel.split(",")])


def test_the_best_trials_table_fits_a_1280_px_window():
    study, result = _study(12, WIDEST)
    html = render_tune_report(study, result)
    table = _Table()
    table.feed(html[html.index("<h2>Best trials"):html.index("<h2>Optimisation")])
    assert len(table.cells) == 4 + len(WIDEST) == 14
    assert table.wrapper == "table-scroll" and "overflow-x: auto" in _rule(".table-scroll")
    font = float(re.search(r"font-size:\s*([\d.]+)rem", _rule("table.compact")).group(1))
    pad = float(re.search(r"padding:\s*[\d.]+rem\s+([\d.]+)rem",
                          _rule("table.compact td")).group(1))
    char_px, pad_px = font * REM_PX * CHAR_EM, 2 * pad * REM_PX + 1  # and a border
    widths = [max(len(piece) for piece in column) * char_px + pad_px for column in table.cells]
    assert sum(widths) <= CONTENT_PX, widths
    assert "weight_<wbr>decay" in html and "model_<wbr>options.<wbr>width" in html


def test_the_history_numbers_trials_in_whole_numbers():
    study, _ = _study(3)
    figure = history_figure(study, "accuracy")
    figure.canvas.draw()
    axes = figure.axes[0]
    low, high = axes.get_xlim()
    ticks = [t for t in axes.get_xticks() if low <= t <= high]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_importances_from_few_trials_come_with_a_caveat():
    study, result = _study(3, list(COMMON[:3]))
    html = render_tune_report(study, result)
    assert 'id="importances"' in html
    assert "From 3 complete trials only: a rough guess." in html
    assert html.index('class="caveat"') < html.index('id="importances"')
    assert importance_caveat(1).startswith("From 1 complete trial only")
    assert importance_caveat(IMPORTANCE_TRIALS) is None


def test_a_one_epoch_trial_says_epoch(capsys):
    from imgcls.cli.tune import print_trial
    from imgcls.tune.study import TrialSummary

    print_trial(TrialSummary(0, "complete", 0.5, 1, {"lr": 0.01}), "accuracy")
    print_trial(TrialSummary(1, "complete", 0.5, 2, {"lr": 0.01}), "accuracy")
    out = capsys.readouterr().out
    assert "complete (1 epoch)" in out and "complete (2 epochs)" in out
