"""The score of every (service, cause) candidate and the ranking (formula: ``docs/ranking.md``)."""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .. import confidence, correlate, localize
from ..evidence import Evidence, ServiceSuspicion, TelemetryWindow
from ..localize import SHARED_PREFIXES as _SHARED_PREFIXES
from ..signature import PastIncident, Signature, parse_signal, signature_from_analysis, similarity, template_text
from ...formats import as_utc, clip, finite
from .model import (_ERROR_TEXT, _NEW_TEXT, _RESOURCE_TEXT, CAUSE_WEIGHTS, CHANGE_DECAY, CHANGE_WEIGHTS,
                    DEFAULT_LIMIT, EVIDENCE_FLOOR, EXPLAIN_AWAY, HISTORY_BONUS, MAX_EVIDENCE, MIN_STRENGTH,
                    ONSET_MARGIN, PRIOR_WEIGHTS, PROPAGATION, RESOURCE_MIN_Z, RESOURCE_TOP, RESOURCE_WORDS,
                    RESOURCE_Z_FULL, RESOURCE_Z_START, SYMPTOM_WORDS, TRAFFIC_AFTER, TRAFFIC_BEFORE,
                    TRAFFIC_DISCOUNT, TRAFFIC_SPAN, TRAFFIC_START, TRAFFIC_WORDS, Hypothesis, _Service)
from .wording import _evidence, _similar_for, _summary

# --------------------------------------------------------------------------- ranking

def rank(window: TelemetryWindow, suspicions: Sequence[ServiceSuspicion], incident: Any = None,
         history: Sequence[PastIncident] = (), *, changes: pd.DataFrame | None = None,
         lookback: pd.Timedelta = correlate.DEFAULT_LOOKBACK, limit: int = DEFAULT_LIMIT,
         history_bonus: float = HISTORY_BONUS) -> list[Hypothesis]:
    """Rank (service, cause) hypotheses for one incident.

    Parameters
    ----------
    window : TelemetryWindow
        The incident's telemetry (``events`` for changes, ``metrics`` for the traffic ratio,
        ``topology`` for propagation).
    suspicions : list of ServiceSuspicion
        :func:`workbench.analysis.localize.localize` output.
    incident : Incident record or dict, optional
        Its ``started`` is the onset of services without one (else the window start).
    history : list of PastIncident
        Other incidents with their signatures and confirmed causes.
    changes : pandas.DataFrame, optional
        :func:`workbench.analysis.correlate.change_events` of the window (computed when omitted).
    lookback : pandas.Timedelta
        How far before an onset a change counts.
    limit : int
        Most hypotheses returned.
    history_bonus : float
        Largest bonus of a matching confirmed past incident (``1 + history_bonus * H``; 0: the
        history is shown as evidence but never moves a score).

    Returns
    -------
    list of Hypothesis
        Highest score first, ``rank`` 1..n; empty when nothing is suspicious.
    """
    positive = [s for s in suspicions if finite(s.score, 0.0) > 0]
    if not positive:
        return []
    changes = correlate.change_events(window.events) if changes is None else changes
    topology = correlate.Topology.from_frame(window.topology)
    fallback = _fallback_onset(positive, incident, window)
    services = _services(positive, fallback)
    _changes(services, changes, lookback)
    _resource_code(services, _resource_metrics(services, window), topology)
    _propagation(services, topology, window.step, as_utc(window.start))
    traffic_max = _traffic(services, window, topology, _started(incident))

    preliminary = _preliminary_signature(positive)
    sims = [(past, similarity(preliminary, past.signature)) for past in history]
    prior = [(past, similarity(preliminary, past.signature, PRIOR_WEIGHTS)) for past in history]

    thin = thin_baseline(window)
    out: list[Hypothesis] = []
    for name, svc in services.items():
        strengths = {
            "change": svc.C,
            "resource": svc.R * (1 - EXPLAIN_AWAY * svc.C),
            "code": svc.K * (1 - EXPLAIN_AWAY * svc.C) * (1 - 0.5 * svc.R),
            "traffic": svc.T * (1 - svc.C),
            "dependency": svc.U * (1 - max(svc.C, svc.R, svc.K, svc.T)),
        }
        for cause, strength in strengths.items():
            if strength < MIN_STRENGTH:
                continue
            if cause == "traffic":
                loc = max([svc.L] + [services[c].L for c in topology.callees(name, transitive=True) if c in services])
                prop, surge, evidence = 1.0, 1.0, strength
            else:
                loc, prop, surge = svc.L, svc.P, 1 - TRAFFIC_DISCOUNT * traffic_max
                evidence = EVIDENCE_FLOOR + (1 - EVIDENCE_FLOOR) * CAUSE_WEIGHTS[cause] * strength
            h = max((sim for past, sim in prior if (name, cause) in past.confirmed), default=0.0)
            score = loc * prop * surge * evidence * (1 + history_bonus * h)
            summary = _summary(cause, svc) + (f"; {thin}" if thin else "")
            hyp = Hypothesis(service=name, cause=cause, summary=summary, score=score,
                             parts={"L": round(loc, 4), "P": round(prop, 4), "S": round(surge, 4),
                                    "W": CAUSE_WEIGHTS[cause], "E": round(strength, 4), "H": round(h, 4)})
            hyp.evidence = _evidence(cause, svc, services, topology, sims)[:MAX_EVIDENCE]
            hyp.similar = _similar_for(name, cause, sims)
            out.append(hyp)
    _confidence(out)
    out.sort(key=lambda h: (-h.score, h.service, h.cause))
    out = out[:limit]
    for i, hyp in enumerate(out, start=1):
        hyp.rank = i
    return out


