"""Panel reports of the workbench (importable as ``workbench.reports``).

Views of core objects (each renders via ``__panel__``), the whole postmortem report, and its
export as one standalone HTML file that works offline::

    from workbench.reports import build_report, export_report
    export_report(workspace, "INC-20261102-001")   # -> <workspace>/incidents/<id>/report.html

    from workbench.reports.app import serve         # the served app: incidents, report, action items, metrics
    serve(workspace, port=5006)

Every data string reaches a pane through :mod:`workbench.reports.safe` (escaped).
"""
from .charts import ROBUST_Z, robust_z_scores
from .export import ReportError, build_report, export_report, external_references, inline_resources, read_meta
from .views import (ActionItemsView, AnomalyHeatmap, ConclusionsView, HypothesesView, ImpactView, IncidentHeader,
                    LinksView, LogsView, MetricsView, RecurrenceChecksView, Report, TimelineView)

__all__ = [
    "build_report", "export_report", "ReportError", "Report", "IncidentHeader", "ImpactView", "TimelineView",
    "MetricsView", "AnomalyHeatmap", "LogsView", "HypothesesView", "ConclusionsView", "ActionItemsView",
    "RecurrenceChecksView", "LinksView",
    "robust_z_scores", "ROBUST_Z", "inline_resources", "external_references", "read_meta",
]
