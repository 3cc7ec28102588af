"""Cross-incident views of the served app: the incident list, overdue and open action items, and
the figures of :mod:`workbench.kpis` and :mod:`workbench.evaluation.ledger`.

The ``*_frame`` functions are pure (core records or results in, a DataFrame of display strings
out) so a notebook or a test can use them without a server; the views wrap them and render
through :func:`frame_table`, which hands every cell to :func:`workbench.reports.safe.table`
(escaped). Views read the knowledge base only in their ``from_knowledge_base`` constructors.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Iterable, Sequence

import pandas as pd
import panel as pn

from workbench.evaluation.ledger import AccuracyLedger, accuracy
from workbench.formats import clip
from workbench.inbound.rest import job_state
from workbench.kpis.selection import COUNTED_LABELS
from workbench.kpis.summary import ActionItemStats, Summary, incident_times, summarize
from workbench.store import INCIDENT_STATUSES, SEVERITIES

from . import safe
from .safe import Markup, fmt
from .text import percent  # noqa: F401 (part of this module's surface)
from .views import duration, when

__all__ = [
    "ANY", "filter_options", "incident_frame", "job_text", "overdue_frame", "open_items_frame", "owner_frame",
    "durations_frame", "incident_times_frame", "service_frame", "label_frame", "recurrence_frame",
    "action_stats_frame", "ledger_frame", "ledger_entries_frame", "frame_table", "ActionItemsOverview",
    "MetricsOverview", "seconds_text", "percent",
]

#: Label of the "no filter" choice of every filter widget; its value is ``""`` (Panel's Select
#: cannot show ``None`` as the selected option, and no status, severity, service or label is empty).
ANY = "(any)"
#: Statuses of an action item that is still to be done.
OPEN_STATUSES = ("open", "in_progress")
INCIDENT_COLUMNS = ["id", "title", "severity", "status", "services", "started", "time to detect", "time to resolve",
                    "labels"]
ITEM_COLUMNS = ["owner", "incident", "title", "due", "days overdue", "kind", "status"]
_PHASE_TITLES = {"mttd": "time to detect (MTTD)", "mttm": "time to mitigate (MTTM)",
                 "mttr": "time to resolve (MTTR)"}


# --------------------------------------------------------------------------- formatting

def seconds_text(seconds: float | None) -> str:
    """A duration in seconds as ``5 min 48 s`` / ``26 h 5 min``; ``unknown`` for None (never 0)."""
    if seconds is None or pd.isna(seconds):
        return "unknown"
    start = pd.Timestamp(0, tz="UTC")
    return duration(start, start + pd.Timedelta(seconds=float(seconds)))


def _today(today: date | None) -> date:
    return today or datetime.now(timezone.utc).date()


# --------------------------------------------------------------------------- incidents

def filter_options(incidents: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Choices of the incident filters, from the incidents present: label -> value, ``ANY: ""`` first.

    Returns ``{"status": ..., "severity": ..., "service": ..., "label": ...}``; statuses and
    severities in their canonical order, services sorted, labels as ``"key: value"`` ->
    ``(key, value)`` for the taxonomy keys :data:`workbench.kpis.selection.COUNTED_LABELS`.
    """
    incidents = list(incidents)
    statuses = {i.status for i in incidents}
    severities = {i.severity for i in incidents}
    services = sorted({s for i in incidents for s in i.services})
    labels = sorted({(k, str(i.labels[k])) for i in incidents for k in COUNTED_LABELS if k in i.labels},
                    key=lambda kv: (COUNTED_LABELS.index(kv[0]), kv[1]))
    return {
        "status": {ANY: "", **{s: s for s in INCIDENT_STATUSES if s in statuses}},
        "severity": {ANY: "", **{s: s for s in SEVERITIES if s in severities}},
        "service": {ANY: "", **{s: s for s in services}},
        "label": {ANY: "", **{f"{k}: {v}": (k, v) for k, v in labels}},
    }


