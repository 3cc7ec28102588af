"""Root-cause hypotheses: (service, cause) candidates ranked by a documented score.

A hypothesis says "the incident started in SERVICE because of CAUSE", with the evidence behind it
and the similar past incidents whose causes a human confirmed. The tool only proposes: every
hypothesis it makes has status ``proposed``; confirming or rejecting is a reviewer's decision in
the knowledge base.

Causes (:data:`workbench.store.CAUSES`): ``change`` (a deploy, config change, flag or scaling of
the service shortly before its onset), ``resource`` (CPU, memory, a DB pool, a queue saturating),
``code`` (new error/exception log templates without a change to blame), ``traffic`` (more requests
arriving at an entry service with no change before it) and ``dependency`` (the service degraded
with nothing of its own to explain it: something it calls that we do not observe, a database or
an outside API).

The score
---------
For a service ``s`` and a cause ``c`` other than traffic::

    score(s, c) = L(s) * P(s) * S * (0.5 + 0.5 * W[c] * E_c(s)) * (1 + 0.25 * H(s, c))

and for a traffic surge at an entry service ``e``::

    score(e, traffic) = D(e) * T(e) * (1 + 0.25 * H(e, traffic))

Localisation carries at least half of a hypothesis' score and its cause evidence can at most
double it (:data:`EVIDENCE_FLOOR`): which service is the origin is the localiser's job
(:func:`workbench.analysis.localize.localize`, measured on real incidents); the cause evidence decides
which hypothesis of a service comes first and only reorders services whose suspicions are close.

Onsets: the onset of a service is its metric detector onset (the first *sustained* anomalous
step) when it has one, else the localiser's (:func:`onsets`).

``L(s)`` - localisation, in [0, 1]
    ``s``'s origin suspicion divided by the highest of the incident.
``P(s)`` - propagation, in [0.4, 1]
    ``1 - 0.6 * V(s)``, where ``V(s)`` is the highest ``L`` among the services ``s`` calls
    (directly or not, :class:`workbench.analysis.correlate.Topology`) whose onset is more than one step
    (:data:`ONSET_MARGIN`) earlier than ``s``'s, or that ``s``'s own error templates name
    (``call to payments failed: 500``): when something ``s`` depends on moved first or is
    blamed in ``s``'s logs, that callee, not ``s``, is the likely origin. Such error templates
    are not counted as ``s``'s code evidence.
``S`` - surge, in [0.5, 1]
    ``1 - 0.5 * T*`` where ``T*`` is the strongest traffic strength of the incident: a surge
    explains saturation, errors and latency everywhere downstream.
``W[c]`` - prior weight of the cause (:data:`CAUSE_WEIGHTS`)
    change 1.0, resource 0.85, code 0.85, dependency 0.5: a specific, timed fact beats a
    symptom class, and "nothing of its own explains it" is the weakest claim.
``E_c(s)`` - strength of the cause's own evidence, in [0, 1]
    - change ``C(s) = max_k kind_weight(k) * exp(-max(lag_k, 0) / 15 min)`` over the changes
      ``k`` of ``s`` within :data:`workbench.analysis.correlate.DEFAULT_LOOKBACK` (30 min) before ``s``'s
      onset (:func:`workbench.analysis.correlate.changes_before`; a change after the onset never
      counts). kind_weight: deploy 1.0, config_change 1.0, feature_flag 0.7, scale 0.4; halved
      for a scale-up (a reaction to load more often than a cause) and for a rollback. A change
      one minute before gives 0.94, fifteen minutes before 0.37.
    - resource ``R(s) * (1 - 0.7 C(s))``: ``R`` is the strongest upward move of a resource
      metric of ``s`` (cpu, memory, heap, gc, pool, queue, disk, thread, connection, fd), from
      the localiser's evidence and, for the five most suspicious services, the resource
      metrics themselves (:func:`_resource_metrics`), as
      ``clip((log1p(z) - log1p(10)) / (log1p(100) - log1p(10)), 0, 1)`` of its sustained
      robust z: a resource that causes an incident leaves its range by far, a mild move is a
      symptom (:data:`RESOURCE_Z_START`). A change just before explains the saturation away
      (it is the change's effect).
    - code ``K(s) * (1 - 0.7 C(s)) * (1 - 0.5 R(s))``: ``K`` is the strongest code-path log
      evidence of ``s`` divided by the strongest of the incident: an error template (error,
      exception, fail, timeout… or ERROR lines) counts 1, or 2 when it is new (not in the
      baseline); a template that vanished or changed frequency, or a call no longer made,
      counts 0.5 (a wrong return value skips code); capped at 1. An error template that speaks
      of a resource (pool exhausted, out of memory, too many open files…) supports
      ``resource`` instead. After a change, new errors are the change's effect; with a
      saturated resource, partly the resource's.
    - dependency ``U(s) * (1 - max(C, R, K, T))``: ``U`` is 1 when ``s``'s evidence shows
      latency or errors, 0.5 otherwise.
``T(e)`` - traffic strength, in [0, 1], entry services only (nobody calls them)
    ``clip((ratio - 1.3) / 0.7, 0, 1) * (1 - C(e))`` where ratio is the median request rate
    (request_rate, rps, qps, throughput, workload…) in the 15 minutes from the onset over the
    median in the hour before (a 2x surge gives 1), the larger of the ratios at the entry's own
    onset and at the incident's ``started``; a change of the entry just before explains it.
``D(e)`` - what the surge explains
    The highest ``L`` among ``e`` and the services it calls: a surge at the entry reaches
    everything downstream at once (their onsets may even come first), so its localisation is
    the most suspicious service it reaches, not the entry's own suspicion. The ratio is the whole
    of the evidence, so there is no floor: a weak surge gives a weak hypothesis.
``H(s, c)`` - history, in [0, 1]
    The highest similarity of a past incident (one that started before this one, see
    :func:`workbench.analysis.pipeline.load_history`) whose confirmed hypothesis is the same ``(s, c)``:
    a tie-breaker worth at most +25 % (:data:`HISTORY_BONUS`), never a substitute for evidence in
    this incident. The similarity is :func:`workbench.analysis.signature.similarity` over the evidence
    aspects only (:data:`PRIOR_WEIGHTS`: services, metrics, templates, symptom, changes), not
    origin and cause: those are the engine's guess on one side and a reviewer's label on the other.
    Measured with ``python benchmarks/prior.py`` (online, chronological, leak-guarded; README):
    on the sample the true cause's lead over the runner-up grows by 0.041 (mean log ratio) against
    0.017 with the confirmed labels shuffled; on the 32 nezha cases AC@1 goes 0.688 -> 0.719
    (shuffled labels 0.689-0.700). Comparing the full signature instead gave 0.026 on the sample
    (controls 0.016-0.017) and no AC@1 change on nezha.

Candidates with a cause strength below :data:`MIN_STRENGTH` (0.05) are not proposed. Ties break
by service, then cause, so the same input gives the same ranking.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from . import confidence, correlate, localize
from .evidence import Evidence, ServiceSuspicion, TelemetryWindow
from .localize import SHARED_PREFIXES as _SHARED_PREFIXES
from .signature import (SIMILAR_MIN, WEIGHTS, PastIncident, Signature, parse_signal, signature_from_analysis,
                        similar_incidents, similarity, template_text)
from ..formats import as_utc, clip, finite

__all__ = ["CAUSE_WEIGHTS", "CHANGE_WEIGHTS", "Hypothesis", "PastIncident", "onsets", "rank", "similar_incidents"]

#: Prior weight of each cause (``W[c]`` in the module docstring; traffic has no floor, see ``D``).
CAUSE_WEIGHTS: dict[str, float] = {"change": 1.0, "traffic": 1.0, "resource": 0.85, "code": 0.85, "dependency": 0.5}
#: Weight of a change kind (``kind_weight`` in the module docstring).
CHANGE_WEIGHTS: dict[str, float] = {"deploy": 1.0, "config_change": 1.0, "feature_flag": 0.7, "scale": 0.4}
#: Time constant of the change strength's decay with the lag before the onset.
CHANGE_DECAY = pd.Timedelta(minutes=15)
#: How much a change explains away a resource or code signal of the same service.
EXPLAIN_AWAY = 0.7
#: Share of the score that is localisation alone: cause evidence can at most double it.
EVIDENCE_FLOOR = 0.5
#: Weakest cause evidence that still makes a hypothesis.
MIN_STRENGTH = 0.05
#: Largest discount of every non-traffic hypothesis during a traffic surge at an entry service.
TRAFFIC_DISCOUNT = 0.5
#: Largest bonus of a matching confirmed past incident.
HISTORY_BONUS = 0.25
#: Signature aspects the history term compares (``H``): what moved, not who was blamed. The
#: origin and cause of the incident being ranked are the engine's own first guess and those of a
#: past incident are a reviewer's verdict, so comparing them would make ``H`` reward agreement
#: between today's guess and yesterday's label (measured: benchmarks/prior.py's shuffled-label
#: controls then kept most of the gain) instead of evidence that looks like a confirmed case.
PRIOR_WEIGHTS: dict[str, float] = {k: v for k, v in WEIGHTS.items() if k not in ("origin", "cause")}
#: How much earlier a callee's onset must be to count as "moved first" (onsets are steps apart).
ONSET_MARGIN = pd.Timedelta(minutes=1)
#: Largest discount of a service whose callee moved first.
PROPAGATION = 0.6
#: Services whose resource metrics are read directly (the most suspicious), and the least
#: sustained robust z of a resource metric that counts as moved.
RESOURCE_TOP = 5
RESOURCE_MIN_Z = 3.0
#: Sustained robust z of a resource metric from which it starts to count as a cause, and at
#: which it counts fully. A resource that causes an incident is driven far out of its range:
#: on Nezha, CPU under injected contention reaches z 96-390 while the CPU of a pod whose
#: network is delayed moves z 2.5-9 (it works a little more on retries); both are "moves".
RESOURCE_Z_START, RESOURCE_Z_FULL = 10.0, 100.0
#: Request-rate ratio at which traffic strength starts, and the span to full strength.
TRAFFIC_START, TRAFFIC_SPAN = 1.3, 0.7
#: Windows of the request-rate ratio: after the onset, and before it.
TRAFFIC_AFTER, TRAFFIC_BEFORE = pd.Timedelta(minutes=15), pd.Timedelta(minutes=60)
#: Most hypotheses kept, and most evidence items per hypothesis.
DEFAULT_LIMIT = 10
MAX_EVIDENCE = 8
#: Similar past incidents attached to each hypothesis (at least :data:`~workbench.analysis.signature.SIMILAR_MIN` alike).
SIMILAR_LIMIT = 3

RESOURCE_WORDS = ("cpu", "memory", "mem", "heap", "gc", "pool", "queue", "disk", "thread", "connection", "fd",
                  "file_descriptor", "saturation", "swap", "iowait")
TRAFFIC_WORDS = ("request_rate", "requests", "rps", "qps", "throughput", "workload", "request_count")
SYMPTOM_WORDS = ("latency", "duration", "error", "fail", "p50", "p90", "p95", "p99", "timeout", "success")
_ERROR_TEXT = re.compile(r"exception|error|fail|fatal|panic|timeout|timed out|refused|denied|unreachable|"
                         r"traceback|exhausted|\bERROR\b", re.IGNORECASE)
_RESOURCE_TEXT = re.compile(r"pool|exhausted|out ?of ?memory|oom|heap space|too many (?:open files|connections)|"
                            r"no space left|disk full|queue (?:is )?full|thread", re.IGNORECASE)
_NEW_TEXT = re.compile(r"\bnew\b|first seen|never seen|not in the baseline", re.IGNORECASE)


@dataclass
class Hypothesis:
    """One proposed root cause.

    Attributes
    ----------
    service : str
    cause : str
        One of ``change``, ``resource``, ``dependency``, ``code``, ``traffic``.
    summary : str
        One line a responder can check.
    score : float
        The documented score (module docstring); comparable within one incident.
    rank : int
        1 = most likely.
    evidence : list of Evidence
        Strongest first: the cause's own facts, then the service's anomaly, topology and history.
    similar : list of dict
        Similar past incidents whose confirmed hypothesis shares this one's service or cause
        (the same pair first): ``incident_id``, ``title``, ``cause``, ``service``,
        ``similarity`` (0-1), at most :data:`SIMILAR_LIMIT`.
    parts : dict
        The factors of the score (``L`` or ``D``, ``P``, ``S``, ``W``, ``E`` = the cause strength,
        ``H``) for inspection; not stored.
    confidence : float or None
        Calibrated probability (0-1) that this is the root cause (:mod:`.confidence`): the
        probability that the hypothesis' service is the origin, for the service's strongest cause,
        scaled by the score ratio for its weaker causes.
    """

    service: str
    cause: str
    summary: str
    score: float
    rank: int = 0
    evidence: list[Evidence] = field(default_factory=list)
    similar: list[dict[str, Any]] = field(default_factory=list)
    parts: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None

    @property
    def status(self) -> str:
        """Always ``proposed``: the tool never confirms."""
        return "proposed"

    def to_dict(self) -> dict[str, Any]:
        """The knowledge base's hypothesis fields (:meth:`KnowledgeBase.add_hypothesis`)."""
        return {"service": self.service, "cause": self.cause, "summary": self.summary,
                "score": round(float(self.score), 4), "rank": int(self.rank), "status": "proposed",
                "confidence": None if self.confidence is None else round(float(self.confidence), 4),
                "evidence": [e.to_dict() for e in self.evidence], "similar": [dict(s) for s in self.similar]}


