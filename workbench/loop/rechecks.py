"""The scheduled recheck: does a watched incident come back, and do the fixes of its action items hold?

:func:`recheck` is what ``workbench recheck`` and schedulers call::

    from workbench import open_workspace
    from workbench.loop import recheck

    report = recheck(open_workspace("/srv/workbench"), all=True)      # every incident under watch
    report = recheck(ws, ["INC-20261102-001"], until="2026-11-06T16:05:00Z", executor="dask-local")
    print(report.summary())

For each incident it checks the telemetry of one window against the incident's signature and
evaluates the verification criterion of each of its action items; the parent process records
every check, and a recurrence marks the incident ``recurred``, opens a follow-up review and queues
a ``recurrence`` notification, all in one transaction.

The rules (which incidents, windows, the verdict and its measured 0.65 threshold), what is
recorded, the executors and caches, and the cron and Kubernetes CronJob recipes are in
``docs/recheck.md``.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable, Mapping

import pandas as pd

from ..analysis.pipeline import write_signature
from ..analysis.signature import Signature
from ..store.models import ID_LENGTH
from ..errors import ConflictError, NotFoundError, WorkbenchError
from ..formats import clip, iso_utc, printable
from ..telemetry.live import fetch_window_for, offline_warning
from ..telemetry.windows import BASELINE
from ..postmortem import runner as notebook
from ..workspace import Workspace, open_workspace
from . import notify as outbox
from .checks import (CACHE_SIZE, CriterionCheck, IncidentCheck, QUERY_CACHE_SIZE, RECURRENCE_ITEM_STATUSES, RECUR_MIN,
                     RecheckError, VERIFIED_ITEM_STATUSES, check_incident, clear_caches, criterion_reason,
                     recheck_time)
from .criteria import parse_span, record as record_verdict
from .executors import ExecutorError, executor_name, fan_out

__all__ = ["CACHE_SIZE", "DEFAULT_WINDOW", "QUERY_CACHE_SIZE", "RECUR_MIN", "RECURRENCE_ITEM_STATUSES",
           "VERIFIED_ITEM_STATUSES", "WATCHED", "WHO", "CriterionCheck", "IncidentCheck", "RecheckError",
           "RecheckReport", "check_incident", "recheck", "resolve_until"]

#: Default length of the checked window.
DEFAULT_WINDOW = timedelta(hours=6)
#: Statuses checked by ``all=True``.
WATCHED = ("resolved", "monitoring", "recurred")
#: Author recorded for checks, status changes, follow-ups.
WHO = "recheck"


# --------------------------------------------------------------------------- results

@dataclass
class RecheckReport:
    """One recheck run.

    Attributes
    ----------
    start, until : pandas.Timestamp
        The requested window ``[start, until)`` (per incident it may start later, see
        :attr:`IncidentCheck.window`).
    until_source : str
        ``given``, ``now`` or ``telemetry end``.
    threshold : float
    executor : str
    workers : int or None
    results : list of IncidentCheck
        In incident-id order.
    runs : list of dict
        Recurrence notebooks executed with ``report=True``: ``incident_id``, ``status``,
        ``output_path``, ``error``.
    notes : list of str
    timings : dict
        Seconds: ``compute`` (the fan-out, wall), ``record``, ``report``, ``total``, and
        ``per_incident`` (mean worker seconds per incident).
    """

    start: pd.Timestamp
    until: pd.Timestamp
    until_source: str
    threshold: float
    executor: str
    workers: int | None = None
    results: list[IncidentCheck] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def recurred(self) -> list[str]:
        """Ids of the incidents that recurred in this run."""
        return [r.incident_id for r in self.results if r.recurred]

    @property
    def errors(self) -> list[IncidentCheck]:
        return [r for r in self.results if r.error]

    @property
    def follow_ups(self) -> dict[str, str]:
        """Original id -> follow-up review opened in this run."""
        return {r.incident_id: r.follow_up_id for r in self.results if r.follow_up_id}

    def counts(self) -> dict[str, int]:
        """Incidents per verdict (``skipped`` without a verdict, ``error`` failed)."""
        out: dict[str, int] = {}
        for r in self.results:
            key = "error" if r.error else r.verdict or "skipped"
            out[key] = out.get(key, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for ``workbench recheck --json``."""
        return {"start": iso_utc(self.start), "until": iso_utc(self.until), "until_source": self.until_source,
                "threshold": self.threshold, "executor": self.executor, "workers": self.workers,
                "counts": self.counts(), "recurred": self.recurred, "follow_ups": self.follow_ups,
                "results": [r.to_dict() for r in self.results], "runs": list(self.runs), "notes": list(self.notes),
                "timings": {k: round(v, 4) for k, v in self.timings.items()}}

    def summary(self) -> str:
        """Text for people: one line per incident, then the notes."""
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts().items())) or "no incidents"
        lines = [f"recheck [{iso_utc(self.start)}, {iso_utc(self.until)}) ({self.until_source}), threshold "
                 f"{self.threshold:g}, {self.executor}: {counts} in {self.timings.get('total', 0.0):.1f} s"]
        for r in self.results:
            if r.error:
                lines.append(f"  {r.incident_id}: ERROR {clip(r.error, 300)}")
                continue
            sim = "-" if r.similarity is None else f"{r.similarity:.2f}"
            text = f"  {r.incident_id}: {r.verdict or 'skipped'} (similarity {sim})"
            if r.reasons and r.recurred:
                text += f" because {', '.join(r.reasons)}"
            if r.follow_up_id:
                text += f"; follow-up {r.follow_up_id} opened"
            lines.append(text)
            for c in r.criteria:
                state = c.verdict.verdict if c.verdict is not None else ("error" if c.error else "skipped")
                lines.append(f"    {c.action_item_id} {c.title!r}: {state}"
                             + (f" - {printable(c.verdict.explanation)}" if c.verdict is not None else
                                f" - {printable(c.error or c.note)}"))
            for s in r.suggestions:
                lines.append(f"    suggestion: {printable(s['text'])}")
            lines.extend(f"    note: {printable(n)}" for n in r.notes)
        for run in self.runs:
            lines.append(f"  notebook {run['incident_id']}: {run['status']} {run.get('output_path') or ''}"
                         + (f" ({printable(run['error'])})" if run.get("error") else ""))
        lines.extend(f"note: {printable(n)}" for n in self.notes)
        return "\n".join(lines)