def thin_baseline(window: TelemetryWindow) -> str | None:
    """A warning when the baseline holds too little to compare with, else None.

    Per modality present in the incident window: fewer metric steps than the localiser needs
    (:data:`workbench.analysis.localize.MIN_METRIC_BASE`), or fewer log lines or spans than the least
    baseline it compares an operation on (:data:`workbench.analysis.localize.MIN_BASE_UNITS`). The text
    goes into every hypothesis' summary, so a reader knows the ranking compared with little.
    """
    lacking = []
    for table, column, need, what in (("metrics", "timestamp", localize.MIN_METRIC_BASE, "metric step(s)"),
                                      ("logs", "timestamp", localize.MIN_BASE_UNITS, "log line(s)"),
                                      ("spans", "start", localize.MIN_BASE_UNITS, "span(s)")):
        frame = getattr(window, table)
        if frame.empty or not (frame[column] >= window.start).any():
            continue
        base = frame[column][(frame[column] >= window.baseline_start) & (frame[column] < window.baseline_end)]
        count = base.dt.floor(window.step).nunique() if table == "metrics" else len(base)
        if count < need:
            lacking.append(f"{count} {what}")
    if not lacking:
        return None
    return (f"thin baseline ({', '.join(lacking)} before the incident): weak evidence, check it against "
            f"earlier normal data")


def _confidence(hypotheses: list[Hypothesis]) -> None:
    """Each hypothesis' calibrated probability (see :class:`Hypothesis`).

    A service's score is its best hypothesis' score (what orders the services a reviewer reads);
    its probability comes from that score's margin over the best other service
    (:func:`workbench.analysis.confidence.probabilities`) and is shared by its causes in
    proportion to their scores.
    """
    best: dict[str, float] = {}
    for h in hypotheses:
        best[h.service] = max(best.get(h.service, 0.0), finite(h.score, 0.0))
    probability = dict(zip(best, confidence.probabilities(list(best.values()))))
    for h in hypotheses:
        top = best[h.service]
        h.confidence = round(probability[h.service] * (finite(h.score, 0.0) / top if top > 0 else 0.0), 4)


# --------------------------------------------------------------------------- the factors

