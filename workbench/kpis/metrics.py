"""Cross-incident metrics: detection and repair times, recurrence, follow-up, and engine accuracy.

Everything here is computed from knowledge-base records (:mod:`workbench.store`). The ``*_records``
functions are pure (records in, result out); :func:`summarize`, :func:`before_after` and
:func:`accuracy` read the records from a :class:`~workbench.store.KnowledgeBase` and call them.
Each result is a dataclass with ``to_dict()`` (JSON-safe: durations in seconds as floats or
``None``, times as ISO 8601 UTC strings ending in ``Z``); :func:`format_table` renders any of them
as text for the CLI.

Definitions
-----------
Selection
    An incident is selected when ``since <= started < until`` (either bound optional), it lists
    ``service`` among its services, its severity equals ``severity`` and every given taxonomy label
    equals the given value (``label={"symptom": "latency"}`` or ``"symptom=latency"``).
Per-incident times (seconds)
    time to detect = ``detected - started``; time to mitigate = ``mitigated - started``; time to
    resolve = ``resolved - started``. A missing phase time makes that duration *unknown*: it is
    left out of means and medians and counted in ``n_unknown``, never taken as zero.
MTTD, MTTM, MTTR
    The arithmetic mean and the median of the known times to detect, mitigate and resolve over the
    selected incidents, each reported with ``n_known`` and ``n_unknown`` (``n_known + n_unknown``
    = the incident count). With no known value the mean and median are ``None``.
Incidents per service
    An incident counts once for each service it lists, so the per-service counts can add up to
    more than the incident count.
Incidents per label
    Counts per value of the taxonomy labels ``symptom``, ``service`` and ``environment``; incidents
    without that label are counted in ``unlabelled[key]``.
Recurrence rate
    ``recurred / under_watch``. A *recurrence check* is a check without ``action_item_id`` (one with
    an action item is a verification check and never counts here); only checks recorded at or
    before ``as_of`` count. An incident has *recurred* when its status is ``recurred`` or it has a
    recurrence check with verdict ``recurred``. It is *under watch* when its status is
    ``monitoring`` or ``recurred`` or it has at least one recurrence check (any verdict), i.e. the
    loop was asked to watch it. ``None`` when nothing is under watch. ``unjudged`` counts incidents
    under watch that have not recurred and have no check with verdict ``clear`` or ``recurred``
    (only ``no_data``/``inconclusive`` or none yet): a low rate over many unjudged incidents says
    little.
Action item completion
    ``done / (all - wont_do)`` over the action items of the selected incidents. ``wont_do`` items
    are left out of the denominator: a decision not to do something is a closed decision, not
    unfinished work, and counting it as "not done" would punish teams for pruning their backlog.
    ``None`` when the denominator is 0.
Overdue
    An action item is overdue when its status is ``open`` or ``in_progress`` and its due date is
    before the UTC date of ``as_of`` (due on that day is not yet overdue). Items without a due date
    are never overdue; they are counted in ``no_due``. Completion and overdue are also given per
    owner.
``as_of``
    The reference time (default: now, UTC) for overdue items, for which checks count, and for the
    before/after windows. A date means 00:00 UTC of that day.
Before/after a remediation
    For a service, its action items are those of the incidents that list the service. The
    remediation time ``done_at`` is, unless given, the latest history entry (at or before
    ``as_of``) in which the status of such an item became ``done`` (an update to ``done``, or the
    item created as ``done``), counting only items whose current status is still ``done`` (a
    reopened item is not a finished fix). The window length is ``L = min(window, as_of - done_at)``
    (default ``window`` 90 days): the "after" window never reaches past ``as_of``, and the "before"
    window has the same length so incident counts are comparable. Before = incidents of the service
    with ``done_at - L <= started < done_at``; after = ``done_at <= started < done_at + L``. Both get
    the full summary above; ``difference`` is after minus before (``None`` where either is unknown).
Accuracy ledger
    For every selected incident with a confirmed hypothesis, the engine's rank of the confirmed
    cause is the ``rank`` field of the confirmed hypothesis (the lowest when several are
    confirmed). A confirmed hypothesis without a rank was added by a human: the incident is
    counted as *not ranked* and is left out of AC@k and the mean rank. ``AC@k`` = share of the
    ranked incidents whose rank is ``<= k`` (k = 1, 3); mean rank = mean of the ranks; both
    ``None`` when no incident is ranked. Reported overall, per UTC month of ``started``
    (``YYYY-MM``) and per cause type of the confirmed hypothesis.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from ..errors import MetricsError, NotFoundError
from ..store.records import (ACTION_STATUSES, CAUSES, LABEL_KEYS, SEVERITIES, ActionItem, Check, HistoryEntry,
                             Hypothesis, Incident, check_enum, check_text, check_time, iso)
from ..formats import clip, key_value

__all__ = [
    "MetricsError", "Selection", "IncidentTimes", "DurationStats", "Recurrence", "ActionItemStats", "Summary",
    "BeforeAfter", "LedgerEntry", "AccuracyGroup", "AccuracyLedger", "incident_times", "duration_stats",
    "summarize_records", "summarize", "remediation_time", "before_after", "ledger_records", "accuracy",
    "format_table", "DEFAULT_WINDOW", "COUNTED_LABELS",
]

#: Default longest before/after window.
DEFAULT_WINDOW = timedelta(days=90)
#: Taxonomy labels counted per value (``confidence`` is a number, not a category).
COUNTED_LABELS = tuple(k for k in LABEL_KEYS if k != "confidence")
_PHASES = (("mttd", "detected"), ("mttm", "mitigated"), ("mttr", "resolved"))
_PHASE_NAMES = {"mttd": "MTTD (detect)", "mttm": "MTTM (mitigate)", "mttr": "MTTR (resolve)"}
_OPEN = ("open", "in_progress")
_ACCURACY_KS = (1, 3)


# --------------------------------------------------------------------------- selection

@dataclass(frozen=True)
class Selection:
    """Which incidents a result covers (see "Selection" in the module docstring)."""

    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    severity: str | None = None
    label: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, since: Any = None, until: Any = None, service: str | None = None, severity: str | None = None,
           label: Mapping[str, Any] | str | None = None) -> "Selection":
        """Check and normalise the filters (times to aware UTC, ``"k=v"`` labels to a dict)."""
        since = None if since is None else check_time(since, "since")
        until = None if until is None else check_time(until, "until")
        if since is not None and until is not None and until <= since:
            raise MetricsError(f"until: expected a time after since ({iso(since)}), got {iso(until)}")
        if severity is not None:
            severity = check_enum(severity, "severity", SEVERITIES)
        return cls(since, until, None if service is None else check_text(service, "service"), severity,
                   _label(label))

    def contains(self, incident: Incident) -> bool:
        """Whether ``incident`` passes every filter."""
        return ((self.since is None or incident.started >= self.since)
                and (self.until is None or incident.started < self.until)
                and (self.service is None or self.service in incident.services)
                and (self.severity is None or incident.severity == self.severity)
                and all(incident.labels.get(k) == v for k, v in self.label.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"since": _iso(self.since), "until": _iso(self.until), "service": self.service,
                "severity": self.severity, "label": dict(self.label)}


def _label(label: Mapping[str, Any] | str | None) -> dict[str, str]:
    if label is None:
        return {}
    if isinstance(label, str):
        key, value = key_value(label, "label (e.g. symptom=latency)", MetricsError)
        label = {key: value}
    if not isinstance(label, Mapping):
        raise MetricsError(f"label: expected key=value or a mapping, got {label!r}")
    for key in label:
        if key not in COUNTED_LABELS:
            raise MetricsError(f"label: expected a key among {', '.join(COUNTED_LABELS)}, got {key!r}")
    return {k: str(v) for k, v in label.items()}


def _select(kb: Any, selection: Selection) -> list[Incident]:
    incidents = kb.list_incidents(service=selection.service, severity=selection.severity,
                                  since=selection.since, label=selection.label or None)
    return [i for i in incidents if selection.contains(i)]


def _as_of(value: Any) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=timezone.utc)
    return check_time(value, "as_of")


# --------------------------------------------------------------------------- per incident

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
                "status": self.status, "services": list(self.services), "started": _iso(self.started),
                "detected": _iso(self.detected), "mitigated": _iso(self.mitigated), "resolved": _iso(self.resolved),
                "time_to_detect_s": self.time_to_detect, "time_to_mitigate_s": self.time_to_mitigate,
                "time_to_resolve_s": self.time_to_resolve}


def incident_times(incidents: Iterable[Incident]) -> list[IncidentTimes]:
    """Time to detect, mitigate and resolve of each incident, in the given order."""
    out = []
    for inc in incidents:
        spans = [None if getattr(inc, phase) is None else (getattr(inc, phase) - inc.started).total_seconds()
                 for _, phase in _PHASES]
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


# --------------------------------------------------------------------------- summary

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


def _action_stats(items: Sequence[ActionItem], as_of: date) -> ActionItemStats:
    by_status = Counter(i.status for i in items)
    overdue = sum(1 for i in items if i.status in _OPEN and i.due is not None and i.due < as_of)
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
    as_of = _as_of(as_of)
    incidents = sorted(incidents, key=lambda i: (i.started, i.id))
    ids = {i.id for i in incidents}
    times = incident_times(incidents)
    durations = {m: duration_stats(t.duration(m) for t in times) for m, _ in _PHASES}
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
    return Summary(selection or Selection(), as_of, times, durations, _most_first(by_service),
                   {k: _most_first(v) for k, v in by_label.items()}, unlabelled,
                   Recurrence(tuple(recurred), tuple(watched), tuple(unjudged)),
                   _action_stats(items, as_of.date()),
                   {o: _action_stats(owners[o], as_of.date()) for o in sorted(owners)})


def _most_first(counts: Counter) -> dict[str, int]:
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
    incidents = _select(kb, selection)
    return summarize_records(incidents, kb.list_action_items(), kb.list_checks(), as_of=as_of,
                             selection=selection)


# --------------------------------------------------------------------------- before / after

@dataclass(frozen=True)
class BeforeAfter:
    """The same metrics for one service in equal windows before and after a remediation.

    ``difference`` holds after minus before: ``count``, ``recurrence_rate`` and
    ``mttd``/``mttm``/``mttr`` -> ``{"mean_s", "median_s"}`` (``None`` where either side is unknown).
    """

    service: str
    done_at: datetime
    done_from: str  # "history" or "given"
    action_item_ids: tuple[str, ...]
    window: timedelta
    before: Summary
    after: Summary

    @property
    def difference(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.after.count - self.before.count,
                               "recurrence_rate": _minus(self.after.recurrence.rate, self.before.recurrence.rate)}
        for m, _ in _PHASES:
            a, b = self.after.durations[m], self.before.durations[m]
            out[m] = {"mean_s": _minus(a.mean, b.mean), "median_s": _minus(a.median, b.median)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "done_at": iso(self.done_at), "done_from": self.done_from,
                "action_item_ids": list(self.action_item_ids), "window_s": self.window.total_seconds(),
                "before": self.before.to_dict(), "after": self.after.to_dict(), "difference": self.difference}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def remediation_time(items: Iterable[ActionItem], history: Iterable[HistoryEntry],
                     as_of: Any = None) -> tuple[datetime, tuple[str, ...]] | None:
    """When the last of ``items`` became ``done`` (and which items are done), from their history.

    Only items whose current status is ``done`` count; for those, an entry counts when it set the
    status to ``done`` (field ``status``) or created the item as done (field ``"*"``), at or before
    ``as_of``. Returns ``None`` when no entry qualifies.
    """
    as_of = _as_of(as_of)
    done = {i.id for i in items if i.status == "done"}
    times: dict[str, datetime] = {}
    for h in history:
        if h.entity != "action_item" or h.entity_id not in done or h.at > as_of:
            continue
        became_done = (h.field == "status" and h.new == "done") or \
                      (h.field == "*" and isinstance(h.new, Mapping) and h.new.get("status") == "done")
        if became_done and (h.entity_id not in times or h.at > times[h.entity_id]):
            times[h.entity_id] = h.at
    if not times:
        return None
    return max(times.values()), tuple(sorted(times))


def before_after(kb: Any, service: str, *, done_at: Any = None, window: timedelta = DEFAULT_WINDOW,
                 as_of: Any = None, severity: str | None = None,
                 label: Mapping[str, Any] | str | None = None) -> BeforeAfter:
    """Metrics of ``service`` in equal windows before and after its action items were done.

    Parameters
    ----------
    kb : KnowledgeBase
    service : str
    done_at : datetime or ISO string, optional
        The remediation time; default: from the history (see the module docstring).
    window : timedelta
        Longest window on each side; the used length is ``min(window, as_of - done_at)``.
    as_of : datetime, date or ISO string, optional
        Default now.
    severity, label : optional
        Further filters for both windows.

    Raises
    ------
    NotFoundError
        ``done_at`` is not given and no action item of the service's incidents is done.
    MetricsError
        ``window`` is not positive or ``done_at`` is not before ``as_of``.
    """
    service = check_text(service, "service")
    as_of = _as_of(as_of)
    if not isinstance(window, timedelta) or window <= timedelta(0):
        raise MetricsError(f"window: expected a positive timedelta, got {window!r}")
    incidents = kb.list_incidents(service=service)
    if done_at is None:
        ids = {i.id for i in incidents}
        items = [a for a in kb.list_action_items() if a.incident_id in ids]
        found = remediation_time(items, kb.history(entity="action_item"), as_of)
        if found is None:
            raise NotFoundError(f"service {service!r}: none of the {len(items)} action item(s) of its "
                                f"{len(incidents)} incident(s) is done (as of {iso(as_of)}); pass done_at")
        done, item_ids, source = found[0], found[1], "history"
    else:
        done, item_ids, source = check_time(done_at, "done_at"), (), "given"
    length = min(window, as_of - done)
    if length <= timedelta(0):
        raise MetricsError(f"done_at: expected a time before as_of ({iso(as_of)}), got {iso(done)}")
    items, checks = kb.list_action_items(), kb.list_checks()
    sides = []
    for start, end in ((done - length, done), (done, done + length)):
        selection = Selection.of(start, end, service, severity, label)
        chosen = [i for i in incidents if selection.contains(i)]
        sides.append(summarize_records(chosen, items, checks, as_of=as_of, selection=selection))
    return BeforeAfter(service, done, source, item_ids, length, sides[0], sides[1])


# --------------------------------------------------------------------------- accuracy ledger

@dataclass(frozen=True)
class LedgerEntry:
    """One incident with a confirmed cause: the engine's rank of it (``None`` = not ranked)."""

    incident_id: str
    started: datetime
    hypothesis_id: str
    service: str
    cause: str
    rank: int | None
    confirmed: int  # how many hypotheses of the incident are confirmed

    @property
    def month(self) -> str:
        return self.started.astimezone(timezone.utc).strftime("%Y-%m")

    def to_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "started": iso(self.started), "month": self.month,
                "hypothesis_id": self.hypothesis_id, "service": self.service, "cause": self.cause,
                "rank": self.rank, "confirmed": self.confirmed}


