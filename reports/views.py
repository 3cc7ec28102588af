"""Views of the workbench's core objects: each wraps records and renders itself via ``__panel__``.

The same objects appear in a notebook (``pn.panel(IncidentHeader(incident))``), in the exported
HTML file (:mod:`workbench.reports.export`) and in a served app. They read nothing themselves and
compute nothing: :class:`~workbench.reports.report.Report` hands them what the core gathered
(:mod:`workbench.postmortem.gather`), so a notebook can build one view from whatever it holds.

Every data string (titles, service names, summaries, rationales, log bodies ...) reaches a pane
through :mod:`workbench.reports.safe` only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import holoviews as hv
import pandas as pd
import panel as pn

from workbench.inbound.remediation import fix_status
from workbench.postmortem.gather import ROBUST_Z
from workbench.telemetry.windows import analysis_window

from . import charts, safe, text
from .safe import Markup, badge, fmt, join, table

__all__ = [
    "IncidentHeader", "ImpactView", "TimelineView", "MetricsView", "AnomalyHeatmap", "LogsView", "HypothesesView",
    "ConclusionsView", "ActionItemsView", "RecurrenceChecksView", "LinksView",
]

#: How conclusion kinds are titled, in report order.
CONCLUSION_TITLES = {"summary": "Summary", "impact": "Impact", "contributing_factor": "Contributing factors",
                     "lesson": "Lessons learned", "conclusion": "Conclusions"}
#: Check verdicts shown as good / bad / undecided.
_VERDICT_CLASS = {"holds": "ok", "clear": "ok", "violated": "bad", "recurred": "bad", "no_data": "warn",
                  "inconclusive": "warn"}
_EVIDENCE_KEYS = ("time", "kind", "service", "signal", "magnitude", "direction", "explanation")


# --------------------------------------------------------------------------- formatting

def when(value: Any) -> str:
    """A time as ``2026-11-02 14:03:00 UTC`` (``—`` for None)."""
    return text.when(value)


def duration(start: Any, end: Any) -> str:
    """``end - start`` as ``5 min 48 s`` / ``1 h 12 min`` (``—`` if either is missing)."""
    return text.duration(start, end)


def _section(title: str, body: Markup, test_id: str) -> pn.pane.HTML:
    return safe.pane(safe.section(fmt("<h2>{0}</h2>{1}", title, body), test_id))


def _chart(element: Any) -> pn.pane.HoloViews:
    return pn.pane.HoloViews(element, backend="bokeh", linked_axes=False)


# --------------------------------------------------------------------------- header

@dataclass
class IncidentHeader:
    """Id, title, severity, status, labels, services, content hash and sign-offs of an incident.

    Parameters
    ----------
    incident : workbench.store.Incident
    signoffs : sequence of workbench.store.SignOff
    content_hash : str, optional
        The current :meth:`KnowledgeBase.content_hash`; each sign-off is marked as approving the
        current content or an earlier version.
    """

    incident: Any
    signoffs: Sequence[Any] = ()
    content_hash: str | None = None

    def signoff_rows(self) -> list[tuple[Any, ...]]:
        rows = []
        for s in self.signoffs:
            current = self.content_hash is not None and s.content_hash == self.content_hash
            state = badge("approves the current content", "ok") if current else \
                badge("approved an earlier version", "warn")
            rows.append((s.name, s.role, when(s.at), fmt('<span class="hash">{0}</span>', s.content_hash), state))
        return rows

    def approved(self) -> bool:
        """True when at least one sign-off carries the current content hash."""
        return any(s.content_hash == self.content_hash for s in self.signoffs)

    def markup(self) -> Markup:
        i = self.incident
        labels = join(badge(f"{k}: {v}") for k, v in i.labels.items()) or fmt('<span class="muted">none</span>')
        services = join(badge(s) for s in i.services) or fmt('<span class="muted">none</span>')
        if not self.signoffs:
            state = badge("not signed off", "warn")
        elif self.approved():
            state = badge("signed off on the current content", "ok")
        else:
            state = badge("content changed since the last sign-off", "bad")
        return safe.section(fmt(
            '<div class="id" data-testid="incident-id">{id} · {env}</div>'
            '<h1 data-testid="incident-title">{title}</h1>'
            '<div>{sev}{status}{state}</div>'
            '<div><b>Services</b> {services}</div>'
            '<div><b>Labels</b> {labels}</div>'
            '<div><b>Content hash</b> <span class="hash" data-testid="content-hash">{hash}</span></div>'
            '<h3>Sign-offs</h3>{signoffs}',
            id=i.id, env=i.environment, title=i.title, sev=badge(i.severity, "sev"), status=badge(f"status: {i.status}"),
            state=state, services=services, labels=labels, hash=self.content_hash or "—",
            signoffs=table(self.signoff_rows(), ("name", "role", "at", "content hash", "state"), "no sign-offs yet"),
        ), "header")

    def __panel__(self) -> pn.viewable.Viewable:
        return safe.pane(self.markup())


# --------------------------------------------------------------------------- impact and timeline

@dataclass
class ImpactView:
    """Phase times and durations of an incident, with its summary and impact conclusions."""

    incident: Any
    conclusions: Sequence[Any] = ()

    def phase_rows(self) -> list[tuple[str, str, str]]:
        i = self.incident
        return [
            ("started", when(i.started), ""),
            ("detected", when(i.detected), f"{duration(i.started, i.detected)} (detection gap)" if i.detected else ""),
            ("mitigated", when(i.mitigated), duration(i.started, i.mitigated) if i.mitigated else ""),
            ("resolved", when(i.resolved), duration(i.started, i.resolved) if i.resolved else ""),
        ]

    def markup(self) -> Markup:
        texts = [c for c in self.conclusions if c.kind in ("summary", "impact")]
        body = join(fmt('<h3>{0}</h3><p><span class="text">{1}</span> <span class="muted">— {2}</span></p>',
                        CONCLUSION_TITLES[c.kind], c.text, c.author) for c in texts)
        gap = duration(self.incident.started, self.incident.detected)
        return fmt('<p>Detection gap (detected − started): <b data-testid="detection-gap">{0}</b></p>{1}{2}',
                   gap, table(self.phase_rows(), ("phase", "time", "since start"), nowrap=(1,)), body)

    def __panel__(self) -> pn.viewable.Viewable:
        return _section("Impact", self.markup(), "impact")


@dataclass
class TimelineView:
    """Incident phases and the telemetry events of the analysis window on one time axis.

    Parameters
    ----------
    incident : workbench.store.Incident
    events : pandas.DataFrame
        Unified ``events`` rows (``timestamp``, ``service``, ``kind``, ``summary``).
    window : tuple of pandas.Timestamp, optional
        ``[start, end)`` of the axis; default :func:`workbench.telemetry.windows.analysis_window`.
    """

    incident: Any
    events: pd.DataFrame
    window: tuple[Any, Any] | None = None

    def chart(self) -> hv.Overlay:
        return charts.timeline_chart(self.incident, self.events, self.window or analysis_window(self.incident))

    def event_rows(self) -> list[tuple[Any, ...]]:
        return [(when(t), s, k, m) for t, s, k, m in
                zip(self.events["timestamp"], self.events["service"], self.events["kind"], self.events["summary"])]

    def __panel__(self) -> pn.viewable.Viewable:
        start, end = self.window or analysis_window(self.incident)
        head = fmt('<p class="muted">Analysis window {0} – {1}; detection gap {2}.</p>', when(start), when(end),
                   duration(self.incident.started, self.incident.detected))
        return pn.Column(
            _section("Timeline", head, "timeline"),
            _chart(self.chart()),
            safe.pane(safe.section(table(self.event_rows(), ("time", "service", "kind", "summary"),
                                         "no events in the analysis window", nowrap=(0, 2)), "events")),
            sizing_mode="stretch_width")


# --------------------------------------------------------------------------- evidence

@dataclass
class MetricsView:
    """Key metrics of the incident's services around the window, the window and changes marked.

    Parameters
    ----------
    incident : workbench.store.Incident
    metrics : pandas.DataFrame
        Unified ``metrics`` rows (``timestamp``, ``service``, ``name``, ``value``).
    events : pandas.DataFrame
        Unified ``events`` rows; change kinds (:data:`charts.CHANGE_KINDS`) are drawn as lines.
    window : tuple, optional
        The charted ``[start, end)``; default the analysis window.
    names, services : sequence of str, optional
        What to chart; default :func:`charts.key_metrics` of the incident's services.
    """

    incident: Any
    metrics: pd.DataFrame
    events: pd.DataFrame
    window: tuple[Any, Any] | None = None
    names: Sequence[str] | None = None
    services: Sequence[str] | None = None

    def chosen_services(self) -> list[str]:
        """``services`` if given, else the incident's services that have metrics."""
        if self.services is not None:
            return list(self.services)
        present = set(self.metrics["service"].unique())
        return [s for s in self.incident.services if s in present]

    def charts(self) -> list[hv.Overlay]:
        services = self.chosen_services()
        if not services:
            return []
        names = self.names if self.names is not None else charts.key_metrics(self.metrics, services)
        window = self.window or analysis_window(self.incident)
        return [charts.metric_chart(self.metrics, n, services, self.incident, self.events, window) for n in names]

    def __panel__(self) -> pn.viewable.Viewable:
        plots = self.charts()
        note = fmt('<p class="muted">Shaded: the incident (started → resolved); dashed lines: changes '
                   '(deploy, config change, feature flag, scale).</p>')
        if not plots:
            note = fmt('<p class="muted">No metrics of the charted services in the window.</p>')
        return pn.Column(_section("Key metrics", note, "metrics"),
                         pn.GridBox(*[_chart(p) for p in plots], ncols=2), sizing_mode="stretch_width")