# --------------------------------------------------------------------------- the API

def recheck(workspace: Workspace | str | os.PathLike[str], incident_ids: Iterable[str] | None = None, *,
            all: bool = False, since: Any = None, until: Any = None, window: Any = DEFAULT_WINDOW,
            executor: Any = "local", report: bool = False, who: str = WHO, threshold: float = RECUR_MIN,
            workers: int | None = None, fetch: bool = True, refresh: bool = False) -> RecheckReport:
    """Recheck incidents under watch: recurrence and verification criteria; record everything.

    Parameters
    ----------
    workspace : Workspace or path
    incident_ids : iterable of str, optional
        Incidents to check (any status).
    all : bool
        Check every incident whose status is in :data:`WATCHED` (with ``incident_ids``: both).
    since : time, optional
        Start of the checked window (aware, or ISO 8601 with a zone); default ``until - window``.
    until : time, optional
        End (exclusive) of the checked window; default now, capped at the telemetry's end (see
        the module docstring).
    window : timedelta, pandas.Timedelta or span text (``"6h"``)
        Length of the checked window when ``since`` is not given.
    executor : str or executor object
        ``local``, ``serial``, ``dask-local``, ``dask://HOST:PORT``, ``tcp://HOST:PORT``, a
        :class:`distributed.Client` or a :class:`concurrent.futures.Executor`.
    report : bool
        Also execute ``notebooks/templates/recurrence.ipynb`` for every incident that recurred.
    who : str
        Author of the records.
    threshold : float
        Least similarity that counts as a recurrence (default :data:`RECUR_MIN`).
    workers : int, optional
        Processes of the ``local`` pool or ``dask-local`` cluster (default ``min(2, cpu)``).
    fetch, refresh : bool
        With live sources in ``workbench.toml``: first fetch the checked window and its baseline
        from them (:func:`workbench.telemetry.live.fetch_window_for`; ``refresh``: even where
        fetched before). ``fetch=False`` checks what the store holds, with a note saying so.

    Returns
    -------
    RecheckReport

    Raises
    ------
    RecheckError
        Neither ids nor ``all``; a bad window or executor; an unreachable Dask scheduler.
    NotFoundError
        An unknown incident id (nothing was checked).
    ConfigError
        A malformed ``[webhooks]`` table (nothing was checked: notifications would be lost).
    """
    t_start = time.perf_counter()
    ws = open_workspace(workspace)
    watch_all = all
    ids = list(dict.fromkeys([incident_ids] if isinstance(incident_ids, str) else (incident_ids or [])))
    if not ids and not watch_all:
        raise RecheckError("recheck: name the incidents to check or ask for all incidents under watch "
                           f"(all=True / --all: status {', '.join(WATCHED)})")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise RecheckError(f"recheck threshold: expected a similarity in (0, 1], got {threshold!r}")
    if not isinstance(who, str) or not who.strip():
        raise RecheckError(f"recheck who: expected the name recorded as the author, got {who!r}")
    kb = ws.knowledge_base()
    try:
        outbox.attach(kb, ws.settings)
        incidents = {}
        for iid in ids:
            incidents[iid] = kb.get_incident(iid)
        if watch_all:
            for status in WATCHED:
                for inc in kb.list_incidents(status=status):
                    incidents.setdefault(inc.id, inc)
        fetched = _fetch_live(ws, sorted(incidents), since, until, window, fetch=fetch, refresh=refresh, who=who)
        end, source, notes = resolve_until(ws, until)
        notes = [*fetched, *notes]
        start = end - _span(window, "window") if since is None else recheck_time(since, "since")
        if start >= end:
            raise RecheckError(f"recheck window: since ({iso_utc(start)}) must be before until ({iso_utc(end)})")
        report_ = RecheckReport(start=start, until=end, until_source=source, threshold=float(threshold),
                                executor=executor_name(executor), notes=notes)
        order = sorted(incidents.values(), key=lambda i: i.id)
        token = uuid.uuid4().hex
        tasks = [(str(ws.root), inc.id, start, end, float(threshold), token) for inc in order]
        results: dict[str, IncidentCheck] = {}
        t0 = time.perf_counter()
        recording = 0.0
        try:
            run = fan_out(check_incident, tasks, executor, workers, failed=_lost, preload=["workbench.loop.checks"],
                          after_serial=clear_caches, what="recheck")
            for result in run:
                t1 = time.perf_counter()
                _record_safely(kb, ws, result, who)
                recording += time.perf_counter() - t1
                results[result.incident_id] = result
        except ExecutorError as exc:
            raise RecheckError(str(exc)) from None
        report_.workers = run.workers
        compute = time.perf_counter() - t0 - recording
        report_.results = [results[i] for i in sorted(results)]
        t0 = time.perf_counter()
        if report:
            report_.runs = _notebooks(ws, report_.recurred, report_, who)
        n = len(report_.results)
        report_.timings = {"compute": compute, "record": recording, "report": time.perf_counter() - t0,
                           "per_incident": sum(r.seconds for r in report_.results) / n if n else 0.0}
    finally:
        kb.close()
    report_.timings["total"] = time.perf_counter() - t_start
    return report_


