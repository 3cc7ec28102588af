"""Correlation: what changed just before each service's onset, who moved first, who calls whom.

Three independent helpers the hypothesis ranking (:mod:`workbench.analysis.hypotheses`) builds on:

- **Changes before an onset** (:func:`changes_before`, :func:`changes_for`): change events
  (:data:`CHANGE_KINDS`: deploy, config_change, feature_flag, scale) on a service within
  :data:`DEFAULT_LOOKBACK` (30 minutes) before that service's onset, with the lag. Thirty minutes
  covers a rolling deploy plus the minutes a slow leak or a cold cache needs to show, while a
  busy system (five deploys a day) rarely has an unrelated change of the same service that close.
  An onset is the *start* of the first anomalous step, so a change up to one step after it
  (:data:`DEFAULT_TOLERANCE`) still counts, with a negative lag; anything later is a reaction
  (autoscaling, a rollback), never a cause.
- **Onset order** (:func:`onset_order`): services sorted by onset, each with its lag behind the
  first one; :func:`leads` tells whether one service moved before another.
- **Signals around the onset**: :func:`rate_shift` (a request rate before and after a time) and
  :func:`metric_moves` (sustained robust deviation of chosen metrics against the baseline).
- **Topology** (:class:`Topology`): the ``caller -> callee`` graph (networkx) with
  :meth:`~Topology.callees`, :meth:`~Topology.callers`, :meth:`~Topology.depends_on`,
  :meth:`~Topology.is_upstream_of` and :meth:`~Topology.entry_services`.

Direction words, once: requests flow *downstream* from caller to callee; failures propagate
*upstream*, from a callee to its callers. A service ``a`` is upstream of ``b`` when ``a`` calls
``b`` directly or through other services.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import networkx as nx
import numpy as np
import pandas as pd

from .evidence import ServiceSuspicion
from ..formats import aware_time
from ..signals.detect.base import robust_z

#: Event kinds that change the system (the others, alert/page/note…, only describe it).
CHANGE_KINDS = ("deploy", "config_change", "feature_flag", "scale")
#: How far before an onset a change is looked for.
DEFAULT_LOOKBACK = pd.Timedelta(minutes=30)
#: A change this long after the onset (one alignment step) is still "before" it.
DEFAULT_TOLERANCE = pd.Timedelta(minutes=1)

_CHANGE_COLUMNS = ["timestamp", "service", "kind", "summary", "attributes", "rollback", "replicas_delta"]


def change_events(events: pd.DataFrame) -> pd.DataFrame:
    """The change events of a unified ``events`` table, with their attributes parsed.

    Parameters
    ----------
    events : pandas.DataFrame
        Unified ``events`` rows (``timestamp``, ``service``, ``kind``, ``summary``,
        ``attributes`` as JSON text or dict).

    Returns
    -------
    pandas.DataFrame
        ``timestamp``, ``service``, ``kind`` (one of :data:`CHANGE_KINDS`), ``summary``,
        ``attributes`` (dict), ``rollback`` (bool: a deploy that restores a previous version,
        ``attributes.rollback``), ``replicas_delta`` (float: new − old replicas of a scale event,
        NaN otherwise), ordered by time.
    """
    if events is None or events.empty:
        return _empty_changes()
    frame = events[events["kind"].isin(CHANGE_KINDS)]
    if frame.empty:
        return _empty_changes()
    attrs = [_attributes(a) for a in frame["attributes"]] if "attributes" in frame else [{} for _ in range(len(frame))]
    out = pd.DataFrame({
        "timestamp": frame["timestamp"].to_numpy(),
        "service": frame["service"].astype(str).to_numpy(),
        "kind": frame["kind"].astype(str).to_numpy(),
        "summary": frame["summary"].astype(str).to_numpy() if "summary" in frame else "",
        "attributes": attrs,
        "rollback": [bool(a.get("rollback", False)) for a in attrs],
        "replicas_delta": [_replicas_delta(a) for a in attrs],
    })
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)


def changes_before(events: pd.DataFrame, service: str | None, onset: Any, lookback: pd.Timedelta = DEFAULT_LOOKBACK,
                   tolerance: pd.Timedelta = DEFAULT_TOLERANCE) -> pd.DataFrame:
    """Changes of ``service`` (every service when None) in ``[onset − lookback, onset + tolerance)``.

    Parameters
    ----------
    events : pandas.DataFrame
        Unified ``events`` rows or the output of :func:`change_events`.
    service : str or None
        Only changes of this service.
    onset : datetime-like
        The service's onset (timezone-aware).
    lookback : pandas.Timedelta
        How far back to look (default :data:`DEFAULT_LOOKBACK`, 30 minutes).
    tolerance : pandas.Timedelta
        A change up to this long after the onset still counts (default one minute: the onset is
        the start of a step).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`change_events` plus ``onset`` (timestamp) and ``lag_minutes``
        (float, onset − change; negative within the tolerance), most recent change first.
    """
    onset_ts = aware_time(onset, "onset")
    changes = events if "rollback" in events.columns else change_events(events)
    keep = (changes["timestamp"] >= onset_ts - lookback) & (changes["timestamp"] < onset_ts + tolerance)
    if service is not None:
        keep &= changes["service"] == service
    out = changes[keep].copy()
    out["onset"] = onset_ts
    out["lag_minutes"] = (onset_ts - out["timestamp"]).dt.total_seconds() / 60.0
    return out.sort_values(["lag_minutes", "service"], kind="stable").reset_index(drop=True)


def changes_for(events: pd.DataFrame, onsets: Mapping[str, Any] | Iterable[ServiceSuspicion],
                lookback: pd.Timedelta = DEFAULT_LOOKBACK, tolerance: pd.Timedelta = DEFAULT_TOLERANCE) -> pd.DataFrame:
    """:func:`changes_before` for every service with an onset, in one frame.

    Parameters
    ----------
    events : pandas.DataFrame
        Unified ``events`` rows or :func:`change_events` output.
    onsets : dict or iterable of ServiceSuspicion
        Service -> onset (None skips the service), or suspicions (their ``onset``).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`changes_before`; one row per (service, change), ordered by
        service onset, then lag.
    """
    changes = events if "rollback" in events.columns else change_events(events)
    items = [(service, aware_time(onset, "onset")) for service, onset in _onset_items(onsets) if onset is not None]
    if changes.empty or not items:
        return _empty_changes().assign(onset=pd.Series([], dtype="datetime64[ns, UTC]"),
                                       lag_minutes=pd.Series([], dtype="float64"))
    # one merge instead of a query per service: this runs for every incident of a recheck
    table = pd.DataFrame(items, columns=["service", "onset"])
    table["onset"] = pd.to_datetime(table["onset"], utc=True)
    out = changes.merge(table, on="service", how="inner")
    out = out[(out["timestamp"] >= out["onset"] - lookback) & (out["timestamp"] < out["onset"] + tolerance)].copy()
    out["lag_minutes"] = (out["onset"] - out["timestamp"]).dt.total_seconds() / 60.0
    return out.sort_values(["onset", "service", "lag_minutes"], kind="stable").reset_index(drop=True)


def onset_order(suspicions: Iterable[ServiceSuspicion], onsets: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Services by onset: who moved first, and how long after the first each one followed.

    Parameters
    ----------
    suspicions : iterable of ServiceSuspicion
    onsets : dict, optional
        Service -> onset overriding the suspicions' own (e.g. the hypothesis ranking's
        correlation onsets, :func:`workbench.analysis.hypotheses.onsets`).

    Returns
    -------
    pandas.DataFrame
        ``service``, ``onset`` (timestamp, NaT when none), ``order`` (int, 1 = first; services
        with the same onset share it; NaN-onset services last with no order), ``lag_minutes``
        (float, onset − earliest onset), ``score`` (the suspicion), ordered by onset then
        suspicion (highest first).
    """
    onsets = onsets or {}
    rows = []
    for s in suspicions:
        onset = onsets.get(s.service, s.onset)
        rows.append({"service": s.service, "onset": pd.NaT if onset is None else aware_time(onset, "onset"),
                     "score": float(s.score)})
    frame = pd.DataFrame(rows, columns=["service", "onset", "score"])
    if frame.empty:
        return frame.assign(order=pd.Series([], dtype="Int64"), lag_minutes=pd.Series([], dtype="float64"))[
            ["service", "onset", "order", "lag_minutes", "score"]]
    frame["onset"] = pd.to_datetime(frame["onset"], utc=True)
    frame = frame.sort_values(["onset", "score", "service"], ascending=[True, False, True], na_position="last",
                              kind="stable").reset_index(drop=True)
    first = frame["onset"].min()
    frame["lag_minutes"] = (frame["onset"] - first).dt.total_seconds() / 60.0
    frame["order"] = frame["onset"].rank(method="min").astype("Int64")
    return frame[["service", "onset", "order", "lag_minutes", "score"]]


