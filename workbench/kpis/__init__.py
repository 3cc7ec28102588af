"""Cross-incident figures: MTTD/MTTM/MTTR with unknowns counted apart, recurrence, action-item
completion (:mod:`.summary`), before/after a remediation (:mod:`.remediation`), the shared
filters (:mod:`.selection`) and text tables for the CLI (:mod:`.tables`). Definitions:
``docs/metrics.md``.
"""
from .remediation import BeforeAfter, before_after
from .selection import Selection
from .summary import DurationStats, Summary, summarize

__all__ = ["BeforeAfter", "DurationStats", "Selection", "Summary", "before_after", "summarize"]
