"""Review widgets of the workbench (ipywidgets; importable as ``workbench.widgets``).

Thin layers over the core: they read and write only through
:class:`~workbench.store.KnowledgeBase` (every decision stored with its history, so it survives a
kernel restart) and :class:`~workbench.telemetry.TelemetryStore`. Each widget is a small class
with a ``widget`` attribute (the ipywidgets container) that also displays itself, so a notebook
cell is one call::

    import workbench.widgets as wbw
    wbw.hypothesis_review(ws, incident_id)        # confirm / reject with reviewer and rationale
    wbw.hypothesis_explorer(ws, incident_id)      # a hypothesis vs changes, neighbours, logs; decide in place
    wbw.action_items_editor(ws, incident_id)      # owner, due, kind, status, verification criterion
    wbw.conclusions_editor(ws, incident_id)       # summary, impact, contributing factors, lessons
    wbw.labels_editor(ws, incident_id)            # symptom, service, environment, confidence
    wbw.anomaly_heatmap(ws, incident_id)          # services × time; a click opens the explorer below
                                                  # (lazy=True: built on a button press, for templates)
    wbw.telemetry_explorer(ws, incident_id)       # metrics / log templates with anomaly scores

``ws`` is a :class:`~workbench.Workspace` or its folder. The charts need the ``reports``
extra (Panel, HoloViews); the editors need only ipywidgets.
"""
from __future__ import annotations

from typing import Any

from .actions import ActionItemsEditor
from .conclusions import ConclusionsEditor
from .containers import LazyWidget, ReviewTabs
from .hypotheses import HypothesisExplorer
from .labels import LabelsEditor
from .review import HypothesisCard, HypothesisReview

__all__ = [
    "HypothesisReview", "HypothesisCard", "HypothesisExplorer", "ActionItemsEditor", "ConclusionsEditor",
    "LabelsEditor", "ReviewTabs", "LazyWidget", "TelemetryExplorer", "AnomalyHeatmapExplorer", "hypothesis_review",
    "hypothesis_explorer", "action_items_editor", "conclusions_editor", "labels_editor", "telemetry_explorer",
    "anomaly_heatmap", "review_tabs", "enable_charts",
]


def __getattr__(name: str) -> Any:
    # The charting widgets import HoloViews and Panel (1.4 s): only when they are used.
    if name == "TelemetryExplorer":
        from .explorer import TelemetryExplorer

        return TelemetryExplorer
    if name == "AnomalyHeatmapExplorer":
        from .heatmap import AnomalyHeatmapExplorer

        return AnomalyHeatmapExplorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def hypothesis_review(workspace: Any, incident_id: str, reviewer: str = "", **options: Any) -> HypothesisReview:
    """The hypothesis review of an incident (see :class:`HypothesisReview`)."""
    return HypothesisReview(workspace, incident_id, reviewer=reviewer, **options)


def hypothesis_explorer(workspace: Any, incident_id: str, reviewer: str = "", **options: Any) -> HypothesisExplorer:
    """The hypothesis explorer of an incident (see :class:`~workbench.widgets.hypotheses.HypothesisExplorer`)."""
    return HypothesisExplorer(workspace, incident_id, reviewer=reviewer, **options)


def action_items_editor(workspace: Any, incident_id: str, who: str = "", **options: Any) -> ActionItemsEditor:
    """The action items editor of an incident (see :class:`ActionItemsEditor`)."""
    return ActionItemsEditor(workspace, incident_id, who=who, **options)


def conclusions_editor(workspace: Any, incident_id: str, who: str = "", **options: Any) -> ConclusionsEditor:
    """The conclusions editor of an incident (see :class:`ConclusionsEditor`)."""
    return ConclusionsEditor(workspace, incident_id, who=who, **options)


def labels_editor(workspace: Any, incident_id: str, who: str = "", **options: Any) -> LabelsEditor:
    """The taxonomy labels editor of an incident (see :class:`LabelsEditor`)."""
    return LabelsEditor(workspace, incident_id, who=who, **options)


def telemetry_explorer(workspace: Any, incident_id: str, **options: Any) -> Any:
    """The telemetry explorer of an incident (see :class:`~workbench.widgets.explorer.TelemetryExplorer`)."""
    from .explorer import TelemetryExplorer

    return TelemetryExplorer(workspace, incident_id, **options)


def anomaly_heatmap(workspace: Any, incident_id: str, *, lazy: bool = False, **options: Any) -> Any:
    """The anomaly heatmap with its explorer below (see :class:`~workbench.widgets.heatmap.AnomalyHeatmapExplorer`).

    ``lazy=True`` returns a :class:`LazyWidget` that builds it when its button is pressed: a
    template can offer it without scoring every service (and loading Panel) while it runs.
    """
    if lazy:
        return LazyWidget(lambda: anomaly_heatmap(workspace, incident_id, **options),
                          f"Anomaly heatmap explorer of {incident_id}",
                          "Click a heatmap cell to open that service at that time in the telemetry explorer.")
    from .heatmap import AnomalyHeatmapExplorer

    return AnomalyHeatmapExplorer(workspace, incident_id, **options)


def enable_charts() -> None:
    """Load the charts' JavaScript (Panel, Bokeh; inline, so it works offline) into this notebook.

    The explorer and the heatmap do it themselves, once per kernel; call this after clearing the
    output of the cell that did it (the charts would then stay blank).
    """
    from .explorer import _panel_extension

    _panel_extension(force=True)


def review_tabs(workspace: Any, incident_id: str, who: str = "") -> "ReviewTabs":
    """Hypotheses, conclusions, labels and action items of an incident in one tabbed widget."""
    return ReviewTabs(workspace, incident_id, who=who)