@dataclass
class AnomalyHeatmap:
    """Services × time anomaly scores. Pluggable: pass any long frame of scores and its name.

    Parameters
    ----------
    incident : workbench.store.Incident
    scores : pandas.DataFrame
        ``timestamp`` (tz-aware), ``service``, ``score`` (higher = more abnormal), e.g.
        :func:`charts.anomaly_scores` (the engine's) or :func:`charts.robust_z_scores`.
    method : str
        What the score is (shown with the chart).
    window : tuple, optional
        The charted ``[start, end)``; default the analysis window.
    clip, floor : float
        Colours run from white at ``floor`` to the darkest at ``clip`` (set them for the score's scale).
    onset : float
        Score whose first sustained run orders the services (:func:`charts.service_order`).
    """

    incident: Any
    scores: pd.DataFrame
    method: str = ROBUST_Z
    window: tuple[Any, Any] | None = None
    clip: float = charts.Z_CLIP
    floor: float = charts.Z_FLOOR
    onset: float = charts.ONSET_Z

    def chart(self) -> hv.Overlay:
        return charts.heatmap_chart(self.scores, self.incident, self.window or analysis_window(self.incident),
                                    self.method, clip=self.clip, floor=self.floor, onset=self.onset)

    def __panel__(self) -> pn.viewable.Viewable:
        note = fmt('<p class="muted">Score: {0}. Services ordered by their onset (first sustained run of '
                   'scores at or above {1}; earliest on top). Dashed: started (red), detected (amber).</p>',
                   self.method, f"{self.onset:g}")
        if self.scores.empty:
            return _section("Anomaly heatmap", fmt('<p class="muted">No scores: no metrics with a baseline.</p>'),
                            "heatmap")
        return pn.Column(_section("Anomaly heatmap", note, "heatmap"), _chart(self.chart()),
                         sizing_mode="stretch_width")


