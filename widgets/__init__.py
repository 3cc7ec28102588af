"""Review widgets of the workbench (ipywidgets; importable as ``workbench.widgets``).

Thin layers over the core: they read and write only through
:class:`~workbench.store.KnowledgeBase` (every decision stored with its history, so it survives a
kernel restart) and :class:`~workbench.telemetry.TelemetryStore`. Each widget is a small class
with a ``widget`` attribute (the ipywidgets container) that also displays itself, so a notebook
cell is one call::

    import workbench.widgets as wbw
    wbw.hypothesis_review(ws, incident_id)        # confirm / reject with reviewer and rationale
    wbw.action_items_editor(ws, incident_id)      # owner, due, kind, status, verification criterion
    wbw.conclusions_editor(ws, incident_id)       # summary, impact, contributing factors, lessons
    wbw.labels_editor(ws, incident_id)            # symptom, service, environment, confidence
    wbw.anomaly_heatmap(ws, incident_id)          # services × time; a click opens the explorer below
    wbw.telemetry_explorer(ws, incident_id)       # metrics / log templates with anomaly scores

``ws`` is a :class:`~workbench.Workspace` or its folder. The charts need the ``reports``
extra (Panel, HoloViews); the editors need only ipywidgets.
"""
from __future__ import annotations

from typing import Any

from .actions import ActionItemsEditor
from .conclusions import ConclusionsEditor
from .labels import LabelsEditor
from .review import HypothesisCard, HypothesisReview

__all__ = [
    "HypothesisReview", "HypothesisCard", "ActionItemsEditor", "ConclusionsEditor", "LabelsEditor",
    "TelemetryExplorer", "AnomalyHeatmapExplorer", "hypothesis_review", "action_items_editor",
    "conclusions_editor", "labels_editor", "telemetry_explorer", "anomaly_heatmap", "review_tabs",
    "enable_charts",
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


def anomaly_heatmap(workspace: Any, incident_id: str, **options: Any) -> Any:
    """The anomaly heatmap with its explorer below (see :class:`~workbench.widgets.heatmap.AnomalyHeatmapExplorer`)."""
    from .heatmap import AnomalyHeatmapExplorer

    return AnomalyHeatmapExplorer(workspace, incident_id, **options)


def enable_charts() -> None:
    """Load the charts' JavaScript (Panel, Bokeh; inline, so it works offline) into this notebook.

    The explorer and the heatmap do it themselves, once per kernel; call this after clearing the
    output of the cell that did it (the charts would then stay blank).
    """
    from .explorer import _panel_extension

    _panel_extension(force=True)


def review_tabs(workspace: Any, incident_id: str, who: str = "") -> Any:
    """Hypotheses, conclusions, labels and action items of an incident in one tabbed widget.

    Returns an ``ipywidgets.Tab`` whose ``editors`` attribute holds the four editor objects.
    """
    import ipywidgets as w

    editors = [HypothesisReview(workspace, incident_id, reviewer=who),
               ConclusionsEditor(workspace, incident_id, who=who),
               LabelsEditor(workspace, incident_id, who=who),
               ActionItemsEditor(workspace, incident_id, who=who)]
    tab = w.Tab(children=[e.widget for e in editors],
                titles=("Hypotheses", "Conclusions", "Labels", "Action items"))
    tab.editors = editors
    return tab
