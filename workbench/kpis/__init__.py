"""Cross-incident figures: MTTD/MTTM/MTTR with unknowns counted, recurrence, action-item
completion, and before/after a remediation."""
from .metrics import BeforeAfter, Summary, before_after, summarize

__all__ = ["BeforeAfter", "Summary", "before_after", "summarize"]
