"""Root-cause localisation: which service most likely started the incident, with the evidence.

:func:`localize` compares the incident window ``[start, end)`` of a :class:`TelemetryWindow`
with its baseline ``[baseline_start, baseline_end)`` in three modalities, combines them, applies
the call topology, and returns one :class:`~workbench.analysis.evidence.ServiceSuspicion` per service,
most suspicious first. :func:`localization` returns the same plus the per-modality results, a
summary table and the notes (short baseline, missing modality, pooled comparisons ...).

Modalities (each gives every service a raw score >= 0; 0 = nothing changed)
----------------------------------------------------------------------------
**logs** -- log lines are mined into templates per service (:func:`workbench.signals.logs.mine`,
Drain3; a template is identified by the first ``MAX_TOKENS`` tokens of a line, and lines equal
up to numbers and ids are mined once). When the lines carry a span id (``span_id`` column or
attribute) and spans are present, every span is a *unit*: one execution of one operation, and
its *events* are the templates logged in it and the operations it called (with multiplicity).
For each (service, operation, event), ``pB`` and ``pI`` are the mean occurrences per unit in the
baseline and the incident, ``pI`` shrunk toward ``pB`` by ``K_UNITS`` pseudo-units::

    change(o, e) = |pB - pI*| / max(pB, pI*, 1)        (absolute up to once per unit, relative above)
    logs(s)      = max over its operations o and events e of  w(e) * change(o, e)

``w`` depends on the event and its direction: a *problem* event (a template mostly WARN or
worse, a call that ended in an error span) counts ``PROBLEM_RISE`` when it rises and nothing
when it falls (errors that stop are a recovery); a normal event counts ``NORMAL_DECLINE`` when
it falls or vanishes (a code path no longer taken), ``NORMAL_NEW`` when new, ``NORMAL_RISE``
when it merely grows. Conditioning on the operation makes the score blind to traffic-mix changes
(more of one request type) and sensitive to code-path changes. Without span ids the units are
the service's lines and the events its templates (template shares; noted).

**spans** -- self time (:func:`workbench.signals.spans.self_times`). For each (service, operation) of
spans that call no other service, the log ratio of the ``OWN_QUANTILE`` self time, incident vs
baseline; ``own(s)`` = mean of its ``TOP_OPS`` largest ratios (operations with fewer than
``MIN_BASE`` baseline spans are left out). The self time of a span that calls another service is
time spent between the two (network, queues) and belongs to the edge ``caller→callee``:
``edge(c→s)`` = log ratio of its ``EDGE_QUANTILE`` (an edge with too few baseline calls is
compared with all edges' baseline, noted). A slow service or link delays every call into it and
every call it makes. A service nobody calls also gets the log ratio of its request rate
(``traffic``: a surge travels downstream, so only where it enters is it intrinsic)::

    spans(s) = max(own(s), mean_in(s) + OUT_WEIGHT * mean_out(s), |traffic(s)|)

Ratios are ``log((x_inc + FLOOR_MS) / (x_base + FLOOR_MS))`` (1 = an e-fold increase).

**metrics** -- one wide frame of every service's metrics on the window's step; per metric the
``SUSTAIN``-th largest robust z of the incident steps against the baseline (median; scale
1.4826·MAD, floored at ``REL_FLOOR`` times the larger of the service's level and the metric's
mean level over all services, so an idle service's flat metric does not explode). A metric that
moved the same way in most services has a shared cause: the cross-service median z is removed.
``metrics(s) = log1p(max |z|) / log1p(Z_REF)``. The detector (:func:`workbench.signals.detect.score_frame`
fit on the baseline, scoring the incident) runs on the ``DETECT_TOP`` most deviating services:
it gives their onset, and a score it does not confirm (no anomalous incident step) is halved.
With fewer than ``MIN_METRIC_BASE`` baseline steps a metric is not scored (noted).

Combination
-----------
The Nezha README suggests dividing each modality's scores by its second-best score; but a
modality that sees nothing still has a best and a second best. So each modality is divided by
its *reference* ``max(second-best, FLOOR[m])``, where ``FLOOR[m]`` is what it reaches on noise
alone: a modality whose top service stands out above both its runner-up and its noise level
speaks loudly, one that only sees noise barely speaks. With
``n_m(s) = W[m] * min(score_m(s) / ref_m, CAP)``::

    combined(s) = max over m of n_m(s)  +  AGREEMENT * (sum over m of n_m(s) - max over m of n_m(s))

The strongest modality decides (each modality nearly solves its own fault family: code changes
show in logs, resource and network faults in spans and metrics; a plain sum lets the blind
modalities' noise drown the one that sees); agreement of the others adds a little.

Topology (declared, else :func:`workbench.signals.spans.derive_topology`): errors and waits travel
upstream, so a caller whose callee is anomalous by itself is discounted. ``intrinsic(c)`` is
the callee's combined score without the evidence of calls into it (which its callers cause)::

    explained(s) = min(1, max over callees c of intrinsic(c) / (EXPLAIN_RATIO * combined(s)))
    final(s)     = combined(s) * (1 - TOPOLOGY_DISCOUNT * explained(s))

A service anomalous while its callees are healthy gets a ``topology`` evidence item saying it is
a likely origin; a discounted one, an item naming the callee. A service's onset is the earliest
onset among the modalities that see it (normalised score >= ``ONSET_MIN``): detector onset or
first sustained metric step, first slow span, or the first operation execution from which an
event's rate turned.

``by_modality`` holds ``min(score_m(s) / ref_m, CAP)`` per modality (before the weights) and
``topology`` = minus the discount. Every
constant is module-level; ``weights`` overrides ``W``. The method knows no system: services,
operations, templates and calls come from the data. The constants W, FLOOR, AGREEMENT,
EXPLAIN_RATIO and the event weights were chosen on the 32 shared Nezha cases
(``benchmarks/nezha.py``); the rest were set once from first principles.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..signals import spans as span_lib
from .evidence import Evidence, ServiceSuspicion, TelemetryWindow

log = logging.getLogger(__name__)

MODALITIES = ("metrics", "logs", "spans")
#: Modality weights of the combination (``weights=`` overrides them).
W = {"metrics": 0.25, "logs": 1.0, "spans": 1.0}
#: Score a modality reaches on noise alone (the least reference it is divided by): logs 0.4 = 40 %
#: of an operation's executions changed; spans 2.0 = a 7x (e^2) slower operation or call;
#: metrics 1.0 = a robust z of Z_REF sustained.
FLOOR = {"metrics": 1.0, "logs": 0.4, "spans": 2.0}
#: Weight of the other modalities next to the strongest one (agreement adds a little).
AGREEMENT = 0.1
#: Largest normalised score of one modality (one extreme modality cannot drown the others).
CAP = 4.0
#: A modality's onset counts for a service when its normalised score there is at least this.
ONSET_MIN = 0.5
#: Largest share of a caller's score taken off when a callee explains its symptoms ...
TOPOLOGY_DISCOUNT = 0.5
#: ... which a callee does fully when its intrinsic score is at least this share of the caller's.
EXPLAIN_RATIO = 0.5

# logs
#: Characters of a log body used for mining (payloads beyond carry no template).
MAX_BODY_CHARS = 300
#: Pseudo-units shrinking the incident share of an event toward its baseline share.
K_UNITS = 3.0
#: Fewest baseline / incident units (or lines) of an operation (or service) to compare it.
MIN_BASE_UNITS, MIN_INC_UNITS = 5, 3
#: Weights of an event's change by kind and direction. A *problem* event (an error or warning
#: template, a call that ended in an error span) only counts when it rises: errors that stop are
#: a recovery, not a fault. A normal event counts fully when it declines or vanishes (a code path
#: no longer taken), less when it is new, little when it merely grows (a shift in what the
#: requests ask for, or the normal path coming back after errors).
PROBLEM_RISE, PROBLEM_DECLINE = 1.0, 0.0
NORMAL_DECLINE, NORMAL_NEW, NORMAL_RISE = 1.0, 0.5, 0.25
#: A template is a problem template when more than this share of its lines are WARN or worse.
PROBLEM_SHARE = 0.5
#: Tokens of a log body that identify its template (the rest of a long line is payload whose
#: varying length would split one statement into many Drain templates).
MAX_TOKENS = 16

# spans
#: Quantile of an operation's self time (the tail: contention delays some requests) and of a
#: call edge's overhead (the median: a few requests wait ~200 ms on connection handling anyway).
OWN_QUANTILE, EDGE_QUANTILE = 0.9, 0.5
#: Added to both sides of a ratio, in ms (sub-millisecond jitter is no slowdown).
FLOOR_MS = 1.0
#: Operations averaged into ``own(s)``.
TOP_OPS = 2
#: Weight of the calls a service makes next to the calls it receives.
OUT_WEIGHT = 0.5
#: Fewest baseline / incident spans of an operation or edge to compare it.
MIN_BASE, MIN_INC = 5, 3
#: Smallest |log ratio| of an entry service's request rate worth an evidence item (x1.22).
TRAFFIC_EVIDENCE = 0.2

# metrics
#: Fewest baseline steps of a metric to score it.
MIN_METRIC_BASE = 3
#: Scale floor, as a share of the metric's level.
REL_FLOOR = 0.25
#: The SUSTAIN-th largest |z| of the incident is the metric's deviation (a lone spike is not one).
SUSTAIN = 2
#: The |z| that maps to a metrics score of 1.
Z_REF = 10.0
#: Services the detector runs on (most deviating first).
DETECT_TOP = 5

_KEY = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]{7,}|\d+")
_SPAN_ID = re.compile(r'"span_id"\s*:\s*"([^"]*)"')


@dataclass
class ModalityResult:
    """One modality's view of the incident.

    Attributes
    ----------
    name : str
    scores : pandas.Series
        Raw score per service (float >= 0), index = service.
    intrinsic : pandas.Series
        The part of the score that does not come from calls into the service (for the topology).
    evidence : dict of str to list of Evidence
        Per service, strongest first.
    onsets : dict of str to pandas.Timestamp
    notes : list of str
    """

    name: str
    scores: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    intrinsic: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)
    onsets: dict[str, pd.Timestamp] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def reference(self) -> float:
        """What the scores are divided by: ``max(second-best, FLOOR[name])``."""
        top = self.scores.sort_values(ascending=False)
        second = float(top.iloc[1]) if len(top) > 1 else 0.0
        return max(second, FLOOR[self.name])


@dataclass
class Localization:
    """Everything :func:`localization` found.

    Attributes
    ----------
    suspicions : list of ServiceSuspicion
        Most suspicious first (what :func:`localize` returns).
    modalities : dict of str to ModalityResult
    table : pandas.DataFrame
        One row per service: ``service``, ``score``, one column per modality (normalised) and
        ``raw_<modality>``, ``topology_discount``, ``onset``; sorted like ``suspicions``.
    notes : list of str
    """

    suspicions: list[ServiceSuspicion]
    modalities: dict[str, ModalityResult]
    table: pd.DataFrame
    notes: list[str]


def localize(window: TelemetryWindow, *, detector: Any = None,
             weights: dict[str, float] | None = None) -> list[ServiceSuspicion]:
    """Rank the services of ``window`` by how likely each is the origin of the incident.

    Parameters
    ----------
    window : TelemetryWindow
        Baseline ``[baseline_start, baseline_end)`` and incident ``[start, end)`` telemetry.
    detector : str or Detector, optional
        Metric detector for onsets and named metrics (default: :mod:`workbench.signals.detect`'s).
    weights : dict, optional
        Modality weights, e.g. ``{"metrics": 0, "logs": 1, "spans": 1}`` (missing keys keep
        :data:`W`).

    Returns
    -------
    list of ServiceSuspicion
        Sorted by ``score`` descending (ties by name); empty when the window has no telemetry.
        ``by_modality`` holds the normalised modality scores (and ``topology``, the discount).
    """
    return localization(window, detector=detector, weights=weights).suspicions


def localization(window: TelemetryWindow, *, detector: Any = None,
                 weights: dict[str, float] | None = None) -> Localization:
    """:func:`localize` with the per-modality results, a summary table and the notes."""
    w = dict(W)
    for key, value in (weights or {}).items():
        if key not in W:
            raise ValueError(f"weights: unknown modality {key!r}; expected some of {', '.join(W)}")
        if not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise ValueError(f"weights[{key!r}] must be a finite number >= 0, got {value!r}")
        w[key] = float(value)
    notes: list[str] = []
    services = window.services()
    if not services:
        notes.append("no telemetry in the window: nothing to localise")
        return Localization([], {}, pd.DataFrame(), notes)
    if window.baseline_end <= window.baseline_start:
        notes.append("the baseline is empty: every modality compares with nothing and scores 0")
    results = {
        "metrics": metric_modality(window, detector=detector) if w["metrics"] > 0 else ModalityResult("metrics"),
        "logs": log_modality(window) if w["logs"] > 0 else ModalityResult("logs"),
        "spans": span_modality(window) if w["spans"] > 0 else ModalityResult("spans"),
    }
    for res in results.values():
        notes.extend(f"{res.name}: {n}" for n in res.notes)
    for note in notes:
        log.debug("localize: %s", note)
    table = pd.DataFrame(index=pd.Index(services, name="service"))
    own_parts = {}
    for name, res in results.items():
        raw = res.scores.reindex(table.index).fillna(0.0).clip(lower=0)
        ref = res.reference()
        table[f"raw_{name}"] = raw
        table[name] = (raw / ref).clip(upper=CAP)
        own = res.intrinsic.reindex(table.index).fillna(0.0).clip(lower=0)
        own_parts[name] = w[name] * (own / ref).clip(upper=CAP)
    own_parts = pd.DataFrame(own_parts)
    intrinsic = own_parts.max(axis=1) + AGREEMENT * (own_parts.sum(axis=1) - own_parts.max(axis=1))
    weighted = pd.DataFrame({m: w[m] * table[m] for m in MODALITIES})
    table["combined"] = weighted.max(axis=1) + AGREEMENT * (weighted.sum(axis=1) - weighted.max(axis=1))
    topology = _topology(window)
    callees = topology.groupby("caller")["callee"].apply(list).to_dict() if len(topology) else {}
    worst = pd.Series({s: max((intrinsic.get(c, 0.0) for c in callees.get(s, []) if c != s), default=0.0)
                       for s in table.index}, dtype=float)
    # A callee at least EXPLAIN_RATIO as anomalous (by itself) as the caller explains it fully.
    explained = (worst / (EXPLAIN_RATIO * table["combined"])).where(table["combined"] > 0, 0.0).clip(upper=1.0)
    discount = TOPOLOGY_DISCOUNT * explained * table["combined"]
    table["topology_discount"] = discount
    table["score"] = table["combined"] - discount
    # The earliest onset among the modalities that see the service (normalised score >= ONSET_MIN),
    # so a modality that only sees noise cannot pull the onset forward.
    onsets = {}
    for s in table.index:
        seen = [r.onsets[s] for m, r in results.items() if s in r.onsets and r.onsets[s] is not None
                and table.at[s, m] >= ONSET_MIN]
        anyone = [r.onsets[s] for r in results.values() if r.onsets.get(s) is not None]
        onsets[s] = min(seen or anyone, default=None)
    table["onset"] = pd.Series(onsets, dtype="datetime64[ns, UTC]") if any(v is not None for v in onsets.values()) \
        else pd.NaT
    table = table.reset_index().sort_values(["score", "service"], ascending=[False, True], kind="stable")

    suspicions = []
    for row in table.itertuples(index=False):
        s = row.service
        evidence = [e for r in results.values() for e in r.evidence.get(s, [])]
        evidence.sort(key=lambda e: -_strength(e, results))
        if len(topology):
            evidence.extend(_topology_evidence(s, callees.get(s, []), intrinsic, float(row.combined)))
        by_modality = {m: float(getattr(row, m)) for m in MODALITIES}
        by_modality["topology"] = -float(row.topology_discount)
        suspicions.append(ServiceSuspicion(service=s, score=float(row.score), by_modality=by_modality,
                                           onset=onsets.get(s), evidence=evidence))
    return Localization(suspicions, results, table.reset_index(drop=True), notes)


# =========================================================================== logs

def log_modality(window: TelemetryWindow) -> ModalityResult:
    """The logs modality (see the module docstring): scores, evidence and onsets per service."""
    res = ModalityResult("logs")
    logs = window.logs
    if logs.empty:
        res.notes.append("no log lines")
        return res
    mined = _mine(logs)
    inc = (mined["timestamp"] >= window.start).to_numpy()
    base = ((mined["timestamp"] >= window.baseline_start) & (mined["timestamp"] < window.baseline_end)).to_numpy()
    mined = mined.assign(inc=inc, base=base)
    if not base.any():
        res.notes.append("no log lines in the baseline: logs not scored")
        return res
    span_ids = _log_span_ids(mined)
    linked = span_ids.ne("").mean() >= 0.5 and not window.spans.empty
    if linked:
        table, units, events = _unit_events(window, mined.assign(span_id=span_ids.to_numpy()))
        what = "operation executions"
    else:
        res.notes.append("log lines carry no span id (or there are no spans): template shares of whole "
                         "services are compared")
        table, units, events = _service_events(mined)
        what = "lines"
    if table.empty:
        res.notes.append("no operation or service with enough baseline and incident data")
        return res
    problems = mined.groupby("template_id")["is_problem"].mean()
    text = mined.drop_duplicates("template_id").set_index("template_id")["template"]
    failed = window.spans[window.spans["status"].astype(str).eq("error")] if "status" in window.spans.columns \
        else window.spans.iloc[:0]
    error_calls = set("call:" + failed["service"].astype(str) + " " + failed["name"].astype(str))
    table["error"] = table["event"].map(
        lambda e: (problems.get(e[4:], 0.0) > PROBLEM_SHARE) if e.startswith("log:") else e in error_calls)
    p_b = table["c_b"] / table["n_b"]
    p_i = (table["c_i"] + K_UNITS * p_b) / (table["n_i"] + K_UNITS)
    rise = (p_i > p_b).to_numpy()
    new = (table["c_b"] == 0).to_numpy()
    err = table["error"].to_numpy(dtype=bool)
    weight = np.where(err, np.where(rise, PROBLEM_RISE, PROBLEM_DECLINE),
                      np.where(rise, np.where(new, NORMAL_NEW, NORMAL_RISE), NORMAL_DECLINE))
    # Mean occurrences per unit; a change is measured absolutely up to one occurrence per unit and
    # relatively beyond (a statement in a loop that now runs for half of the iterations).
    change = (p_b - p_i).abs() / np.maximum(np.maximum(p_b, p_i), 1.0)
    table = table.assign(p_b=p_b, p_i_raw=table["c_i"] / table["n_i"], score=weight * change)
    table = table.sort_values("score", ascending=False, kind="stable")
    res.scores = table.groupby("service", sort=False)["score"].max()
    res.intrinsic = res.scores.copy()
    # Incident units per operation and occurrences per event, grouped once for the onsets.
    units_of = {key: part.sort_values("time") for key, part in units.groupby(["service", "op"], sort=False)}
    top_events = set(table.groupby("service", sort=False).head(3)["event"])
    counts_of = {e: part.groupby("unit").size() for e, part in events[events["event"].isin(top_events)].groupby("event")}
    for service, part in table.groupby("service", sort=False):
        items = []
        for row in part.head(3).itertuples(index=False):
            if row.score <= 0:
                break
            onset = _change_onset(units_of.get((row.service, row.op)), counts_of.get(row.event), row)
            items.append(_log_evidence(row, text, what, onset))
        res.evidence[service] = items
        if items and items[0].time is not None:
            res.onsets[service] = items[0].time
    return res


def _mine(logs: pd.DataFrame) -> pd.DataFrame:
    """Template per line; lines equal up to numbers and ids are mined once (speed)."""
    from ..signals import logs as log_lib

    # Plain Python over the lines: faster than three pandas string passes on Arrow strings.
    limit = MAX_TOKENS or None
    texts = [" ".join(str(b)[:MAX_BODY_CHARS].split(None, limit)[:limit]) for b in logs["body"].tolist()]
    services = logs["service"].astype(str).tolist()
    key = pd.Series([f"{svc}\x1f{_KEY.sub('0', t)}" for svc, t in zip(services, texts)], index=logs.index)
    body = pd.Series(texts, index=logs.index, dtype=object)
    first = ~key.duplicated()
    reps = logs.loc[first, ["timestamp", "service"]].assign(body=body[first])
    mined = log_lib.mine(reps)
    template_of = pd.Series(mined["template_id"].to_numpy(), index=key[first].to_numpy())
    text_of = pd.Series(mined["template"].to_numpy(), index=key[first].to_numpy())
    severity = logs["severity"].astype(str).str.upper() if "severity" in logs.columns else pd.Series("INFO", index=logs.index)
    return pd.DataFrame({
        "timestamp": logs["timestamp"].reset_index(drop=True), "service": logs["service"].astype(str).to_numpy(),
        "template_id": key.map(template_of).to_numpy(), "template": key.map(text_of).to_numpy(),
        "is_problem": severity.isin(("WARN", "ERROR", "FATAL")).to_numpy(),
        "trace_id": logs["trace_id"].astype(str).to_numpy() if "trace_id" in logs.columns else "",
        "attributes": logs["attributes"].astype(str).to_numpy() if "attributes" in logs.columns else "{}",
        **({"span_id": logs["span_id"].astype(str).to_numpy()} if "span_id" in logs.columns else {}),
    })


def _log_span_ids(mined: pd.DataFrame) -> pd.Series:
    if "span_id" in mined.columns:
        return mined["span_id"].fillna("").astype(str)
    return mined["attributes"].str.extract(_SPAN_ID, expand=False).fillna("")


def _unit_events(window: TelemetryWindow, mined: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Spans as units, their templates and calls as events.

    Returns
    -------
    (table, units, events)
        ``table``: per (``service``, ``op``, ``event``) the occurrences ``c_b``/``c_i`` and the
        units ``n_b``/``n_i`` of the operation, baseline and incident (operations with too few
        units left out); ``units``: the incident units (``unit``, ``service``, ``op``, ``time``);
        ``events``: their events (``unit``, ``event``), one row per occurrence.
    """
    spans = window.spans
    units = pd.DataFrame({"span_id": spans["span_id"].to_numpy(), "service": spans["service"].to_numpy(),
                          "op": spans["name"].to_numpy(), "start": spans["start"].reset_index(drop=True)})
    units = units.drop_duplicates("span_id")
    units["inc"] = (units["start"] >= window.start).to_numpy()
    units["base"] = ((units["start"] >= window.baseline_start) & (units["start"] < window.baseline_end)).to_numpy()
    logged = pd.DataFrame({"span_id": mined["span_id"].to_numpy(), "event": "log:" + mined["template_id"]})
    calls = pd.DataFrame({"span_id": spans["parent_span_id"].to_numpy(),
                          "event": ("call:" + spans["service"] + " " + spans["name"]).to_numpy()})
    events = pd.concat([logged, calls], ignore_index=True)
    events = events.merge(units[["span_id", "service", "op", "inc", "base"]], on="span_id")
    n = units.groupby(["service", "op"]).agg(n_b=("base", "sum"), n_i=("inc", "sum"))
    c = events.groupby(["service", "op", "event"]).agg(c_b=("base", "sum"), c_i=("inc", "sum")).reset_index()
    c = c.join(n, on=["service", "op"])
    c = c[(c["n_b"] >= MIN_BASE_UNITS) & (c["n_i"] >= MIN_INC_UNITS)]
    inc_units = units.loc[units["inc"], ["span_id", "service", "op", "start"]].rename(columns={"span_id": "unit", "start": "time"})
    inc_events = events.loc[events["inc"], ["span_id", "event"]].rename(columns={"span_id": "unit"})
    return c.reset_index(drop=True), inc_units, inc_events


def _service_events(mined: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fallback without span ids: a service's lines are the units, its templates the events."""
    lines = mined.assign(event="log:" + mined["template_id"], op="(all lines)", unit=np.arange(len(mined)))
    n = lines.groupby("service").agg(n_b=("base", "sum"), n_i=("inc", "sum"))
    c = lines.groupby(["service", "op", "event"]).agg(c_b=("base", "sum"), c_i=("inc", "sum")).reset_index()
    c = c.join(n, on="service")
    c = c[(c["n_b"] >= MIN_BASE_UNITS) & (c["n_i"] >= MIN_INC_UNITS)].reset_index(drop=True)
    inc = lines[lines["inc"]]
    return c, inc[["unit", "service", "op", "timestamp"]].rename(columns={"timestamp": "time"}), inc[["unit", "event"]]


def _change_onset(mine: pd.DataFrame | None, counts: pd.Series | None, row: Any, m: int = 5) -> pd.Timestamp | None:
    """When an event's rate in an operation's incident units turned from the baseline's to the incident's.

    ``mine`` holds the operation's incident units (``unit``, ``time``, in time order), ``counts``
    the event's occurrences per unit. The onset is the first unit that is itself on the incident
    side of the baseline rate and from which the mean of the next ``m`` units is closer to the
    incident rate than to the baseline rate.
    """
    if mine is None or mine.empty or row.p_i_raw == row.p_b:
        return None
    counts = counts if counts is not None else pd.Series(dtype=float)
    values = counts.reindex(mine["unit"]).fillna(0).to_numpy(dtype=float)
    ahead = pd.Series(values[::-1]).rolling(m, min_periods=1).mean().to_numpy()[::-1]
    up = row.p_i_raw > row.p_b
    side = values > row.p_b if up else values < row.p_b
    closer = np.abs(ahead - row.p_i_raw) < np.abs(ahead - row.p_b)
    hits = np.flatnonzero(side & closer)
    return pd.Timestamp(mine["time"].iloc[hits[0]]) if len(hits) else None


def _log_evidence(row: Any, text: pd.Series, what: str, onset: pd.Timestamp | None) -> Evidence:
    kind, _, ident = row.event.partition(":")
    if kind == "log":
        label = str(text.get(ident, ident))
        signal = f"log template {row.service}:{ident[:8]}"
    else:
        label = f"call to {ident}"
        signal = f"span call {row.service}→{ident}"
    up = row.p_i_raw > row.p_b
    new = row.c_b == 0
    state = "new" if new else ("more frequent" if up else ("vanished" if row.c_i == 0 else "less frequent"))
    where = "" if row.op == "(all lines)" else f" in {row.op}"
    flag = "ERROR " if row.error else ""
    explanation = (f"{flag}{label[:120]!r} {state}{where}: {row.c_i:.0f} of {row.n_i:.0f} {what} "
                   f"({row.p_i_raw:.0%}) vs {row.p_b:.0%} of {row.n_b:.0f} in the baseline")
    return Evidence(kind="log" if kind == "log" else "span", service=row.service, signal=signal, time=onset,
                    magnitude=float(row.score), direction="up" if up else "down", explanation=explanation)


# =========================================================================== spans

def span_modality(window: TelemetryWindow) -> ModalityResult:
    """The spans modality (see the module docstring): self time per operation and per call edge."""
    res = ModalityResult("spans")
    spans = window.spans
    if spans.empty:
        res.notes.append("no spans")
        return res
    ann = span_lib.annotate(spans)
    ann["inc"] = (ann["start"] >= window.start).to_numpy()
    ann["base"] = ((ann["start"] >= window.baseline_start) & (ann["start"] < window.baseline_end)).to_numpy()
    if not ann["base"].any():
        res.notes.append("no spans in the baseline")
        return res
    own = _ratio_table(ann[ann["callee"] == ""], ["service", "name"], OWN_QUANTILE, res.notes, "operations",
                       pool=False)
    calls = ann[ann["callee"] != ""].rename(columns={"service": "caller", "callee": "service"})
    edges = _ratio_table(calls, ["caller", "service"], EDGE_QUANTILE, res.notes, "call edges")
    own_score = (own.sort_values("ratio", ascending=False).groupby("service").head(TOP_OPS)
                 .groupby("service")["ratio"].mean() if len(own) else pd.Series(dtype=float))
    into = edges.groupby("service")["ratio"].mean() if len(edges) else pd.Series(dtype=float)
    out = edges.groupby("caller")["ratio"].mean() if len(edges) else pd.Series(dtype=float)
    index = own_score.index.union(into.index).union(out.index)
    own_score, into, out = (x.reindex(index).fillna(0.0) for x in (own_score, into, out))
    edge_score = into.clip(lower=0) + OUT_WEIGHT * out.clip(lower=0)
    traffic = _traffic(ann, window)
    index = index.union(traffic.index)
    own_score, edge_score, out = (x.reindex(index).fillna(0.0) for x in (own_score, edge_score, out))
    load = traffic["ratio"].abs().reindex(index).fillna(0.0)
    res.scores = np.maximum(np.maximum(own_score, edge_score), load).clip(lower=0)
    res.intrinsic = np.maximum(np.maximum(own_score, OUT_WEIGHT * out.clip(lower=0)), load).clip(lower=0)
    for row in traffic.itertuples():
        if abs(row.ratio) >= TRAFFIC_EVIDENCE:
            res.evidence.setdefault(row.Index, []).append(Evidence(
                kind="traffic", service=row.Index, signal=f"traffic {row.Index} requests", time=None,
                magnitude=float(abs(row.ratio)), direction="up" if row.ratio > 0 else "down",
                explanation=f"{row.Index} receives {row.rate_inc:.3g} requests/s from outside vs {row.rate_base:.3g} "
                            f"in the baseline ({math.exp(row.ratio):.2f}x); it has no caller, so the change "
                            f"starts here"))
    for service in res.scores[res.scores > 0].index:
        items = list(res.evidence.get(service, []))
        # An empty frame can carry object dtype, which nlargest refuses: cast before ranking.
        for row in _top(own[own["service"] == service], 2).itertuples(index=False):
            items.append(_span_evidence(service, f"span {service} {row.name} self time p{OWN_QUANTILE * 100:.0f}",
                                        f"self time of {row.name}", row, OWN_QUANTILE))
        mine = edges[(edges["service"] == service) | (edges["caller"] == service)]
        for row in _top(mine, 2).itertuples(index=False):
            label = f"{row.caller}{span_lib.ARROW}{row.service}"
            items.append(_span_evidence(service, f"span {label} overhead p{EDGE_QUANTILE * 100:.0f}",
                                        f"time between the services on {label}", row, EDGE_QUANTILE))
        items = [e for e in items if e.magnitude > 0]
        items.sort(key=lambda e: -e.magnitude)
        res.evidence[service] = items
        if items and items[0].time is not None:
            res.onsets[service] = items[0].time
    return res


def _traffic(ann: pd.DataFrame, window: TelemetryWindow) -> pd.DataFrame:
    """Request rate of the services nobody calls (where outside traffic enters), baseline vs incident.

    A traffic surge travels downstream (every callee gets more calls), the opposite of errors, so
    only services without callers are scored: their change is not explained by another service.
    Rates count root spans of traces without any error span (tail-sampled error traces would
    otherwise look like traffic) per second of the steps that hold spans.

    Returns
    -------
    pandas.DataFrame
        Index service; ``rate_base``, ``rate_inc`` (requests/s), ``ratio`` (log of their ratio,
        smoothed by one request per period).
    """
    called = set(ann.loc[ann["parent_service"].ne("") & ann["entry"], "service"])
    bad = set(ann.loc[ann["error"], "trace_id"]) if "trace_id" in ann.columns else set()
    roots = ann[ann["parent_span_id"].eq("") & ~ann["service"].isin(called)]
    if "trace_id" in roots.columns:
        roots = roots[~roots["trace_id"].isin(bad)]
    if roots.empty:
        return pd.DataFrame(columns=["rate_base", "rate_inc", "ratio"], dtype=float)
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(window.step)).total_seconds()
    bins = ann["start"].dt.floor(window.step)
    span_b = max(bins[ann["base"]].nunique(), 1) * step
    span_i = max(bins[ann["inc"]].nunique(), 1) * step
    n_b = roots[roots["base"]].groupby("service").size()
    n_i = roots[roots["inc"]].groupby("service").size()
    out = pd.DataFrame({"n_b": n_b, "n_i": n_i}).fillna(0.0)
    out["rate_base"], out["rate_inc"] = out["n_b"] / span_b, out["n_i"] / span_i
    out["ratio"] = np.log((out["n_i"] + 1) / span_i) - np.log((out["n_b"] + 1) / span_b)
    return out[["rate_base", "rate_inc", "ratio"]]


def _ratio_table(frame: pd.DataFrame, keys: list[str], q: float, notes: list[str], what: str,
                 pool: bool = True) -> pd.DataFrame:
    """Per group: the ``q`` quantile of self time, baseline and incident, their log ratio, onset.

    Groups with fewer than ``MIN_BASE`` baseline spans are compared with the pooled baseline of
    all groups of ``frame`` when ``pool`` (noted; right for call edges, whose overhead is small
    everywhere, wrong for operations, whose own times differ widely), else left out, like groups
    with fewer than ``MIN_INC`` incident spans. ``onset`` is the start of the first of at least
    two incident spans slower than twice the baseline quantile (plus ``FLOOR_MS``).
    """
    cols = [*keys, "base_q", "inc_q", "n_base", "n_inc", "pooled", "ratio", "onset"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    base, inc = frame[frame["base"]], frame[frame["inc"]]
    b = base.groupby(keys)["self_ms"]
    i = inc.groupby(keys)["self_ms"]
    table = pd.DataFrame({"inc_q": i.quantile(q), "n_inc": i.size()})
    table = table.join(pd.DataFrame({"base_q": b.quantile(q), "n_base": b.size()}), how="left")
    table["n_base"] = table["n_base"].fillna(0)
    table = table[table["n_inc"] >= MIN_INC]
    pooled = table["n_base"] < MIN_BASE
    if not pool:
        table, pooled = table[~pooled], pooled[~pooled]
    elif pooled.any() and len(base):
        table.loc[pooled, "base_q"] = float(base["self_ms"].quantile(q))
        notes.append(f"{int(pooled.sum())} {what} with fewer than {MIN_BASE} baseline spans compared with the "
                     f"pooled baseline of all {what}")
    table = table.dropna(subset=["base_q"]).assign(pooled=pooled)
    table["ratio"] = np.log((table["inc_q"] + FLOOR_MS) / (table["base_q"] + FLOOR_MS))
    limit = inc.join(table["base_q"], on=keys)
    slow = limit[limit["self_ms"] > 2 * limit["base_q"] + FLOOR_MS].groupby(keys)["start"]
    first = slow.min().where(slow.size() >= 2)
    table["onset"] = first.reindex(table.index)
    return table.reset_index()[cols]


def _span_evidence(service: str, signal: str, label: str, row: Any, q: float) -> Evidence:
    factor = math.exp(row.ratio)
    pooled = " (pooled baseline)" if row.pooled else ""
    explanation = (f"{label} p{q * 100:.0f} {row.inc_q:.1f} ms vs {row.base_q:.1f} ms in the baseline{pooled} "
                   f"({factor:.1f}x, {row.n_inc:.0f} spans)")
    onset = None if pd.isna(row.onset) else pd.Timestamp(row.onset)
    return Evidence(kind="span", service=service, signal=signal, time=onset,
                    magnitude=float(row.ratio), direction="up" if row.ratio >= 0 else "down", explanation=explanation)


# =========================================================================== metrics

def metric_modality(window: TelemetryWindow, detector: Any = None) -> ModalityResult:
    """The metrics modality (see the module docstring): robust persistent deviation per service."""
    res = ModalityResult("metrics")
    metrics = window.metrics
    if metrics.empty:
        res.notes.append("no metrics")
        return res
    step = pd.tseries.frequencies.to_offset(window.step)
    rows = metrics.assign(t=metrics["timestamp"].dt.tz_convert("UTC").dt.floor(step),
                          value=pd.to_numeric(metrics["value"], errors="coerce"))
    # One wide frame for every service at once (columns: service, metric); the detector's own
    # alignment is used below only for the few services it is run on.
    wide = rows.groupby(["t", "service", "name"])["value"].mean().unstack(["service", "name"]).sort_index()
    base = wide[(wide.index >= window.baseline_start) & (wide.index < window.baseline_end)]
    scored = wide[(wide.index >= window.start) & (wide.index < window.end)]
    enough = base.count() >= MIN_METRIC_BASE
    if scored.empty or not enough.any():
        res.notes.append(f"no metric has {MIN_METRIC_BASE} baseline steps and incident steps "
                         f"({len(base)} baseline step(s)): metrics not scored")
        return res
    base, scored = base.loc[:, enough], scored.loc[:, enough]
    center = base.median()
    mad = 1.4826 * (base - center).abs().median()
    # A metric's normal level is judged across every service that reports it: the scale of a
    # metric flat at zero in one idle service is floored by the metric's mean level over services.
    typical = center.abs().groupby(level="name").mean()
    level = np.maximum(center.abs().to_numpy(), typical.reindex(center.index.get_level_values("name")).to_numpy())
    scale = np.maximum(np.nan_to_num(mad.to_numpy()), REL_FLOOR * np.nan_to_num(level))
    scale = np.where(scale > 0, scale, 1e-9)
    z = (scored.to_numpy() - center.to_numpy()) / scale
    # Sustained deviation per metric: the SUSTAIN-th largest |z| of the incident steps, signed.
    absz = np.where(np.isnan(z), -1.0, np.abs(z))
    order = np.argsort(-absz, axis=0, kind="stable")
    k = np.clip(np.minimum(SUSTAIN, (~np.isnan(z)).sum(axis=0)) - 1, 0, None)
    cols = np.arange(z.shape[1])
    sustained = pd.Series(z[order[k, cols], cols], index=scored.columns)
    peak = pd.Series(scored.to_numpy()[order[0, cols], cols], index=scored.columns)
    table = sustained.unstack("name")  # services x metrics
    z_frame = pd.DataFrame(z, index=scored.index, columns=scored.columns)
    common = table.median().where(table.count() >= 3, 0.0).fillna(0.0)
    shared = (np.sign(table).eq(np.sign(common)) & common.abs().gt(0)).sum() > 0.5 * table.count()
    adjusted = table - common.where(shared, 0.0)
    best = adjusted.abs().max(axis=1).fillna(0.0)
    res.scores = np.log1p(best) / np.log1p(Z_REF)
    res.intrinsic = res.scores.copy()
    loud = shared & (common.abs() >= 3)
    if loud.any():
        res.notes.append("moved in most services (a shared cause; the cross-service median is removed): "
                         + ", ".join(f"{m} (median z {common[m]:+.1f})" for m in loud[loud].index))
    for service in res.scores.index:
        row = adjusted.loc[service].dropna()
        if len(row) and res.scores[service] > 0:
            top = row.abs().idxmax()
            res.onsets[service] = _z_onset(z_frame[(service, top)], float(sustained[(service, top)]))
        items = []
        for metric in row.abs().sort_values(ascending=False).index[:3]:
            zval = float(row[metric])
            if abs(zval) < 1:
                break
            items.append(Evidence(kind="metric", service=service, signal=f"metric {metric}", time=None,
                                  magnitude=float(np.log1p(abs(zval)) / np.log1p(Z_REF)),
                                  direction="up" if zval > 0 else "down",
                                  explanation=f"{metric} {peak[(service, metric)]:.4g} vs "
                                              f"{center[(service, metric)]:.4g} baseline median "
                                              f"(robust z {zval:+.1f}, sustained over {SUSTAIN} steps)"))
        res.evidence[service] = items
    _detector_pass(res, metrics, window, detector)
    return res


def _detector_pass(res: ModalityResult, metrics: pd.DataFrame, window: TelemetryWindow, detector: Any) -> None:
    """Onsets from the detector for the most deviating services; unconfirmed scores are halved."""
    from ..signals import detect

    for service in res.scores.sort_values(ascending=False).index[:DETECT_TOP]:
        if res.scores[service] <= 0:
            break
        try:
            frame = detect.align(metrics[metrics["service"] == service], step=window.step)[service]
            result = detect.score_frame(frame, baseline_end=window.baseline_end,
                                        baseline_start=window.baseline_start, end=window.end,
                                        detector=detector, step=window.step, service=service)
        except ValueError as exc:  # DetectionError is a ValueError too
            res.notes.append(f"{service}: detector failed ({exc})")
            continue
        if not result.ok:
            res.notes.append(f"{service}: detector not fitted ({result.notes[-1] if result.notes else 'no reason'}); "
                             "robust deviation only")
            continue
        # The incident window may start after baseline_end (a gap); only its steps count.
        flagged = result.anomalous[result.anomalous.index >= window.start]
        if not flagged.any():
            res.scores[service] *= 0.5
            res.intrinsic[service] *= 0.5
            res.notes.append(f"{service}: the detector flags no incident step; score halved")
            continue
        onset = result.onset if result.onset is not None and result.onset >= window.start else flagged.idxmax()
        # The detector's onset, unless the top metric itself moved later (a noisy first step).
        own = res.onsets.get(service)
        onset = max(onset, own) if own is not None else onset
        res.onsets[service] = onset
        for item in res.evidence.get(service, []):
            item.time = onset


def _z_onset(z: pd.Series, sustained: float) -> pd.Timestamp | None:
    """First step from which the metric stays at least half its sustained deviation for SUSTAIN steps."""
    if not sustained:
        return None
    flags = (np.sign(sustained) * z.to_numpy() >= 0.5 * abs(sustained))
    ahead = pd.Series(flags[::-1].astype(int)).rolling(SUSTAIN, min_periods=1).sum().to_numpy()[::-1]
    need = np.minimum(SUSTAIN, len(flags) - np.arange(len(flags)))
    hits = np.flatnonzero(flags & (ahead >= need))
    return pd.Timestamp(z.index[hits[0]]) if len(hits) else None


# =========================================================================== topology and helpers

def _topology(window: TelemetryWindow) -> pd.DataFrame:
    topo = window.topology
    if topo is not None and len(topo) and {"caller", "callee"} <= set(topo.columns):
        return topo[["caller", "callee"]]
    if len(window.spans):
        return span_lib.derive_topology(window.spans)
    return pd.DataFrame(columns=["caller", "callee"])


def _topology_evidence(service: str, callees: list[str], intrinsic: pd.Series, own: float) -> list[Evidence]:
    """What the call graph says about ``service`` (combined score ``own``): origin-like or propagated."""
    if own <= 0:
        return []
    others = [(c, float(intrinsic.get(c, 0.0))) for c in callees if c != service]
    if not others:
        return [Evidence(kind="topology", service=service, signal="topology leaf", time=None, magnitude=own,
                         explanation=f"{service} calls no other service: its symptoms are its own")]
    worst, value = max(others, key=lambda p: p[1])
    if value < EXPLAIN_RATIO * own:
        return [Evidence(kind="topology", service=service, signal="topology callees healthy", time=None,
                         magnitude=own - value,
                         explanation=f"anomalous ({own:.2f}) while its {len(others)} callee(s) look healthy "
                                     f"(worst {worst} {value:.2f}): a likely origin")]
    return [Evidence(kind="topology", service=service, signal=f"topology callee {worst}", time=None,
                     magnitude=-min(value, own), direction="down",
                     explanation=f"its callee {worst} is anomalous too ({value:.2f} vs {own:.2f}): "
                                 f"symptoms here may be propagated; discounted")]


def _strength(e: Evidence, results: dict[str, ModalityResult]) -> float:
    """Evidence on one scale: magnitude over its modality's reference."""
    name = {"metric": "metrics", "log": "logs", "span": "spans", "traffic": "spans"}.get(e.kind)
    if name is None or name not in results:
        return 0.0
    if e.kind == "span" and e.signal.startswith("span call"):
        name = "logs"
    return abs(e.magnitude) / results[name].reference()


def _top(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` rows with the largest ``ratio`` (empty frames of any dtype give none)."""
    if frame.empty:
        return frame
    return frame.assign(ratio=frame["ratio"].astype(float)).nlargest(n, "ratio")
