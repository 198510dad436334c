"""imgcls data audit: likely wrong labels from cross-validated models, near-duplicates,
and the quarantine that moves or copies flagged images (shared with ``imgcls data check``).

An application on top of train: the audit fits K models, one per fold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["AuditOptions", "AuditResult", "audit", "near_duplicates", "quarantine",
           "write_outputs"]

if TYPE_CHECKING:
    from .duplicates import near_duplicates
    from .quarantine import quarantine
    from .report import write_outputs
    from .run import AuditOptions, AuditResult
    from .task import audit

# Lazy: `imgcls --help` reads the CLI without importing torch or cleanlab.
__getattr__ = lazy_exports(__name__, {
    "AuditOptions": ".run", "AuditResult": ".run", "audit": ".task",
    "near_duplicates": ".duplicates", "quarantine": ".quarantine", "write_outputs": ".report",
})
