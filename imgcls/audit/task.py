"""``imgcls data audit``'s entry point: the audit that fits the data's task.

One label per image is audited by :mod:`imgcls.audit.run`, label sets by
:mod:`imgcls.audit.multilabel`; the data is loaded once, here, to tell which.
"""

from __future__ import annotations

from collections.abc import Callable

from ..data import call_loader, resolve_loader
from ..errors import require_extra
from ..train.progress import Reporter
from .multilabel import audit_multilabel
from .run import AuditOptions, AuditResult
from .run import audit as audit_multiclass


def audit(options: AuditOptions, reporter: Reporter | None = None,
          on_fold: Callable[[int, int, float], None] | None = None,
          on_hash: Callable[[int, int], None] | None = None,
          on_plan: Callable[[str, str | None], None] | None = None) -> AuditResult:
    """Audit ``options.data``: its labels (one per image, or label sets) and near-duplicates.
    ``on_plan`` hears how the probabilities are made, and a warning, before any training."""
    require_extra("cleanlab")  # before the folds train, not after
    options.validate()  # before the data is read
    loaded = call_loader(*resolve_loader(options.data), options.data_options)
    if loaded.task == "multilabel":
        return audit_multilabel(options, loaded, reporter, on_fold, on_hash, on_plan)
    return audit_multiclass(options, reporter, on_fold, on_hash, loaded=loaded,
                            on_plan=on_plan)
