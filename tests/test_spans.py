"""Span statistics: self time, call edges, per-step stats and the derived topology."""
from __future__ import annotations

import pandas as pd
import pytest

from workbench.telemetry import schema
from workbench.signals import spans
from workbench.errors import SchemaError

T0 = pd.Timestamp("2026-01-01T10:00:00Z")


def _span(sid, parent, service, name, start_ms, dur_ms, status="ok", trace="t1"):
    return {"trace_id": trace, "span_id": sid, "parent_span_id": parent, "service": service, "name": name,
            "start": T0 + pd.Timedelta(milliseconds=start_ms), "duration_ms": float(dur_ms), "status": status}


@pytest.fixture
def frame():
    """frontend GET /x (100 ms) -> its client span (60 ms) -> api handler (50 ms) -> two parallel DB calls.

    A second trace a minute later has the api handler fail.
    """
    rows = [
        _span("a", "", "frontend", "GET /x", 0, 100),
        _span("b", "a", "frontend", "HTTP GET", 10, 60),
        _span("c", "b", "api", "handle", 15, 50),
        _span("d", "c", "api", "SELECT 1", 20, 20),
        _span("e", "c", "api", "SELECT 2", 30, 20),  # overlaps d: 20..50 covered once
        _span("f", "", "frontend", "GET /x", 60_000, 80, trace="t2"),
        _span("g", "f", "frontend", "HTTP GET", 60_005, 70, trace="t2"),
        _span("h", "g", "api", "handle", 60_010, 10, status="error", trace="t2"),
    ]
    return schema.validate("spans", pd.DataFrame(rows), source="test").frame


def test_self_time_subtracts_the_union_of_children(frame):
    got = dict(zip(frame["span_id"], spans.self_times(frame)))
    assert got["a"] == pytest.approx(40.0)   # 100 - 60
    assert got["b"] == pytest.approx(10.0)   # 60 - 50: the time between the services
    assert got["c"] == pytest.approx(20.0)   # 50 - (20..50 = 30 ms), parallel children count once
    assert got["d"] == pytest.approx(20.0)
    assert got["h"] == pytest.approx(10.0)
    assert (spans.self_times(frame) >= 0).all()


def test_a_child_outliving_its_parent_counts_only_while_the_parent_ran():
    rows = [_span("p", "", "svc", "op", 0, 10), _span("q", "p", "svc", "async", 5, 100)]
    frame = schema.validate("spans", pd.DataFrame(rows), source="test").frame
    assert spans.self_times(frame).tolist() == pytest.approx([5.0, 100.0])


def test_annotate_marks_entries_exits_and_errors(frame):
    ann = spans.annotate(frame).set_index("span_id")
    assert ann.loc["b", "callee"] == "api" and ann.loc["a", "callee"] == ""
    assert ann.loc["c", "parent_service"] == "frontend" and bool(ann.loc["c", "entry"])
    assert not bool(ann.loc["d", "entry"]) and bool(ann.loc["a", "entry"])
    assert bool(ann.loc["h", "error"]) and not bool(ann.loc["c", "error"])


