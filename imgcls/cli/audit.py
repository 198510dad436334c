"""imgcls data audit: the work behind the command (its options are in cli/data.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .console import ConsoleReporter, parse_options, print_warning, progress, say

if TYPE_CHECKING:
    from ..audit.run import AuditOptions, AuditResult, LabelIssue
    from ..train.config import TrainConfig

# At least 10 epochs per fold; more on a small folder (see imgcls.audit.plan).
DEFAULT_EPOCHS = 10


class FoldReporter(ConsoleReporter):
    """Progress bars while a fold trains, and no per-epoch lines: one line per fold instead.
    A warning that every fold repeats (an unreadable image) is shown once."""

    def __init__(self) -> None:
        super().__init__()
        self.warned: set[str] = set()

    def start(self, info: dict[str, Any]) -> None:
        """The fold's header is said by the fold line."""

    def epoch_end(self, record: dict[str, float], is_best: bool) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def note(self, message: str) -> None:
        """Early-stop notes are the fold's own business."""

    def warn(self, message: str) -> None:
        if message not in self.warned:
            self.warned.add(message)
            print_warning(message)

    def end(self, result: Any) -> None:
        """The fold line reports the result."""


@dataclass
class Actions:
    """What to write besides the report: corrected labels and quarantine copies."""

    relabel: bool = False
    quarantine: Path | None = None
    move: bool = False
    show: int = 10


def train_config(config_file: str | None, given: dict[str, Any],
                 model_opt: list[str]) -> tuple[TrainConfig, frozenset[str]]:
    """Audit defaults, then the --config file, then the flags given; and the names of
    the options chosen (the audit adapts the others to the folder's size)."""
    from ..audit.plan import default_train
    from ..train.config import read_config_file

    chosen = read_config_file(config_file) if config_file else {}
    chosen.pop("data_options", None)  # the folds read their own CSV; --data-opt reads DATA
    chosen |= {k: v for k, v in given.items() if v is not None}
    model_options = chosen.pop("model_options", {}) | parse_options(model_opt, "--model-opt")
    values = {"epochs": DEFAULT_EPOCHS} | chosen
    return default_train(**values, model_options=model_options), frozenset(chosen)


def run(options: AuditOptions, actions: Actions) -> AuditResult:
    """Check the targets, audit, write, print; returns what was found."""
    from ..audit.report import write_outputs
    from ..audit.task import audit

    root = _quarantine_root(options, actions) if actions.quarantine is not None else None
    said: list[str] = []

    def say_plan(method: str, warning: str | None) -> None:
        say(f"auditing {options.data} ({options.split} images): {method}")
        if warning:
            print_warning(warning)
            said.append(warning)

    result = audit(options, FoldReporter(), on_fold=_say_fold,
                   on_hash=progress("hashing") if options.duplicates else None,
                   on_plan=say_plan)
    paths = write_outputs(result, options.out_dir)
    print_result(result, actions.show, said)
    written = [*paths.values(), *_corrections(result, options, actions, root)]
    say(f"wrote {', '.join(path.name for path in written)} to {options.out_dir}")
    return result


def _say_fold(fold: int, folds: int, accuracy: float) -> None:
    say(f"fold {fold}/{folds}: {accuracy:.1%} of its held-out images predicted as labelled")


def _quarantine_root(options: AuditOptions, actions: Actions) -> Path:
    # Refuse a bad target before K trainings, not after them.
    from ..audit.quarantine import quarantine_root
    from ..data import resolve_loader

    loader, source = resolve_loader(options.data)
    return quarantine_root(source or options.data, loader, actions.quarantine,
                           options.data_options.get("image_root"))


def _corrections(result: AuditResult, options: AuditOptions, actions: Actions,
                 root: Path | None) -> list[Path]:
    from ..audit.report import quarantine_issues, write_cleaned, write_relabelled

    written = []
    if actions.relabel:
        written.append(write_relabelled(result, options.out_dir))
        say(f"relabelled.csv: every image, the {len(result.issues)} flagged ones with the "
            "suggested label (train on it with --data)")
    if actions.quarantine is not None and root is not None:
        written.append(write_cleaned(result, options.out_dir))
        done, left = quarantine_issues(result.issues, actions.quarantine, root, actions.move)
        where = (f"moved {len(done)} of them into {actions.quarantine} (listed in manifest.csv)"
                 if actions.move else f"copied {len(done)} of them into "
                 f"{actions.quarantine}/<given label>/ (listed in copied.csv)")
        say(f"cleaned.csv: every image but the {len(result.issues)} flagged ones; {where}")
        if left:
            say(f"left {len(left)} flagged files in place: they resolve outside the data root")
    return written


def print_result(result: AuditResult, show: int, said: list[str] | None = None) -> None:
    """The headline, the most suspicious labels, the near-duplicate groups, the notes;
    warnings (not already ``said``) last, where they are seen."""
    from ..audit.multilabel import MultiLabelAuditResult

    n = len(result.audited)
    say(f"label issues: {len(result.issues)} of {n} images ({len(result.issues) / n:.1%}); "
        f"the predictions agree with {result.accuracy:.1%} of the labels")
    if isinstance(result, MultiLabelAuditResult):
        say(f"{result.map_name} {result.mean_ap:.3f} (against the given labels); agreeing "
            "means the whole label set")
    _section([_issue_line(issue) for issue in result.issues], show, "label_issues.csv")
    if result.searched_duplicates:
        groups = result.duplicates
        classes = sum(group.across_classes for group in groups)
        splits = sum(group.across_splits for group in groups)
        say(f"near-duplicates: {len(groups)} groups ({classes} across classes, {splits} across "
            "train and val)")
        _section([f"{group.kind}, {group.distance} bits: " + " = ".join(
            f"{m.path} [{m.split}/{m.label}]" for m in group.members) for group in groups],
            show, "near_duplicates.csv")
    for path, reason in result.unreadable:
        print_warning(f"not audited, unreadable: {path}: {reason}")
    for note in result.notes:
        say(f"note: {note}")
    for warning in result.warnings:
        if warning not in (said or []):
            print_warning(warning)


def _issue_line(issue: LabelIssue) -> str:
    from ..audit.multilabel import NONE, MultiLabelIssue

    if not isinstance(issue, MultiLabelIssue):
        return (f"{issue.path}: given {issue.given!r}, suggested {issue.suggested!r} "
                f"(score {issue.score:.3f})")
    changes = [f"{what} {', '.join(map(repr, names))}" for what, names in
               (("missing", issue.missing), ("extra", issue.extra)) if names]
    return (f"{issue.path}: given {issue.given or NONE!r}, suggested "
            f"{issue.suggested or NONE!r}" + (f" ({'; '.join(changes)})" if changes else "")
            + f" (score {issue.score:.3f})")


def _section(lines: list[str], show: int, where: str) -> None:
    for line in lines[:show]:
        say(f"  {line}")
    if len(lines) > show:
        say(f"  ... and {len(lines) - show} more in {where}")
