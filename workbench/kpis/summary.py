"""MTTD/MTTM/MTTR with unknowns counted apart, incidents per service and label, recurrence and
action-item completion over a selection of incidents (definitions: ``docs/metrics.md``).

:func:`summarize_records` is pure (records in, result out); :func:`summarize` reads the records
from a :class:`~workbench.store.KnowledgeBase`. Results have ``to_dict()`` (JSON-safe: durations
in seconds or ``None``, times as ISO 8601 UTC ending in ``Z``).
"""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable, Mapping, Sequence

from ..store.records import ACTION_STATUSES, ActionItem, Check, Incident, iso
from .selection import COUNTED_LABELS, PHASES, Selection, as_of_time, iso_or_none, select

OPEN_STATUSES = ("open", "in_progress")


@dataclass(frozen=True)
class IncidentTimes:
    """One incident's phase times and durations (seconds; ``None`` = unknown)."""

    incident_id: str
    title: str
    severity: str
    status: str
    services: tuple[str, ...]
    started: datetime
    detected: datetime | None
    mitigated: datetime | None
    resolved: datetime | None
    time_to_detect: float | None
    time_to_mitigate: float | None
    time_to_resolve: float | None

    def duration(self, metric: str) -> float | None:
        """The duration behind ``metric`` (``mttd``, ``mttm`` or ``mttr``)."""
        return {"mttd": self.time_to_detect, "mttm": self.time_to_mitigate, "mttr": self.time_to_resolve}[metric]

    def to_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "title": self.title, "severity": self.severity,
                "status": self.status, "services": list(self.services), "started": iso_or_none(self.started),
                "detected": iso_or_none(self.detected), "mitigated": iso_or_none(self.mitigated), "resolved": iso_or_none(self.resolved),
                "time_to_detect_s": self.time_to_detect, "time_to_mitigate_s": self.time_to_mitigate,
                "time_to_resolve_s": self.time_to_resolve}


def incident_times(incidents: Iterable[Incident]) -> list[IncidentTimes]:
    """Time to detect, mitigate and resolve of each incident, in the given order."""
    out = []
    for inc in incidents:
        spans = [None if getattr(inc, phase) is None else (getattr(inc, phase) - inc.started).total_seconds()
                 for _, phase in PHASES]
        out.append(IncidentTimes(inc.id, inc.title, inc.severity, inc.status, tuple(inc.services), inc.started,
                                 inc.detected, inc.mitigated, inc.resolved, *spans))
    return out


@dataclass(frozen=True)
class DurationStats:
    """Mean and median of the known durations (seconds) and how many were known/unknown."""

    n_known: int
    n_unknown: int
    mean: float | None
    median: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"n_known": self.n_known, "n_unknown": self.n_unknown, "mean_s": self.mean, "median_s": self.median}


def duration_stats(values: Iterable[float | None]) -> DurationStats:
    """Stats of ``values`` where ``None`` is unknown (counted, never averaged in as zero)."""
    values = list(values)
    known = [float(v) for v in values if v is not None]
    if not known:
        return DurationStats(0, len(values), None, None)
    return DurationStats(len(known), len(values) - len(known), math.fsum(known) / len(known),
                         float(statistics.median(known)))


@dataclass(frozen=True)
class Recurrence:
    """``recurred / under_watch`` (see the module docstring); incident ids for auditing."""

    recurred: tuple[str, ...]
    under_watch: tuple[str, ...]
    unjudged: tuple[str, ...]

    @property
    def rate(self) -> float | None:
        return len(self.recurred) / len(self.under_watch) if self.under_watch else None

    def to_dict(self) -> dict[str, Any]:
        return {"recurred": len(self.recurred), "under_watch": len(self.under_watch),
                "unjudged": len(self.unjudged), "rate": self.rate, "recurred_ids": list(self.recurred),
                "under_watch_ids": list(self.under_watch), "unjudged_ids": list(self.unjudged)}


@dataclass(frozen=True)
class ActionItemStats:
    """Action items by status, with completion (``done / (total - wont_do)``) and overdue counts."""

    total: int
    by_status: dict[str, int]
    overdue: int
    no_due: int

    @property
    def done(self) -> int:
        return self.by_status.get("done", 0)

    @property
    def completion(self) -> float | None:
        denominator = self.total - self.by_status.get("wont_do", 0)
        return self.done / denominator if denominator else None

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, **{s: self.by_status.get(s, 0) for s in ACTION_STATUSES},
                "completion": self.completion, "overdue": self.overdue, "no_due": self.no_due}


def action_stats(items: Sequence[ActionItem], as_of: date) -> ActionItemStats:
    by_status = Counter(i.status for i in items)
    overdue = sum(1 for i in items if i.status in OPEN_STATUSES and i.due is not None and i.due < as_of)
    return ActionItemStats(len(items), {s: by_status.get(s, 0) for s in ACTION_STATUSES}, overdue,
                           sum(1 for i in items if i.due is None))


