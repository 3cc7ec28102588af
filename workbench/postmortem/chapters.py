"""The chapters of a postmortem as tables: what each cell of ``postmortem.ipynb`` shows.

Every function takes the workspace (a :class:`~workbench.Workspace` or its folder) and an
incident id and returns a pandas DataFrame (or a small dict), so a notebook cell is one call and
the same tables serve widgets, reports and tests. Pure pandas: nothing here imports Jupyter.

The chapters follow the postmortem of the SRE book: summary and impact, timeline, detection,
evidence, hypotheses, contributing factors, action items, lessons.

The analysis engine (:func:`workbench.analysis.analyze`) runs at most once per opened workspace
for an (incident, detector): :func:`analysis` keeps its result in ``ws.cache``, so the detection,
evidence and hypotheses chapters share one run whatever order the cells execute in.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ..analysis.pipeline import analyze
from ..store.records import CONCLUSION_KINDS, check_enum
from ..telemetry.live import fetch_incident
from ..telemetry.windows import BASELINE, analysis_window
from ..errors import SourceError, TemplateParameterError
from ..formats import aware_time, iso_utc
from ..workspace import Workspace, open_workspace

#: Columns of :func:`timeline`.
TIMELINE_COLUMNS = ("time", "source", "service", "kind", "summary")
#: Columns of :func:`evidence`.
EVIDENCE_COLUMNS = ("service", "suspicion", "kind", "signal", "time", "magnitude", "direction", "explanation")
#: Columns of :func:`hypotheses`.
HYPOTHESIS_COLUMNS = ("rank", "service", "cause", "score", "status", "summary", "evidence", "similar", "reviewer",
                      "rationale", "id")
#: Columns of :func:`conclusions`.
CONCLUSION_COLUMNS = ("kind", "text", "author", "created", "id")
#: Columns of :func:`action_items`.
ACTION_COLUMNS = ("title", "owner", "kind", "due", "status", "verification", "id")
#: Columns of :func:`checks`.
CHECK_COLUMNS = ("at", "verdict", "score", "window_start", "window_end", "action_item_id", "evidence", "id")
#: Columns of :func:`suggestions`.
SUGGESTION_COLUMNS = ("kind", "service", "reason", "text", "key", "proposed", "check_id")
#: The incident's own milestones, in the order they happen.
MILESTONES = ("started", "detected", "mitigated", "resolved")



def _incident(ws: Workspace, incident_id: str) -> Any:
    if not isinstance(incident_id, str) or not incident_id.strip():
        raise TemplateParameterError("parameter 'incident_id' is empty: give the incident to analyse, "
                                     "e.g. `workbench run INC-20261102-001`")
    with ws.knowledge_base() as kb:
        return kb.get_incident(incident_id)


def _time_param(value: Any, name: str) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    return aware_time(value, f"parameter {name!r}", TemplateParameterError)


def window(ws: Workspace | str, incident_id: str, window_start: Any = None,
           window_end: Any = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` shown by the chapters: the notebook's overrides, else
    :func:`workbench.telemetry.windows.analysis_window` of the incident.

    Raises
    ------
    TemplateParameterError
        An override is not a time with a zone, or the window is empty.
    """
    incident = _incident(open_workspace(ws), incident_id)
    return _window(incident, window_start, window_end)


