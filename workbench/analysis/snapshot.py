"""The enrichment snapshot of an incident: the system around it as the analysis saw it.

A review months later audits the decision against the system as it was, not as it is now, so
:func:`attach` (called once by :func:`workbench.analysis.analyze` when it stores a ranking) keeps
on the incident record (``Incident.snapshot``, versioned and exported in its YAML document):

``services``
    The involved services: the incident's own, plus the service of the engine's top hypothesis.
``neighbourhood``
    Every caller → callee edge that touches an involved service, from the declared topology and
    the spans: ``calls``, ``errors``, ``error_rate`` and ``p95_ms`` of the sampled calls in the
    analysis window and ``baseline_calls``/``baseline_error_rate`` in the baseline before it (no
    numbers where no span crossed the edge; ``declared`` says whether the topology lists it).
``versions``
    Per involved service with a deploy in the ``days`` before ``started`` or during the window:
    ``at_started`` (the version of the last deploy at or before ``started``), ``deployed_at``,
    ``previous`` (what it replaced), ``after`` (the version at the window's end), ``rolled_back``
    (versions a rollback during the incident replaced: a deploy with ``rollback: true`` or one
    going back to a version seen before) and ``deploys`` (the history, oldest first).
``changes``
    Config and feature-flag changes of the involved services in the ``days`` before ``started``,
    and every change (deploy, config, feature flag, scale) of any service inside the analysis
    window (``in_window``): the catalog deploy twelve minutes before a payments incident is context
    a reviewer wants even though catalog is not involved.
``alerts``
    The alerts that fired in the analysis window (any service).
``taken_for``
    ``started``, the analysis ``window`` and the baseline, and ``days``.

Everything is sorted and rounded so the same telemetry gives the same snapshot (a re-analysis
writes nothing when nothing changed). :func:`compare` is the recheck's side: deploys after the
incident, the versions now, and a version (or a config or flag value) the incident rolled back
that is back again.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..formats import iso_utc
from ..telemetry import schema
from ..telemetry.windows import analysis_window, baseline_window
from .correlate import _attributes as attributes_of, change_events

#: Days of deploy, config and feature-flag history kept before ``started``.
DEFAULT_DAYS = 7
#: Who the knowledge base records as the author of the snapshot.
WHO = "workbench-analysis"
#: Change kinds kept for the involved services over the whole history (deploys are in ``versions``).
HISTORY_KINDS = ("config_change", "feature_flag")


def take(incident: Any, events: pd.DataFrame, spans: pd.DataFrame | None = None,
         topology: pd.DataFrame | None = None, *, days: int = DEFAULT_DAYS, services: Iterable[str] = (),
         window: tuple[Any, Any] | None = None, baseline: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """The snapshot of ``incident`` from unified tables (see the module docstring).

    Parameters
    ----------
    incident : Incident record
        ``started``, ``services`` (and the window override) are used.
    events : pandas.DataFrame
        Unified ``events`` covering ``[started - days, window end)`` (more is cut away).
    spans : pandas.DataFrame, optional
        Unified ``spans`` covering the baseline and the window.
    topology : pandas.DataFrame, optional
        Declared ``caller``, ``callee`` pairs.
    days : int
        History kept before ``started``.
    services : iterable of str
        Services involved besides the incident's own (e.g. the top hypothesis' service).
    window, baseline : tuple, optional
        Default :func:`~workbench.telemetry.windows.analysis_window` and
        :func:`~workbench.telemetry.windows.baseline_window`.

    Returns
    -------
    dict
        JSON-safe: ``taken_for``, ``services``, ``neighbourhood``, ``versions``, ``changes``, ``alerts``.
    """
    started = pd.Timestamp(incident.started)
    w0, w1 = (pd.Timestamp(t) for t in (window or analysis_window(incident)))
    b0, b1 = (pd.Timestamp(t) for t in (baseline or baseline_window(incident)))
    since = started - pd.Timedelta(days=int(days))
    involved = sorted(dict.fromkeys([*incident.services, *[s for s in services if s]]))
    events = events if events is not None else schema.empty("events")
    events = events[(events["timestamp"] >= min(since, w0)) & (events["timestamp"] < w1)] if not events.empty else events
    changes = change_events(events)
    return {
        "taken_for": {"started": iso_utc(started), "window": {"start": iso_utc(w0), "end": iso_utc(w1)},
                      "baseline": {"start": iso_utc(b0), "end": iso_utc(b1)}, "days": int(days)},
        "services": involved,
        "neighbourhood": neighbourhood(spans, topology, involved, (w0, w1), (b0, b1)),
        "versions": versions(changes, involved, started, since, w1),
        "changes": _changes(changes, involved, since, (w0, w1)),
        "alerts": alerts(events, (w0, w1)),
    }


def neighbourhood(spans: pd.DataFrame | None, topology: pd.DataFrame | None, services: Sequence[str],
                  window: tuple[pd.Timestamp, pd.Timestamp],
                  baseline: tuple[pd.Timestamp, pd.Timestamp]) -> list[dict[str, Any]]:
    """Edges touching ``services``: declared ones and those the spans show, with call statistics."""
    wanted = set(services)
    declared = set()
    if topology is not None and not topology.empty:
        declared = {(str(a), str(b)) for a, b in zip(topology["caller"], topology["callee"])}
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    for row in _calls(spans, window, baseline).itertuples(index=False):
        stats.setdefault((str(row.caller), str(row.callee)), {})[row.phase] = (int(row.calls), int(row.errors),
                                                                               float(row.p95))
    out = []
    for caller, callee in sorted(declared | set(stats)):
        if caller not in wanted and callee not in wanted:
            continue
        found = stats.get((caller, callee), {})
        row: dict[str, Any] = {"caller": caller, "callee": callee, "declared": (caller, callee) in declared}
        if "window" in found:
            n, errors, p95 = found["window"]
            row.update(calls=n, errors=errors, error_rate=round(errors / n, 4), p95_ms=round(p95, 1))
        if "baseline" in found:
            n, errors, _ = found["baseline"]
            row.update(baseline_calls=n, baseline_error_rate=round(errors / n, 4))
        out.append(row)
    return out


def versions(changes: pd.DataFrame, services: Sequence[str], started: pd.Timestamp, since: pd.Timestamp,
             end: pd.Timestamp) -> list[dict[str, Any]]:
    """Per service of ``services`` with a deploy in ``[since, end)``: its versions around ``started``."""
    out = []
    deploys = changes[(changes["kind"] == "deploy") & (changes["timestamp"] >= since) & (changes["timestamp"] < end)]
    for service in services:
        own = deploys[deploys["service"] == service]
        if own.empty:
            continue
        history = [_deploy(r) for r in own.itertuples()]
        before = [d for d, t in zip(history, own["timestamp"]) if t <= started]
        during = [d for d, t in zip(history, own["timestamp"]) if t > started]
        last = before[-1] if before else None
        seen = {d["version"] for d in before if d["version"]} | {d["previous_version"] for d in before
                                                                  if d["previous_version"]}
        rolled_back = []
        for d in during:
            back = d["rollback"] or (d["version"] is not None and d["version"] in seen)
            if back and d["previous_version"] and d["previous_version"] not in rolled_back:
                rolled_back.append(d["previous_version"])
            seen.update(v for v in (d["version"], d["previous_version"]) if v)
        out.append({"service": service, "at_started": None if last is None else last["version"],
                    "deployed_at": None if last is None else last["time"],
                    "previous": None if last is None else last["previous_version"],
                    "after": history[-1]["version"], "rolled_back": rolled_back, "deploys": history})
    return out


def alerts(events: pd.DataFrame, window: tuple[pd.Timestamp, pd.Timestamp]) -> list[dict[str, Any]]:
    """Alert events in ``window``: ``time``, ``service``, ``name`` (the alert name when given), ``summary``."""
    if events is None or events.empty:
        return []
    rows = events[(events["kind"] == "alert") & (events["timestamp"] >= window[0]) & (events["timestamp"] < window[1])]
    rows = rows.sort_values(["timestamp", "service", "summary"], kind="stable")
    out = []
    for t, service, summary, attrs in zip(rows["timestamp"], rows["service"], rows["summary"],
                                          rows["attributes"] if "attributes" in rows else [None] * len(rows)):
        a = attributes_of(attrs)
        out.append({"time": iso_utc(t), "service": str(service), "name": _text(a.get("alertname")),
                    "summary": str(summary)})
    return out


def compare(snapshot: Mapping[str, Any] | None, events: pd.DataFrame, since: Any, until: Any) -> dict[str, Any] | None:
    """What changed since the incident, for the recheck: the changes of its services in ``[since, until)``.

    Returns None without a snapshot (or one with neither versions nor reverted changes); else
    ``services`` (per service with a version in the snapshot: ``incident`` (version at started),
    ``now`` (the last deploy before ``until``, else the incident's ``after``), ``deploys`` in the
    window), ``redeployed``: deploys in the window of a version the incident rolled back
    (``{service, version, time}``), and ``reapplied``: config or feature-flag changes in the window
    that set a key back to the value the incident reverted (:func:`reverted`; ``{service, kind, key,
    value, time}``). Either means the bad change is back, which is evidence for a recurrence.
    """
    undone = reverted(snapshot)
    if not snapshot or not (snapshot.get("versions") or undone):
        return None
    t0, t1 = pd.Timestamp(since), pd.Timestamp(until)
    changes = change_events(events)
    changes = changes[(changes["timestamp"] >= t0) & (changes["timestamp"] < t1)]
    deploys = changes[changes["kind"] == "deploy"]
    out: dict[str, Any] = {"since": iso_utc(t0), "until": iso_utc(t1), "services": [], "redeployed": [],
                           "reapplied": []}
    for v in snapshot.get("versions") or ():
        own = [_deploy(r) for r in deploys[deploys["service"] == v.get("service")].itertuples()]
        out["services"].append({"service": v.get("service"), "incident": v.get("at_started"),
                                "now": own[-1]["version"] if own else v.get("after"), "deploys": own})
        bad = set(v.get("rolled_back") or ())
        out["redeployed"] += [{"service": v.get("service"), "version": d["version"], "time": d["time"]}
                              for d in own if d["version"] in bad]
    for r in changes[changes["kind"].isin(HISTORY_KINDS)].itertuples():
        a = r.attributes
        for u in undone:
            if (r.service, r.kind, _text(a.get("key")), _text(a.get("new"))) == \
                    (u["service"], u["kind"], u["key"], u["value"]):
                out["reapplied"].append({**u, "time": iso_utc(r.timestamp)})
    return out


def reverted(snapshot: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Config and feature-flag changes made before ``started`` and undone during the incident (a later
    change of the same service and key from the earlier change's new value back to its old one):
    ``{service, kind, key, value}`` with the value that was undone."""
    if not snapshot:
        return []
    started = (snapshot.get("taken_for") or {}).get("started") or ""
    changes = [c for c in snapshot.get("changes") or () if c.get("kind") in HISTORY_KINDS and c.get("key")]
    out = []
    for c in changes:
        if c["time"] > started:  # ISO 8601 UTC strings with Z sort as times
            continue
        undo = any(d["time"] > started and (d["service"], d["kind"], d.get("key")) == (c["service"], c["kind"], c["key"])
                   and d.get("old") == c.get("new") and d.get("new") == c.get("old") for d in changes)
        item = {"service": c["service"], "kind": c["kind"], "key": c["key"], "value": c.get("new")}
        if undo and item not in out:
            out.append(item)
    return out


def attach(kb: Any, store: Any, incident_id: str, *, window: Any = None, services: Iterable[str] = (),
           days: int = DEFAULT_DAYS, who: str = WHO) -> dict[str, Any]:
    """Take the snapshot of ``incident_id`` and store it on the incident (only when it differs).

    Parameters
    ----------
    kb : KnowledgeBase
    store : TelemetryStore
        Events of the ``days`` before ``started`` are read from it (and the spans and topology
        unless ``window`` holds them).
    window : TelemetryWindow, optional
        The analysis' window (its spans and topology are reused; its events are not: they cover
        only the baseline).
    services : iterable of str
        Services involved besides the incident's own.

    Returns
    -------
    dict
        The snapshot (as stored).
    """
    incident = kb.get_incident(incident_id)
    w0, w1 = analysis_window(incident)
    b0, b1 = baseline_window(incident)
    since = min(pd.Timestamp(incident.started) - pd.Timedelta(days=int(days)), w0)
    events = store.query("events", since, w1)
    spans = window.spans if window is not None else store.query("spans", b0, w1)
    topology = window.topology if window is not None else store.query("topology")
    snap = take(incident, events, spans, topology, days=days, services=services, window=(w0, w1), baseline=(b0, b1))
    if incident.snapshot != snap:
        kb.update_incident(incident_id, incident.version, who, snapshot=snap)
    return snap


# --------------------------------------------------------------------------- helpers

def _calls(spans: pd.DataFrame | None, window: tuple[pd.Timestamp, pd.Timestamp],
           baseline: tuple[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    """Per (caller, callee, phase): ``calls``, ``errors`` and ``p95`` (ms) of the spans that cross from
    one service into another (a span whose parent span belongs to another service), ``phase`` being
    ``window`` or ``baseline`` by the span's start. Only the columns it needs are touched: the spans
    of a 25-hour frame carry their attributes, which copying would cost more than the counting."""
    columns = ["caller", "callee", "phase", "calls", "errors", "p95"]
    if spans is None or spans.empty:
        return pd.DataFrame(columns=columns)
    service_of = spans.drop_duplicates("span_id").set_index("span_id")["service"]
    caller = spans["parent_span_id"].map(service_of)
    cross = caller.notna() & (caller != spans["service"])
    start = spans["start"]
    phase = np.select([(start >= window[0]) & (start < window[1]), (start >= baseline[0]) & (start < baseline[1])],
                      ["window", "baseline"], default="")
    keep = cross.to_numpy() & (phase != "")
    if not keep.any():
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame({"caller": caller[keep].astype(str).to_numpy(), "callee": spans["service"][keep].astype(str).to_numpy(),
                          "phase": phase[keep], "error": spans["status"][keep].astype(str).eq("error").to_numpy(),
                          "duration": spans["duration_ms"][keep].to_numpy(dtype=float)})
    grouped = frame.groupby(["caller", "callee", "phase"], sort=True)
    out = grouped.agg(calls=("error", "size"), errors=("error", "sum"), p95=("duration", lambda d: np.percentile(d, 95)))
    return out.reset_index()[columns]


def _changes(changes: pd.DataFrame, services: Sequence[str], since: pd.Timestamp,
             window: tuple[pd.Timestamp, pd.Timestamp]) -> list[dict[str, Any]]:
    in_window = (changes["timestamp"] >= window[0]) & (changes["timestamp"] < window[1])
    history = changes["kind"].isin(HISTORY_KINDS) & changes["service"].isin(list(services)) & \
        (changes["timestamp"] >= since) & (changes["timestamp"] < window[1])
    out = []
    for r, inside in zip(changes[in_window | history].itertuples(), in_window[in_window | history]):
        a = r.attributes
        row = {"time": iso_utc(r.timestamp), "service": r.service, "kind": r.kind, "summary": r.summary,
               "in_window": bool(inside)}
        if r.kind == "deploy":
            row.update(version=_text(a.get("version")), previous_version=_text(a.get("previous_version")))
        elif r.kind in HISTORY_KINDS:
            row.update(key=_text(a.get("key")), old=_text(a.get("old")), new=_text(a.get("new")))
        out.append(row)
    return out


def _deploy(r: Any) -> dict[str, Any]:
    a = r.attributes
    return {"time": iso_utc(r.timestamp), "version": _text(a.get("version")),
            "previous_version": _text(a.get("previous_version")), "rollback": bool(r.rollback),
            "summary": r.summary}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)