@dataclass(frozen=True)
class Summary:
    """Metrics over a selection of incidents (see the module docstring for every definition).

    Attributes
    ----------
    selection : Selection
    as_of : datetime
    incidents : list of IncidentTimes
        Per-incident times, ordered by ``started``.
    durations : dict
        ``mttd``, ``mttm``, ``mttr`` -> :class:`DurationStats`.
    by_service : dict
        service -> incident count (an incident counts once per listed service), most first.
    by_label, unlabelled : dict
        ``symptom``/``service``/``environment`` -> {value: count}, and the count without that label.
    recurrence : Recurrence
    action_items : ActionItemStats
    by_owner : dict
        owner -> :class:`ActionItemStats`.
    """

    selection: Selection
    as_of: datetime
    incidents: list[IncidentTimes]
    durations: dict[str, DurationStats]
    by_service: dict[str, int]
    by_label: dict[str, dict[str, int]]
    unlabelled: dict[str, int]
    recurrence: Recurrence
    action_items: ActionItemStats
    by_owner: dict[str, ActionItemStats]

    @property
    def count(self) -> int:
        return len(self.incidents)

    def frame(self) -> Any:
        """Per-incident times as a DataFrame: ``incident_id``, ``severity``, ``status``, ``started``
        (aware UTC), ``time_to_detect_s``, ``time_to_mitigate_s``, ``time_to_resolve_s`` (float, NaN
        when unknown), ``services`` (list)."""
        import pandas as pd

        rows = [{"incident_id": t.incident_id, "severity": t.severity, "status": t.status,
                 "started": pd.Timestamp(t.started), "time_to_detect_s": t.time_to_detect,
                 "time_to_mitigate_s": t.time_to_mitigate, "time_to_resolve_s": t.time_to_resolve,
                 "services": list(t.services)} for t in self.incidents]
        columns = ["incident_id", "severity", "status", "started", "time_to_detect_s", "time_to_mitigate_s",
                   "time_to_resolve_s", "services"]
        frame = pd.DataFrame(rows, columns=columns)
        for c in columns[4:7]:
            frame[c] = frame[c].astype("float64")
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {"selection": self.selection.to_dict(), "as_of": iso(self.as_of), "count": self.count,
                "durations": {k: v.to_dict() for k, v in self.durations.items()},
                "by_service": dict(self.by_service), "by_label": {k: dict(v) for k, v in self.by_label.items()},
                "unlabelled": dict(self.unlabelled), "recurrence": self.recurrence.to_dict(),
                "action_items": self.action_items.to_dict(),
                "by_owner": {k: v.to_dict() for k, v in self.by_owner.items()},
                "incidents": [t.to_dict() for t in self.incidents]}


def summarize_records(incidents: Sequence[Incident], action_items: Iterable[ActionItem] = (),
                      checks: Iterable[Check] = (), *, as_of: Any = None,
                      selection: Selection | None = None) -> Summary:
    """Summarize ``incidents`` (already selected); action items and checks of other incidents are ignored.

    Parameters
    ----------
    incidents : sequence of Incident
    action_items : iterable of ActionItem
        May hold items of any incident; only those of ``incidents`` count.
    checks : iterable of Check
        Likewise; only recurrence checks (no ``action_item_id``) at or before ``as_of`` count.
    as_of : datetime, date or ISO string, optional
        Reference time for overdue items and checks (default: now).
    selection : Selection, optional
        Echoed in the result.
    """
    as_of = as_of_time(as_of)
    incidents = sorted(incidents, key=lambda i: (i.started, i.id))
    ids = {i.id for i in incidents}
    times = incident_times(incidents)
    durations = {m: duration_stats(t.duration(m) for t in times) for m, _ in PHASES}
    by_service = Counter(s for i in incidents for s in i.services)
    by_label = {k: Counter(i.labels[k] for i in incidents if k in i.labels) for k in COUNTED_LABELS}
    unlabelled = {k: sum(1 for i in incidents if k not in i.labels) for k in COUNTED_LABELS}

    verdicts: dict[str, set[str]] = defaultdict(set)
    for c in checks:
        if c.incident_id in ids and c.action_item_id is None and c.at <= as_of:
            verdicts[c.incident_id].add(c.verdict)
    recurred = [i.id for i in incidents if i.status == "recurred" or "recurred" in verdicts[i.id]]
    watched = [i.id for i in incidents if i.status in ("monitoring", "recurred") or verdicts[i.id]]
    recurred_set = set(recurred)
    unjudged = [i for i in watched if i not in recurred_set and not verdicts[i] & {"clear", "recurred"}]

    items = [a for a in action_items if a.incident_id in ids]
    owners: dict[str, list[ActionItem]] = defaultdict(list)
    for a in items:
        owners[a.owner].append(a)
    return Summary(selection or Selection(), as_of, times, durations, most_first(by_service),
                   {k: most_first(v) for k, v in by_label.items()}, unlabelled,
                   Recurrence(tuple(recurred), tuple(watched), tuple(unjudged)),
                   action_stats(items, as_of.date()),
                   {o: action_stats(owners[o], as_of.date()) for o in sorted(owners)})


def most_first(counts: Counter) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def summarize(kb: Any, *, since: Any = None, until: Any = None, service: str | None = None,
              severity: str | None = None, label: Mapping[str, Any] | str | None = None,
              as_of: Any = None) -> Summary:
    """MTTD/MTTM/MTTR, incidents per service and label, recurrence and action items of a selection.

    ``kb`` is a :class:`~workbench.store.KnowledgeBase`; the filters are described under
    "Selection" in the module docstring. Raises :class:`MetricsError` for a bad filter and
    :class:`~workbench.errors.StoreError` for a bad severity.
    """
    selection = Selection.of(since, until, service, severity, label)
    incidents = select(kb, selection)
    return summarize_records(incidents, kb.list_action_items(), kb.list_checks(), as_of=as_of,
                             selection=selection)