@dataclass(frozen=True)
class AccuracyGroup:
    """AC@1, AC@3 and mean rank over the ranked entries of a group; not-ranked ones counted apart."""

    n_incidents: int
    ranks: tuple[int, ...]

    @property
    def n_ranked(self) -> int:
        return len(self.ranks)

    @property
    def n_not_ranked(self) -> int:
        return self.n_incidents - len(self.ranks)

    def ac(self, k: int) -> float | None:
        """Share of ranked incidents whose confirmed cause was ranked ``<= k``."""
        return sum(1 for r in self.ranks if r <= k) / len(self.ranks) if self.ranks else None

    @property
    def mean_rank(self) -> float | None:
        return sum(self.ranks) / len(self.ranks) if self.ranks else None

    def to_dict(self) -> dict[str, Any]:
        return {"n_incidents": self.n_incidents, "n_ranked": self.n_ranked, "n_not_ranked": self.n_not_ranked,
                **{f"ac{k}": self.ac(k) for k in _ACCURACY_KS}, "mean_rank": self.mean_rank}


def _group(entries: Sequence[LedgerEntry]) -> AccuracyGroup:
    return AccuracyGroup(len(entries), tuple(e.rank for e in entries if e.rank is not None))


@dataclass(frozen=True)
class AccuracyLedger:
    """How the engine ranked the causes humans confirmed: overall, per month, per cause type."""

    selection: Selection
    entries: list[LedgerEntry]
    overall: AccuracyGroup
    by_month: dict[str, AccuracyGroup]
    by_cause: dict[str, AccuracyGroup]

    def to_dict(self) -> dict[str, Any]:
        return {"selection": self.selection.to_dict(), "overall": self.overall.to_dict(),
                "by_month": {k: v.to_dict() for k, v in self.by_month.items()},
                "by_cause": {k: v.to_dict() for k, v in self.by_cause.items()},
                "entries": [e.to_dict() for e in self.entries]}