def job_text(jobs: Any) -> str:
    """The incident's automatic work in a few words: ``done``, ``queued (analysis)``, ``running
    (notebook)``, ``failed (report): <error>``; ``""`` when nothing was ever queued."""
    state = job_state(jobs)
    if state["state"] == "none":
        return ""
    if state["state"] == "done":
        return "done"
    text = f"{state['state']} ({state['kind']})"
    return text + (f": {clip(state['error'], 90)}" if state["error"] else "")


def incident_frame(incidents: Iterable[Any], jobs: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per incident, newest first (display strings).

    Columns: ``id``, ``title``, ``severity``, ``status``, ``services`` (comma-separated),
    ``started`` (``YYYY-MM-DD HH:MM``, UTC), ``time to detect``, ``time to resolve`` (``unknown``
    when the phase time is missing), ``labels`` (the values of the taxonomy labels
    :data:`workbench.kpis.selection.COUNTED_LABELS`, in that order, joined by `` · ``) and, with
    ``jobs`` (``KnowledgeBase.latest_jobs()``), ``jobs`` (:func:`job_text`).
    """
    times = {t.incident_id: t for t in incident_times(incidents)}
    rows = []
    for i in sorted(incidents, key=lambda i: (i.started, i.id), reverse=True):
        t = times[i.id]
        rows.append((i.id, i.title, i.severity, i.status, ", ".join(i.services),
                     pd.Timestamp(i.started).tz_convert("UTC").strftime("%Y-%m-%d %H:%M"),
                     seconds_text(t.time_to_detect), seconds_text(t.time_to_resolve),
                     " · ".join(str(i.labels[k]) for k in COUNTED_LABELS if k in i.labels)))
    frame = pd.DataFrame(rows, columns=INCIDENT_COLUMNS, dtype=object)
    if jobs is not None:
        frame["jobs"] = [job_text(jobs.get(i)) for i in frame["id"]]
    return frame


# --------------------------------------------------------------------------- action items

def overdue_frame(items: Iterable[Any], today: date | None = None) -> pd.DataFrame:
    """Open or in-progress action items due before ``today``, by owner, most overdue first.

    Columns: ``owner``, ``incident`` (id), ``title``, ``due`` (ISO date), ``days overdue`` (int),
    ``kind``, ``status``.
    """
    today = _today(today)
    late = [a for a in items if a.status in OPEN_STATUSES and a.due is not None and a.due < today]
    late.sort(key=lambda a: (a.owner, a.due, a.incident_id, a.title))
    rows = [(a.owner, a.incident_id, a.title, a.due.isoformat(), (today - a.due).days, a.kind, a.status) for a in late]
    return pd.DataFrame(rows, columns=ITEM_COLUMNS).astype({"days overdue": "int64"})


def open_items_frame(items: Iterable[Any], today: date | None = None) -> pd.DataFrame:
    """Every open or in-progress action item, by due date (no due date last).

    Columns as :func:`overdue_frame`; ``due`` is ``—`` and ``days overdue`` is ``""`` for items not
    (yet) overdue or without a due date.
    """
    today = _today(today)
    chosen = [a for a in items if a.status in OPEN_STATUSES]
    chosen.sort(key=lambda a: (a.due is None, a.due or today, a.owner, a.incident_id, a.title))
    rows = [(a.owner, a.incident_id, a.title, a.due.isoformat() if a.due else "—",
             (today - a.due).days if a.due is not None and a.due < today else "", a.kind, a.status) for a in chosen]
    return pd.DataFrame(rows, columns=ITEM_COLUMNS, dtype=object)


def owner_frame(overdue: pd.DataFrame) -> pd.DataFrame:
    """Per owner of :func:`overdue_frame` rows: ``owner``, ``overdue items``, ``most days overdue``."""
    if overdue.empty:
        return pd.DataFrame(columns=["owner", "overdue items", "most days overdue"])
    grouped = overdue.groupby("owner", sort=True)["days overdue"].agg(["size", "max"]).reset_index()
    return grouped.rename(columns={"size": "overdue items", "max": "most days overdue"})


# --------------------------------------------------------------------------- metrics

def durations_frame(summary: Summary) -> pd.DataFrame:
    """``metric``, ``mean``, ``median``, ``known``, ``unknown`` for MTTD, MTTM and MTTR."""
    rows = [(_PHASE_TITLES[m], seconds_text(d.mean), seconds_text(d.median), d.n_known, d.n_unknown)
            for m, d in summary.durations.items()]
    return pd.DataFrame(rows, columns=["metric", "mean", "median", "known", "unknown"])


def incident_times_frame(summary: Summary) -> pd.DataFrame:
    """Per incident (oldest first): ``incident``, ``title``, ``severity``, ``status``, ``started``,
    ``detect``, ``mitigate``, ``resolve`` (``unknown`` when the phase time is missing)."""
    rows = [(t.incident_id, t.title, t.severity, t.status, when(t.started), seconds_text(t.time_to_detect),
             seconds_text(t.time_to_mitigate), seconds_text(t.time_to_resolve)) for t in summary.incidents]
    return pd.DataFrame(rows, columns=["incident", "title", "severity", "status", "started", "detect", "mitigate",
                                       "resolve"])


def service_frame(summary: Summary) -> pd.DataFrame:
    """``service``, ``incidents`` (an incident counts once per service it lists), most first."""
    return pd.DataFrame(list(summary.by_service.items()), columns=["service", "incidents"])


def label_frame(summary: Summary) -> pd.DataFrame:
    """``label``, ``value``, ``incidents`` per taxonomy label value; ``(unlabelled)`` rows count the
    incidents without that label."""
    rows = []
    for key in COUNTED_LABELS:
        rows += [(key, value, n) for value, n in summary.by_label.get(key, {}).items()]
        if summary.unlabelled.get(key):
            rows.append((key, "(unlabelled)", summary.unlabelled[key]))
    return pd.DataFrame(rows, columns=["label", "value", "incidents"])


def recurrence_frame(summary: Summary) -> pd.DataFrame:
    """One row: ``under watch``, ``recurred``, ``not yet judged``, ``recurrence rate`` and the ids."""
    r = summary.recurrence
    return pd.DataFrame([(len(r.under_watch), len(r.recurred), len(r.unjudged), percent(r.rate),
                          ", ".join(r.recurred) or "—")],
                        columns=["under watch", "recurred", "not yet judged", "recurrence rate", "recurred incidents"])


def action_stats_frame(summary: Summary) -> pd.DataFrame:
    """Action items of all owners (first row, ``all``) and per owner: ``owner``, ``items``,
    ``done``, ``open``, ``in progress``, ``won't do``, ``overdue``, ``no due date``, ``completion``
    (done / (items - won't do))."""
    def row(owner: str, s: ActionItemStats) -> tuple[Any, ...]:
        b = s.by_status
        return (owner, s.total, s.done, b.get("open", 0), b.get("in_progress", 0), b.get("wont_do", 0), s.overdue,
                s.no_due, percent(s.completion))

    rows = [row("all", summary.action_items)] + [row(o, s) for o, s in summary.by_owner.items()]
    return pd.DataFrame(rows, columns=["owner", "items", "done", "open", "in progress", "won't do", "overdue",
                                       "no due date", "completion"])


def ledger_frame(ledger: AccuracyLedger) -> pd.DataFrame:
    """``group`` (all, each month, each cause), ``incidents``, ``ranked``, ``not ranked``,
    ``AC@1``, ``AC@3``, ``mean rank``."""
    groups = [("all", ledger.overall), *((f"month {m}", g) for m, g in ledger.by_month.items()),
              *((f"cause {c}", g) for c, g in ledger.by_cause.items())]
    rows = [(name, g.n_incidents, g.n_ranked, g.n_not_ranked, percent(g.ac(1)), percent(g.ac(3)),
             "—" if g.mean_rank is None else f"{g.mean_rank:.2f}") for name, g in groups]
    return pd.DataFrame(rows, columns=["group", "incidents", "ranked", "not ranked", "AC@1", "AC@3", "mean rank"])


def ledger_entries_frame(ledger: AccuracyLedger) -> pd.DataFrame:
    """``incident``, ``started``, ``service``, ``cause``, ``engine rank`` (``not ranked`` when a
    human added the confirmed cause)."""
    rows = [(e.incident_id, when(e.started), e.service, e.cause, "not ranked" if e.rank is None else e.rank)
            for e in ledger.entries]
    return pd.DataFrame(rows, columns=["incident", "started", "service", "cause", "engine rank"])


# --------------------------------------------------------------------------- rendering

def frame_table(frame: pd.DataFrame, empty: str = "none", nowrap: Sequence[int] = ()) -> Markup:
    """A frame as the report's HTML table (every cell and column name escaped)."""
    return safe.table(frame.itertuples(index=False, name=None), list(frame.columns), empty, nowrap)


def _section(title: str, body: Markup, test_id: str) -> pn.pane.HTML:
    return safe.pane(safe.section(fmt("<h2>{0}</h2>{1}", title, body), test_id))


@dataclass
class ActionItemsOverview:
    """Overdue action items by owner, then every open one.

    Parameters
    ----------
    items : sequence of workbench.store.ActionItem
        Action items of any incidents and statuses (only open and in-progress ones are shown).
    today : datetime.date, optional
        Items due before it are overdue (default: today in UTC).
    """

    items: Sequence[Any]
    today: date | None = None

    @classmethod
    def from_knowledge_base(cls, kb: Any, today: date | None = None) -> "ActionItemsOverview":
        return cls(kb.list_action_items(), today)

    def __panel__(self) -> pn.viewable.Viewable:
        today = _today(self.today)
        overdue = overdue_frame(self.items, today)
        open_items = open_items_frame(self.items, today)
        head = fmt('<p><b data-testid="overdue-count">{0}</b> overdue action item(s) of {1} open ones, as of {2} '
                   '(open or in progress, due before that day).</p>', len(overdue), len(open_items), today.isoformat())
        return pn.Column(
            _section("Overdue action items", head + fmt("<h3>Per owner</h3>")
                     + frame_table(owner_frame(overdue), "nobody has overdue items"), "overdue-owners"),
            _section("Overdue action items, by owner", frame_table(overdue, "no overdue action items",
                                                                   nowrap=(1, 3, 4)), "overdue"),
            _section("All open action items", frame_table(open_items, "no open action items", nowrap=(1, 3, 4)),
                     "open-items"),
            sizing_mode="stretch_width")


@dataclass
class MetricsOverview:
    """The cross-incident view: durations, incidents per service and label, recurrence, action
    items and the accuracy ledger (definitions in docs/metrics.md)."""

    summary: Summary
    ledger: AccuracyLedger

    @classmethod
    def from_knowledge_base(cls, kb: Any, as_of: Any = None) -> "MetricsOverview":
        return cls(summarize(kb, as_of=as_of), accuracy(kb))

    def __panel__(self) -> pn.viewable.Viewable:
        s = self.summary
        head = fmt('<p><b data-testid="metrics-count">{0}</b> incident(s), as of {1}. Means and medians use the '
                   'known durations only; an incident without that phase time counts as unknown.</p>',
                   s.count, when(s.as_of))
        ledger_note = fmt('<p class="muted">How the engine ranked the causes people confirmed. AC@k: share of '
                          'the ranked incidents whose confirmed cause was ranked k or better; "not ranked": the '
                          'confirmed cause was added by a person.</p>')
        return pn.Column(
            _section("Durations", head + frame_table(durations_frame(s)), "durations"),
            pn.Row(_section("Incidents per service", frame_table(service_frame(s), "no services"), "per-service"),
                   _section("Incidents per label", frame_table(label_frame(s), "no labels"), "per-label"),
                   sizing_mode="stretch_width"),
            _section("Recurrence", frame_table(recurrence_frame(s)), "recurrence"),
            _section("Action items", frame_table(action_stats_frame(s)), "action-stats"),
            _section("Accuracy ledger", ledger_note + frame_table(ledger_frame(self.ledger))
                     + frame_table(ledger_entries_frame(self.ledger), "no confirmed causes yet", nowrap=(0, 1)),
                     "ledger"),
            _section("Per incident", frame_table(incident_times_frame(s), "no incidents", nowrap=(0, 4)),
                     "incident-times"),
            sizing_mode="stretch_width")