def onsets(suspicions: Iterable[ServiceSuspicion]) -> dict[str, pd.Timestamp | None]:
    """The onset of each service that changes and propagation are correlated with.

    The metric detector's onset (the first *sustained* anomalous step, carried by the service's
    ``metric`` evidence) when the service has one, else the suspicion's own onset (the earliest
    over all modalities, which a single early log line or slow span can set). Correlating a
    change with the sustained onset keeps a deploy one minute before the real start from looking
    like it came after a stray slow request an hour earlier.

    Returns
    -------
    dict
        Service -> UTC timestamp, or None when the service has no onset at all.
    """
    out: dict[str, pd.Timestamp | None] = {}
    for s in suspicions:
        times = [e.time for e in s.evidence if e.kind == "metric" and e.time is not None]
        onset = min(times) if times else s.onset
        out[s.service] = None if onset is None else as_utc(onset)
    return out


def _services(suspicions: Sequence[ServiceSuspicion], fallback: pd.Timestamp) -> dict[str, _Service]:
    top = max(finite(s.score, 0.0) for s in suspicions)
    ordered = sorted(suspicions, key=lambda s: (-finite(s.score, 0.0), s.service))
    found = onsets(ordered)
    out = {}
    for s in ordered:
        onset = found[s.service]
        svc = _Service(suspicion=s, L=finite(s.score, 0.0) / top, onset=onset if onset is not None else fallback)
        svc.has_onset = onset is not None
        out[s.service] = svc
    return out


def _propagation(services: dict[str, _Service], topology: correlate.Topology, step: Any = "1min",
                 start: pd.Timestamp | None = None) -> None:
    """``P(s)``: a callee moved first, or ``s``'s own error logs name the callee that failed.

    Onsets are compared on the step grid: a metric onset is a step, a log or span onset a single
    record's time, and comparing them raw would make every metric onset look a step late. A callee
    whose onset falls in the analysis window's first step (``start``) proves no precedence.
    """
    grid = pd.tseries.frequencies.to_offset(step)
    first = pd.Timestamp(start).floor(grid) if start is not None else pd.Timestamp.min.tz_localize("UTC")
    for name, svc in services.items():
        best: tuple[str, float, str] | None = None
        if svc.has_onset:
            mine = svc.onset.floor(grid)
            for callee in topology.callees(name, transitive=True):
                other = services.get(callee)
                if other is None or not other.has_onset or not other.onset.floor(grid) + ONSET_MARGIN < mine:
                    continue
                if other.onset.floor(grid) <= first:
                    # an onset in the window's first step is censored (the change may predate
                    # the window): it cannot show that the callee moved first
                    continue
                if best is None or other.L > best[1]:
                    lag = (svc.onset - other.onset).total_seconds() / 60
                    best = (callee, other.L, f"{name} depends on {callee}, which moved {lag:.0f} min earlier")
        for callee, ev in svc.blamed:
            other = services.get(callee)
            if other is not None and (best is None or other.L > best[1]):
                best = (callee, other.L, f"{name}'s errors name its callee {callee} ({clip(template_text(ev), 60)!r})")
        if best is not None:
            svc.first_callee = (best[0], best[1])
            svc.blame_reason = best[2]
            svc.P = 1 - PROPAGATION * best[1]


def _changes(services: dict[str, _Service], changes: pd.DataFrame, lookback: pd.Timedelta) -> None:
    if changes.empty:
        return
    found = correlate.changes_for(changes, {name: svc.onset for name, svc in services.items()}, lookback)
    for row in found.itertuples(index=False):
        svc = services[row.service]
        weight = CHANGE_WEIGHTS.get(row.kind, 0.0)
        if row.kind == "scale" and finite(row.replicas_delta, 0.0) > 0:
            weight *= 0.5
        if row.rollback:
            weight *= 0.5
        strength = weight * math.exp(-max(float(row.lag_minutes), 0.0) * 60 / CHANGE_DECAY.total_seconds())
        if strength > svc.C:
            svc.C = strength
            svc.change = {"timestamp": row.timestamp, "kind": row.kind, "summary": row.summary,
                          "lag_minutes": float(row.lag_minutes), "attributes": row.attributes}