def leads(a: ServiceSuspicion, b: ServiceSuspicion, margin: pd.Timedelta = pd.Timedelta(0)) -> bool:
    """True when ``a`` has an onset more than ``margin`` before ``b``'s (a missing onset never leads)."""
    if a.onset is None:
        return False
    if b.onset is None:
        return True
    return aware_time(a.onset, "onset") + margin < aware_time(b.onset, "onset")


def rate_shift(metrics: pd.DataFrame, service: str, names: Sequence[str], anchor: Any,
               before: pd.Timedelta = pd.Timedelta(minutes=60), after: pd.Timedelta = pd.Timedelta(minutes=15),
               end: Any = None) -> pd.DataFrame:
    """How much a rate changed at ``anchor``: the median over ``[anchor, anchor + after)`` over the
    median over ``[anchor - before, anchor)``, per metric.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Unified ``metrics`` rows (``timestamp``, ``service``, ``name``, ``value``); several series
        of one metric (pods, routes) are summed per timestamp.
    service : str
    names : sequence of str
        Metric names to compare (e.g. ``request_rate``).
    anchor : datetime-like
        Timezone-aware time of the suspected shift.
    before, after : pandas.Timedelta
        Lengths of the two stretches compared.
    end : datetime-like, optional
        Nothing at or after ``end`` is used (the window end).

    Returns
    -------
    pandas.DataFrame
        ``metric``, ``before`` and ``after`` (medians, float), ``ratio`` (after / before),
        ``at`` (the anchor); one row per metric with at least 3 points on each side and a
        positive ``before``.
    """
    at = aware_time(anchor, "anchor")
    stop = at + after if end is None else min(at + after, aware_time(end, "end"))
    part = metrics[(metrics["service"] == service) & metrics["name"].isin(list(names))
                   & (metrics["timestamp"] >= at - before) & (metrics["timestamp"] < stop)]
    rows = []
    for metric, group in part.groupby("name", sort=True):
        series = group.groupby("timestamp")["value"].sum()
        lo = series[series.index < at].to_numpy(dtype=float)
        hi = series[series.index >= at].to_numpy(dtype=float)
        lo, hi = lo[np.isfinite(lo)], hi[np.isfinite(hi)]
        if len(lo) < 3 or len(hi) < 3:
            continue
        base, now = float(np.median(lo)), float(np.median(hi))
        if base <= 0:
            continue
        rows.append({"metric": metric, "before": base, "after": now, "ratio": now / base, "at": at})
    return pd.DataFrame(rows, columns=["metric", "before", "after", "ratio", "at"])


