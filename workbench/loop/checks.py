"""The per-incident work of the scheduled recheck: one incident, one window, nothing written.

:func:`check_incident` is what every executor runs (:func:`workbench.loop.executors.fan_out`): it
reads the knowledge base and the telemetry of one workspace, compares the incident's stored
signature with the checked window's and evaluates its action items' verification criteria, and
returns an :class:`IncidentCheck` that :func:`workbench.loop.recheck` records in the parent
process. The rules (windows, threshold, verdicts, caches) are documented in :mod:`workbench.loop`.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from ..analysis.evidence import TelemetryWindow
from ..analysis.hypotheses import onsets
from ..analysis import snapshot
from ..analysis.pipeline import analyze_window, read_signature
from ..analysis.signature import Signature, signature_from_incident, similarity_parts, with_cause
from ..telemetry.windows import BASELINE, analysis_window, baseline_window
from ..errors import WorkbenchError
from ..formats import aware_time, iso_utc
from ..workspace import Workspace, open_workspace
from . import suggestions as sg
from .criteria import criterion_of, evaluate

#: Least similarity between the stored and the current signature that counts as a recurrence
#: (chosen on the sample, see :mod:`workbench.loop`).
RECUR_MIN = 0.65
#: Action-item statuses whose verification criterion is evaluated.
VERIFIED_ITEM_STATUSES = ("open", "in_progress", "done")
#: Action-item statuses whose violated criterion counts as a recurrence: every evaluated one. A
#: ``done`` item's violation says the fix did not hold; an ``open``/``in_progress`` one's says the
#: symptom came back before the fix landed, which is a recurrence all the same (the recurrence
#: rate before fixes is what the after-fix rate is compared with).
RECURRENCE_ITEM_STATUSES = VERIFIED_ITEM_STATUSES
#: Analyses of (service set, window) kept per worker process.
CACHE_SIZE = 64
#: Criterion queries kept per worker process, and the most memory their frames may hold (the
#: newest frame is kept whatever its size).
QUERY_CACHE_SIZE = 512
QUERY_CACHE_BYTES = 512 * 2**20


class RecheckError(WorkbenchError):
    """A recheck cannot run as asked (bad window, unknown executor, unreachable cluster)."""


# --------------------------------------------------------------------------- results

@dataclass
class CriterionCheck:
    """One action item's criterion, as evaluated by a worker.

    Attributes
    ----------
    action_item_id, title, owner : str
    status : str
        The action item's status when checked.
    verdict : workbench.loop.criteria.Verdict or None
        None when the criterion was not evaluated (``error`` or ``note`` says why).
    error : str or None
        The criterion is malformed (:class:`~workbench.errors.CriterionError` text).
    note : str or None
        Why it was skipped (its window lies inside the incident's own window).
    check_id : str or None
        The recorded check (set by the parent).
    """

    action_item_id: str
    title: str
    owner: str
    status: str = "open"
    verdict: Any = None
    error: str | None = None
    note: str | None = None
    check_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"action_item_id": self.action_item_id, "title": self.title, "owner": self.owner,
                "status": self.status, "verdict": None if self.verdict is None else self.verdict.verdict,
                "explanation": None if self.verdict is None else self.verdict.explanation,
                "error": self.error, "note": self.note, "check_id": self.check_id}


@dataclass
class IncidentCheck:
    """What :func:`check_incident` found for one incident, and what the parent recorded.

    Attributes
    ----------
    incident_id : str
    window : (Timestamp, Timestamp) or None
        The checked ``[start, end)`` (after clipping to the incident's own window end); None
        when skipped.
    baseline : (Timestamp, Timestamp) or None
    verdict : str or None
        ``clear``, ``recurred``, ``no_data``; None when nothing was checked (skipped or error).
    similarity : float or None
    threshold : float
        The least similarity that counted as a recurrence.
    parts : dict
        :func:`workbench.analysis.signature.similarity_parts` (per-aspect similarities).
    reasons : list of str
        Why ``recurred``: ``signature`` and/or ``criterion <action item id>``.
    signature_source : str or None
        ``stored``, ``computed`` (from the incident's own window; the parent writes it) or
        ``document`` (from the confirmed hypothesis).
    computed_signature : dict or None
        The signature to write (``signature_source == "computed"``).
    current : dict or None
        The current window's signature.
    services : list of str
        Services whose telemetry was analysed.
    onset : Timestamp or None
        Onset of the current origin service in the window.
    criteria : list of CriterionCheck
    suggestions : list of dict
        :meth:`workbench.loop.suggestions.Suggestion.to_dict` items.
    detection_gap : dict or None
        Facts of the detection-gap evaluation (first check of an incident only).
    notes : list of str
    error : str or None
        Why the incident could not be checked (nothing recorded).
    seconds : float
        Worker time for this incident.
    cached : bool
        The current analysis came from the worker's cache.
    check_id, follow_up_id : str or None
        Set by the parent: the recorded recurrence check, the follow-up review opened.
    status : str or None
        The incident's status after recording.
    notified : int
        Notifications queued by the parent for this incident (recurrence only).
    signature_path : str or None
        Where a computed signature was written.
    """

    incident_id: str
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None
    baseline: tuple[pd.Timestamp, pd.Timestamp] | None = None
    verdict: str | None = None
    similarity: float | None = None
    threshold: float = RECUR_MIN
    parts: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    signature_source: str | None = None
    computed_signature: dict[str, Any] | None = None
    current: dict[str, Any] | None = None
    services: list[str] = field(default_factory=list)
    onset: pd.Timestamp | None = None
    criteria: list[CriterionCheck] = field(default_factory=list)
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    detection_gap: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    cached: bool = False
    check_id: str | None = None
    follow_up_id: str | None = None
    status: str | None = None
    notified: int = 0
    signature_path: str | None = None
    snapshot: dict[str, Any] | None = None

    @property
    def recurred(self) -> bool:
        return self.verdict == "recurred"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (times ISO 8601 with ``Z``)."""
        return {
            "incident_id": self.incident_id, "verdict": self.verdict, "similarity": self.similarity,
            "threshold": self.threshold, "parts": dict(self.parts), "reasons": list(self.reasons),
            "window": None if self.window is None else {"start": iso_utc(self.window[0]), "end": iso_utc(self.window[1])},
            "baseline": None if self.baseline is None else {"start": iso_utc(self.baseline[0]),
                                                            "end": iso_utc(self.baseline[1])},
            "signature_source": self.signature_source, "services": list(self.services), "onset": iso_utc(self.onset),
            "current": self.current, "criteria": [c.to_dict() for c in self.criteria],
            "suggestions": list(self.suggestions), "detection_gap": self.detection_gap, "notes": list(self.notes),
            "error": self.error, "seconds": round(self.seconds, 4), "cached": self.cached,
            "check_id": self.check_id, "follow_up_id": self.follow_up_id, "status": self.status,
            "notified": self.notified, "signature_path": self.signature_path, "snapshot": self.snapshot,
        }


# --------------------------------------------------------------------------- the per-incident work

def check_incident(root: str | os.PathLike[str], incident_id: str, start: Any, end: Any,
                   threshold: float = RECUR_MIN, token: str | None = None) -> IncidentCheck:
    """Check one incident over ``[start, end)``: the pure per-incident work of :func:`recheck`.

    Reads the workspace at ``root`` (knowledge base and telemetry), writes nothing, and never
    raises for a problem of this incident: it comes back in :attr:`IncidentCheck.error`.
    ``token`` scopes the worker's caches to one run (None: no caching across calls).
    """
    t0 = time.perf_counter()
    out = IncidentCheck(incident_id=incident_id, threshold=float(threshold))
    try:
        _scope(token)
        _check(out, str(root), incident_id, recheck_time(start, "start"), recheck_time(end, "end"), float(threshold))
    except WorkbenchError as exc:
        out.error = str(exc)
    except Exception as exc:  # one broken incident must not stop the others; the report names it
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        if token is None:
            clear_caches()
    out.seconds = time.perf_counter() - t0
    return out


def _check(out: IncidentCheck, root: str, incident_id: str, start: pd.Timestamp, end: pd.Timestamp,
           threshold: float) -> None:
    ws = _workspace(root)
    kb = _kb(ws)
    incident = kb.get_incident(incident_id)
    _, own_end = analysis_window(incident)
    stored, source, computed, notes = _stored_signature(ws, kb, incident)
    out.notes.extend(notes)
    out.signature_source = source
    out.computed_signature = None if computed is None else computed.to_dict()

    # Verification criteria of the incident's action items.
    store = _CachedStore(ws.telemetry())
    for item in kb.list_action_items(incident_id):
        if item.verification is None or item.status not in VERIFIED_ITEM_STATUSES:
            continue
        check = CriterionCheck(item.id, item.title, item.owner, item.status)
        out.criteria.append(check)
        try:
            criterion = criterion_of(item)
        except WorkbenchError as exc:
            check.error = str(exc)
            continue
        since = max(end - criterion.duration_span, own_end)
        # A fix applied by a change (workbench.inbound.remediation) is verified from that moment on:
        # telemetry from before the fix says nothing about whether it holds.
        applied = None if getattr(item, "applied_at", None) is None else pd.Timestamp(item.applied_at)
        if applied is not None and applied >= end:
            check.note = f"its fix was applied at {iso_utc(applied)}, after the checked window: not evaluated"
            continue
        if applied is not None:
            since = max(since, applied)
        if since >= end:
            check.note = f"its window ends before the incident's own window does ({iso_utc(own_end)}): not evaluated"
            continue
        check.verdict = evaluate(criterion, store, since=since, until=end)
    violated = [c for c in out.criteria if c.verdict is not None and c.verdict.verdict == "violated"
                and c.status in RECURRENCE_ITEM_STATUSES]

    # The recurrence check.
    begin = max(start, own_end)
    if begin >= end:
        out.notes.append(f"the checked window ends before the incident's own window does ({iso_utc(own_end)}): "
                         f"no recurrence check")
        return
    out.window = (begin, end)
    base = (begin - BASELINE, begin)
    out.baseline = base
    analysis = None
    if stored is None:
        out.verdict = "no_data"
        out.notes.append("no signature: the incident was never analysed, its window holds no telemetry and no "
                         "hypothesis is confirmed")
    else:
        analysis, out.cached = _current(ws, base[0], begin, end)
        out.services = sorted(s.service for s in analysis.suspicions)
        if analysis.signature is None:
            out.verdict = "no_data"
            out.notes.extend(analysis.notes)
        else:
            current = analysis.signature
            out.current = current.to_dict()
            out.parts = similarity_parts(stored, current)
            out.similarity = out.parts.pop("similarity")
            out.verdict = "recurred" if out.similarity >= threshold else "clear"
            if out.verdict == "recurred":
                out.reasons.append("signature")
            out.onset = _origin_onset(analysis.suspicions, current.origin)
    if violated:
        out.verdict = "recurred"
        out.reasons.extend(criterion_reason(c) for c in violated)
    _compare_snapshot(out, incident, store, own_end, end)

    # Suggestions: on a recurrence, and once per incident for a large detection gap.
    found: list[Any] = []
    if out.recurred:
        if analysis is not None and analysis.signature is not None and "signature" in out.reasons:
            origin = analysis.signature.origin
            metrics = store.query("metrics", base[0], end, services=[origin]) if origin else None
            found += sg.for_recurrence(incident, analysis.signature, analysis.suspicions, metrics, base,
                                       window=out.window, step=ws.settings.step)
        else:
            book = sg.runbook(incident, stored, "recurrence",
                              when=f"a verification criterion was violated ({', '.join(c.action_item_id for c in violated)})")
            found += [book] if book is not None else []
    if not any(c.action_item_id is None for c in kb.list_checks(incident_id)):
        gap, out.detection_gap = sg.for_detection_gap(incident, kb.list_hypotheses(incident_id), store,
                                                      signature=stored, step=ws.settings.step)
        found += [s for s in gap if s.key not in {f.key for f in found}]
    out.suggestions = [s.to_dict() for s in found]


def _stored_signature(ws: Workspace, kb: Any, incident: Any) -> tuple[Signature | None, str | None,
                                                                        Signature | None, list[str]]:
    """(signature, source, signature to write, notes) of an incident (see the module docstring)."""
    stored = read_signature(ws, incident.id)
    if stored is not None:
        return stored, "stored", None, []
    decided = kb.list_hypotheses(incident.id, status="confirmed")
    start, end = analysis_window(incident)
    base_start, _ = baseline_window(incident)
    result = None
    if _has_telemetry(ws, start, end):
        window = TelemetryWindow.from_store(ws.telemetry(), base_start, start, end, step=ws.settings.step)
        result = analyze_window(window, incident, (), detector=ws.settings.detector)
    if result is not None and result.signature is not None:
        signature = result.signature
        if decided:  # a human's decision beats the ranking, as analyze() stores it
            signature = with_cause(signature, decided[0].service, decided[0].cause)
        return signature, "computed", signature, ["no stored signature: computed from the incident's own window"]
    if decided:
        return (signature_from_incident(incident, decided), "document", None,
                ["no stored signature and no telemetry in the incident's window: compared with the signature of "
                 "its confirmed hypothesis"])
    return None, None, None, []


def _compare_snapshot(out: IncidentCheck, incident: Any, store: Any, since: pd.Timestamp, end: pd.Timestamp) -> None:
    """The changes since the incident against its enrichment snapshot: a version it rolled back that is
    deployed again, or a config/flag value it reverted that is set again, is a reason of a recurrence,
    and a note when the symptoms are not back."""
    services = sorted({v.get("service") for v in (incident.snapshot or {}).get("versions") or ()}
                      | {c["service"] for c in snapshot.reverted(incident.snapshot)})
    if not services or since >= end:
        return
    out.snapshot = snapshot.compare(incident.snapshot, store.query("events", since, end, services=services), since, end)
    again = [f"redeployed {d['service']} {d['version']}" for d in out.snapshot["redeployed"]]
    again += [f"reapplied {c['service']} {c['key']}={c['value']}" for c in out.snapshot["reapplied"]]
    if again and out.recurred:
        out.reasons.extend(dict.fromkeys(again))
    elif again:
        out.notes.append(f"undone during the incident and back since: {', '.join(dict.fromkeys(again))} "
                         f"(its symptoms are not back)")


def _origin_onset(suspicions: Sequence[Any], origin: str | None) -> pd.Timestamp | None:
    if origin is None:
        return None
    return onsets([s for s in suspicions if s.service == origin]).get(origin)


# --------------------------------------------------------------------------- worker caches

_LOCK = threading.RLock()
_STATE: dict[str, Any] = {"token": None}
_ANALYSES: "OrderedDict[tuple, Any]" = OrderedDict()
_DAYS: dict[str, list[pd.Timestamp]] = {}
_QUERIES: "OrderedDict[tuple, pd.DataFrame]" = OrderedDict()
_QUERY_BYTES: dict[tuple, int] = {}
_WORKSPACES: dict[str, Workspace] = {}
_KBS: dict[str, Any] = {}


def _scope(token: str | None) -> None:
    with _LOCK:
        if token is None or token != _STATE["token"]:
            clear_caches()
            _STATE["token"] = token


def clear_caches() -> None:
    """Drop every cache of this process and close its knowledge-base connections."""
    with _LOCK:
        _ANALYSES.clear()
        _DAYS.clear()
        _QUERIES.clear()
        _QUERY_BYTES.clear()
        _WORKSPACES.clear()
        for kb in _KBS.values():
            kb.close()
        _KBS.clear()
        _STATE["token"] = None


def _workspace(root: str) -> Workspace:
    with _LOCK:
        ws = _WORKSPACES.get(root)
        if ws is None:
            ws = _WORKSPACES[root] = open_workspace(root)
        return ws


def _kb(ws: Workspace) -> Any:
    url = ws.database_url
    with _LOCK:
        kb = _KBS.get(url)
        if kb is None:
            kb = _KBS[url] = ws.knowledge_base()
        return kb


def _current(ws: Workspace, baseline_start: pd.Timestamp, start: pd.Timestamp, end: pd.Timestamp,
             services: Sequence[str] | None = None) -> tuple[Any, bool]:
    """(AnalysisResult, from cache) of the window (baseline included), over every service by default."""
    key = (str(ws.root), None if services is None else tuple(services), baseline_start, start, end,
           ws.settings.step, ws.settings.detector)
    with _LOCK:
        hit = _ANALYSES.get(key)
        if hit is not None:
            _ANALYSES.move_to_end(key)
    if hit is None:
        # Only the analysis is kept (a few kB); the telemetry frames (tens of MB) are dropped. A
        # failure is kept too: every incident of the window gets the same error without recomputing.
        window = TelemetryWindow.from_store(ws.telemetry(), baseline_start, start, end,
                                            services=None if services is None else list(services),
                                            step=ws.settings.step)
        try:
            hit = analyze_window(window, None, (), detector=ws.settings.detector)
        except Exception as exc:
            what = "every service" if services is None else ", ".join(services)
            hit = _Failure(f"the analysis of {what} over [{iso_utc(start)}, {iso_utc(end)}) failed: "
                           f"{type(exc).__name__}: {exc}")
        with _LOCK:
            _ANALYSES[key] = hit
            while len(_ANALYSES) > CACHE_SIZE:
                _ANALYSES.popitem(last=False)
        cached = False
    else:
        cached = True
    if isinstance(hit, _Failure):
        raise RecheckError(hit.message)
    return hit, cached


def _has_telemetry(ws: Workspace, start: pd.Timestamp, end: pd.Timestamp) -> bool:
    """Whether any metrics, logs or spans day file overlaps ``[start, end)`` (a folder listing,
    kept for the run: most past incidents lie before the stored telemetry)."""
    root = ws.telemetry_dir
    with _LOCK:
        days = _DAYS.get(str(root))
    if days is None:
        # The store's documented layout: <root>/<table>/day=YYYY-MM-DD/part.parquet.
        days = sorted({pd.Timestamp(d.name[4:], tz="UTC") for table in ("metrics", "logs", "spans")
                       for d in (root / table).glob("day=*") if (d / "part.parquet").is_file()})
        with _LOCK:
            _DAYS[str(root)] = days
    first = start.floor("D")
    return any(first <= day < end for day in days)


@dataclass(frozen=True)
class _Failure:
    message: str


class _CachedStore:
    """A telemetry store whose queries are memoised for the run (criteria of many incidents ask the
    same service, metric and span). Frames handed out are shared: callers must not modify them."""

    def __init__(self, store: Any):
        self.store = store
        self.root = getattr(store, "root", None)

    def query(self, table: str, start: Any = None, end: Any = None, services: Sequence[str] | None = None,
              names: Sequence[str] | None = None) -> pd.DataFrame:
        key = (str(self.root), table, None if start is None else pd.Timestamp(start),
               None if end is None else pd.Timestamp(end), None if services is None else tuple(services),
               None if names is None else tuple(names))
        with _LOCK:
            hit = _QUERIES.get(key)
            if hit is not None:
                _QUERIES.move_to_end(key)
                return hit
        frame = self.store.query(table, start, end, services=services, names=names)
        with _LOCK:
            _QUERIES[key] = frame
            _QUERY_BYTES[key] = int(frame.memory_usage(index=True, deep=False).sum())
            while len(_QUERIES) > 1 and (len(_QUERIES) > QUERY_CACHE_SIZE
                                         or sum(_QUERY_BYTES.values()) > QUERY_CACHE_BYTES):
                old, _ = _QUERIES.popitem(last=False)
                _QUERY_BYTES.pop(old, None)
        return frame


# --------------------------------------------------------------------------- helpers

def criterion_reason(c: CriterionCheck) -> str:
    """``criterion <item id> (<item status>)``: whether the fix had landed stays in the reason."""
    return f"criterion {c.action_item_id} ({c.status})"


def recheck_time(value: Any, name: str) -> pd.Timestamp:
    return aware_time(value, f"recheck {name}", RecheckError)
