"""The combination: modalities normalised by their reference, the strongest deciding, the topology.

:func:`localize` and :func:`localization` run :func:`modalities` (the expensive part) and
:func:`combine`; :func:`combined_scores` is the same arithmetic on arrays, so a benchmark scores
many :class:`~.base.Params` on one modality pass.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ...signals import spans as span_lib
from ..evidence import Evidence, ServiceSuspicion, TelemetryWindow
from .base import (CAP, DEFAULT_PARAMS, EXPLAIN_RATIO, MODALITIES, ONSET_MIN, Localization, ModalityResult,
                   Params)
from .logs import log_modality
from .metrics import metric_modality
from .spans import span_modality

log = logging.getLogger(__name__)


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
    topology = topology_of(window)
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


def topology_of(window: TelemetryWindow) -> pd.DataFrame:
    """The call graph: the window's declared topology, else the caller→callee pairs of its spans."""
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
