"""The analysis of one incident: read its window, localise, correlate, rank, remember.

:func:`analyze` is what ``workbench analyze`` and the notebooks call::

    result = analyze(workspace, "INC-20261102-001")
    result.hypotheses[0].summary        # the most likely root cause, with its evidence
    result.similar                      # past incidents that looked the same, with their causes

Steps and where they live:

1. read - the incident from the knowledge base, its analysis window and baseline
   (:mod:`workbench.telemetry.windows`), the telemetry of ``[baseline start, window end)``
   (:meth:`TelemetryWindow.from_store`), and the history: every incident that started before this
   one and has a confirmed hypothesis or a stored signature (:func:`load_history`);
2. detect - :func:`workbench.analysis.localize.localize`: per-service origin suspicion with evidence and
   onsets;
3. rank - :mod:`workbench.analysis.correlate` (changes before each onset, onset order) and
   :func:`workbench.analysis.hypotheses.rank`, then the incident's :class:`~workbench.analysis.signature.Signature`
   and the similar past incidents.

With ``store=True`` the ranking replaces the incident's *proposed* hypotheses
(:meth:`KnowledgeBase.replace_proposed_hypotheses`: confirmed and rejected ones stay, a
candidate a human already decided is not proposed again, and one proposed before keeps its id:
re-analysing the same evidence changes nothing a sign-off's content hash covers), and the
signature is written to ``incidents/<id>/signature.json`` (:func:`read_signature` reads it back;
the recheck loop and the similar-incident search use it), and the incident gets its enrichment snapshot (dependencies,
deployed versions, changes, alerts around it: :func:`workbench.analysis.snapshot.attach`). An
incident whose window holds no telemetry gets a result with no hypotheses and a note saying so,
and nothing is stored.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from . import correlate, snapshot
from ..workspace import Workspace, open_workspace
from ..errors import WorkbenchError
from .evidence import ServiceSuspicion, TelemetryWindow
from .hypotheses import DEFAULT_LIMIT, Hypothesis, onsets, rank, restate_similar
from .signature import (PastIncident, Signature, signature_from_analysis, signature_from_incident, similar_incidents,
                        with_cause)
from ..telemetry.windows import analysis_window, baseline_window
from ..formats import iso_utc, utc_bound

#: File of an incident's signature inside ``incidents/<id>/``.
SIGNATURE_FILE = "signature.json"
#: Who the knowledge base records as the author of proposed hypotheses.
WHO = "workbench-analysis"


class AnalysisError(WorkbenchError):
    """An incident cannot be analysed (its telemetry cannot be scored); the message says why."""


@dataclass
class AnalysisResult:
    """Everything one analysis found.

    Attributes
    ----------
    incident : dict
        ``id``, ``title``, ``started`` (ISO) of the analysed incident.
    window, baseline : tuple of pandas.Timestamp
        ``[start, end)`` analysed, and ``[start, end)`` taken as normal.
    suspicions : list of ServiceSuspicion
        Most suspicious first.
    changes : pandas.DataFrame
        Changes before each suspicious service's onset (:func:`workbench.analysis.correlate.changes_for`:
        ``service``, ``onset``, ``timestamp``, ``kind``, ``summary``, ``lag_minutes`` …); the
        onsets are those the ranking uses (:func:`workbench.analysis.hypotheses.onsets`).
    onsets : pandas.DataFrame
        :func:`workbench.analysis.correlate.onset_order` (``service``, ``onset``, ``order``,
        ``lag_minutes``, ``score``) on the same onsets.
    hypotheses : list of Hypothesis
        The ranking (all ``proposed``).
    signature : Signature or None
        The incident's fingerprint (None without telemetry).
    similar : list of dict
        Most similar other incidents (``incident_id``, ``title``, ``cause``, ``service``,
        ``similarity``; cause and service are None when nobody confirmed one yet).
    timings : dict
        Seconds: ``read`` (telemetry window), ``detect`` (localisation), ``rank`` (correlation,
        ranking, signature, similar incidents), ``store``, ``total``.
    notes : list of str
        What a reader should know (no telemetry, nothing suspicious, what was stored).
    stored : bool
        Whether the ranking and signature were written.
    """

    incident: dict[str, Any]
    window: tuple[pd.Timestamp, pd.Timestamp]
    baseline: tuple[pd.Timestamp, pd.Timestamp]
    suspicions: list[ServiceSuspicion] = field(default_factory=list)
    changes: pd.DataFrame = field(default_factory=pd.DataFrame)
    onsets: pd.DataFrame = field(default_factory=pd.DataFrame)
    hypotheses: list[Hypothesis] = field(default_factory=list)
    signature: Signature | None = None
    similar: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stored: bool = False

    @property
    def has_telemetry(self) -> bool:
        return self.signature is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (times as ISO 8601 UTC with ``Z``)."""
        return {
            "incident": dict(self.incident),
            "window": {"start": iso_utc(self.window[0]), "end": iso_utc(self.window[1])},
            "baseline": {"start": iso_utc(self.baseline[0]), "end": iso_utc(self.baseline[1])},
            "suspicions": [s.to_dict() for s in self.suspicions],
            "changes": _records(self.changes, ("service", "onset", "timestamp", "kind", "summary", "lag_minutes")),
            "onsets": _records(self.onsets, ("service", "onset", "order", "lag_minutes")),
            "hypotheses": [h.to_dict() for h in self.hypotheses],
            "signature": None if self.signature is None else self.signature.to_dict(),
            "similar": [dict(s) for s in self.similar],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "notes": list(self.notes),
            "stored": self.stored,
        }