def _fetch_live(ws: Workspace, ids: list[str], since: Any, until: Any, window: Any, *, fetch: bool, refresh: bool,
                who: str) -> list[str]:
    """The checked window and its 24 h baseline from the workspace's live sources; notes for the report."""
    if not fetch:
        warning = offline_warning(ws)
        return [warning] if warning else []
    end = recheck_time(until, "until") if until is not None else pd.Timestamp.now(tz="UTC")
    start = end - _span(window, "window") if since is None else recheck_time(since, "since")
    reports = fetch_window_for(ws, ids, start - BASELINE, end, refresh=refresh, who=who)
    first = next(iter(reports.values()), None)
    return first.summary() if first is not None else []


def resolve_until(workspace: Workspace, until: Any = None, now: Any = None) -> tuple[pd.Timestamp, str, list[str]]:
    """The end of the checked window: ``(until, source, notes)``.

    A given ``until`` is returned as it is (``source="given"``). Otherwise now (``now`` for tests),
    capped at the last stored metric sample plus one step (``source="telemetry end"``, with a
    note saying how far behind now the telemetry ends).
    """
    if until is not None:
        return recheck_time(until, "until"), "given", []
    now_ts = recheck_time(now, "now") if now is not None else pd.Timestamp.now(tz="UTC")
    span = workspace.telemetry().time_range("metrics")
    if span is None:
        return now_ts, "now", ["the workspace holds no metrics: every window is empty (no_data)"]
    last = span[1] + pd.Timedelta(pd.tseries.frequencies.to_offset(workspace.settings.step))
    if now_ts <= last:
        return now_ts, "now", []
    behind = now_ts - last
    return last, "telemetry end", [f"the telemetry ends at {iso_utc(last)}, {_human(behind)} before now: the window "
                                   f"ends there (is ingestion running?)"]


