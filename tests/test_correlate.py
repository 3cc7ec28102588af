"""Correlation helpers on hand-built events, suspicions and topologies."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import correlate
from workbench.analysis.correlate import Topology, changes_before, changes_for, onset_order
from workbench.analysis.evidence import ServiceSuspicion

T0 = pd.Timestamp("2026-11-02T14:03:00Z")


def _events(rows):
    return pd.DataFrame([{"timestamp": pd.Timestamp(t), "service": s, "environment": "production", "kind": k,
                          "summary": summary, "attributes": attrs} for t, s, k, summary, attrs in rows])


EVENTS = _events([
    ("2026-11-02T13:20:00Z", "payments", "deploy", "Deployed payments v2.14.9 (too early)", "{}"),
    ("2026-11-02T13:51:42Z", "catalog", "deploy", "Deployed catalog v5.2.3", '{"version":"5.2.3"}'),
    ("2026-11-02T14:02:00Z", "payments", "deploy", "Deployed payments v2.15.0", '{"version":"2.15.0"}'),
    ("2026-11-02T14:03:20Z", "payments", "feature_flag", "Flag within the onset step", "{}"),
    ("2026-11-02T14:08:48Z", "payments", "alert", "HighErrorRate", "{}"),
    ("2026-11-02T14:10:00Z", "checkout", "scale", "Autoscaled checkout from 3 to 5",
     '{"new_replicas":5,"old_replicas":3}'),
    ("2026-11-02T14:30:00Z", "payments", "deploy", "Rolled back payments", '{"rollback":true}'),
])


def test_change_events_keeps_only_changes_and_parses_attributes():
    changes = correlate.change_events(EVENTS)
    assert set(changes["kind"]) <= set(correlate.CHANGE_KINDS)
    assert "alert" not in set(changes["kind"])
    assert changes["timestamp"].is_monotonic_increasing
    rollback = changes[changes["summary"] == "Rolled back payments"]
    assert bool(rollback["rollback"].iloc[0])
    scale = changes[changes["kind"] == "scale"]
    assert scale["replicas_delta"].iloc[0] == 2


def test_changes_before_window_lag_and_no_change_after_onset():
    found = changes_before(EVENTS, "payments", T0)
    summaries = found["summary"].tolist()
    # the deploy one minute before, and the flag inside the onset step (negative lag) count
    assert "Deployed payments v2.15.0" in summaries
    assert "Flag within the onset step" in summaries
    # too early (43 min) and after the onset (rollback) do not
    assert "Deployed payments v2.14.9 (too early)" not in summaries
    assert "Rolled back payments" not in summaries
    deploy = found[found["summary"] == "Deployed payments v2.15.0"].iloc[0]
    assert deploy["lag_minutes"] == pytest.approx(1.0)
    flag = found[found["summary"] == "Flag within the onset step"].iloc[0]
    assert flag["lag_minutes"] < 0
    # a longer lookback finds the early deploy; another service's change is never included
    longer = changes_before(EVENTS, "payments", T0, lookback=pd.Timedelta(hours=1))
    assert "Deployed payments v2.14.9 (too early)" in longer["summary"].tolist()
    assert set(longer["service"]) == {"payments"}


def test_changes_before_every_service_and_naive_onset_refused():
    found = changes_before(EVENTS, None, T0)
    assert {"payments", "catalog"} <= set(found["service"])
    with pytest.raises(ValueError, match="no time zone"):
        changes_before(EVENTS, "payments", pd.Timestamp("2026-11-02T14:03:00"))


def test_changes_for_uses_each_services_own_onset():
    suspicions = [ServiceSuspicion("payments", 3.0, onset=T0),
                  ServiceSuspicion("checkout", 2.0, onset=T0 + pd.Timedelta(minutes=10)),
                  ServiceSuspicion("frontend", 1.0, onset=None)]
    found = changes_for(EVENTS, suspicions)
    by_service = found.groupby("service")["summary"].apply(list).to_dict()
    assert "Deployed payments v2.15.0" in by_service["payments"]
    # checkout's onset is 14:13: its scale at 14:10 precedes it
    assert by_service["checkout"] == ["Autoscaled checkout from 3 to 5"]
    assert "frontend" not in by_service
    empty = changes_for(EVENTS.iloc[0:0], suspicions)
    assert empty.empty and "lag_minutes" in empty.columns


def test_onset_order_and_leads():
    a = ServiceSuspicion("payments", 3.0, onset=T0)
    b = ServiceSuspicion("checkout", 2.0, onset=T0 + pd.Timedelta(minutes=1))
    c = ServiceSuspicion("frontend", 1.0, onset=T0 + pd.Timedelta(minutes=1))
    d = ServiceSuspicion("shipping", 0.5, onset=None)
    order = onset_order([d, c, b, a])
    assert order["service"].tolist() == ["payments", "checkout", "frontend", "shipping"]
    assert order["order"].tolist()[:3] == [1, 2, 2]
    assert order["lag_minutes"].tolist()[:3] == [0.0, 1.0, 1.0]
    assert pd.isna(order["order"].iloc[3])
    assert correlate.leads(a, b) and not correlate.leads(b, a)
    assert not correlate.leads(b, c) and not correlate.leads(d, a) and correlate.leads(a, d)
    assert onset_order([]).empty


def test_topology_helpers():
    topo = Topology.from_frame(pd.DataFrame({
        "caller": ["frontend", "frontend", "checkout", "checkout", "cart", "cart"],
        "callee": ["checkout", "cart", "payments", "orders", "catalog", "cart"]}))
    assert topo.callees("checkout") == ["orders", "payments"]
    assert topo.callers("payments") == ["checkout"]
    assert topo.callees("frontend", transitive=True) == ["cart", "catalog", "checkout", "orders", "payments"]
    assert topo.callers("catalog", transitive=True) == ["cart", "frontend"]
    assert topo.depends_on("frontend", "payments") and topo.is_upstream_of("frontend", "payments")
    assert not topo.depends_on("payments", "frontend")
    assert not topo.depends_on("cart", "cart")  # self-calls are ignored
    assert topo.distance("frontend", "payments") == 2 and topo.distance("payments", "frontend") is None
    assert topo.entry_services() == ["frontend"]
    assert topo.entry_services(["frontend", "payments", "unknown"]) == ["frontend"]
    assert topo.callees("unknown") == [] and "unknown" not in topo
    empty = Topology.from_frame(None)
    assert empty.empty and empty.entry_services(["a", "b"]) == ["a", "b"]


def _metrics(values_by_series):
    rows = []
    for (service, name, pod), values in values_by_series.items():
        times = pd.date_range(T0 - pd.Timedelta(minutes=len(values) - 20), periods=len(values), freq="1min")
        rows += [{"timestamp": t, "service": service, "environment": "p", "name": name, "value": v, "unit": "",
                  "attributes": f'{{"pod":"{pod}"}}'} for t, v in zip(times, values)]
    return pd.DataFrame(rows)


def test_rate_shift_compares_medians_around_the_anchor_and_sums_series():
    rate = [100.0] * 60 + [300.0] * 20  # tripled at T0 (the 61st minute)
    metrics = _metrics({("frontend", "request_rate", "a"): rate, ("frontend", "request_rate", "b"): rate,
                        ("frontend", "cpu", "a"): [0.5] * 80})
    shift = correlate.rate_shift(metrics, "frontend", ["request_rate"], T0)
    assert shift["metric"].tolist() == ["request_rate"]
    row = shift.iloc[0]
    assert row["before"] == 200.0 and row["after"] == 600.0 and row["ratio"] == pytest.approx(3.0)
    # the end of the window bounds what is read after the anchor
    short = correlate.rate_shift(metrics, "frontend", ["request_rate"], T0, end=T0 + pd.Timedelta(minutes=2))
    assert short.empty  # fewer than 3 points after the anchor
    assert correlate.rate_shift(metrics, "frontend", ["nope"], T0).empty


def test_metric_moves_is_a_sustained_robust_z():
    rng = np.random.default_rng(3)
    base = list(50 + rng.normal(0, 1, 60))
    metrics = _metrics({("orders", "db_pool_usage", "a"): base + [95.0] * 20,
                        ("orders", "cpu", "a"): base + [50.0] * 19 + [500.0],  # one spike only
                        ("cart", "db_pool_usage", "a"): base + [50.0] * 20})
    moves = correlate.metric_moves(metrics, ["orders", "cart"], ["db_pool_usage", "cpu"],
                                   (T0 - pd.Timedelta(minutes=40), T0), (T0, T0 + pd.Timedelta(minutes=20)))
    z = {(r.service, r.name): r.z for r in moves.itertuples()}
    assert z[("orders", "db_pool_usage")] > 10  # 45 above a level of 50: the 5 % floor (2.5) sets the scale
    assert abs(z[("orders", "cpu")]) < 5  # a lone spike is not a move
    assert abs(z[("cart", "db_pool_usage")]) < 5