def ledger_records(incidents: Sequence[Incident], hypotheses: Iterable[Hypothesis], *,
                   selection: Selection | None = None) -> AccuracyLedger:
    """The accuracy ledger of ``incidents`` from their hypotheses (others' hypotheses are ignored)."""
    started = {i.id: i.started for i in incidents}
    confirmed: dict[str, list[Hypothesis]] = defaultdict(list)
    for h in hypotheses:
        if h.status == "confirmed" and h.incident_id in started:
            confirmed[h.incident_id].append(h)
    entries = []
    for inc_id, hyps in confirmed.items():
        # The best-ranked confirmed cause; unranked ones only when none has a rank.
        best = min(hyps, key=lambda h: (h.rank is None, h.rank or 0, -h.score, h.id))
        entries.append(LedgerEntry(inc_id, started[inc_id], best.id, best.service, best.cause, best.rank, len(hyps)))
    entries.sort(key=lambda e: (e.started, e.incident_id))
    months: dict[str, list[LedgerEntry]] = defaultdict(list)
    causes: dict[str, list[LedgerEntry]] = defaultdict(list)
    for e in entries:
        months[e.month].append(e)
        causes[e.cause].append(e)
    return AccuracyLedger(selection or Selection(), entries, _group(entries),
                          {m: _group(months[m]) for m in sorted(months)},
                          {c: _group(causes[c]) for c in CAUSES if c in causes})


