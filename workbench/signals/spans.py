"""Span statistics: self time, calls between services, per-step latency and error rates, topology.

A span is one operation of one service. This module derives what the analysis needs from the
unified ``spans`` table (:mod:`workbench.telemetry.schema`):

- :func:`self_times`: a span's own time, its duration minus the time covered by its children
  (the union of the children's intervals, clipped to the span, so parallel children are not
  counted twice);
- :func:`annotate`: every span with its self time, its parent's service and, for a span that
  calls another service (a client or "exit" span), the service it calls. The self time of such a
  span is the time spent between the two services (network, queues, connection pools): the
  analysis attributes it to the call (the *edge*), not to the caller's own work. A span that calls
  several services directly (no client spans in between) is no exit span: what it does between
  those calls is its service's own work;
- :func:`span_stats`: per step, per service and per caller→callee edge, latency percentiles,
  self-time percentiles, request counts and error rates, in a long shape that
  :func:`as_metrics` turns into metric rows the detectors score like any metric;
- :func:`derive_topology`: the caller→callee pairs seen in the spans (a span whose parent span
  belongs to another service is a call from that service).

Nothing here knows a particular system: services, operations and calls come from the span ids.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import ParameterError, SchemaError
from ..telemetry.windows import step_offset

#: Separator of an edge's two services in :func:`span_stats` and :func:`as_metrics` names.
ARROW = "→"
#: Default latency percentiles of :func:`span_stats`.
PERCENTILES = (50, 90, 95)

_REQUIRED = ("span_id", "parent_span_id", "service", "name", "start", "duration_ms")


def self_times(spans: pd.DataFrame) -> pd.Series:
    """Each span's self time: its duration minus the time its children cover, in ms.

    Children are the spans whose ``parent_span_id`` is the span's ``span_id`` (any service).
    Their intervals are clipped to the parent's interval and merged, so two children that ran in
    parallel count once, and a child that outlived its parent (asynchronous work) counts only
    while the parent ran. The result is never negative.

    Parameters
    ----------
    spans : pandas.DataFrame
        ``span_id``, ``parent_span_id`` (``""`` for roots), ``start`` (tz-aware), ``duration_ms``.

    Returns
    -------
    pandas.Series
        float ms, same index as ``spans``, named ``self_ms``.
    """
    _require(spans, ("span_id", "parent_span_id", "start", "duration_ms"))
    if len(spans) == 0:
        return pd.Series([], index=spans.index, dtype=float, name="self_ms")
    return _self_times(spans, _parent_positions(spans))


def _parent_positions(spans: pd.DataFrame) -> np.ndarray:
    """Row position of each span's parent (the first row of its id), NaN when it is not in the frame."""
    return spans["parent_span_id"].map(_positions(spans["span_id"])).to_numpy(dtype=float)


def _self_times(spans: pd.DataFrame, parent: np.ndarray) -> pd.Series:
    """:func:`self_times` given :func:`_parent_positions` (non-empty ``spans``)."""
    n = len(spans)
    start = _ns(spans["start"])
    dur = spans["duration_ms"].to_numpy(dtype=float) * 1e6
    end = start + dur
    has = ~np.isnan(parent)
    child = np.flatnonzero(has)
    par = parent[has].astype(np.int64)
    if len(child) == 0:
        return pd.Series(spans["duration_ms"].to_numpy(dtype=float), index=spans.index, name="self_ms")
    c_start = np.maximum(start[child], start[par])
    c_end = np.minimum(end[child], end[par])
    order = np.lexsort((c_start, par))
    par, c_start, c_end = par[order], c_start[order], c_end[order]
    # Union of sorted intervals per parent: a child covers only what lies beyond the furthest
    # end of the children that started before it.
    running = pd.Series(c_end).groupby(par).cummax().to_numpy()
    before = np.concatenate(([-np.inf], running[:-1]))
    first = np.concatenate(([True], par[1:] != par[:-1]))
    before[first] = -np.inf
    covered = np.clip(c_end - np.maximum(c_start, before), 0, None)
    total = np.bincount(par, weights=covered, minlength=n)
    out = np.clip(dur - total, 0, None) / 1e6
    return pd.Series(out, index=spans.index, name="self_ms")


