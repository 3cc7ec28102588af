"""Panel reports of the workbench and the executed notebook's outputs (importable as ``workbench.reports``).

Views of core objects (each renders via ``__panel__``), the whole postmortem report, and its
export as one standalone HTML file that works offline::

    from workbench.reports import build_report, export_report
    export_report(workspace, "INC-20261102-001")   # -> <workspace>/incidents/<id>/report.html

    from workbench.reports.app import serve         # the served app: incidents, report, action items, metrics
    serve(workspace, port=5006)

    from workbench.reports import notebook as show  # the postmortem notebook's tables and charts

Every data string reaches HTML through :mod:`workbench.reports.safe` (escaped). Names are
imported on first use: the notebook's outputs do not pay for Panel.
"""
from __future__ import annotations

import importlib
from typing import Any

#: Public name -> module that defines it.
_NAMES = {
    "build_report": "export", "export_report": "export", "ReportError": "export", "inline_resources": "export",
    "external_references": "export", "read_meta": "export", "Report": "report",
    "ReviewPackView": "review", "export_review_pack": "review",
    **{name: "views" for name in ("IncidentHeader", "ImpactView", "TimelineView", "MetricsView", "AnomalyHeatmap",
                                  "LogsView", "HypothesesView", "ConclusionsView", "ActionItemsView",
                                  "RecurrenceChecksView", "LinksView")},
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