def accuracy(kb: Any, *, since: Any = None, until: Any = None, service: str | None = None,
             severity: str | None = None, label: Mapping[str, Any] | str | None = None) -> AccuracyLedger:
    """The accuracy ledger (AC@1, AC@3, mean rank) of the selected incidents with a confirmed cause."""
    selection = Selection.of(since, until, service, severity, label)
    incidents = _select(kb, selection)
    confirmed = kb.confirmed_hypotheses()
    hypotheses = [h for i in incidents for h in confirmed.get(i.id, [])]
    return ledger_records(incidents, hypotheses, selection=selection)


# --------------------------------------------------------------------------- text tables

def format_table(result: Summary | BeforeAfter | AccuracyLedger, *, max_rows: int = 50) -> str:
    """Plain-text rendering of a result for the CLI (at most ``max_rows`` per-incident rows)."""
    if isinstance(result, Summary):
        return "\n".join(_summary_lines(result, max_rows))
    if isinstance(result, BeforeAfter):
        return "\n".join(_before_after_lines(result, max_rows))
    if isinstance(result, AccuracyLedger):
        return "\n".join(_ledger_lines(result, max_rows))
    raise MetricsError(f"result: expected a Summary, BeforeAfter or AccuracyLedger, got {type(result).__name__}")