def analyze(workspace: Workspace | str | os.PathLike[str], incident_id: str, *, detector: str | None = None, store: bool = True,
            who: str = WHO, limit: int = DEFAULT_LIMIT) -> AnalysisResult:
    """Analyse one incident of ``workspace`` and (by default) store the proposed ranking.

    Parameters
    ----------
    workspace : Workspace or path
        The workspace or its folder.
    incident_id : str
    detector : str, optional
        Metric detector name (``workbench.signals.detect.names()``); default the workspace's
        ``detector`` setting.
    store : bool
        Replace the incident's proposed hypotheses and write its signature.
    who : str
        Author recorded in the knowledge base's history.
    limit : int
        Most hypotheses kept.

    Raises
    ------
    NotFoundError
        No incident ``incident_id``.
    UnknownNameError
        ``detector`` is not a registered detector (the message suggests close names).
    AnalysisError
        The telemetry cannot be scored (the message names the incident and the window).
    """
    t_start = time.perf_counter()
    workspace = open_workspace(workspace)  # a Workspace as it is, or its folder
    detector = detector or workspace.settings.detector
    if isinstance(detector, str):
        from ..signals import detect

        detect.detectors.get(detector)  # a typo fails here, before any telemetry is read
    kb = workspace.knowledge_base()
    try:
        incident = kb.get_incident(incident_id)
        problems: list[str] = []
        history = load_history(kb, workspace, exclude=incident_id, problems=problems, before=incident.started)
        confirmed = [(h.service, h.cause) for h in kb.list_hypotheses(incident_id, status="confirmed")]
        start, end = analysis_window(incident)
        base_start, _ = baseline_window(incident)
        t0 = time.perf_counter()
        window = TelemetryWindow.from_store(workspace.telemetry(), base_start, start, end,
                                            step=workspace.settings.step)
        read = time.perf_counter() - t0
        result = analyze_window(window, incident, history, detector=detector, limit=limit)
        result.timings = {"read": read, **result.timings}
        result.notes.extend(problems)
        t0 = time.perf_counter()
        if store and result.has_telemetry:
            kb.replace_proposed_hypotheses(incident_id, [h.to_dict() for h in result.hypotheses], who=who)
            signature = result.signature
            if confirmed:  # a human's decision beats the ranking in the fingerprint
                signature = with_cause(signature, *confirmed[0])
            path = write_signature(workspace, incident_id, signature)
            snapshot.attach(kb, workspace.telemetry(), incident_id, window=window, who=who,
                            services=[h.service for h in result.hypotheses[:1]])
            result.stored = True
            result.notes.append(f"stored {len(result.hypotheses)} proposed hypotheses (confirmed and rejected ones "
                                f"kept), the enrichment snapshot and the signature in {path}")
        elif store:
            result.notes.append("nothing stored: no telemetry to rank")
        result.timings["store"] = time.perf_counter() - t0
    finally:
        kb.close()
    result.timings["total"] = time.perf_counter() - t_start
    return result