def _resource_metrics(services: dict[str, _Service], window: TelemetryWindow) -> dict[str, list[Evidence]]:
    """Resource metrics that moved up, for the :data:`RESOURCE_TOP` most suspicious services.

    The localiser names only a service's few strongest metrics; a CPU at 100 % behind a 1000x
    latency is not among them, yet it is what tells ``resource`` from ``dependency``. The
    deviation is measured like the localiser's (sustained robust z: the second-largest step of
    the incident window against the baseline median and MAD, floored at 5 % of the level) and
    put on its scale (``log1p(z) / log1p(10)``). Infrastructure metrics shared with other
    services (``node_*``, ``host_*``) are not the service's own and are left out.
    """
    top = list(services)[:RESOURCE_TOP]
    metrics = window.metrics
    if metrics.empty or not top:
        return {}
    names = [n for n in metrics["name"].unique()
             if _has_word(str(n).lower(), RESOURCE_WORDS) and not str(n).lower().startswith(_SHARED_PREFIXES)]
    moves = correlate.metric_moves(metrics, top, names, (window.baseline_start, window.baseline_end),
                                   (window.start, window.end)) if names else None
    out: dict[str, list[Evidence]] = {}
    if moves is None:
        return out
    for row in moves[moves["z"] >= RESOURCE_MIN_Z].itertuples(index=False):
        svc = services[row.service]
        out.setdefault(row.service, []).append(Evidence(
            "metric", row.service, f"metric {row.name}", svc.onset if svc.has_onset else None,
            math.log1p(row.z) / math.log1p(10.0), "up",
            f"{row.name} {row.peak:.4g} vs {row.median:.4g} baseline median (robust z +{row.z:.1f})"))
    return out


def _resource_code(services: dict[str, _Service], extra: Mapping[str, list[Evidence]] | None = None,
                   topology: correlate.Topology | None = None) -> None:
    log_top = max((finite(e.magnitude, 0.0) for svc in services.values() for e in svc.suspicion.evidence
                   if _is_code_path(e)), default=0.0)
    extra = extra or {}
    for name, svc in services.items():
        callees = topology.callees(name) if topology is not None else []
        metric_ev = [e for e in svc.suspicion.evidence if e.kind == "metric" and finite(e.magnitude, 0.0) > 0]
        named = {e.signal for e in metric_ev}
        metric_ev += [e for e in extra.get(name, []) if e.signal not in named]
        symptom = False
        for ev in metric_ev:
            _, _, name = parse_signal("metric", ev.service, ev.signal)
            lname = name.lower()
            if _has_word(lname, RESOURCE_WORDS) and ev.direction != "down":
                svc.resource.append(ev)
                svc.R = max(svc.R, _resource_strength(finite(ev.magnitude, 0.0)))
            if _has_word(lname, SYMPTOM_WORDS):
                symptom = True
        weights: dict[int, float] = {}
        for ev in svc.suspicion.evidence:
            if ev.kind == "span":
                symptom = True
            if not _is_code_path(ev) or log_top <= 0 or finite(ev.magnitude, 0.0) <= 0:
                continue
            text = template_text(ev)
            erroring = bool(_ERROR_TEXT.search(f"{text} {ev.explanation}")) and ev.direction != "down"
            named = [c for c in callees if _names(text, c)]
            if erroring and named:
                # "call to payments failed": the error is the callee's, propagated here
                svc.blamed.extend((c, ev) for c in named)
                symptom = True
                continue
            if erroring and _RESOURCE_TEXT.search(text):
                # "connection pool exhausted", "OutOfMemoryError": a resource speaking, not a bug
                svc.resource_logs.append(ev)
                symptom = True
                continue
            if erroring:
                weight = 2.0 if _NEW_TEXT.search(f"{ev.signal} {ev.explanation}") else 1.0
                symptom = True
            else:
                # a template that vanished or changed frequency, a call no longer made: the code
                # path changed (a wrong return value skips code, an exception the lines after it)
                weight = 1.0
            # The strength is the evidence's own size (the localiser already weighed errors and
            # code-path changes alike); the weight only orders the evidence shown.
            svc.code.append(ev)
            weights[id(ev)] = weight
            svc.K = max(svc.K, min(1.0, finite(ev.magnitude, 0.0) / log_top))
        if svc.resource and svc.resource_logs:
            svc.resource.extend(svc.resource_logs[:2])
        svc.resource.sort(key=lambda e: (e.kind != "metric", -finite(e.magnitude, 0.0)))
        svc.code.sort(key=lambda e: -weights.get(id(e), 1.0) * finite(e.magnitude, 0.0))
        svc.U = 1.0 if symptom else 0.5