@dataclass
class LogsView:
    """Warning and error log templates while the incident lasted (of its services; of all services
    when it names none).

    Parameters
    ----------
    incident : workbench.store.Incident
    templates : pandas.DataFrame
        ``service``, ``template``, ``count``, ``first_seen``, ``example``, most lines first
        (:func:`workbench.postmortem.gather.log_templates`: the core mines the logs, not the view).
    """

    incident: Any
    templates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["service", "template", "count", "first_seen", "example"]))

    def __panel__(self) -> pn.viewable.Viewable:
        rows = [(r.service, r.count, when(r.first_seen), fmt("<code>{0}</code>", r.template),
                 fmt("<code>{0}</code>", r.example)) for r in self.templates.itertuples()]
        body = table(rows, ("service", "lines", "first seen", "template", "example line"),
                     "no WARN or ERROR lines while the incident lasted", nowrap=(1, 2))
        return _section("Warning and error logs", body, "logs")


# --------------------------------------------------------------------------- decisions

def evidence_table(evidence: Iterable[Any]) -> Markup:
    """Evidence items (dicts with time/signal/magnitude/explanation …, or any JSON) as a table."""
    items = list(evidence)
    dicts = [e for e in items if isinstance(e, Mapping)]
    keys = [k for k in _EVIDENCE_KEYS if any(k in e for e in dicts)]
    keys += sorted({k for e in dicts for k in e} - set(keys))
    rows = [tuple(_cell(e.get(k)) for k in keys) for e in dicts]
    others = [safe.code(e) for e in items if not isinstance(e, Mapping)]
    if not others:
        return table(rows, keys, "no evidence recorded")
    return (table(rows, keys) if rows else Markup("")) + safe.items(others)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return safe.code(value)
    return value