def metric_moves(metrics: pd.DataFrame, services: Sequence[str], names: Sequence[str], baseline: tuple[Any, Any],
                 window: tuple[Any, Any], rel_floor: float = 0.05) -> pd.DataFrame:
    """Sustained robust deviation of some metrics of some services, incident window vs baseline.

    ``z = (peak - median) / max(1.4826 * MAD, rel_floor * |median|)`` where median and MAD are the
    baseline's and ``peak`` is the second-largest value of the window (one spike is not a move).
    Several series of one metric are summed per timestamp.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Unified ``metrics`` rows.
    services, names : sequence of str
        Which services and metric names.
    baseline, window : (start, end)
        ``[start, end)`` of the baseline and of the incident window.
    rel_floor : float
        Least scale as a share of the baseline level (a metric flat in the baseline).

    Returns
    -------
    pandas.DataFrame
        ``service``, ``name``, ``median`` (baseline), ``peak``, ``z`` (float); one row per
        (service, name) with at least 3 baseline and 2 window points.
    """
    cols = ["service", "name", "median", "peak", "z"]
    part = metrics[metrics["service"].isin(list(services)) & metrics["name"].isin(list(names))]
    if part.empty:
        return pd.DataFrame(columns=cols)
    summed = part.groupby(["service", "name", "timestamp"], sort=True)["value"].sum()
    times = summed.index.get_level_values("timestamp")
    b0, b1 = (aware_time(t, "baseline") for t in baseline)
    w0, w1 = (aware_time(t, "window") for t in window)
    is_base = np.asarray((times >= b0) & (times < b1))
    is_inc = np.asarray((times >= w0) & (times < w1))
    values = summed.to_numpy(dtype=float)
    positions = pd.Series(np.arange(len(summed)), index=summed.index.droplevel("timestamp"))
    rows = []
    for (service, name), group in positions.groupby(level=[0, 1], sort=True):
        idx = group.to_numpy()
        base, inc = values[idx[is_base[idx]]], values[idx[is_inc[idx]]]
        base, inc = base[np.isfinite(base)], inc[np.isfinite(inc)]
        if len(base) < 3 or len(inc) < 2:
            continue
        center = float(np.median(base))
        peak = float(np.sort(inc)[-2])
        z = float(robust_z(peak, base, floor=rel_floor * abs(center), fallback=False))
        rows.append({"service": service, "name": name, "median": center, "peak": peak, "z": z})
    return pd.DataFrame(rows, columns=cols)