def _summary_lines(s: Summary, max_rows: int) -> list[str]:
    lines = [f"incidents: {s.count}{_selection_text(s.selection)}  (as of {iso(s.as_of)})", ""]
    lines += _duration_lines(s.durations)
    r = s.recurrence
    rate = "rate unknown" if r.rate is None else f"= {_pct(r.rate)}"
    lines += ["", f"recurrence: {len(r.recurred)} recurred of {len(r.under_watch)} under watch {rate}"
                  f"  ({len(r.unjudged)} under watch not yet judged)"]
    a = s.action_items
    lines += [f"action items: {a.done} done of {a.total - a.by_status['wont_do']} (wont_do {a.by_status['wont_do']} "
              f"excluded) = {_pct(a.completion)}; open {a.by_status['open']}, in progress "
              f"{a.by_status['in_progress']}; overdue {a.overdue}; no due date {a.no_due}"]
    if s.by_owner:
        lines += ["", f"{'owner':<20} {'items':>5} {'done':>5} {'open':>5} {'in_prog':>7} {'wont_do':>7} "
                      f"{'overdue':>7} {'completion':>10}"]
        for owner, o in s.by_owner.items():
            lines.append(f"{clip(owner, 20):<20} {o.total:>5} {o.done:>5} {o.by_status['open']:>5} "
                         f"{o.by_status['in_progress']:>7} {o.by_status['wont_do']:>7} {o.overdue:>7} "
                         f"{_pct(o.completion):>10}")
    if s.by_service:
        lines += ["", "incidents per service: " + ", ".join(f"{k} {v}" for k, v in s.by_service.items())]
    for key in COUNTED_LABELS:
        parts = [f"{k} {v}" for k, v in s.by_label[key].items()]
        if s.unlabelled[key]:
            parts.append(f"(unlabelled) {s.unlabelled[key]}")
        if parts:
            lines.append(f"label {key}: " + ", ".join(parts))
    if s.incidents:
        lines += ["", f"{'incident':<24} {'sev':<5} {'status':<10} {'started (UTC)':<17} {'detect':>9} "
                      f"{'mitigate':>9} {'resolve':>9}"]
        for t in s.incidents[:max_rows]:
            lines.append(f"{clip(t.incident_id, 24):<24} {t.severity:<5} {t.status:<10} "
                         f"{t.started:%Y-%m-%d %H:%M} {_dur(t.time_to_detect):>9} {_dur(t.time_to_mitigate):>9} "
                         f"{_dur(t.time_to_resolve):>9}")
        if len(s.incidents) > max_rows:
            lines.append(f"... {len(s.incidents) - max_rows} more (use --json for all)")
    return lines