@dataclass
class _Service:
    """Per-service inputs of the score."""

    suspicion: ServiceSuspicion
    L: float
    onset: pd.Timestamp
    P: float = 1.0
    first_callee: tuple[str, float] | None = None
    blame_reason: str = ""
    blamed: list[tuple[str, Evidence]] = field(default_factory=list)
    C: float = 0.0
    change: dict[str, Any] | None = None
    R: float = 0.0
    resource: list[Evidence] = field(default_factory=list)
    resource_logs: list[Evidence] = field(default_factory=list)
    K: float = 0.0
    code: list[Evidence] = field(default_factory=list)
    T: float = 0.0
    traffic: dict[str, Any] | None = None
    U: float = 0.5
    has_onset: bool = False


# --------------------------------------------------------------------------- ranking

def rank(window: TelemetryWindow, suspicions: Sequence[ServiceSuspicion], incident: Any = None,
         history: Sequence[PastIncident] = (), *, changes: pd.DataFrame | None = None,
         lookback: pd.Timedelta = correlate.DEFAULT_LOOKBACK, limit: int = DEFAULT_LIMIT) -> list[Hypothesis]:
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
    _propagation(services, topology)
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
            score = loc * prop * surge * evidence * (1 + HISTORY_BONUS * h)
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
    (:data:`workbench.localize.MIN_METRIC_BASE`), or fewer log lines or spans than the least
    baseline it compares an operation on (:data:`workbench.localize.MIN_BASE_UNITS`). The text
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


