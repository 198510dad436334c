"""The four HTML pages: one template each, one shared inlined stylesheet, hostile names escaped."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from imgcls.audit.duplicates import DuplicateGroup, Entry
from imgcls.audit.report import render_html
from imgcls.audit.run import AuditResult, LabelIssue
from imgcls.report import render_report

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "imgcls" / "templates"
# Markup, attribute breakers and a template expression: each must come out as text.
HOSTILE = '<script>alert(1)</script>"\' onerror="x" {{ 7*7 }} &amp;'
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39; onerror=&#34;x&#34; {{ 7*7 }} &amp;amp;"


class _Page(HTMLParser):
    """Tags, attributes and the text of <style>, to check what the browser would run."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def _check(text: str, hostile_count: int) -> _Page:
    page = _Page()
    page.feed(text)
    assert "script" not in page.tags and not any(name.startswith("on")
                                                 for name, _ in page.attributes)
    assert text.count(ESCAPED) == hostile_count, text
    # One shared stylesheet, inlined: nothing to fetch, so the page works offline.
    assert [s.strip() for s in page.styles] == [(TEMPLATES / "pages.css").read_text().strip()]
    assert "<link" not in text and "http://" not in text and "https://" not in text
    return page


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / f"{HOSTILE.replace('/', '_')}.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(path)
    return path


def test_report_html_escapes_every_name(photo):
    png = b"\x89PNG\r\n\x1a\n"
    mistake = {"path": str(photo), "true": HOSTILE, "predicted": HOSTILE, "confidence": 0.9}
    text = render_report(HOSTILE, {HOSTILE: HOSTILE}, png, png,
                         [{"class": HOSTILE, "precision": 1, "recall": 1, "f1": 1,
                           "support": 3}], [mistake], {HOSTILE: HOSTILE},
                         cams={str(photo): png}, cam_note=HOSTILE)
    # title twice, headline key and value, class cell, true, predicted, cam alt, the note,
    # option and value; and the file name (its "/" made "_")
    page = _check(text, 11)
    assert f"{ESCAPED.replace('/', '_')}.png</figcaption>" in text
    assert page.tags.count("figure") == 1 and '<figure class="with-cam">' in text


def test_audit_html_escapes_labels_paths_and_notes(photo):
    entries = [Entry(photo, HOSTILE, HOSTILE), Entry(photo, "val", "b")]
    result = AuditResult(HOSTILE, [HOSTILE, "b"], entries, entries, np.eye(2), np.ones(2),
                         [LabelIssue(photo, HOSTILE, HOSTILE, 0.1)],
                         [DuplicateGroup(tuple(entries), 3)], notes=[HOSTILE], method=HOSTILE,
                         searched_duplicates=True)
    text = render_html(result)
    # h1, headline, method, note; the suspect's given and suggested label; the group's
    # first member's split and label; and the file name (its "/" made "_") in alts and captions
    page = _check(text, 8)
    assert text.count(ESCAPED.replace("/", "_")) == 6
    assert page.tags.count("figure") == 3 and text.count('class="group"') == 1
    assert "data:image/jpeg;base64," in text


def test_multilabel_audit_html_escapes_label_sets(photo):
    from imgcls.audit.multilabel import MultiLabelAuditResult, MultiLabelIssue

    entries = [Entry(photo, "train", f"{HOSTILE};b"), Entry(photo, "val", "")]
    issue = MultiLabelIssue(photo, f"{HOSTILE};b", "b", 0.1, (HOSTILE, "b"), ("b",), (),
                            (HOSTILE,))
    result = MultiLabelAuditResult(HOSTILE, [HOSTILE, "b"], entries, entries,
                                   np.array([[0.1, 0.9], [0.2, 0.1]]), np.ones(2), [issue],
                                   label_sets=[(0, 1), ()], audited_sets=[(0, 1), ()],
                                   thresholds=[0.5, 0.5], mean_ap=0.75, fold_accuracy=[0.5, 1.0])
    text = render_html(result)
    # h1, headline, the given set and the extra label (the file name: alt and caption)
    page = _check(text, 4)
    assert text.count(ESCAPED.replace("/", "_")) == 2 and page.tags.count("figure") == 1
    assert "out-of-fold mAP" in text and 'class="extra">extra <b>' in text


def test_explain_html_escapes_sources_layers_and_failures(tmp_path):
    from imgcls.explain.api import Explanation
    from imgcls.explain.feature_maps import FeatureMap
    from imgcls.explain.names import named
    from imgcls.explain.page import Written, render_page
    from imgcls.infer.engine import Failure

    written = Written(tmp_path)
    item = Explanation(HOSTILE, np.zeros((2, 2, 3), np.uint8), [HOSTILE, "b"],
                       np.array([0.75, 0.25]), {}, HOSTILE, HOSTILE)
    written.explained.append((item, tmp_path / "a b.png"))
    written.features.append((FeatureMap(HOSTILE, HOSTILE, HOSTILE, (3, 4, 5), np.zeros(1)),
                             tmp_path / "feature-maps" / "00-x.png"))
    written.filters = (named({}, HOSTILE), (32, 3, 3, 3), tmp_path / "filters.png")
    written.failures.append(Failure(HOSTILE, HOSTILE))
    text = render_page(written, HOSTILE, HOSTILE)
    # title twice, model, method, layer and its --layer name, source, label, feature label,
    # --layer name, module name and class, filters' layer, failure path and reason
    _check(text, 15)
    assert 'src="a b.png"' in text and 'src="feature-maps/00-x.png"' in text
    assert "(75%)" in text and "3 x 4 x 5" in text


def test_tune_report_escapes_study_metric_and_parameter_names():
    optuna = pytest.importorskip("optuna")
    from imgcls.tune.report import TuneResult, best_rows, render_tune_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: t.suggest_float(HOSTILE, 0, 1), n_trials=3)
    result = TuneResult(HOSTILE, "memory", Path("."), HOSTILE, {"complete": 3},
                        best_rows(study))
    text = render_tune_report(study, result)
    # title twice, metric in the line and as a column, the parameter's column
    page = _check(text, 5)
    assert page.tags.count("tr") == 4  # header and three trials


def test_no_page_escapes_by_hand_and_every_template_ships():
    sources = [p for p in (ROOT / "imgcls").rglob("*.py") if "html.escape" in p.read_text()]
    assert sources == []
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]["imgcls"]
    for template in TEMPLATES.iterdir():
        relative = template.relative_to(ROOT / "imgcls")
        assert any(relative.match(pattern) for pattern in patterns), relative


@pytest.mark.parametrize("module", ["imgcls.report", "imgcls.io", "imgcls.audit.report",
                                    "imgcls.tune.report", "imgcls.default_plugins.loggers"])
def test_writing_pages_and_files_imports_no_torch(module):
    script = f"import sys, {module}; assert 'torch' not in sys.modules, '{module}'"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