def _resource_strength(magnitude: float) -> float:
    """``R`` of one resource metric: its sustained robust z, recovered from the magnitude
    (``log1p(z) / log1p(10)``, the localiser's scale and :func:`_resource_metrics`'), mapped
    log-linearly from :data:`RESOURCE_Z_START` (0) to :data:`RESOURCE_Z_FULL` (1)."""
    z = math.expm1(max(magnitude, 0.0) * math.log1p(10.0))
    lo, hi = math.log1p(RESOURCE_Z_START), math.log1p(RESOURCE_Z_FULL)
    return min(1.0, max(0.0, (math.log1p(z) - lo) / (hi - lo)))


def _names(text: str, service: str) -> bool:
    """Whether ``text`` names ``service`` as a word (``call to payments failed``)."""
    return re.search(r"(?<![\w-])" + re.escape(service) + r"(?![\w-])", text, re.IGNORECASE) is not None


def _is_code_path(ev: Evidence) -> bool:
    """Log template evidence, or a call that appeared/vanished (the log modality's span events)."""
    return ev.kind == "log" or (ev.kind == "span" and ev.signal.startswith("span call"))


def _traffic(services: dict[str, _Service], window: TelemetryWindow, topology: correlate.Topology,
             started: pd.Timestamp | None) -> float:
    entries = topology.entry_services(list(services))
    if not entries or window.metrics.empty:
        return 0.0
    metrics = window.metrics
    names = [n for n in metrics["name"].unique() if _has_word(str(n).lower(), TRAFFIC_WORDS)]
    if not names:
        return 0.0
    best = 0.0
    for name in entries:
        svc = services[name]
        # where the shift is looked for: the entry's own sustained onset, and the incident's start
        anchors = sorted({t for t in (svc.onset if svc.has_onset else None, started) if t is not None})
        for anchor in anchors:
            shifts = correlate.rate_shift(metrics, name, names, anchor, TRAFFIC_BEFORE, TRAFFIC_AFTER, window.end)
            for row in shifts.itertuples(index=False):
                strength = min(1.0, max(0.0, (row.ratio - TRAFFIC_START) / TRAFFIC_SPAN))
                if strength > svc.T or svc.traffic is None:
                    svc.T = strength
                    svc.traffic = {"metric": row.metric, "ratio": row.ratio, "before": row.before,
                                   "after": row.after, "at": row.at}
        best = max(best, svc.T)
    return best


# --------------------------------------------------------------------------- helpers

def _preliminary_signature(suspicions: Sequence[ServiceSuspicion]) -> Signature:
    # Before ranking there is no cause yet: compare on services, metrics and templates.
    return signature_from_analysis(suspicions)


def _fallback_onset(suspicions: Sequence[ServiceSuspicion], incident: Any, window: TelemetryWindow) -> pd.Timestamp:
    found = [t for t in onsets(suspicions).values() if t is not None]
    if found:
        return min(found)
    started = _started(incident)
    return started if started is not None else pd.Timestamp(window.start)


def _started(incident: Any) -> pd.Timestamp | None:
    if incident is None:
        return None
    started = incident.get("started") if isinstance(incident, Mapping) else getattr(incident, "started", None)
    return None if started is None else as_utc(started)


def _has_word(name: str, words: Sequence[str]) -> bool:
    tokens = set(re.split(r"[^a-z0-9]+", name))
    return any(w in tokens or ("_" in w and w in name) or (len(w) > 3 and w in name) for w in words)