def analyze_window(window: TelemetryWindow, incident: Any = None, history: Sequence[PastIncident] = (), *,
                   detector: Any = None, limit: int = DEFAULT_LIMIT,
                   localizer: Callable[..., list[ServiceSuspicion]] | None = None) -> AnalysisResult:
    """Analyse an in-memory window (benchmarks, tests, notebooks without a workspace).

    Parameters
    ----------
    window : TelemetryWindow
    incident : Incident record or dict, optional
        ``id``, ``title``, ``started`` are used (for the fallback onset and the result).
    history : list of PastIncident
    detector : str or Detector, optional
        Passed to the localizer.
    limit : int
        Most hypotheses kept.
    localizer : callable, optional
        ``localizer(window, detector=...) -> list[ServiceSuspicion]``; default
        :func:`workbench.analysis.localize.localize`.

    Returns
    -------
    AnalysisResult
        ``timings`` has ``detect`` and ``rank`` (no ``read``: the window is given).
    """
    info = _incident_info(incident)
    result = AnalysisResult(incident=info, window=(window.start, window.end),
                            baseline=(window.baseline_start, window.baseline_end))
    if not _has_telemetry(window, window.start, window.end):
        result.notes.append(f"no telemetry in [{iso_utc(window.start)}, {iso_utc(window.end)}): no metrics, logs or spans "
                            f"in the incident window, so nothing can be ranked")
        result.timings = {"detect": 0.0, "rank": 0.0}
        return result
    if not _has_telemetry(window, window.baseline_start, window.baseline_end):
        result.notes.append(f"no telemetry in the baseline [{iso_utc(window.baseline_start)}, {iso_utc(window.baseline_end)}): "
                            f"the incident cannot be compared with normal behaviour, so the ranking is weak or empty")
    if localizer is None:
        from .localize import localize as localizer
    t0 = time.perf_counter()
    try:
        suspicions = list(localizer(window, detector=detector))
    except WorkbenchError:
        raise
    except (ValueError, ArithmeticError, IndexError, KeyError) as exc:
        raise AnalysisError(f"incident {info.get('id') or '?'}: telemetry of [{iso_utc(window.start)}, {iso_utc(window.end)}) "
                            f"could not be scored: {type(exc).__name__}: {exc}") from exc
    detect = time.perf_counter() - t0
    t0 = time.perf_counter()
    suspicions.sort(key=lambda s: (-float(s.score), s.service))
    events = correlate.change_events(window.events)
    result.suspicions = suspicions
    found = onsets(suspicions)
    result.changes = correlate.changes_for(events, found)
    result.onsets = correlate.onset_order(suspicions, found)
    result.hypotheses = rank(window, suspicions, incident, history, changes=events, limit=limit)
    result.signature = signature_from_analysis(suspicions, result.hypotheses, incident_id=info.get("id"),
                                               changes=result.changes)
    result.similar = similar_incidents(result.signature, history)
    restate_similar(result.hypotheses, result.signature, history)  # one similarity shown everywhere
    result.timings = {"detect": detect, "rank": time.perf_counter() - t0}
    if not result.hypotheses:
        result.notes.append("no service looked anomalous against the baseline: no hypothesis proposed")
    return result


# --------------------------------------------------------------------------- history and signatures