@dataclass
class Topology:
    """The service call graph, ``caller -> callee``.

    Build it with :meth:`from_frame` from the unified ``topology`` table (``caller``,
    ``callee``). Self-calls are ignored; unknown services simply have no neighbours.
    """

    graph: nx.DiGraph

    @classmethod
    def from_frame(cls, topology: pd.DataFrame | None) -> "Topology":
        graph = nx.DiGraph()
        if topology is not None and not topology.empty:
            for caller, callee in zip(topology["caller"].astype(str), topology["callee"].astype(str)):
                if caller != callee:
                    graph.add_edge(caller, callee)
        return cls(graph)

    def __contains__(self, service: str) -> bool:
        return service in self.graph

    @property
    def empty(self) -> bool:
        return self.graph.number_of_edges() == 0

    def callees(self, service: str, transitive: bool = False) -> list[str]:
        """What ``service`` calls (directly, or through others when ``transitive``), sorted."""
        if service not in self.graph:
            return []
        found = nx.descendants(self.graph, service) if transitive else set(self.graph.successors(service))
        return sorted(found - {service})

    def callers(self, service: str, transitive: bool = False) -> list[str]:
        """What calls ``service`` (directly, or through others when ``transitive``), sorted."""
        if service not in self.graph:
            return []
        found = nx.ancestors(self.graph, service) if transitive else set(self.graph.predecessors(service))
        return sorted(found - {service})

    def depends_on(self, a: str, b: str) -> bool:
        """True when ``a`` calls ``b``, directly or through other services."""
        return a in self.graph and b in self.graph and a != b and nx.has_path(self.graph, a, b)

    def is_upstream_of(self, a: str, b: str) -> bool:
        """True when ``a`` is upstream of ``b`` (closer to the entry): the same as ``depends_on(a, b)``."""
        return self.depends_on(a, b)

    def distance(self, a: str, b: str) -> int | None:
        """Call hops from ``a`` down to ``b`` (None when ``a`` does not depend on ``b``)."""
        if not self.depends_on(a, b):
            return None
        return nx.shortest_path_length(self.graph, a, b)

    def entry_services(self, among: Sequence[str] | None = None) -> list[str]:
        """Services that call others and that nobody calls (where traffic enters), sorted.

        A service absent from a non-empty topology calls nobody and is called by nobody: an
        idle or unobserved service, not an entry. With an empty topology every service in
        ``among`` is an entry (nothing says otherwise).
        """
        if self.empty:
            return sorted(among or [])
        entries = {n for n in self.graph if self.graph.in_degree(n) == 0}
        if among is not None:
            entries &= set(among)
        return sorted(entries)


# --------------------------------------------------------------------------- helpers

def _onset_items(onsets: Mapping[str, Any] | Iterable[ServiceSuspicion]) -> list[tuple[str, Any]]:
    if isinstance(onsets, Mapping):
        return list(onsets.items())
    return [(s.service, s.onset) for s in onsets]


def _empty_changes() -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"), "service": pd.Series([], dtype=object),
        "kind": pd.Series([], dtype=object), "summary": pd.Series([], dtype=object),
        "attributes": pd.Series([], dtype=object), "rollback": pd.Series([], dtype=bool),
        "replicas_delta": pd.Series([], dtype="float64")})[_CHANGE_COLUMNS]


def _attributes(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _replicas_delta(attrs: dict[str, Any]) -> float:
    try:
        return float(attrs["new_replicas"]) - float(attrs["old_replicas"])
    except (KeyError, TypeError, ValueError):
        return float("nan")