def _propagation(services: dict[str, _Service], topology: correlate.Topology) -> None:
    """``P(s)``: a callee moved first, or ``s``'s own error logs name the callee that failed."""
    for name, svc in services.items():
        best: tuple[str, float, str] | None = None
        if svc.has_onset:
            for callee in topology.callees(name, transitive=True):
                other = services.get(callee)
                if other is None or not other.has_onset or not other.onset + ONSET_MARGIN < svc.onset:
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
                # path changed (a wrong return value skips code) - weaker than a new error
                weight = 0.5
            svc.code.append(ev)
            weights[id(ev)] = weight
            svc.K = max(svc.K, min(1.0, weight * finite(ev.magnitude, 0.0) / log_top))
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


# --------------------------------------------------------------------------- text and evidence

def _summary(cause: str, svc: _Service) -> str:
    name = svc.suspicion.service
    at = _hhmm(svc.onset)
    if cause == "change" and svc.change:
        lag = svc.change["lag_minutes"]
        when = f"{lag:.0f} min before {name} went anomalous at {at}" if lag >= 0.5 else f"the minute {name} went anomalous"
        return f"{svc.change['summary']} ({svc.change['kind']}) at {_hhmm(svc.change['timestamp'])}, {when}"
    if cause == "resource":
        names = _metric_names(e for e in svc.resource if e.kind == "metric")
        return f"{name} ran out of a resource: {', '.join(names[:3])} rose from {at}"
    if cause == "code":
        top = svc.code[0] if svc.code else None
        text = clip(template_text(top), 90) if top is not None else "its logs"
        erroring = top is not None and bool(_ERROR_TEXT.search(f"{text} {top.explanation}")) and top.direction != "down"
        new = top is not None and bool(_NEW_TEXT.search(f"{top.signal} {top.explanation}"))
        if erroring:
            what = f"{name} logs {'new' if new else 'more'} errors from {at}"
        else:
            what = f"{name}'s code path changed from {at} (log templates or calls appeared or vanished)"
        after = " with no change before them" if svc.C == 0 else f", after {svc.change['summary']}" if svc.change else ""
        return f"{what}{after}: {text}"
    if cause == "traffic" and svc.traffic:
        t = svc.traffic
        return (f"Traffic surge at {name}: {t['metric']} {t['ratio']:.1f}x the hour before from {_hhmm(t['at'])}, "
                f"with no change before it")
    if cause == "dependency" and svc.first_callee is not None:
        return f"{name} degraded from {at} through a service it calls: {svc.blame_reason}"
    if cause == "dependency":
        return (f"{name} degraded from {at} with no change, resource or new error of its own: "
                f"something it depends on that is not observed (a database, an outside API) is the likely cause")
    return f"{name}: {cause}"