def _similar(similar: Iterable[Any]) -> Markup:
    parts = []
    for s in similar:
        if isinstance(s, Mapping):
            sim = s.get("similarity")
            cause = " / ".join(str(s[k]) for k in ("service", "cause") if s.get(k))
            parts.append(fmt("{0} {1}{2}{3}", s.get("incident_id", ""), s.get("title", ""),
                             f" ({cause})" if cause else "",
                             f", similarity {sim:.2f}" if isinstance(sim, (int, float)) else ""))
        else:
            parts.append(safe.code(s))
    return safe.items(parts, "none")


@dataclass
class HypothesesView:
    """The confirmed cause(s) with evidence, the rejected alternatives with their rationale, and
    the hypotheses nobody reviewed yet."""

    hypotheses: Sequence[Any]

    def markup(self) -> Markup:
        confirmed = [h for h in self.hypotheses if h.status == "confirmed"]
        rejected = [h for h in self.hypotheses if h.status == "rejected"]
        proposed = [h for h in self.hypotheses if h.status == "proposed"]
        parts = [fmt("<h3>Root cause</h3>")]
        if not confirmed:
            parts.append(fmt('<p class="muted">No hypothesis confirmed yet.</p>'))
        for h in confirmed:
            parts.append(fmt(
                '<div class="cause" data-testid="confirmed-cause"><p><b>{service}</b> {cause} — '
                '<span class="text">{summary}</span></p>'
                '<p>Confirmed by {reviewer}: <span class="text">{rationale}</span></p>'
                '<p class="muted">score {score}</p><b>Evidence</b>{evidence}<b>Similar past incidents</b>{similar}</div>',
                service=h.service, cause=badge(h.cause), summary=h.summary, reviewer=h.reviewer,
                rationale=h.rationale, score=f"{h.score:.3g}", evidence=evidence_table(h.evidence),
                similar=_similar(h.similar)))
        parts.append(fmt("<h3>Rejected alternatives</h3>"))
        if not rejected:
            parts.append(fmt('<p class="muted">none</p>'))
        for h in rejected:
            parts.append(fmt(
                '<div class="rejected"><p><b>{0}</b> {1} — <span class="text">{2}</span></p>'
                '<p>Rejected by {3}: <span class="text" data-testid="rejection-rationale">{4}</span></p></div>',
                h.service, badge(h.cause), h.summary, h.reviewer, h.rationale))
        if proposed:
            parts.append(fmt("<h3>Not reviewed yet</h3>"))
            parts.append(table([(h.rank or "", h.service, h.cause, h.summary, f"{h.score:.3g}") for h in proposed],
                               ("rank", "service", "cause", "summary", "score")))
        return join(parts)

    def __panel__(self) -> pn.viewable.Viewable:
        return _section("Cause", self.markup(), "hypotheses")


@dataclass
class ConclusionsView:
    """Contributing factors, lessons and other conclusions, grouped by kind."""

    conclusions: Sequence[Any]
    kinds: Sequence[str] = ("contributing_factor", "lesson", "conclusion")

    def markup(self) -> Markup:
        parts = []
        for kind in self.kinds:
            of_kind = [c for c in self.conclusions if c.kind == kind]
            parts.append(fmt("<h3>{0}</h3>", CONCLUSION_TITLES.get(kind, kind)))
            parts.append(safe.items([fmt('<span class="text">{0}</span> <span class="muted">— {1}</span>',
                                         c.text, c.author) for c in of_kind]))
        return join(parts)

    def __panel__(self) -> pn.viewable.Viewable:
        return _section("Contributing factors and lessons", self.markup(), "conclusions")


