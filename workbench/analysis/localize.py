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
from typing import Any, Mapping, Sequence

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
FLOOR = {"metrics": 1.0, "logs": 0.6, "spans": 2.0}
#: Largest normalised score of one modality (one extreme modality cannot drown the others).
CAP = 4.0
#: A modality's onset counts for a service when its normalised score there is at least this.
ONSET_MIN = 0.5
#: Largest share of a caller's score taken off when a callee explains its symptoms ...
TOPOLOGY_DISCOUNT = 0.0
#: ... which a callee does fully when its intrinsic score is at least this share of the caller's.
EXPLAIN_RATIO = 1.0

# logs
#: Characters of a log body used for mining (payloads beyond carry no template).
MAX_BODY_CHARS = 300
#: Pseudo-units shrinking the incident share of an event toward its baseline share.
K_UNITS = 3.0
#: Fewest baseline / incident units (or lines) of an operation (or service) to compare it.
MIN_BASE_UNITS, MIN_INC_UNITS = 5, 3
# An event's change counts fully, whatever its direction, except a *problem* event (an error or
# warning template, a call that ended in an error span) that falls: errors that stop are a
# recovery, not a fault. (Weighting a new or growing normal event less than a vanished one, as an
# earlier version did with 0.5 and 0.25, lost accuracy under cross-validation: a wrong return value
# adds code paths as often as it removes them.)
#: Later starts of the incident side of the log comparison, as fractions of the window.
SCAN_FRACTIONS = (0.25, 0.5)
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
#: Metric name prefixes of infrastructure shared by many services (not a service's own metric).
SHARED_PREFIXES = ("node_", "node.", "host_", "host.", "machine_")
#: Services the detector runs on (most deviating first).
DETECT_TOP = 5

_KEY = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]{7,}|\d+")
#: A source location near the start of a line (``c.s.PriceController#46``, ``Foo.java:12``): the
#: log statement that wrote it. Two statements whose texts Drain merges stay two templates.
LOCATION = re.compile(r"(?<![\w.$])((?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$\[\]]*"
                      r"(?:#|\.(?:java|py|go|js|ts|rb|cs|c|cc|cpp|scala|kt|rs):)\d+)(?![\w])")
#: Leading tokens of a line searched for a source location (a logger prefix, not the message).
LOCATION_TOKENS = 5
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