def test_a_span_calling_several_services_directly_does_its_own_work_between_the_calls():
    """Without client spans (the sample's checkout parents its callees' server spans) a span that
    calls several services is no exit span: its self time is its service's own (an operation of
    ``span_stats``), not overhead of its first edge. A client span retrying one service stays an
    exit span."""
    rows = [
        _span("s", "", "checkout", "POST /checkout", 0, 100),
        _span("x", "s", "cart", "get", 10, 20),
        _span("y", "s", "payments", "charge", 40, 30),  # s's own work: 100 - 50 = 50 ms
        _span("r", "", "frontend", "HTTP POST", 0, 90, trace="t2"),
        _span("r1", "r", "orders", "create", 5, 30, status="error", trace="t2"),
        _span("r2", "r", "orders", "create", 40, 40, trace="t2"),  # the retry of the same call
    ]
    frame = schema.validate("spans", pd.DataFrame(rows), source="test").frame
    ann = spans.annotate(frame).set_index("span_id")
    assert ann.loc["s", "callee"] == "" and ann.loc["s", "self_ms"] == pytest.approx(50.0)
    assert ann.loc["r", "callee"] == "orders" and ann.loc["r", "self_ms"] == pytest.approx(20.0)
    stats = spans.span_stats(frame, step="1min")
    own = stats[(stats["service"] == "checkout") & (stats["edge"] == "") & (stats["metric"] == "self_time_p50_ms")]
    assert own["value"].tolist() == pytest.approx([50.0])
    edges = stats[stats["edge"] != ""].groupby("edge")["metric"].apply(set).to_dict()
    assert edges["checkout→cart"] == edges["checkout→payments"] == {
        "requests", "error_rate", "latency_p50_ms", "latency_p90_ms", "latency_p95_ms"}  # no overhead to tell apart
    assert "overhead_p50_ms" in edges["frontend→orders"]
    calls = stats[(stats["metric"] == "requests") & (stats["edge"] != "")].set_index("edge")["value"].to_dict()
    assert calls == {"checkout→cart": 1, "checkout→payments": 1, "frontend→orders": 1}  # the retry is one call
    assert spans.derive_topology(frame)[["caller", "callee"]].values.tolist() == [
        ["checkout", "cart"], ["checkout", "payments"], ["frontend", "orders"]]


def test_span_stats_per_service_and_edge(frame):
    stats = spans.span_stats(frame, step="1min")
    assert list(stats.columns) == ["timestamp", "service", "edge", "metric", "value"]
    first = stats[stats["timestamp"] == T0]

    def value(service, edge, metric):
        sel = first[(first["service"] == service) & (first["edge"] == edge) & (first["metric"] == metric)]
        return float(sel["value"].iloc[0])

    assert value("api", "", "requests") == 1
    assert value("api", "", "latency_p50_ms") == pytest.approx(50.0)
    assert value("api", "frontend→api", "overhead_p50_ms") == pytest.approx(10.0)  # the callee's row
    assert value("api", "frontend→api", "latency_p50_ms") == pytest.approx(60.0)
    later = stats[stats["timestamp"] == T0 + pd.Timedelta(minutes=1)]
    rate = later[(later["service"] == "api") & (later["edge"] == "") & (later["metric"] == "error_rate")]
    assert float(rate["value"].iloc[0]) == 1.0
    edge_rate = later[(later["edge"] == "frontend→api") & (later["metric"] == "error_rate")]
    assert float(edge_rate["value"].iloc[0]) == 1.0


def test_span_stats_become_metric_rows_the_detectors_align(frame):
    from workbench.signals import detect

    rows = spans.as_metrics(spans.span_stats(frame))
    assert {"timestamp", "service", "name", "value"} <= set(rows.columns)
    assert "span frontend→api overhead_p90_ms" in set(rows["name"])
    wide = detect.align(rows.assign(timestamp=rows["timestamp"]), step="1min")
    assert "api" in wide


def test_derive_topology(frame):
    topo = spans.derive_topology(frame)
    assert topo.to_dict("records") == [{"caller": "frontend", "callee": "api"}]
    counted = spans.derive_topology(frame, counts=True)
    assert counted["calls"].tolist() == [2]


def test_empty_and_invalid_input(frame):
    empty = schema.empty("spans")
    assert spans.self_times(empty).empty
    assert spans.span_stats(empty).empty
    assert spans.derive_topology(empty).empty
    with pytest.raises(SchemaError):
        spans.self_times(frame.drop(columns=["parent_span_id"]))
    with pytest.raises(ValueError, match="percentiles"):
        spans.span_stats(frame, percentiles=(50, 150))
    with pytest.raises(ValueError, match="step"):
        spans.span_stats(frame, step="soon")


def test_annotate_a_frame_without_cross_service_calls_quietly(frame):
    import warnings

    alone = frame[frame["service"] == frame["service"].iloc[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' future-behaviour warnings included
        out = spans.annotate(alone)
    assert out["callee"].eq("").all() and out["callee"].dtype == object
