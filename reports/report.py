"""The whole postmortem report of one incident: the core's gathered data, laid out by the views.

:meth:`Report.from_workspace` asks the core for everything once
(:func:`workbench.postmortem.gather.incident_data` for the records and telemetry,
:func:`~workbench.postmortem.gather.anomaly` for the heatmap's engine scores,
:func:`~workbench.postmortem.gather.log_templates` for the mined logs); the report and its views
only lay it out. A report built by hand from records shows what it was given.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

import pandas as pd
import panel as pn

from workbench.postmortem import gather
from workbench.telemetry import schema
from workbench.telemetry.windows import analysis_window
from workbench.workspace import Workspace

from . import charts, safe
from .context import SnapshotView
from .safe import fmt
from .views import (ActionItemsView, AnomalyHeatmap, ConclusionsView, HypothesesView, ImpactView, IncidentHeader,
                    LinksView, LogsView, MetricsView, RecurrenceChecksView, TimelineView, when)

__all__ = ["Report"]


@dataclass
class Report:
    """The postmortem of one incident.

    Build it with :meth:`from_workspace` (or :meth:`from_data` with what the core gathered), or
    from records a notebook already holds (``Report(incident, hypotheses=..., events=...)``;
    missing tables are empty, and so is the heatmap without ``scores``).

    Attributes
    ----------
    events, metrics : pandas.DataFrame
        Unified tables (:mod:`workbench.telemetry.schema`): events of the analysis window, metrics
        of the baseline and the analysis window.
    templates : pandas.DataFrame or None
        The WARN+ log templates while the incident lasted
        (:func:`workbench.postmortem.gather.log_templates`).
    scores : pandas.DataFrame or None
        ``timestamp``, ``service``, ``score`` of the heatmap (the engine's, from
        :func:`workbench.postmortem.gather.anomaly`, or any others).
    score_method : str or None
        What ``scores`` are; its scale is looked up in :data:`workbench.postmortem.gather.SCALES`
        (``engine`` for the engine's), else the robust-z one.
    window : tuple of pandas.Timestamp, optional
        Default :func:`workbench.telemetry.windows.analysis_window`.
    """

    incident: Any
    hypotheses: Sequence[Any] = ()
    conclusions: Sequence[Any] = ()
    action_items: Sequence[Any] = ()
    signoffs: Sequence[Any] = ()
    checks: Sequence[Any] = ()
    content_hash: str | None = None
    events: pd.DataFrame = field(default_factory=lambda: schema.empty("events"))
    metrics: pd.DataFrame = field(default_factory=lambda: schema.empty("metrics"))
    templates: pd.DataFrame | None = None
    scores: pd.DataFrame | None = None
    score_method: str | None = None
    scale: tuple[float, float, float] | None = None
    window: tuple[Any, Any] | None = None

    @classmethod
    def from_data(cls, data: gather.IncidentData, *, scores: pd.DataFrame | None = None,
                  score_method: str | None = None) -> "Report":
        """The report of what :func:`workbench.postmortem.gather.incident_data` gathered; the
        heatmap shows the engine's scores unless ``scores`` (and ``score_method``) are given."""
        if scores is None:
            found = gather.anomaly(data)
            scores, score_method, scale = found.scores, found.method, (found.floor, found.clip, found.onset)
        else:
            scale = None
        return cls(data.incident, hypotheses=data.hypotheses, conclusions=data.conclusions,
                   action_items=data.action_items, signoffs=data.signoffs, checks=data.checks,
                   content_hash=data.content_hash, events=data.events, metrics=data.metrics,
                   templates=gather.log_templates(data), scores=scores, score_method=score_method, scale=scale,
                   window=data.window)

    @classmethod
    def from_workspace(cls, workspace: Workspace | str | Any, incident_id: str, *, scores: pd.DataFrame | None = None,
                       score_method: str | None = None) -> "Report":
        """Gather an incident's records, telemetry and scores through the core, then lay them out.

        Raises
        ------
        NotFoundError
            No incident ``incident_id`` in the workspace's knowledge base.
        """
        return cls.from_data(gather.incident_data(workspace, incident_id), scores=scores, score_method=score_method)

    def anomaly(self) -> tuple[pd.DataFrame, str, tuple[float, float, float]]:
        """The heatmap's scores, what they are, and their scale ``(floor, clip, onset)``."""
        scores = self.scores if self.scores is not None else pd.DataFrame(columns=["timestamp", "service", "score"])
        method = self.score_method or (gather.ROBUST_Z if self.scores is not None else "no scores")
        scale = self.scale or gather.SCALES.get(method, gather.SCALES["robust z"])
        return scores, method, scale

    def anomaly_scores(self) -> pd.DataFrame:
        """The heatmap's scores (see :meth:`anomaly`)."""
        return self.anomaly()[0]

    def metric_services(self, scores: pd.DataFrame, fallback: int = 3) -> list[str]:
        """Services whose metrics are charted: the incident's services that have metrics, else
        (an incident recorded without services) the ``fallback`` first of the heatmap's order."""
        present = set(self.metrics["service"].unique())
        own = [s for s in self.incident.services if s in present]
        return own or charts.service_order(scores)[:fallback]

    def views(self) -> list[Any]:
        """The report's views, top to bottom."""
        window = self.window or analysis_window(self.incident)
        scores, method, (floor, clip, onset) = self.anomaly()
        in_window = self.metrics[self.metrics["timestamp"] >= window[0]] if not self.metrics.empty else self.metrics
        templates = self.templates if self.templates is not None else LogsView(self.incident).templates
        return [
            IncidentHeader(self.incident, self.signoffs, self.content_hash),
            ImpactView(self.incident, self.conclusions),
            TimelineView(self.incident, self.events, window),
            SnapshotView(getattr(self.incident, "snapshot", None)),
            MetricsView(self.incident, in_window, self.events, window, services=self.metric_services(scores)),
            AnomalyHeatmap(self.incident, scores, method, window, clip=clip, floor=floor, onset=onset),
            LogsView(self.incident, templates),
            HypothesesView(self.hypotheses),
            ConclusionsView(self.conclusions),
            ActionItemsView(self.action_items, self.checks),
            RecurrenceChecksView(self.checks),
            LinksView(self.incident.links),
        ]

    def __panel__(self) -> pn.viewable.Viewable:
        footer = safe.pane(safe.section(fmt(
            '<p class="muted">Postmortem report of {0}, generated {1} by postmortem-workbench. Content hash {2}.</p>',
            self.incident.id, when(datetime.now(timezone.utc)), self.content_hash or "—"), "footer"))
        return pn.Column(*[pn.panel(v) for v in self.views()], footer, sizing_mode="stretch_width",
                         max_width=charts.WIDTH + 40, styles={"margin": "0 auto", "padding": "8px 16px"})
