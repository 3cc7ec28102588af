"""The spans modality: self time per operation, overhead per call edge, traffic where it enters.

A service's own work is the self time of its operations that call no other service; the time a
call spends between two services (network, queues) belongs to the edge; a service nobody calls
also gets the change of its request rate. Ratios are log ratios of a quantile, incident vs
baseline. ``docs/ranking.md`` has the formulas.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ...signals import spans as span_lib
from ..evidence import Evidence, TelemetryWindow
from .base import ModalityResult

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
    # Each service's two slowest operations and two slowest edges (into or out of it), grouped once.
    own_top = _top_by(own, ["service"])
    edge_top = _top_by(edges, ["service", "caller"])
    for service in res.scores[res.scores > 0].index:
        items = list(res.evidence.get(service, []))
        for row in own_top.get(service, []):
            items.append(_span_evidence(service, f"span {service} {row.name} self time p{OWN_QUANTILE * 100:.0f}",
                                        f"self time of {row.name}", row, OWN_QUANTILE))
        for row in edge_top.get(service, []):
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


def _top_by(frame: pd.DataFrame, keys: list[str], n: int = 2) -> dict[str, list[Any]]:
    """Per service named in any of ``keys``, the ``n`` rows with the largest ``ratio`` (as tuples).

    Ties keep the frame's order (like ``nlargest``); a row counts for each distinct service of its
    keys (an edge for its callee and its caller).
    """
    if frame.empty:
        return {}
    # An empty frame can carry object dtype: cast before ranking.
    ranked = frame.assign(ratio=frame["ratio"].astype(float), _pos=np.arange(len(frame)))
    ranked = ranked.sort_values(["ratio", "_pos"], ascending=[False, True], kind="stable")
    out: dict[str, list[Any]] = {}
    for row in ranked.itertuples(index=False):
        for service in dict.fromkeys(getattr(row, k) for k in keys):
            rows = out.setdefault(service, [])
            if len(rows) < n:
                rows.append(row)
    return out