def load_history(kb: Any, workspace: Workspace | None = None, exclude: str | None = None,
                 problems: list[str] | None = None, before: Any = None) -> list[PastIncident]:
    """Every incident (but ``exclude``) that can be compared: it has a confirmed hypothesis or a
    stored signature.

    ``before`` (a time): only incidents that started before it. :func:`analyze` passes the
    analysed incident's ``started``, so re-analysing an old incident never takes a prior or a
    "similar past incident" from its own future (say, its recurrence confirmed later): the
    ranking and the accuracy ledger see what the engine could have known then.

    The signature is the stored one (``incidents/<id>/signature.json``) with the confirmed
    origin and cause applied, else one built from the confirmed hypothesis
    (:func:`workbench.analysis.signature.signature_from_incident`). An unreadable stored signature is
    skipped (one bad file must not stop every analysis) and described in ``problems``.
    """
    out = []
    cutoff = utc_bound(before)
    confirmed_by_incident = kb.confirmed_hypotheses()  # one query, not one per incident
    for incident in kb.list_incidents():
        if incident.id == exclude or (cutoff is not None and pd.Timestamp(incident.started) >= cutoff):
            continue
        decided = confirmed_by_incident.get(incident.id, [])
        confirmed = [(h.service, h.cause) for h in decided]
        try:
            stored = read_signature(workspace, incident.id) if workspace is not None else None
        except AnalysisError as exc:
            if problems is not None:
                problems.append(f"skipped in the similar-incident search: {exc}")
            stored = None
        if stored is not None:
            signature = with_cause(stored, *confirmed[0]) if confirmed else stored
        elif decided:
            signature = signature_from_incident(incident, decided)
        else:
            continue
        out.append(PastIncident(incident.id, incident.title, signature, confirmed))
    return out


def signature_path(workspace: Workspace, incident_id: str) -> Path:
    """``incidents/<id>/signature.json`` (not created)."""
    return workspace.incidents_dir / incident_id / SIGNATURE_FILE


def write_signature(workspace: Workspace, incident_id: str, signature: Signature) -> Path:
    """Write ``signature`` atomically (a reader never sees half a file)."""
    path = workspace.incident_dir(incident_id) / SIGNATURE_FILE
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(signature.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                       encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_signature(workspace: Workspace, incident_id: str) -> Signature | None:
    """The stored signature of an incident, or None when it was never analysed.

    Raises
    ------
    AnalysisError
        The file exists but is not a signature (the message names the file).
    """
    path = signature_path(workspace, incident_id)
    if not path.is_file():
        return None
    try:
        return Signature.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AnalysisError(f"{path}: not a readable signature: {exc}; delete it and analyse the incident again") from None


# --------------------------------------------------------------------------- helpers

def _has_telemetry(window: TelemetryWindow, start: pd.Timestamp, end: pd.Timestamp) -> bool:
    """Whether any metric, log line or span of ``window`` falls in ``[start, end)``."""
    for table, col in (("metrics", "timestamp"), ("logs", "timestamp"), ("spans", "start")):
        frame = getattr(window, table)
        if not frame.empty and ((frame[col] >= start) & (frame[col] < end)).any():
            return True
    return False


def _incident_info(incident: Any) -> dict[str, Any]:
    if incident is None:
        return {"id": None, "title": None, "started": None}
    get = incident.get if isinstance(incident, Mapping) else lambda k, d=None: getattr(incident, k, d)
    started = get("started")
    return {"id": get("id"), "title": get("title"), "started": None if started is None else iso_utc(started)}




def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    out = []
    for row in frame[[c for c in columns if c in frame.columns]].to_dict("records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, pd.Timestamp) or key in ("onset", "timestamp"):
                clean[key] = iso_utc(value)
            elif isinstance(value, float):
                clean[key] = None if pd.isna(value) else round(value, 4)
            elif value is pd.NA:
                clean[key] = None
            elif hasattr(value, "item"):
                clean[key] = value.item()
            else:
                clean[key] = value
        out.append(clean)
    return out