def _duration_lines(durations: Mapping[str, DurationStats]) -> list[str]:
    lines = [f"{'':<16} {'mean':>9} {'median':>9} {'known':>6} {'unknown':>8}"]
    for m, d in durations.items():
        lines.append(f"{_PHASE_NAMES[m]:<16} {_dur(d.mean):>9} {_dur(d.median):>9} {d.n_known:>6} {d.n_unknown:>8}")
    return lines


def _before_after_lines(b: BeforeAfter, max_rows: int) -> list[str]:
    how = f"last done of {', '.join(b.action_item_ids)}" if b.action_item_ids else "given"
    lines = [f"service {b.service}: remediation at {iso(b.done_at)} ({how})",
             f"windows of {_dur(b.window.total_seconds())} each: before {iso(b.before.selection.since)} .. "
             f"{iso(b.done_at)}, after {iso(b.done_at)} .. {iso(b.after.selection.until)}", "",
             f"{'':<16} {'before':>9} {'after':>9} {'change':>10}",
             f"{'incidents':<16} {b.before.count:>9} {b.after.count:>9} {b.after.count - b.before.count:>+10}"]
    for m, _ in _PHASES:
        x, y = b.before.durations[m], b.after.durations[m]
        change = _minus(y.mean, x.mean)
        sign = "" if change is None else ("+" if change >= 0 else "-")
        lines.append(f"{_PHASE_NAMES[m]:<16} {_dur(x.mean):>9} {_dur(y.mean):>9} "
                     f"{sign + _dur(None if change is None else abs(change)):>10}"
                     f"   (known {x.n_known}/{b.before.count} before, {y.n_known}/{b.after.count} after)")
    lines.append(f"{'recurrence':<16} {_pct(b.before.recurrence.rate):>9} {_pct(b.after.recurrence.rate):>9}")
    for name, side in (("before", b.before), ("after", b.after)):
        if side.incidents:
            lines.append(f"{name}: " + ", ".join(t.incident_id for t in side.incidents[:max_rows])
                         + (" ..." if side.count > max_rows else ""))
    return lines