def annotate(spans: pd.DataFrame) -> pd.DataFrame:
    """The spans with their self time, their parent's service and the service they call.

    Parameters
    ----------
    spans : pandas.DataFrame
        The unified ``spans`` table (``span_id``, ``parent_span_id``, ``service``, ``name``,
        ``start``, ``duration_ms``; ``status`` is used when present).

    Returns
    -------
    pandas.DataFrame
        A copy of ``spans`` (same index) with ``self_ms`` (float, :func:`self_times`),
        ``parent_service`` (str, ``""`` for a root or a parent outside the frame), ``entry``
        (bool: the span starts work in its service, i.e. its parent is absent or in another
        service), ``callee`` (str: the other service that all of the span's children outside its
        own service belong to: such a span is an *exit* (client) span, its self time the time
        spent between the two services; ``""`` when it calls no other service, or calls several
        directly, as a server span does when the caller emits no client spans: its self time is
        then its own work) and ``error`` (bool: ``status == "error"``).
    """
    _require(spans, _REQUIRED)
    out = spans.copy()
    if len(spans) == 0:
        out["self_ms"] = self_times(spans)
        parent_service = spans["parent_span_id"].map(_first_by_id(spans["span_id"], spans["service"]))
    else:
        # One lookup of the parents' rows serves the self times and the parents' services.
        parent = _parent_positions(spans)
        out["self_ms"] = _self_times(spans, parent)
        found = ~np.isnan(parent)
        services = spans["service"].to_numpy()
        parent_service = pd.Series(np.where(found, services[np.where(found, parent, 0).astype(np.int64)], np.nan),
                                   index=spans.index)
    out["parent_service"] = parent_service.fillna("").astype(object)
    out["entry"] = (parent_service.isna() | (parent_service != spans["service"])).to_numpy(dtype=bool)
    crossing = spans[parent_service.notna() & (parent_service != spans["service"])]
    called = crossing.groupby("parent_span_id", sort=False)["service"]
    # An exit span calls one other service (its children there are that call's server spans,
    # retries included). A span whose children are in several other services made those calls
    # itself (no client spans): its self time is its own work between them, not one edge's.
    callee = called.first()[called.nunique() == 1]
    # object before filling: an empty map gives float NaN, and filling a float column with "" is
    # going away in pandas (Pandas4Warning)
    out["callee"] = spans["span_id"].map(callee).astype(object).fillna("")
    status = spans["status"] if "status" in spans.columns else pd.Series("ok", index=spans.index)
    out["error"] = status.astype(str).eq("error").to_numpy(dtype=bool)
    return out


def span_stats(spans: pd.DataFrame, step: str = "1min", *,
               percentiles: Sequence[int] = PERCENTILES, edges: bool = True) -> pd.DataFrame:
    """Per step: latency and self-time percentiles, requests and error rate, per service and per edge.

    Parameters
    ----------
    spans : pandas.DataFrame
        The unified ``spans`` table.
    step : str
        A pandas offset alias (``"1min"``, ``"30s"``); a span counts in the step it started in.
    percentiles : sequence of int
        Percentiles (0-100) of latency and self time.
    edges : bool
        Also compute the caller→callee rows.

    Returns
    -------
    pandas.DataFrame
        Long shape: ``timestamp`` (step start, UTC), ``service``, ``edge`` (``""`` for the
        service's own rows, ``"caller→callee"`` for a call, with ``service`` = the callee),
        ``metric``, ``value`` (float). Metrics of a service: ``requests`` (entry spans, see
        :func:`annotate`), ``latency_p<q>_ms`` (duration of its entry spans), ``self_time_p<q>_ms``
        (self time of its spans that call no other service) and ``error_rate`` (share of its spans
        with status error). Metrics of an edge: ``requests`` (calls), ``latency_p<q>_ms`` (the
        duration the caller saw: its exit span's, or the callee's entry span's for a call made
        without a client span), ``overhead_p<q>_ms`` (the caller's exit-span self time: time
        between the two services; none for direct calls) and ``error_rate`` (share of the
        callee's entry spans of those calls with status error). Sorted by timestamp, service, edge, metric.
    """
    qs = _percentiles(percentiles)
    columns = ["timestamp", "service", "edge", "metric", "value"]
    if spans.empty:
        return pd.DataFrame({c: pd.Series([], dtype="datetime64[ns, UTC]" if c == "timestamp" else
                                          (float if c == "value" else object)) for c in columns})
    ann = annotate(spans)
    ann["timestamp"] = ann["start"].dt.tz_convert("UTC").dt.floor(step_offset(step))
    parts = []
    entry = ann[ann["entry"]]
    parts.append(_counts(entry, ["timestamp", "service"], "requests"))
    parts.append(_quantiles(entry, ["timestamp", "service"], "duration_ms", qs, "latency"))
    parts.append(_quantiles(ann[ann["callee"] == ""], ["timestamp", "service"], "self_ms", qs, "self_time"))
    parts.append(ann.groupby(["timestamp", "service"])["error"].mean().rename("error_rate").reset_index()
                 .melt(id_vars=["timestamp", "service"], var_name="metric"))
    for p in parts:
        p["edge"] = ""
    if edges:
        keys = ["timestamp", "service", "edge"]
        calls = ann[ann["callee"] != ""].rename(columns={"service": "caller", "callee": "service"})
        # Calls a span made directly (no client span): the callee's entry span is all there is of
        # the call, so its duration is the latency and no overhead can be told apart.
        exits = set(ann.loc[ann["callee"] != "", "span_id"])
        direct = ann[ann["entry"] & (ann["parent_service"] != "") & ~ann["parent_span_id"].isin(exits)]
        calls = pd.concat([calls, direct.rename(columns={"parent_service": "caller"})], ignore_index=True)
        if len(calls):
            calls["edge"] = calls["caller"] + ARROW + calls["service"]
            parts.append(_counts(calls, keys, "requests"))
            parts.append(_quantiles(calls, keys, "duration_ms", qs, "latency"))
            exit_calls = calls[calls["span_id"].isin(exits)]
            parts.append(_quantiles(exit_calls, keys, "self_ms", qs, "overhead"))
            callee_entry = ann[ann["entry"] & (ann["parent_service"] != "")]
            errs = callee_entry.assign(edge=callee_entry["parent_service"] + ARROW + callee_entry["service"])
            parts.append(errs.groupby(keys)["error"].mean().rename("error_rate").reset_index()
                         .melt(id_vars=keys, var_name="metric"))
    out = pd.concat(parts, ignore_index=True)[columns]
    out["value"] = out["value"].astype(float)
    return out.sort_values(["timestamp", "service", "edge", "metric"], kind="stable").reset_index(drop=True)