@dataclass(frozen=True)
class Params:
    """The constants of the combination (see the module docstring), chosen under cross-validation.

    ``benchmarks/nezha.py --cv`` chooses them on training folds only from :func:`param_grid`;
    the defaults are the choice on all 32 shared Nezha cases (``docs/ranking.md``).

    Attributes
    ----------
    weights : dict
        ``W[m]`` per modality (0 switches a modality off: it is then not computed).
    floors : dict
        ``FLOOR[m]``: the least reference a modality's scores are divided by.
    discount : float
        Largest share of a caller's score taken off when a callee explains it (0 = no topology).
    explain : float
        A callee explains its caller fully when its intrinsic score reaches this share of the caller's.
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(W))
    floors: Mapping[str, float] = field(default_factory=lambda: dict(FLOOR))
    discount: float = TOPOLOGY_DISCOUNT
    explain: float = EXPLAIN_RATIO

    def __post_init__(self) -> None:
        for what, table in (("weights", self.weights), ("floors", self.floors)):
            for key, value in table.items():
                if key not in W:
                    raise ValueError(f"{what}: unknown modality {key!r}; expected some of {', '.join(W)}")
                if not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                    raise ValueError(f"{what}[{key!r}] must be a finite number >= 0, got {value!r}")
        object.__setattr__(self, "weights", {**W, **{k: float(v) for k, v in self.weights.items()}})
        object.__setattr__(self, "floors", {**FLOOR, **{k: float(v) for k, v in self.floors.items()}})
        for name in ("discount", "explain"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1 and name != "explain" or value <= 0 and name == "explain":
                raise ValueError(f"{name} must be a number in {'(0, inf)' if name == 'explain' else '[0, 1]'}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "floors": dict(self.floors), "discount": self.discount,
                "explain": self.explain}


#: The constants the product uses (chosen by ``benchmarks/nezha.py --cv`` on all shared cases).
DEFAULT_PARAMS = Params()


def param_grid() -> list[Params]:
    """The candidate constants cross-validation chooses from; ties go to the first, so the order
    states the prior preference (set before any result was seen): every modality heard, the
    floors at their documented noise levels, the topology rule on.

    Logs and spans floors span what each modality reaches on noise (a fifth to three fifths of an
    operation's executions changed; a 2.7x to 20x slower operation), the metric weight whether
    metrics speak and how loud, the topology pair whether a callee that explains its caller
    discounts it, fully from half the caller's score or from all of it.
    """
    out = []
    for discount, explain in ((0.5, 0.5), (0.5, 1.0), (0.0, 1.0)):
        for metrics in (0.25, 0.0, 0.5):
            for logs in (0.4, 0.3, 0.6, 0.2):
                for spans in (2.0, 1.5, 3.0, 1.0):
                    out.append(Params(weights={"metrics": metrics, "logs": 1.0, "spans": 1.0},
                                      floors={"metrics": FLOOR["metrics"], "logs": logs, "spans": spans},
                                      discount=discount, explain=explain))
    return out


def localize(window: TelemetryWindow, *, detector: Any = None, weights: Mapping[str, float] | None = None,
             params: Params | None = None) -> list[ServiceSuspicion]:
    """Rank the services of ``window`` by how likely each is the origin of the incident.

    Parameters
    ----------
    window : TelemetryWindow
        Baseline ``[baseline_start, baseline_end)`` and incident ``[start, end)`` telemetry.
    detector : str or Detector, optional
        Metric detector for onsets and named metrics (default: :mod:`workbench.signals.detect`'s).
    weights : dict, optional
        Modality weights, e.g. ``{"metrics": 0, "logs": 1, "spans": 1}`` (missing keys keep
        those of ``params``).
    params : Params, optional
        The combination's constants (default :data:`DEFAULT_PARAMS`).

    Returns
    -------
    list of ServiceSuspicion
        Sorted by ``score`` descending (ties by name); empty when the window has no telemetry.
        ``by_modality`` holds the normalised modality scores (and ``topology``, the discount).
    """
    return localization(window, detector=detector, weights=weights, params=params).suspicions


def localization(window: TelemetryWindow, *, detector: Any = None, weights: Mapping[str, float] | None = None,
                 params: Params | None = None) -> Localization:
    """:func:`localize` with the per-modality results, a summary table and the notes."""
    params = _with_weights(params or DEFAULT_PARAMS, weights)
    return combine(window, modalities(window, detector=detector, params=params), params)


def modalities(window: TelemetryWindow, *, detector: Any = None, params: Params | None = None) -> dict[str, ModalityResult]:
    """The three modalities' results (the expensive part; a modality weighted 0 is not computed)."""
    w = (params or DEFAULT_PARAMS).weights
    if not window.services():
        return {}
    return {
        "metrics": metric_modality(window, detector=detector) if w["metrics"] > 0 else ModalityResult("metrics"),
        "logs": log_modality(window) if w["logs"] > 0 else ModalityResult("logs"),
        "spans": span_modality(window) if w["spans"] > 0 else ModalityResult("spans"),
    }


def combine(window: TelemetryWindow, results: Mapping[str, ModalityResult], params: Params | None = None) -> Localization:
    """Combine modality results into the ranked suspicions (cheap: no telemetry is re-read)."""
    params = params or DEFAULT_PARAMS
    notes: list[str] = []
    services = window.services()
    if not services:
        notes.append("no telemetry in the window: nothing to localise")
        return Localization([], {}, pd.DataFrame(), notes)
    if window.baseline_end <= window.baseline_start:
        notes.append("the baseline is empty: every modality compares with nothing and scores 0")
    results = {m: results.get(m, ModalityResult(m)) for m in MODALITIES}
    for res in results.values():
        notes.extend(f"{res.name}: {n}" for n in res.notes)
    for note in notes:
        log.debug("localize: %s", note)
    topology = _topology(window)
    callees = topology.groupby("caller")["callee"].apply(list).to_dict() if len(topology) else {}
    arrays = score_arrays(services, results)
    parts = combined_scores(arrays, callee_matrix(services, callees), params)
    table = pd.DataFrame(index=pd.Index(services, name="service"))
    for name in MODALITIES:
        table[f"raw_{name}"] = arrays["raw"][name]
        table[name] = parts["norm"][name]
    table["combined"] = parts["combined"]
    table["topology_discount"] = parts["discount"]
    table["score"] = parts["score"]
    intrinsic = pd.Series(parts["intrinsic"], index=table.index)
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

    refs = parts["ref"]
    suspicions = []
    for row in table.itertuples(index=False):
        s = row.service
        evidence = [e for r in results.values() for e in r.evidence.get(s, [])]
        evidence.sort(key=lambda e: -_strength(e, refs))
        if len(topology):
            evidence.extend(_topology_evidence(s, callees.get(s, []), intrinsic, float(row.combined), params.explain))
        by_modality = {m: float(getattr(row, m)) for m in MODALITIES}
        by_modality["topology"] = -float(row.topology_discount)
        suspicions.append(ServiceSuspicion(service=s, score=float(row.score), by_modality=by_modality,
                                           onset=onsets.get(s), evidence=evidence))
    return Localization(suspicions, results, table.reset_index(drop=True), notes)


def score_arrays(services: Sequence[str], results: Mapping[str, ModalityResult]) -> dict[str, dict[str, Any]]:
    """Per modality, the raw and intrinsic scores over ``services`` and the raw second-best score.

    Returns
    -------
    dict
        ``raw``, ``own`` (intrinsic; arrays over ``services``) and ``second`` (float) per modality:
        what :func:`combined_scores` needs, whatever the constants.
    """
    index = pd.Index(services)
    out: dict[str, dict[str, Any]] = {"raw": {}, "own": {}, "second": {}}
    for name in MODALITIES:
        res = results.get(name, ModalityResult(name))
        out["raw"][name] = res.scores.reindex(index).fillna(0.0).clip(lower=0).to_numpy(dtype=float)
        out["own"][name] = res.intrinsic.reindex(index).fillna(0.0).clip(lower=0).to_numpy(dtype=float)
        out["second"][name] = _second(res.scores)
    return out


def callee_matrix(services: Sequence[str], callees: Mapping[str, Sequence[str]]) -> np.ndarray:
    """``m[i, j]`` is True when service ``i`` calls service ``j`` (``i != j``)."""
    position = {s: i for i, s in enumerate(services)}
    matrix = np.zeros((len(services), len(services)), dtype=bool)
    for caller, called in callees.items():
        i = position.get(caller)
        if i is None:
            continue
        for callee in called:
            j = position.get(callee)
            if j is not None and j != i:
                matrix[i, j] = True
    return matrix


def combined_scores(arrays: Mapping[str, Mapping[str, Any]], callees: np.ndarray, params: Params) -> dict[str, Any]:
    """The combination and the topology discount on arrays (the formulas of the module docstring).

    Only :func:`score_arrays` output is needed, so a benchmark scores many ``params`` on one
    modality pass.

    Returns
    -------
    dict
        Arrays per service ``combined``, ``intrinsic``, ``discount``, ``score``; per modality
        ``norm`` (``min(raw / ref, CAP)``, before the weight) and ``ref`` (``max(second, floor)``).
    """
    w = params.weights
    refs, norm, weighted, own = {}, {}, [], []
    for name in MODALITIES:
        ref = max(arrays["second"][name], params.floors[name])
        refs[name] = ref
        raw, mine = arrays["raw"][name], arrays["own"][name]
        norm[name] = np.minimum(raw / ref, CAP) if ref > 0 else np.zeros_like(raw)
        weighted.append(w[name] * norm[name])
        own.append(w[name] * (np.minimum(mine / ref, CAP) if ref > 0 else np.zeros_like(mine)))
    weighted, own = np.vstack(weighted), np.vstack(own)
    # The strongest modality decides: each nearly solves its own fault family, and adding the
    # others' scores (an agreement bonus of 0.1 was tried) changed no cross-validated rank.
    combined = weighted.max(axis=0)
    intrinsic = own.max(axis=0)
    if callees.size and params.discount > 0:
        worst = np.where(callees, intrinsic[None, :], 0.0).max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            explained = np.where(combined > 0, np.minimum(worst / (params.explain * combined), 1.0), 0.0)
        discount = params.discount * explained * combined
    else:
        discount = np.zeros_like(combined)
    return {"combined": combined, "intrinsic": intrinsic, "discount": discount, "score": combined - discount,
            "norm": norm, "ref": refs}


def _second(scores: pd.Series) -> float:
    top = scores.sort_values(ascending=False)
    return float(top.iloc[1]) if len(top) > 1 else 0.0


def _with_weights(params: Params, weights: Mapping[str, float] | None) -> Params:
    if not weights:
        return params
    return Params(weights={**params.weights, **weights}, floors=params.floors, discount=params.discount,
                  explain=params.explain)


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
    table = _scored(table.assign(since=pd.Series(pd.NaT, index=table.index, dtype="datetime64[ns, UTC]")))
    # The onset inside the window is unknown (a fault may show a minute before the recorded start
    # or a minute after it): the incident side is also compared from later cuts of the window, and
    # each event keeps its strongest comparison (a short late suffix is shrunk toward the baseline
    # like any small sample, so the scan does not reward noise).
    for cut in _cuts(window):
        n_cut = units[units["time"] >= cut].groupby(["service", "op"]).size().rename("n_i")
        c_cut = events[events["time"] >= cut].groupby(["service", "op", "event"]).size().rename("c_i")
        later = table.drop(columns=["c_i", "n_i"]).join(n_cut, on=["service", "op"]).join(
            c_cut, on=["service", "op", "event"])
        later = later.assign(c_i=later["c_i"].fillna(0.0), n_i=later["n_i"].fillna(0.0),
                             since=pd.Series(cut, index=later.index).astype("datetime64[ns, UTC]"))
        later = _scored(later[later["n_i"] >= MIN_INC_UNITS])
        better = later[later["score"] > table.loc[later.index, "score"]]
        table.loc[better.index, better.columns] = better
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


def _scored(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (``c_b``, ``n_b``, ``c_i``, ``n_i``, ``error`` per event) with ``p_b``, ``p_i_raw``, ``score``."""
    p_b = table["c_b"] / table["n_b"]
    p_i = (table["c_i"] + K_UNITS * p_b) / (table["n_i"] + K_UNITS)
    rise = (p_i > p_b).to_numpy()
    err = table["error"].to_numpy(dtype=bool)
    # A rising error counts for the share of its lines that started their trace's errors; the rest
    # were written after a deeper service's error in the same trace (:func:`_error_paths`).
    own = 1.0 - (table["c_prop"] / table["c_i"].where(table["c_i"] > 0)).fillna(0.0).clip(0, 1).to_numpy()
    weight = np.where(err, np.where(rise, own, 0.0), 1.0)
    # Mean occurrences per unit; a change is measured absolutely up to one occurrence per unit and
    # relatively beyond (a statement in a loop that now runs for half of the iterations).
    change = (p_b - p_i).abs() / np.maximum(np.maximum(p_b, p_i), 1.0)
    return table.assign(p_b=p_b, p_i_raw=table["c_i"] / table["n_i"], score=weight * change)


def _cuts(window: TelemetryWindow) -> list[pd.Timestamp]:
    """Later starts of the incident side: a quarter and a half of the window in (scale-free)."""
    length = window.end - window.start
    if length <= pd.Timedelta(0):
        return []
    return [window.start + length * f for f in SCAN_FRACTIONS]


def _mine(logs: pd.DataFrame) -> pd.DataFrame:
    """Template per line; lines equal up to numbers and ids are mined once (speed).

    A line whose first tokens carry a source location (:data:`LOCATION`) belongs to the template
    of that log statement: the location is part of its identity and shown in its text, since
    Drain may merge two statements with similar words (``Query price`` at #39 and #46) or split
    one whose payload varies.
    """
    from ..signals import logs as log_lib

    # Plain Python over the lines: faster than three pandas string passes on Arrow strings.
    limit = MAX_TOKENS or None
    texts = [" ".join(str(b)[:MAX_BODY_CHARS].split(None, limit)[:limit]) for b in logs["body"].tolist()]
    services = logs["service"].astype(str).tolist()
    locations = []
    for t in texts:
        found = LOCATION.search(" ".join(t.split(None, LOCATION_TOKENS)[:LOCATION_TOKENS]))
        locations.append(found.group(1) if found else "")
    key = pd.Series([f"{svc}\x1f{loc}\x1f{_KEY.sub('0', t)}" for svc, loc, t in zip(services, locations, texts)],
                    index=logs.index)
    body = pd.Series(texts, index=logs.index, dtype=object)
    first = ~key.duplicated()
    reps = logs.loc[first, ["timestamp", "service"]].assign(body=body[first])
    mined = log_lib.mine(reps)
    where = pd.Series(locations, index=logs.index)[first].to_numpy()
    ids = mined["template_id"].to_numpy(dtype=object)
    text = mined["template"].to_numpy(dtype=object)
    located = where != ""
    svc_first = np.asarray(services, dtype=object)[first.to_numpy()]
    # One statement, one template: its id is the service and the location; its text the first
    # Drain template seen for it, with the location written out.
    ids = np.where(located, "loc:" + pd.Series(svc_first).astype(str).to_numpy() + "@" + where, ids)
    first_text = pd.Series(text).groupby(pd.Series(ids)).transform("first").to_numpy()
    text = np.where(located, [_with_location(t, loc) for t, loc in zip(first_text, where)], text)
    template_of = pd.Series(ids, index=key[first].to_numpy())
    text_of = pd.Series(text, index=key[first].to_numpy())
    severity = logs["severity"].astype(str).str.upper() if "severity" in logs.columns else pd.Series("INFO", index=logs.index)
    return pd.DataFrame({
        "timestamp": logs["timestamp"].reset_index(drop=True), "service": logs["service"].astype(str).to_numpy(),
        "template_id": key.map(template_of).to_numpy(), "template": key.map(text_of).to_numpy(),
        "is_problem": severity.isin(("WARN", "ERROR", "FATAL")).to_numpy(),
        "is_error": severity.isin(("ERROR", "FATAL")).to_numpy(),
        "trace_id": logs["trace_id"].astype(str).to_numpy() if "trace_id" in logs.columns else "",
        "attributes": logs["attributes"].astype(str).to_numpy() if "attributes" in logs.columns else "{}",
        **({"span_id": logs["span_id"].astype(str).to_numpy()} if "span_id" in logs.columns else {}),
    })


def _with_location(template: str, location: str) -> str:
    """``template`` with its masked source location written out (prefixed when Drain hid it)."""
    if not location:
        return template
    masked = re.sub(r"\d+$", "<NUM>", location)
    if masked in template:
        return template.replace(masked, location, 1)
    return f"{location} {template}"


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
    propagated, carriers = _error_paths(mined, spans)
    # A caller's execution that only carried a deeper service's error up is explained by that
    # service: it is left out of the incident side (its changed code path is not its own).
    units["inc"] = (units["start"] >= window.start).to_numpy() & ~units["span_id"].astype(str).isin(carriers).to_numpy()
    units["base"] = ((units["start"] >= window.baseline_start) & (units["start"] < window.baseline_end)).to_numpy()
    logged = pd.DataFrame({"span_id": mined["span_id"].to_numpy(), "event": "log:" + mined["template_id"],
                           "propagated": propagated.to_numpy()})
    calls = pd.DataFrame({"span_id": spans["parent_span_id"].to_numpy(),
                          "event": ("call:" + spans["service"] + " " + spans["name"]).to_numpy(), "propagated": False})
    events = pd.concat([logged, calls], ignore_index=True)
    events = events.merge(units[["span_id", "service", "op", "inc", "base"]], on="span_id")
    n = units.groupby(["service", "op"]).agg(n_b=("base", "sum"), n_i=("inc", "sum"))
    c = events.assign(p_i=events["inc"] & events["propagated"]).groupby(["service", "op", "event"]).agg(
        c_b=("base", "sum"), c_i=("inc", "sum"), c_prop=("p_i", "sum")).reset_index()
    c = c.join(n, on=["service", "op"])
    c = c[(c["n_b"] >= MIN_BASE_UNITS) & (c["n_i"] >= MIN_INC_UNITS)]
    inc_units = units.loc[units["inc"], ["span_id", "service", "op", "start"]].rename(columns={"span_id": "unit", "start": "time"})
    start_of = units.set_index("span_id")["start"]
    inc_events = events.loc[events["inc"], ["span_id", "service", "op", "event"]].rename(columns={"span_id": "unit"})
    inc_events["time"] = inc_events["unit"].map(start_of).to_numpy()
    return c.reset_index(drop=True), inc_units, inc_events


def _error_paths(mined: pd.DataFrame, spans: pd.DataFrame) -> tuple[pd.Series, set[str]]:
    """Where each trace's errors started, and the spans that only carried them up.

    An exception travels up the call chain and each caller logs it again, so a trace's errors
    start at the deepest span that logged an error (ERROR or worse; without spans, at the earliest
    error line; a WARN is a remark, not a failure passed up). An error line of another service of
    that trace is *propagated*; the spans
    on the path from the root to the origin that belong to other services are its callers, whose
    changed behaviour in that trace the origin explains.

    Returns
    -------
    (propagated, carriers)
        ``propagated``: bool per line of ``mined``; ``carriers``: span ids of the callers.
    """
    propagated = pd.Series(False, index=mined.index)
    trace = mined["trace_id"].astype(str) if "trace_id" in mined.columns else pd.Series("", index=mined.index)
    flag = mined["is_error"] if "is_error" in mined.columns else mined["is_problem"]
    problem = flag.to_numpy(dtype=bool) & ~trace.isin(("", "nan", "None")).to_numpy()
    if not problem.any():
        return propagated, set()
    span_of = mined["span_id"].astype(str) if "span_id" in mined.columns else pd.Series("", index=mined.index)
    lines = pd.DataFrame({"trace": trace[problem], "service": mined.loc[problem, "service"],
                          "time": mined.loc[problem, "timestamp"], "span": span_of[problem]})
    parent: dict[str, str] = {}
    if not spans.empty and "span_id" in mined.columns:
        parent = dict(zip(spans["span_id"].astype(str), spans["parent_span_id"].astype(str)))
    depth_of: dict[str, int] = {}

    def depth(span: str) -> int:
        if span not in parent:
            return -1
        if span not in depth_of:
            seen, cur, n = set(), span, 0
            while parent.get(cur, "") in parent and cur not in seen:
                seen.add(cur)
                cur, n = parent[cur], n + 1
            depth_of[span] = n
        return depth_of[span]

    lines["depth"] = [depth(sp) for sp in lines["span"]]
    lines = lines.sort_values(["trace", "depth", "time"], ascending=[True, False, True], kind="stable")
    first = lines.groupby("trace", sort=False).head(1).set_index("trace")
    propagated.loc[lines.index] = (lines["service"] != lines["trace"].map(first["service"])).to_numpy()
    carriers: set[str] = set()
    service_of = dict(zip(spans["span_id"].astype(str), spans["service"].astype(str))) if parent else {}
    for row in first.itertuples():
        cur, seen = parent.get(row.span, ""), set()
        while cur in parent and cur not in seen:
            seen.add(cur)
            if service_of.get(cur) != row.service:
                carriers.add(cur)
            cur = parent[cur]
    return propagated, carriers


def _service_events(mined: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fallback without span ids: a service's lines are the units, its templates the events."""
    lines = mined.assign(event="log:" + mined["template_id"], op="(all lines)", unit=np.arange(len(mined)))
    lines["p_i"] = lines["inc"] & _error_paths(mined, pd.DataFrame())[0].to_numpy()
    n = lines.groupby("service").agg(n_b=("base", "sum"), n_i=("inc", "sum"))
    c = lines.groupby(["service", "op", "event"]).agg(c_b=("base", "sum"), c_i=("inc", "sum"),
                                                      c_prop=("p_i", "sum")).reset_index()
    c = c.join(n, on="service")
    c = c[(c["n_b"] >= MIN_BASE_UNITS) & (c["n_i"] >= MIN_INC_UNITS)].reset_index(drop=True)
    inc = lines[lines["inc"]]
    inc = inc.rename(columns={"timestamp": "time"})
    return c, inc[["unit", "service", "op", "time"]], inc[["unit", "service", "op", "event", "time"]]


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
    if not pd.isna(getattr(row, "since", pd.NaT)):
        where += f" from {pd.Timestamp(row.since):%H:%M:%S}"
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
    # A node's metrics repeat on every pod of the node: a node-wide change points at no single
    # service, so they are not a service's own evidence (they stay in the detector's frame).
    adjusted = adjusted[[m for m in adjusted.columns if not str(m).lower().startswith(SHARED_PREFIXES)]]
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


def _topology_evidence(service: str, callees: list[str], intrinsic: pd.Series, own: float,
                       explain: float = EXPLAIN_RATIO) -> list[Evidence]:
    """What the call graph says about ``service`` (combined score ``own``): origin-like or propagated."""
    if own <= 0:
        return []
    others = [(c, float(intrinsic.get(c, 0.0))) for c in callees if c != service]
    if not others:
        return [Evidence(kind="topology", service=service, signal="topology leaf", time=None, magnitude=own,
                         explanation=f"{service} calls no other service: its symptoms are its own")]
    worst, value = max(others, key=lambda p: p[1])
    if value < explain * own:
        return [Evidence(kind="topology", service=service, signal="topology callees healthy", time=None,
                         magnitude=own - value,
                         explanation=f"anomalous ({own:.2f}) while its {len(others)} callee(s) look healthy "
                                     f"(worst {worst} {value:.2f}): a likely origin")]
    return [Evidence(kind="topology", service=service, signal=f"topology callee {worst}", time=None,
                     magnitude=-min(value, own), direction="down",
                     explanation=f"its callee {worst} is anomalous too ({value:.2f} vs {own:.2f}): "
                                 f"symptoms here may be propagated; discounted")]


def _strength(e: Evidence, refs: Mapping[str, float]) -> float:
    """Evidence on one scale: magnitude over its modality's reference."""
    name = {"metric": "metrics", "log": "logs", "span": "spans", "traffic": "spans"}.get(e.kind)
    if e.kind == "span" and e.signal.startswith("span call"):
        name = "logs"
    ref = refs.get(name, 0.0) if name is not None else 0.0
    return abs(e.magnitude) / ref if ref > 0 else 0.0


def _top(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` rows with the largest ``ratio`` (empty frames of any dtype give none)."""
    if frame.empty:
        return frame
    return frame.assign(ratio=frame["ratio"].astype(float)).nlargest(n, "ratio")