def _lost(task: tuple, exc: BaseException) -> IncidentCheck:
    """The result of an incident whose worker died (not an error of the incident's data)."""
    return IncidentCheck(incident_id=task[1], error=f"worker failed: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- recording (parent only)

def _record_safely(kb: Any, ws: Workspace, result: IncidentCheck, who: str) -> None:
    """Record one result; a version conflict (someone edited the incident) is retried once."""
    if result.error:
        return
    if result.computed_signature is not None:
        result.signature_path = str(write_signature(ws, result.incident_id,
                                                    Signature.from_dict(result.computed_signature)))
    for attempt in (1, 2):
        try:
            _record(kb, result, who)
            return
        except ConflictError as exc:
            if attempt == 2:
                result.error = f"not recorded: {exc}"
        except WorkbenchError as exc:
            result.error = f"not recorded: {exc}"
            return
        except Exception as exc:  # a scheduled run goes on with the next incident; the report names it
            result.error = f"not recorded: {type(exc).__name__}: {exc}"
            return


def _record(kb: Any, r: IncidentCheck, who: str) -> None:
    """Everything about one incident in ONE transaction (see the module docstring)."""
    r.check_id = r.follow_up_id = None
    r.notified = 0
    with kb.transaction():
        incident = kb.get_incident(r.incident_id)
        previous = [c for c in kb.list_checks(r.incident_id) if c.action_item_id is None]
        items = {i.id: i for i in kb.list_action_items(r.incident_id)}
        for c in r.criteria:
            c.check_id = None
            if c.verdict is not None and c.action_item_id in items:
                c.check_id = record_verdict(kb, items[c.action_item_id], c.verdict, who=who).id
        if r.verdict is None:
            r.status = incident.status
            return
        proposed = {e["suggestion"].get("key") for c in previous for e in c.evidence
                    if isinstance(e, Mapping) and e.get("kind") == "suggestion"
                    and isinstance(e.get("suggestion"), Mapping)}
        new = [s for s in r.suggestions if s["key"] not in proposed]
        episode = r.recurred and (not previous or previous[-1].verdict != "recurred")
        follow_up = _open_follow_up(kb, incident, r, new, who) if episode else None
        r.follow_up_id = None if follow_up is None else follow_up.id
        evidence: list[dict[str, Any]] = [{
            "kind": "recurrence", "similarity": r.similarity, "threshold": r.threshold, "parts": dict(r.parts),
            "reasons": list(r.reasons), "signature_source": r.signature_source, "services": list(r.services),
            "baseline": None if r.baseline is None else {"start": iso_utc(r.baseline[0]), "end": iso_utc(r.baseline[1])},
            "onset": iso_utc(r.onset), "current": r.current, "follow_up_id": r.follow_up_id, "notes": list(r.notes),
        }]
        if r.detection_gap is not None:
            evidence.append({"kind": "detection_gap", **r.detection_gap})
        if r.snapshot is not None:  # deploys since the incident against its enrichment snapshot
            evidence.append({"kind": "snapshot", **r.snapshot})
        evidence += [{"kind": "suggestion", "suggestion": s} for s in new]
        check = kb.record_check(r.incident_id, window_start=r.window[0], window_end=r.window[1], verdict=r.verdict,
                                score=r.similarity, evidence=evidence, who=who)
        r.check_id = check.id
        status = incident.status
        if r.recurred and incident.status != "recurred":
            status = kb.update_incident(r.incident_id, incident.version, who, status="recurred").status
        r.status = status
        if episode:
            r.notified = len(kb.enqueue_notification("recurrence", _payload(incident, r, new),
                                                     incident_id=r.incident_id, key=f"recurrence:{check.id}"))


def _open_follow_up(kb: Any, incident: Any, r: IncidentCheck, suggestions: list[dict[str, Any]], who: str) -> Any:
    """A new open incident reviewing the recurrence of ``incident`` (see the module docstring)."""
    follow_id = _free_id(kb, f"{incident.id}-R")
    title = f"Recurrence of {incident.id}: {incident.title}"
    started = r.onset if r.onset is not None and r.window[0] <= r.onset < r.window[1] else r.window[0]
    follow = kb.create_incident(
        id=follow_id, title=title, started=started, services=list(incident.services), severity=incident.severity,
        environment=incident.environment, status="open", labels=dict(incident.labels or {}),
        links=[dict(link) for link in incident.links], window_start=r.window[0], window_end=r.window[1],
        follow_up_of=incident.id, who=who)
    sim = "-" if r.similarity is None else f"{r.similarity:.2f}"
    why = []
    if "signature" in r.reasons:
        current = r.current or {}
        why.append(f"its signature came back in [{iso_utc(r.window[0])}, {iso_utc(r.window[1])}) with similarity {sim} "
                   f"(threshold {r.threshold:g}; now origin {current.get('origin')}, cause "
                   f"{current.get('cause')}, symptom {current.get('symptom')})")
    crit = [c for c in r.criteria if criterion_reason(c) in r.reasons]
    why += [f"the verification of {c.action_item_id} {c.title!r} ({_landed(c)}) was violated: {c.verdict.explanation}"
            for c in crit]
    text = (f"Opened by the scheduled recheck as the follow-up review of {incident.id} ({incident.title}): "
            + "; ".join(why) + ".")
    if suggestions:
        text += " Suggested updates, for a human to accept or drop: " + " ".join(
            f"({i}) {s['text']}" for i, s in enumerate(suggestions, start=1))
    kb.add_conclusion(follow.id, kind="summary", text=text, author=who, who=who)
    return follow


def _landed(c: CriterionCheck) -> str:
    return "its fix is done" if c.status == "done" else f"its fix has not landed yet: {c.status}"


def _free_id(kb: Any, prefix: str) -> str | None:
    """``<prefix><n>`` for the least n >= 1 not taken (None when too long: the store picks an id)."""
    n = 1
    while len(f"{prefix}{n}") <= ID_LENGTH:
        try:
            kb.get_incident(f"{prefix}{n}")
        except NotFoundError:
            return f"{prefix}{n}"
        n += 1
    return None


def _payload(incident: Any, r: IncidentCheck, suggestions: list[dict[str, Any]]) -> dict[str, Any]:
    sim = "-" if r.similarity is None else f"{r.similarity:.2f}"
    return {
        "summary": f"{incident.id} recurred ({', '.join(r.reasons)}; similarity {sim}); follow-up review "
                   f"{r.follow_up_id} opened",
        "details": {"check_id": r.check_id, "follow_up_id": r.follow_up_id, "similarity": r.similarity,
                    "threshold": r.threshold, "parts": dict(r.parts), "reasons": list(r.reasons),
                    "window": {"start": iso_utc(r.window[0]), "end": iso_utc(r.window[1])}, "onset": iso_utc(r.onset),
                    "current": {k: (r.current or {}).get(k) for k in ("origin", "cause", "symptom")},
                    "violated": [c.to_dict() for c in r.criteria if f"criterion {c.action_item_id}" in r.reasons],
                    "suggestions": [s["text"] for s in suggestions]},
        "links": [dict(link) for link in incident.links],
    }


# --------------------------------------------------------------------------- notebooks

def _notebooks(ws: Workspace, incident_ids: list[str], report: RecheckReport, who: str) -> list[dict[str, Any]]:
    """Execute the recurrence notebook of every incident that recurred (failures are reported)."""
    hours = max((report.until - report.start) / pd.Timedelta(hours=1), 1e-6)
    runs = []
    for iid in incident_ids:
        try:
            res = notebook.run(ws, iid, template="recurrence", parameters={"window_hours": float(hours)}, who=who)
            runs.append({"incident_id": iid, "status": res.status, "output_path": res.output_path, "error": None})
        except WorkbenchError as exc:
            result = getattr(exc, "result", None)
            runs.append({"incident_id": iid, "status": "failed",
                         "output_path": None if result is None else result.output_path, "error": str(exc)})
    return runs


# --------------------------------------------------------------------------- helpers

def _span(value: Any, name: str) -> pd.Timedelta:
    if isinstance(value, str):
        try:
            return parse_span(value, name)
        except WorkbenchError as exc:
            raise RecheckError(f"recheck {name}: {exc}") from None
    try:
        span = pd.Timedelta(value)
    except (TypeError, ValueError):
        raise RecheckError(f"recheck {name}: expected a duration (timedelta or '6h'), got {value!r}") from None
    if pd.isna(span) or span <= pd.Timedelta(0):
        raise RecheckError(f"recheck {name}: expected a positive duration, got {value!r}")
    return span


def _human(span: pd.Timedelta) -> str:
    hours = span / pd.Timedelta(hours=1)
    return f"{hours * 60:.0f} min" if hours < 2 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