def as_metrics(stats: pd.DataFrame) -> pd.DataFrame:
    """:func:`span_stats` rows as metric rows the detectors align and score.

    Returns
    -------
    pandas.DataFrame
        ``timestamp``, ``service``, ``name`` (``span <metric>`` for a service's own rows,
        ``span <caller→callee> <metric>`` for an edge), ``value``.
    """
    _require(stats, ("timestamp", "service", "edge", "metric", "value"), table="span stats")
    name = np.where(stats["edge"].eq(""), "span " + stats["metric"], "span " + stats["edge"] + " " + stats["metric"])
    return pd.DataFrame({"timestamp": stats["timestamp"], "service": stats["service"], "name": name,
                         "value": stats["value"].astype(float)})


def derive_topology(spans: pd.DataFrame, counts: bool = False) -> pd.DataFrame:
    """Caller→callee pairs of services seen in the spans.

    A span whose parent span (looked up in ``spans``) belongs to another service is a call from
    the parent's service to the span's service. Parents outside the frame are unknown and give
    no pair.

    Parameters
    ----------
    spans : pandas.DataFrame
        ``span_id``, ``parent_span_id``, ``service``.
    counts : bool
        Add ``calls`` (int64, spans per pair).

    Returns
    -------
    pandas.DataFrame
        ``caller``, ``callee`` (and ``calls``), one row per distinct pair, sorted.
    """
    _require(spans, ("span_id", "parent_span_id", "service"))
    service_of = _first_by_id(spans["span_id"], spans["service"])
    pairs = pd.DataFrame({"caller": spans["parent_span_id"].map(service_of), "callee": spans["service"]}).dropna()
    pairs = pairs[pairs["caller"] != pairs["callee"]].astype(object)
    out = pairs.groupby(["caller", "callee"], sort=True).size().rename("calls").reset_index()
    out["calls"] = out["calls"].astype("int64")
    return out if counts else out[["caller", "callee"]]


# --------------------------------------------------------------------------- helpers

def _require(frame: pd.DataFrame, columns: Sequence[str], table: str = "spans") -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(table, "workbench.signals.spans", [{"column": ", ".join(missing),
                                                      "check": "a required column, missing",
                                                      "count": len(frame), "rows": []}])


def _ns(times: pd.Series) -> np.ndarray:
    """Nanoseconds since the earliest time, as float (exact for spans up to ~100 days apart)."""
    values = times.dt.tz_convert("UTC") if isinstance(times.dtype, pd.DatetimeTZDtype) else times
    ns = values.to_numpy(dtype="datetime64[ns]").astype("int64")
    return (ns - ns.min()).astype(float) if len(ns) else ns.astype(float)


def _positions(ids: pd.Series) -> pd.Series:
    """span id -> row position (the first row when an id repeats)."""
    pos = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    return pos[~pos.index.duplicated()]


def _first_by_id(ids: pd.Series, values: pd.Series) -> pd.Series:
    out = pd.Series(values.to_numpy(), index=ids.to_numpy())
    return out[~out.index.duplicated()]


def _percentiles(percentiles: Sequence[int]) -> list[int]:
    qs = list(percentiles)
    for q in qs:
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 0 <= q <= 100:
            raise ParameterError(f"percentiles must be integers in [0, 100], got {q!r}")
    return qs


def _counts(frame: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    out = frame.groupby(keys).size().rename("value").reset_index()
    out["metric"] = metric
    return out


def _quantiles(frame: pd.DataFrame, keys: list[str], column: str, qs: list[int], prefix: str) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "metric", "value"])
    grouped = frame.groupby(keys)[column]
    parts = []
    for q in qs:
        part = grouped.quantile(q / 100).rename("value").reset_index()
        part["metric"] = f"{prefix}_p{q}_ms"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