def _window(incident: Any, window_start: Any, window_end: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    values = incident.to_dict()
    start, end = _time_param(window_start, "window_start"), _time_param(window_end, "window_end")
    if start is not None:
        values["window_start"] = start
    if end is not None:
        values["window_end"] = end
    # A reader's explicit window is taken as it is (no lead-in rule: that is for stored overrides).
    lo, hi = analysis_window(values, lead_in=start is None and end is None)
    if hi <= lo:
        raise TemplateParameterError(f"the window [{iso_utc(lo)}, {iso_utc(hi)}) is empty: window_end must be after "
                                     f"window_start")
    return lo, hi


# --------------------------------------------------------------------------- summary and impact

def summary(ws: Workspace | str, incident_id: str, *, window_start: Any = None, window_end: Any = None,
            baseline_hours: float = BASELINE / pd.Timedelta(hours=1)) -> pd.DataFrame:
    """The incident at a glance.

    Returns
    -------
    pandas.DataFrame
        Columns ``field`` and ``value`` (text): id, title, severity, status, environment, services,
        started, detected, mitigated, resolved, time to detect / mitigate / resolve, the window
        and baseline the chapters use, labels and links.
    """
    ws = open_workspace(ws)
    incident = _incident(ws, incident_id)
    start, end = _window(incident, window_start, window_end)
    hours = _hours(baseline_hours)
    rows = [
        ("id", incident.id), ("title", incident.title), ("severity", incident.severity),
        ("status", incident.status), ("environment", incident.environment),
        ("services", ", ".join(incident.services)),
    ]
    rows += [(m, iso_utc(getattr(incident, m))) for m in MILESTONES]
    for name, end_field in (("time to detect", "detected"), ("time to mitigate", "mitigated"),
                            ("time to resolve", "resolved")):
        rows.append((name, _duration(incident.started, getattr(incident, end_field))))
    rows += [("analysis window", f"{iso_utc(start)} to {iso_utc(end)}"),
             ("baseline", f"{iso_utc(start - pd.Timedelta(hours=hours))} to {iso_utc(start)} ({hours:g} h)"),
             ("labels", ", ".join(f"{k}={v}" for k, v in sorted(incident.labels.items())) or "-"),
             ("links", ", ".join(f"{link.get('title', '')} <{link.get('url', '')}>" for link in incident.links) or "-")]
    return pd.DataFrame(rows, columns=["field", "value"]).astype({"value": "object"})


def conclusions(ws: Workspace | str, incident_id: str, kind: str | None = None) -> pd.DataFrame:
    """The incident's written conclusions, oldest first, optionally of one ``kind`` (summary,
    impact, contributing_factor, lesson, conclusion).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONCLUSION_COLUMNS` (``created`` aware UTC).
    """
    ws = open_workspace(ws)
    _incident(ws, incident_id)
    if kind is not None:
        check_enum(kind, "kind", CONCLUSION_KINDS)
    with ws.knowledge_base() as kb:
        rows = [c for c in kb.list_conclusions(incident_id) if kind is None or c.kind == kind]
    return _frame([{c_: getattr(c, c_) for c_ in CONCLUSION_COLUMNS} for c in rows], CONCLUSION_COLUMNS,
                  times=("created",))


# --------------------------------------------------------------------------- timeline

def timeline(ws: Workspace | str, incident_id: str, *, window_start: Any = None,
             window_end: Any = None) -> pd.DataFrame:
    """What happened, in order: the telemetry's events (deploys, config changes, flags, scaling,
    alerts, pages ...) inside the window, and the incident's own milestones.

    Returns
    -------
    pandas.DataFrame
        Columns ``time`` (aware UTC), ``source`` (``incident`` or ``telemetry``), ``service``,
        ``kind`` (an event kind, or started/detected/mitigated/resolved), ``summary``; ordered by
        time, a milestone before an event at the same instant.
    """
    ws = open_workspace(ws)
    incident = _incident(ws, incident_id)
    start, end = _window(incident, window_start, window_end)
    events = ws.telemetry().query("events", start, end)
    telemetry = pd.DataFrame({"time": events["timestamp"], "source": "telemetry", "service": events["service"],
                              "kind": events["kind"], "summary": events["summary"]})
    marks = [{"time": pd.Timestamp(getattr(incident, m)), "source": "incident",
              "service": ", ".join(incident.services), "kind": m, "summary": f"incident {m}"}
             for m in MILESTONES if getattr(incident, m) is not None]
    frames = [f for f in (pd.DataFrame(marks, columns=list(TIMELINE_COLUMNS)), telemetry) if not f.empty]
    if not frames:
        return _frame([], TIMELINE_COLUMNS, times=("time",))
    out = pd.concat(frames, ignore_index=True)
    out["time"] = pd.to_datetime(out["time"], utc=True)
    out["_order"] = (out["source"] != "incident").astype(int)
    return out.sort_values(["time", "_order"], kind="stable").drop(columns="_order").reset_index(drop=True)


# --------------------------------------------------------------------------- analysis

def analysis(ws: Workspace | str, incident_id: str, *, detector: str | None = None, refresh: bool = False) -> Any:
    """The incident's :class:`~workbench.analysis.AnalysisResult`, computed once per opened
    workspace (``ws.cache``: a notebook opens its workspace once and every chapter reuses it).

    The engine stores its ranking as proposed hypotheses (``store=True``). With live sources in
    ``workbench.toml`` the incident's window is fetched from them first, once
    (:func:`workbench.telemetry.live.fetch_incident`); the analysis notes say what came from where.
    """
    ws = open_workspace(ws)
    _incident(ws, incident_id)
    analyses = ws.cache.setdefault("analyses", {})
    key = (incident_id, detector or None)
    if refresh or key not in analyses:
        fetched = _fetch_live(ws, incident_id)
        result = analyze(ws, incident_id, detector=detector, store=True)
        result.notes[:0] = fetched
        analyses[key] = result
    return analyses[key]


def _fetch_live(ws: Workspace, incident_id: str) -> list[str]:
    """The incident's window from the workspace's live sources (once; a no-op without any): notes
    for the reader. A source that is down is a visible warning here; the analysis goes on with
    what the store holds."""
    try:
        return fetch_incident(ws, incident_id, who="notebook").summary()
    except SourceError as exc:
        return [f"warning: the live sources could not be asked ({exc}); the analysis uses only what the "
                f"telemetry store already holds"]


def analysis_notes(ws: Workspace | str, incident_id: str, *, detector: str | None = None) -> pd.DataFrame:
    """What a reader should know about the analysis: notes and timings.

    Returns
    -------
    pandas.DataFrame
        Columns ``topic`` (``note`` or ``seconds``) and ``text``.
    """
    result = analysis(ws, incident_id, detector=detector)
    rows = [{"topic": "note", "text": n} for n in result.notes]
    rows += [{"topic": "seconds", "text": f"{k}: {v:.2f}"} for k, v in result.timings.items()]
    return _frame(rows, ("topic", "text"))


def detection_gap(ws: Workspace | str, incident_id: str, *, detector: str | None = None) -> dict[str, Any]:
    """How long the incident went unnoticed, and what noticed it first.

    Returns
    -------
    dict
        ``started``, ``origin`` (the most suspicious service), ``first_anomaly`` (its onset as the
        analysis found it; None when nothing moved),
        ``first_alert`` (first ``alert`` or ``page`` event at or after the window start),
        ``detected`` (ISO 8601 UTC or None); and in minutes: ``time_to_detect`` (detected -
        started), ``alert_delay`` (first alert - started), ``anomaly_lead`` (detected - first
        anomaly: how much earlier telemetry showed it).
    """
    ws = open_workspace(ws)
    incident = _incident(ws, incident_id)
    start, end = _window(incident, None, None)
    events = ws.telemetry().query("events", start, end)
    alerts = events[events["kind"].isin(["alert", "page"])]
    first_alert = alerts["timestamp"].min() if not alerts.empty else None
    result = analysis(ws, incident_id, detector=detector)
    # The most suspicious service's onset, not the earliest of all: weakly suspicious services
    # wobble long before the incident and would make the lead look better than it was.
    top = result.suspicions[0] if result.suspicions else None
    first_anomaly = None if top is None or top.onset is None else pd.Timestamp(top.onset)
    return {
        "started": iso_utc(incident.started), "origin": None if top is None else top.service,
        "first_anomaly": iso_utc(first_anomaly), "first_alert": iso_utc(first_alert), "detected": iso_utc(incident.detected),
        "time_to_detect": _minutes(incident.started, incident.detected),
        "alert_delay": _minutes(incident.started, first_alert),
        "anomaly_lead": _minutes(first_anomaly, incident.detected),
    }


def evidence(ws: Workspace | str, incident_id: str, *, detector: str | None = None) -> pd.DataFrame:
    """What moved: every evidence item of every suspicious service, most suspicious service first.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`EVIDENCE_COLUMNS`: ``service``, ``suspicion`` (the service's combined
        score), ``kind`` (metric, log, span, change, topology, traffic, history), ``signal``,
        ``time`` (aware UTC), ``magnitude``, ``direction``, ``explanation``.
    """
    result = analysis(ws, incident_id, detector=detector)
    rows = []
    for suspicion in result.suspicions:
        for item in suspicion.evidence:
            rows.append({"service": suspicion.service, "suspicion": float(suspicion.score), "kind": item.kind,
                         "signal": item.signal, "time": item.time, "magnitude": item.magnitude,
                         "direction": item.direction, "explanation": item.explanation})
    return _frame(rows, EVIDENCE_COLUMNS, times=("time",))


def hypotheses(ws: Workspace | str, incident_id: str, *, detector: str | None = None) -> pd.DataFrame:
    """The ranked root-cause hypotheses as the knowledge base holds them (after the analysis has
    stored its proposals; confirmed and rejected ones included).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`HYPOTHESIS_COLUMNS`; ``evidence`` is the number of evidence items,
        ``similar`` the ids of similar past incidents.
    """
    ws = open_workspace(ws)
    analysis(ws, incident_id, detector=detector)
    with ws.knowledge_base() as kb:
        rows = kb.list_hypotheses(incident_id)
    return _frame([{
        "rank": h.rank, "service": h.service, "cause": h.cause, "score": h.score, "status": h.status,
        "summary": h.summary, "evidence": len(h.evidence),
        "similar": ", ".join(str(s.get("incident_id", s)) if isinstance(s, dict) else str(s) for s in h.similar),
        "reviewer": h.reviewer, "rationale": h.rationale, "id": h.id} for h in rows], HYPOTHESIS_COLUMNS)


# --------------------------------------------------------------------------- follow-up

def action_items(ws: Workspace | str, incident_id: str) -> pd.DataFrame:
    """The incident's action items in creation order.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ACTION_COLUMNS`; ``due`` is a date or None, ``verification`` the criterion
        as JSON text (None when the item has none).
    """
    ws = open_workspace(ws)
    _incident(ws, incident_id)
    with ws.knowledge_base() as kb:
        rows = kb.list_action_items(incident_id)
    return _frame([{
        "title": a.title, "owner": a.owner, "kind": a.kind, "due": a.due, "status": a.status,
        "verification": None if a.verification is None else json.dumps(a.verification, sort_keys=True,
                                                                         ensure_ascii=False),
        "id": a.id} for a in rows], ACTION_COLUMNS)


def verification_criteria(ws: Workspace | str, incident_id: str) -> pd.DataFrame:
    """The action items that say how their fix will be verified (what the recheck loop evaluates).

    Returns
    -------
    pandas.DataFrame
        Columns ``title``, ``status``, ``verification`` (JSON text), ``id``.
    """
    items = action_items(ws, incident_id)
    return items.loc[items["verification"].notna(), ["title", "status", "verification", "id"]].reset_index(drop=True)


def suggestions(ws: Workspace | str, incident_id: str) -> pd.DataFrame:
    """Runbook and alert updates the recheck proposed for the incident (:mod:`workbench.loop.suggestions`).

    Read from the evidence of its recurrence checks, once per suggestion ``key`` (the first
    proposal; the loop proposes each at most once per incident). They stay proposals: a person
    accepts one by adding the action item (the action items editor above), drops one by not
    doing so.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUGGESTION_COLUMNS`; ``proposed`` is the check's time (aware UTC),
        ``check_id`` the check whose evidence holds it.
    """
    ws = open_workspace(ws)
    _incident(ws, incident_id)
    with ws.knowledge_base() as kb:
        rows = kb.list_checks(incident_id)
    seen: dict[str, dict[str, Any]] = {}
    for check in rows:
        for item in check.evidence:
            s = item.get("suggestion") if isinstance(item, dict) and item.get("kind") == "suggestion" else None
            if isinstance(s, dict) and s.get("key") not in seen:
                seen[s.get("key")] = {"kind": s.get("kind"), "service": s.get("service"), "reason": s.get("reason"),
                                      "text": s.get("text"), "key": s.get("key"), "proposed": check.at,
                                      "check_id": check.id}
    return _frame(list(seen.values()), SUGGESTION_COLUMNS, times=("proposed",))


def checks(ws: Workspace | str, incident_id: str, *, since: Any = None) -> pd.DataFrame:
    """The recurrence and verification checks recorded for the incident, oldest first.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CHECK_COLUMNS` (times aware UTC; ``evidence`` is the number of items).
    """
    ws = open_workspace(ws)
    _incident(ws, incident_id)
    since_ts = _time_param(since, "since")
    with ws.knowledge_base() as kb:
        rows = kb.list_checks(incident_id, since=since_ts)
    return _frame([{
        "at": c.at, "verdict": c.verdict, "score": c.score, "window_start": c.window_start, "window_end": c.window_end,
        "action_item_id": c.action_item_id, "evidence": len(c.evidence), "id": c.id} for c in rows], CHECK_COLUMNS,
        times=("at", "window_start", "window_end"))


def recurrence_summary(ws: Workspace | str, incident_id: str, *, since: Any = None,
                       window_hours: float = 24) -> pd.DataFrame:
    """Where the incident's follow-up stands: checks so far, last verdict, the next window to check.

    Returns
    -------
    pandas.DataFrame
        Columns ``field`` and ``value`` (text).
    """
    ws = open_workspace(ws)
    incident = _incident(ws, incident_id)
    hours = _hours(window_hours, "window_hours")
    history = checks(ws, incident_id, since=since)
    with ws.knowledge_base() as kb:
        follow_ups = [i.id for i in kb.list_incidents(follow_up_of=incident_id)]
    recurrence = history[history["action_item_id"].isna()]
    last = recurrence.iloc[-1] if not recurrence.empty else None
    now = pd.Timestamp.now(tz="UTC").floor("s")
    rows = [("incident", f"{incident.id}: {incident.title}"), ("status", incident.status),
            ("checks", str(len(history))),
            ("recurrences found", str(int((recurrence["verdict"] == "recurred").sum()))),
            ("last recurrence check", "-" if last is None else f"{iso_utc(last['at'])}: {last['verdict']}"),
            ("follow-up reviews", ", ".join(follow_ups) or "-"),
            ("follow-up of", incident.follow_up_of or "-"),
            ("next window", f"{iso_utc(now - pd.Timedelta(hours=hours))} to {iso_utc(now)} ({hours:g} h)")]
    return pd.DataFrame(rows, columns=["field", "value"]).astype({"value": "object"})


#: Columns of :func:`signature_comparison`'s table.
SIGNATURE_COLUMNS = ("aspect", "key", "original", "current")
#: Signature parts compared key by key (weights), and those compared as one value.
_SIGNATURE_WEIGHTS = ("services", "metrics", "templates", "changes")
_SIGNATURE_VALUES = ("origin", "cause", "symptom")


def signature_comparison(ws: Workspace | str, incident_id: str, *, top: int = 8) -> tuple[dict[str, Any], pd.DataFrame]:
    """The incident's stored signature beside the signature of the window its last recurrence check
    examined (what moved in the incident, what moved then).

    Returns
    -------
    facts : dict
        ``checked_at``, ``window_start``, ``window_end`` (aware UTC or None), ``verdict``,
        ``similarity`` (float or None), ``parts`` (per-aspect similarity), ``has_original``,
        ``has_current``.
    table : pandas.DataFrame
        Columns :data:`SIGNATURE_COLUMNS`: one row per single-valued aspect (origin, cause,
        symptom; ``key`` empty) and, per weighted aspect (services, metrics, templates, changes),
        the ``top`` keys by their larger weight; a value missing on one side is None.
    """
    from ..analysis.pipeline import read_signature

    ws = open_workspace(ws)
    _incident(ws, incident_id)
    stored = read_signature(ws, incident_id)
    original = stored.to_dict() if stored is not None else {}
    with ws.knowledge_base() as kb:
        recurrence = [c for c in kb.list_checks(incident_id) if c.action_item_id is None]
    last = max(recurrence, key=lambda c: c.at) if recurrence else None
    facts = next((e for e in (last.evidence if last is not None else ())
                  if isinstance(e, dict) and e.get("kind") == "recurrence"), {})
    current = facts.get("current") if isinstance(facts.get("current"), dict) else {}
    rows: list[dict[str, Any]] = [{"aspect": a, "key": "", "original": original.get(a), "current": current.get(a)}
                                  for a in _SIGNATURE_VALUES if original.get(a) is not None or current.get(a) is not None]
    for aspect in _SIGNATURE_WEIGHTS:
        a, b = original.get(aspect) or {}, current.get(aspect) or {}
        keys = sorted(set(a) | set(b), key=lambda k: -max(abs(a.get(k) or 0.0), abs(b.get(k) or 0.0)))[:top]
        rows += [{"aspect": aspect, "key": k, "original": a.get(k), "current": b.get(k)} for k in keys]
    return ({"checked_at": None if last is None else last.at, "window_start": None if last is None else last.window_start,
             "window_end": None if last is None else last.window_end, "verdict": None if last is None else last.verdict,
             "similarity": None if last is None else last.score, "parts": dict(facts.get("parts") or {}),
             "has_original": bool(original), "has_current": bool(current)},
            _frame(rows, SIGNATURE_COLUMNS))


# --------------------------------------------------------------------------- helpers

def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...], times: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    for col in times:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def _hours(value: Any, name: str = "baseline_hours") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise TemplateParameterError(f"parameter {name!r}: expected a positive number of hours, got {value!r}")
    return float(value)




def _minutes(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return round((pd.Timestamp(end) - pd.Timestamp(start)) / pd.Timedelta(minutes=1), 2)


def _duration(start: Any, end: Any) -> str:
    minutes = _minutes(start, end)
    if minutes is None:
        return "-"
    return f"{minutes:g} min" if abs(minutes) < 120 else f"{minutes / 60:.1f} h"