def _ledger_lines(led: AccuracyLedger, max_rows: int) -> list[str]:
    o = led.overall
    lines = [f"accuracy ledger{_selection_text(led.selection)}: {o.n_incidents} incident(s) with a confirmed cause, "
             f"{o.n_ranked} ranked by the engine, {o.n_not_ranked} not ranked (the confirmed cause has no engine "
             f"rank: added by a human)", "",
             f"{'group':<18} {'incidents':>9} {'ranked':>7} {'not ranked':>10} {'AC@1':>7} {'AC@3':>7} "
             f"{'mean rank':>9}"]

    def row(name: str, g: AccuracyGroup) -> str:
        mean = "—" if g.mean_rank is None else f"{g.mean_rank:.2f}"
        return (f"{clip(name, 18):<18} {g.n_incidents:>9} {g.n_ranked:>7} {g.n_not_ranked:>10} {_pct(g.ac(1)):>7} "
                f"{_pct(g.ac(3)):>7} {mean:>9}")

    lines.append(row("all", o))
    lines += [row(m, g) for m, g in led.by_month.items()]
    lines += [row(f"cause {c}", g) for c, g in led.by_cause.items()]
    if led.entries:
        lines += ["", f"{'incident':<24} {'started (UTC)':<17} {'service':<16} {'cause':<10} {'rank':>10}"]
        for e in led.entries[:max_rows]:
            rank = "not ranked" if e.rank is None else str(e.rank)
            lines.append(f"{clip(e.incident_id, 24):<24} {e.started:%Y-%m-%d %H:%M} {clip(e.service, 16):<16} "
                         f"{e.cause:<10} {rank:>10}")
        if len(led.entries) > max_rows:
            lines.append(f"... {len(led.entries) - max_rows} more (use --json for all)")
    return lines


def _selection_text(sel: Selection) -> str:
    parts = [f"since {iso(sel.since)}" if sel.since else "", f"until {iso(sel.until)}" if sel.until else "",
             f"service {sel.service}" if sel.service else "", f"severity {sel.severity}" if sel.severity else ""]
    parts += [f"{k}={v}" for k, v in sel.label.items()]
    parts = [p for p in parts if p]
    return f" ({', '.join(parts)})" if parts else ""


def _dur(seconds: float | None) -> str:
    """``45s``, ``6m 25s``, ``1h 05m``, ``2d 03h``; ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)
