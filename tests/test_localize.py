"""Root-cause localisation: a seeded synthetic incident, degenerate windows, and real Nezha cases."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.telemetry import schema
from workbench.analysis.evidence import EVIDENCE_KINDS, ServiceSuspicion, TelemetryWindow
from workbench.analysis.localize import localization, localize

REPO = Path(__file__).resolve().parents[1]
NEZHA = REPO.parent / "shared" / "data" / "nezha-trainticket"

BASE_START = pd.Timestamp("2026-03-01T08:00:00Z")
START = pd.Timestamp("2026-03-01T08:30:00Z")
FAULT = pd.Timestamp("2026-03-01T08:32:00Z")
END = pd.Timestamp("2026-03-01T08:45:00Z")
TOPOLOGY = [("frontend", "checkout"), ("checkout", "payments"), ("frontend", "catalog")]


def _synthetic(seed: int = 7, fault: bool = True) -> dict[str, pd.DataFrame]:
    """frontend -> checkout -> payments (leaf), frontend -> catalog (leaf), 1-minute metrics.

    From FAULT on, payments is 5x slower in its own work, 20 % of its charges fail with a new
    ERROR template (and skip the success line); checkout sees the failures and logs its own ERROR,
    its latency and error rate follow (propagated symptoms); catalog is untouched.
    """
    rng = np.random.default_rng(seed)
    metrics, logs, spans = [], [], []
    n = 0

    def span(trace, parent, service, name, start, dur, status="ok"):
        nonlocal n
        n += 1
        sid = f"{n:016x}"
        spans.append({"trace_id": trace, "span_id": sid, "parent_span_id": parent, "service": service, "name": name,
                      "start": start, "duration_ms": float(dur), "status": status})
        return sid

    def line(t, service, severity, body, trace, sid):
        logs.append({"timestamp": t, "service": service, "environment": "test", "severity": severity, "body": body,
                     "trace_id": trace, "attributes": json.dumps({"span_id": sid})})

    for minute in pd.date_range(BASE_START, END, freq="1min", inclusive="left"):
        bad = fault and minute >= FAULT
        for service, latency, errors in (("frontend", 60, 0.002), ("checkout", 45, 0.002), ("payments", 25, 0.001),
                                         ("catalog", 15, 0.001)):
            if bad and service == "payments":
                latency, errors = latency * 5, 0.2
            elif bad and service in ("checkout", "frontend"):
                latency, errors = latency + 100, 0.17 if service == "checkout" else 0.1
            for name, value in (("latency_ms", latency * rng.normal(1, 0.05)), ("error_rate", errors + rng.normal(0, 0.0005)),
                                ("cpu", 0.3 + rng.normal(0, 0.02))):
                metrics.append({"timestamp": minute, "service": service, "environment": "test", "name": name,
                                "value": float(value), "unit": ""})
        for k in range(12):
            t = minute + pd.Timedelta(seconds=5 * k + float(rng.uniform(0, 1)))
            trace = f"{minute:%H%M}{k:02d}checkout".ljust(32, "0")
            fails = bad and rng.uniform() < 0.2
            own = (125 if bad else 25) * rng.uniform(0.8, 1.2)
            a = span(trace, "", "frontend", "GET /checkout", t, own + 60)
            b = span(trace, a, "checkout", "POST /checkout", t + pd.Timedelta(milliseconds=2), own + 50,
                     "error" if fails else "ok")
            c = span(trace, b, "checkout", "HTTP POST", t + pd.Timedelta(milliseconds=5), own + 3)
            d = span(trace, c, "payments", "Charge", t + pd.Timedelta(milliseconds=6), own,
                     "error" if fails else "ok")
            span(trace, d, "payments", "SELECT account", t + pd.Timedelta(milliseconds=7), 3)
            line(t, "frontend", "INFO", f"GET /checkout {500 if fails else 200} in {int(own) + 60} ms", trace, a)
            if fails:
                line(t, "payments", "ERROR", f"charge ch_{k}{minute:%M} failed: InvalidFormatException amount", trace, d)
                line(t, "checkout", "ERROR", "call to payments failed: 500 Internal Server Error", trace, b)
            else:
                line(t, "payments", "INFO", f"charge ch_{k}{minute:%M} authorized in {int(own)} ms", trace, d)
                line(t, "checkout", "INFO", f"order o_{k}{minute:%M} placed with {k % 4 + 1} items", trace, b)
            trace2 = f"{minute:%H%M}{k:02d}catalog".ljust(32, "0")
            e = span(trace2, "", "frontend", "GET /product", t, 20 * rng.uniform(0.8, 1.2))
            f = span(trace2, e, "frontend", "HTTP GET", t + pd.Timedelta(milliseconds=1), 15)
            g = span(trace2, f, "catalog", "GetProduct", t + pd.Timedelta(milliseconds=2), 12 * rng.uniform(0.8, 1.2))
            line(t, "catalog", "INFO", f"product p_{k} served from cache", trace2, g)
    tables = {
        "metrics": schema.validate("metrics", pd.DataFrame(metrics), source="test").frame,
        "logs": schema.validate("logs", pd.DataFrame(logs), source="test").frame,
        "spans": schema.validate("spans", pd.DataFrame(spans), source="test").frame,
        "events": schema.empty("events"),
        "topology": pd.DataFrame(TOPOLOGY, columns=["caller", "callee"]),
    }
    return tables


def _window(tables: dict[str, pd.DataFrame], baseline_start=BASE_START) -> TelemetryWindow:
    return TelemetryWindow.from_tables(tables, baseline_start, START, END)


@pytest.fixture(scope="module")
def incident():
    return _synthetic()


def test_the_leaf_at_fault_ranks_first_and_its_callers_errors_are_attributed_to_it(incident):
    ranked = localize(_window(incident))
    assert [s.service for s in ranked][0] == "payments"
    assert all(isinstance(s, ServiceSuspicion) for s in ranked)
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)
    by = {s.service: s for s in ranked}
    # checkout logs its own ERROR after payments' in the same traces: the traces attribute it to
    # payments, and checkout's executions that only carried the error up are not its own change
    assert by["payments"].by_modality["logs"] > 0
    assert by["checkout"].by_modality["logs"] < 0.25 * by["payments"].by_modality["logs"]
    assert by["payments"].score > 1.5 * by["checkout"].score
    assert by["catalog"].score < by["payments"].score / 2
    assert set(by["payments"].by_modality) == {"metrics", "logs", "spans", "topology"}


def test_evidence_names_the_signals_with_numbers_and_times(incident):
    top = localize(_window(incident))[0]
    kinds = {e.kind for e in top.evidence}
    assert {"log", "span", "metric"} <= kinds and kinds <= set(EVIDENCE_KINDS)
    log_items = [e for e in top.evidence if e.kind == "log"]
    assert any("InvalidFormatException" in e.explanation and "new" in e.explanation for e in log_items)
    span_items = [e for e in top.evidence if e.kind == "span" and "self time" in e.explanation]
    assert span_items and span_items[0].direction == "up" and "x," in span_items[0].explanation
    assert any(e.kind == "topology" for e in top.evidence)
    assert top.onset is not None and FAULT - pd.Timedelta(minutes=1) <= top.onset <= FAULT + pd.Timedelta(minutes=3)
    for e in top.evidence:
        assert e.service == "payments" and e.explanation
        json.dumps(e.to_dict())  # JSON-ready for the notebook and the store
    json.dumps(top.to_dict())


def test_no_fault_gives_no_strong_suspect():
    quiet = localize(_window(_synthetic(seed=3, fault=False)))
    faulty = localize(_window(_synthetic(seed=3)))
    assert quiet[0].score < faulty[0].score / 2


def test_empty_window_gives_an_empty_list():
    tables = {t: schema.empty(t) for t in schema.TABLES}
    window = _window(tables)
    assert localize(window) == []
    result = localization(window)
    assert result.suspicions == [] and any("no telemetry" in n for n in result.notes)


def test_metrics_only_with_constant_and_nan_columns(incident):
    metrics = incident["metrics"]
    extra = metrics[metrics["name"] == "cpu"].assign(name="threads", value=8.0)  # constant
    nan = metrics[metrics["name"] == "cpu"].assign(name="gc_pauses", value=np.nan)  # all NaN
    tables = {t: schema.empty(t) for t in schema.TABLES}
    tables["metrics"] = pd.concat([metrics, extra, nan], ignore_index=True)
    ranked = localize(_window(tables))
    assert ranked[0].service == "payments"
    assert all(s.by_modality["logs"] == 0 and s.by_modality["spans"] == 0 for s in ranked)
    assert all("threads" not in e.signal and "gc_pauses" not in e.signal for s in ranked for e in s.evidence)


def test_a_too_short_baseline_is_noted_not_fatal(incident):
    result = localization(_window(incident, baseline_start=START - pd.Timedelta(minutes=1)))
    assert any("metrics not scored" in n for n in result.notes)
    assert result.suspicions and result.suspicions[0].service == "payments"  # logs and spans still see it
    nothing = localization(_window(incident, baseline_start=START))
    assert any("baseline is empty" in n for n in nothing.notes)


def test_weights_switch_modalities_and_are_checked(incident):
    window = _window(incident)
    only_logs = localize(window, weights={"metrics": 0, "spans": 0})
    assert only_logs[0].service == "payments"
    assert all(s.by_modality["spans"] == 0 for s in only_logs)
    with pytest.raises(ValueError, match="unknown modality"):
        localize(window, weights={"traces": 1})
    with pytest.raises(ValueError, match=">= 0"):
        localize(window, weights={"logs": -1})


# ---------------------------------------------------------------------------- shared data

#: A wrong return, an exception and a CPU contention, all on one day (one day of metric files to parse).
CASES = ["nezha-20230129-0903", "nezha-20230129-1104", "nezha-20230129-1331"]


@pytest.mark.shared
def test_nezha_cases_put_the_injected_service_in_the_top_three():
    if not (NEZHA / "rca_data").is_dir():
        pytest.skip("../shared/data/nezha-trainticket is not beside the repo")
    from workbench.evaluation.nezha import DEFAULT_LEAD, case_window, construct_windows, load_labels
    from workbench.telemetry.sources import open_source

    source = open_source(f"nezha:{NEZHA}", days=["2023-01-29"], cases=CASES)
    references = construct_windows(NEZHA)
    labels = load_labels(NEZHA)
    hits, fault_free = 0, {}
    for incident in source.incidents():
        day = pd.Timestamp(incident["started"]).strftime("%Y-%m-%d")
        reference = references[day]
        if day not in fault_free:
            fault_free[day] = source.read(*reference).tables()
        case = source.read(pd.Timestamp(incident["window"]["start"]), pd.Timestamp(incident["window"]["end"]))
        tables = case.tables()
        for table in ("logs", "spans"):
            tables[table] = pd.concat([fault_free[day][table], tables[table]], ignore_index=True)
        window = case_window(tables, incident, pd.Timedelta(seconds=DEFAULT_LEAD), reference)
        ranked = [s.service for s in localize(window)]
        hits += labels[incident["id"]]["service"] in ranked[:3]
    # measured: 3 of 3 at rank 1 (benchmarks/nezha.py reports all 32 shared cases)
    assert hits >= 2


def test_a_window_of_one_service_without_edges_does_not_crash(tmp_path):
    """Spans of one service (no caller/callee edges) once crashed span ranking (object-dtype nlargest)."""
    import pandas as pd

    from workbench.telemetry import schema
    from workbench.analysis.evidence import TelemetryWindow
    from workbench.analysis.localize import localize

    t0 = pd.Timestamp("2026-11-01T00:00:00Z")
    rows = []
    for i in range(240):
        slow = i >= 200
        rows.append({"trace_id": f"t{i}", "span_id": f"s{i}", "parent_span_id": "", "service": "checkout",
                     "name": "POST /checkout", "start": t0 + pd.Timedelta(minutes=i // 2, seconds=i % 2 * 30),
                     "duration_ms": 400.0 if slow else 40.0 + i % 7, "status": "ok"})
    spans = schema.validate("spans", pd.DataFrame(rows)).frame
    empty = {t: schema.empty(t) for t in ("metrics", "logs", "events", "topology")}
    window = TelemetryWindow(spans=spans, **empty, baseline_start=t0, baseline_end=t0 + pd.Timedelta(minutes=100),
                             start=t0 + pd.Timedelta(minutes=100), end=t0 + pd.Timedelta(minutes=120))
    result = localize(window)
    assert [s.service for s in result][:1] == ["checkout"]


def test_two_log_statements_with_the_same_words_stay_two_templates():
    """A source location names the statement (``Controller#46`` vs ``#39``): Drain alone merges the
    two lines below, and the statement that vanished (an exception skips it) would not be seen."""
    from workbench.analysis.localize.logs import _mine

    t0 = pd.Timestamp("2026-11-01T00:00:00Z")
    rows = []
    for i in range(80):
        t = t0 + pd.Timedelta(seconds=15 * i)
        rows.append({"timestamp": t, "service": "price", "environment": "t", "severity": "INFO", "trace_id": f"{i:032x}",
                     "body": f"00:00:{i % 60:02d}.1 INFO p.c.PriceController#39 [query][Query price][route {i}]",
                     "attributes": "{}"})
        if i < 40:  # from minute 10 on, the second statement is skipped
            rows.append({"timestamp": t, "service": "price", "environment": "t", "severity": "INFO",
                         "trace_id": f"{i:032x}", "attributes": "{}",
                         "body": f"00:00:{i % 60:02d}.2 INFO p.c.PriceController#46 [query][Query price][route {i}]"})
    logs = schema.validate("logs", pd.DataFrame(rows), source="test").frame
    mined = _mine(logs)
    assert mined["template_id"].nunique() == 2
    texts = set(mined["template"])
    assert len(texts) == 2 and {any(f"PriceController#{n} " in t for t in texts) for n in (39, 46)} == {True}
    empty = {t: schema.empty(t) for t in ("metrics", "spans", "events", "topology")}
    window = TelemetryWindow(logs=logs, **empty, baseline_start=t0, baseline_end=t0 + pd.Timedelta(minutes=10),
                             start=t0 + pd.Timedelta(minutes=10), end=t0 + pd.Timedelta(minutes=20))
    items = localization(window).modalities["logs"].evidence["price"]
    assert any("PriceController#46" in e.explanation and "vanished" in e.explanation for e in items)


def test_the_benchmarks_fast_scores_are_the_products_ranking(incident):
    """benchmarks/nezha.py scores every candidate configuration with combined_scores on one modality
    pass; the product runs combine(). Both must give the same scores, or the CV measures another engine."""
    from workbench.analysis.localize import (MODALITIES, Params, callee_matrix, combine, combined_scores, modalities,
                                             param_grid, score_arrays, topology_of)

    window = _window(incident)
    results = modalities(window, params=Params(weights={m: 1.0 for m in MODALITIES}))
    services = window.services()
    topology = topology_of(window)
    callees = topology.groupby("caller")["callee"].apply(list).to_dict()
    grid = param_grid()
    for params in grid[:: max(1, len(grid) // 12)]:
        product = {s.service: s.score for s in combine(window, results, params).suspicions}
        fast = combined_scores(score_arrays(services, results), callee_matrix(services, callees), params)["score"]
        assert dict(zip(services, fast)) == pytest.approx(product)


def test_params_are_checked_and_the_shipped_ones_are_in_the_grid():
    from workbench.analysis.localize import DEFAULT_PARAMS, Params, param_grid

    assert DEFAULT_PARAMS in param_grid()
    # the grid's first configuration states the prior preference (ties in the CV go to it)
    first = param_grid()[0]
    assert first.weights["metrics"] > 0 and first.discount > 0
    for bad in ({"discount": 2}, {"explain": 0}, {"floors": {"logs": -1}}, {"weights": {"traces": 1}}):
        with pytest.raises(ValueError):
            Params(**bad)


def test_a_metrics_robust_z_has_the_sign_of_its_move_even_after_the_shared_shift_is_removed(incident):
    """issue 13, item 9: "error_rate 0.00177 vs 0.00078 baseline median (robust z -10.8)" read as a
    value above its median with a negative z. The first z is the metric's own; a score relative to
    the shift most services share is named as such."""
    import re
    seen = shared = 0
    for suspicion in localize(_window(incident)):
        for e in suspicion.evidence:
            match = re.search(r"([-\d.e+]+) vs ([-\d.e+]+) baseline median \(robust z ([-+][\d.]+)", e.explanation)
            if e.kind != "metric" or match is None:
                continue
            value, median, z = (float(g) for g in match.groups())
            seen += 1
            if abs(z) >= 0.5:
                assert np.sign(z) == np.sign(value - median), e.explanation
            shared += "most services moved" in e.explanation
    assert seen >= 3 and shared >= 1  # error_rate rose in three of the four services