@dataclass
class ActionItemsView:
    """Action items with owner, due date, kind, status, verification criterion and latest check.

    Parameters
    ----------
    items : sequence of workbench.store.ActionItem
    checks : sequence of workbench.store.Check
        Checks of the incident; the latest one per action item (by ``at``) is shown.
    today : datetime.date, optional
        For marking overdue items (default: today in UTC).
    """

    items: Sequence[Any]
    checks: Sequence[Any] = ()
    today: date | None = None

    def latest_checks(self) -> dict[str, Any]:
        latest: dict[str, Any] = {}
        for c in self.checks:
            if c.action_item_id is not None and (c.action_item_id not in latest or c.at >= latest[c.action_item_id].at):
                latest[c.action_item_id] = c
        return latest

    def rows(self) -> list[tuple[Any, ...]]:
        today = self.today or datetime.now(timezone.utc).date()
        latest = self.latest_checks()
        rows = []
        for a in self.items:
            overdue = a.due is not None and a.due < today and a.status in ("open", "in_progress")
            due = fmt("{0} {1}", a.due.isoformat(), badge("overdue", "bad")) if overdue else \
                (a.due.isoformat() if a.due else "—")
            check = latest.get(a.id)
            result = fmt("{0} <span class=\"muted\">{1}</span>", badge(check.verdict, _VERDICT_CLASS.get(check.verdict, "")),
                         when(check.at)) if check else fmt('<span class="muted">not checked yet</span>')
            criterion = safe.code(a.verification) if a.verification is not None else fmt('<span class="muted">none</span>')
            fix = fix_status(a, [c for c in self.checks if c.action_item_id == a.id])
            if fix:  # "fix applied at …, criterion holding since …" (a change named the item)
                result = fmt('{0}<br><span class="muted" data-testid="fix-status">{1}</span>', result, fix)
            rows.append((fmt('<span data-testid="action-title">{0}</span>', a.title), a.owner, due, a.kind,
                         badge(a.status), criterion, result))
        return rows

    def __panel__(self) -> pn.viewable.Viewable:
        body = table(self.rows(), ("action", "owner", "due", "kind", "status", "verification", "latest check"),
                     "no action items", nowrap=(3,))
        return _section("Action items", body, "action-items")


@dataclass
class RecurrenceChecksView:
    """The scheduled recheck's history: one row per recurrence check, newest first.

    Parameters
    ----------
    checks : sequence of workbench.store.Check
        Checks of the incident; those without ``action_item_id`` are the recurrence checks (the
        action items' own checks are in :class:`ActionItemsView`).
    limit : int
        Most rows shown (the section says how many checks there are in all).
    """

    checks: Sequence[Any] = ()
    limit: int = 20

    def rows(self) -> list[tuple[Any, ...]]:
        recurrence = sorted((c for c in self.checks if c.action_item_id is None), key=lambda c: c.at, reverse=True)
        rows = []
        for c in recurrence[:self.limit]:
            facts = next((e for e in c.evidence if isinstance(e, dict) and e.get("kind") == "recurrence"), {})
            reasons = ", ".join(str(r) for r in facts.get("reasons") or []) or "—"
            follow = facts.get("follow_up_id")
            rows.append((when(c.at), fmt("{0} → {1}", when(c.window_start), when(c.window_end)),
                         badge(c.verdict, _VERDICT_CLASS.get(c.verdict, "")),
                         "—" if c.score is None else f"{c.score:.2f}", reasons,
                         fmt("{0}", follow) if follow else "—"))
        return rows

    def __panel__(self) -> pn.viewable.Viewable:
        total = sum(c.action_item_id is None for c in self.checks)
        note = fmt('<p class="muted">{0} recurrence check(s) by the scheduled recheck; the newest {1} shown. Score: '
                   'similarity of the checked window to this incident\'s signature.</p>', total, min(total, self.limit))
        body = table(self.rows(), ("checked at", "window (UTC)", "verdict", "score", "why", "follow-up review"),
                     "not rechecked yet", nowrap=(0, 1))
        return _section("Recurrence checks", join([note, body]) if total else body, "recurrence-checks")


@dataclass
class LinksView:
    """Runbooks and tickets (http, https and mailto links only)."""

    links: Sequence[Mapping[str, str]]

    def __panel__(self) -> pn.viewable.Viewable:
        return _section("Links", safe.items([safe.link(l.get("title"), l.get("url")) for l in self.links]), "links")