def _evidence(cause: str, svc: _Service, services: dict[str, _Service], topology: correlate.Topology,
              sims: list[tuple[PastIncident, float]]) -> list[Evidence]:
    name = svc.suspicion.service
    out: list[Evidence] = []
    if cause == "change" and svc.change:
        c = svc.change
        attrs = c["attributes"] if isinstance(c["attributes"], dict) else {}
        detail = ", ".join(f"{k} {attrs[k]}" for k in ("previous_version", "version", "key", "old", "new") if k in attrs)
        out.append(Evidence("change", name, f"{c['kind']} {c['summary']}", c["timestamp"], round(svc.C, 4), None,
                            f"{c['summary']} at {_hhmm(c['timestamp'])}, {c['lag_minutes']:.1f} min before the onset"
                            + (f" ({detail})" if detail else "")))
    elif cause == "resource":
        out.extend(svc.resource[:3])
    elif cause == "code":
        out.extend(svc.code[:3])
    elif cause == "traffic" and svc.traffic:
        t = svc.traffic
        out.append(Evidence("traffic", name, f"metric {t['metric']}", t["at"], round(t["ratio"], 4), "up",
                            f"{t['metric']} median {t['after']:.4g} in the 15 min from {_hhmm(t['at'])} vs "
                            f"{t['before']:.4g} in the hour before ({t['ratio']:.1f}x); no change of {name} before it"))
    for ev in svc.suspicion.evidence:
        if len(out) >= 5:
            break
        if ev not in out:
            out.append(ev)
    followers = [other for other in topology.callers(name, transitive=True)
                 if other in services and services[other].has_onset and svc.has_onset
                 and services[other].onset > svc.onset]
    if followers:
        lags = [(services[f].onset - svc.onset).total_seconds() / 60 for f in followers]
        out.append(Evidence("topology", name, "callers moved later", svc.onset, float(len(followers)), None,
                            f"{', '.join(sorted(followers))} call {name} and moved {min(lags):.0f}-{max(lags):.0f} min after it"))
    if svc.first_callee is not None:
        callee = svc.first_callee[0]
        out.append(Evidence("topology", name, f"callee {callee} is the likelier origin", services[callee].onset,
                            round(svc.first_callee[1], 4), None,
                            f"{svc.blame_reason}: {callee} is more likely the origin"))
    for past, sim in sorted(sims, key=lambda item: -item[1]):
        if (name, cause) in past.confirmed and sim >= SIMILAR_MIN:
            out.append(Evidence("history", name, f"incident {past.incident_id}", None, round(sim, 4), None,
                                f"similar past incident {past.incident_id} ({past.title}) was confirmed as {cause} in {name}"))
            break
    return out


def _similar_for(service: str, cause: str, sims: list[tuple[PastIncident, float]]) -> list[dict[str, Any]]:
    # Only past incidents that bear on this hypothesis: same service or same cause, exact first.
    entries = []
    for past, sim in sims:
        if sim < SIMILAR_MIN:
            continue
        for svc, c in past.confirmed:
            if svc == service or c == cause:
                entries.append(((svc, c) == (service, cause), sim, past, svc, c))
    entries.sort(key=lambda e: (not e[0], -e[1], e[2].incident_id))
    return [{"incident_id": past.incident_id, "title": past.title, "cause": c, "service": svc,
             "similarity": round(sim, 4)} for _, sim, past, svc, c in entries[:SIMILAR_LIMIT]]


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


def _metric_names(evidence: Iterable[Evidence]) -> list[str]:
    out = []
    for ev in evidence:
        _, _, name = parse_signal("metric", ev.service, ev.signal)
        if name not in out:
            out.append(name)
    return out


def _has_word(name: str, words: Sequence[str]) -> bool:
    tokens = set(re.split(r"[^a-z0-9]+", name))
    return any(w in tokens or ("_" in w and w in name) or (len(w) > 3 and w in name) for w in words)


def _hhmm(ts: Any) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%H:%M")
