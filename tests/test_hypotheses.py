"""Hypothesis ranking on hand-built windows and suspicions (no detector involved)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.telemetry import schema
from workbench.analysis.evidence import Evidence, ServiceSuspicion, TelemetryWindow
from workbench.analysis.hypotheses import Hypothesis, PastIncident, rank, similar_incidents
from workbench.analysis.signature import signature_from_document

T0 = pd.Timestamp("2026-11-02T14:03:00Z")
START = T0 - pd.Timedelta(minutes=60)
BASE = START - pd.Timedelta(hours=3)
END = T0 + pd.Timedelta(minutes=50)
TOPOLOGY = pd.DataFrame({"caller": ["frontend", "frontend", "checkout", "checkout"],
                         "callee": ["checkout", "catalog", "payments", "orders"]})


def _window(events=(), surge: float = 1.0, surge_at: pd.Timestamp = T0, cpu: float | None = None) -> TelemetryWindow:
    """Frontend request_rate 100/s (times ``surge`` from ``surge_at``), payments CPU at 0.3 (``cpu``
    from T0 when given) and the given change events."""
    times = pd.date_range(BASE, END, freq="1min", inclusive="left")
    noise = np.random.default_rng(1).normal(0, 2, len(times))
    rate = np.where(times >= surge_at, 100.0 * surge, 100.0) + noise
    load = np.where((times >= T0) & (cpu is not None), cpu or 0.0, 0.3) + noise / 200
    metrics = pd.concat([
        pd.DataFrame({"timestamp": times, "service": "frontend", "environment": "production", "name": "request_rate",
                      "value": rate, "unit": "1/s", "attributes": "{}"}),
        pd.DataFrame({"timestamp": times, "service": "payments", "environment": "production",
                      "name": "cpu_utilization", "value": load, "unit": "1", "attributes": "{}"}),
    ], ignore_index=True)
    ev = pd.DataFrame([{"timestamp": pd.Timestamp(t), "service": s, "environment": "production", "kind": k,
                        "summary": summary, "attributes": attrs} for t, s, k, summary, attrs in events],
                      columns=schema.columns("events"))
    tables = {"metrics": metrics, "events": ev if len(ev) else schema.empty("events"), "topology": TOPOLOGY}
    return TelemetryWindow.from_tables(tables, BASE, START, END)


def _m(service, name, mag, direction="up", at=T0):
    return Evidence("metric", service, f"metric {name}", at, mag, direction, f"{name} moved")


def _log(service, text, mag, new=True, at=T0):
    return Evidence("log", service, f"log {service}: {text}", at, mag, "up",
                    ("new ERROR template" if new else "ERROR template") + f", {int(mag)} lines")


def _payments_incident(payments_onset=T0):
    return [
        ServiceSuspicion("payments", 4.0, onset=payments_onset, evidence=[
            _m("payments", "error_rate", 0.9), _m("payments", "latency_p99_ms", 0.7),
            _log("payments", "payment failed: InvalidFormatException amount_minor", 40)]),
        ServiceSuspicion("checkout", 3.0, onset=T0 + pd.Timedelta(minutes=1), evidence=[
            _m("checkout", "error_rate", 0.8, at=T0 + pd.Timedelta(minutes=1)),
            _log("checkout", "call to payments failed: 500", 30)]),
        ServiceSuspicion("frontend", 1.0, onset=T0 + pd.Timedelta(minutes=2), evidence=[
            _m("frontend", "latency_p99_ms", 0.4, at=T0 + pd.Timedelta(minutes=2))]),
    ]


def _top(hyps: list[Hypothesis]) -> tuple[str, str]:
    return hyps[0].service, hyps[0].cause


def _score(hyps, service, cause) -> float:
    return next((h.score for h in hyps if (h.service, h.cause) == (service, cause)), 0.0)


DEPLOY = ("2026-11-02T14:02:00Z", "payments", "deploy", "Deployed payments v2.15.0",
          '{"previous_version":"2.14.4","version":"2.15.0"}')


def test_a_deploy_just_before_the_onset_ranks_first_with_its_evidence():
    hyps = rank(_window([DEPLOY]), _payments_incident())
    assert _top(hyps) == ("payments", "change")
    top = hyps[0]
    assert top.rank == 1 and [h.rank for h in hyps] == list(range(1, len(hyps) + 1))
    assert "v2.15.0" in top.summary
    change = [e for e in top.evidence if e.kind == "change"]
    assert change and "1.0 min before" in change[0].explanation and "2.14.4" in change[0].explanation
    # checkout and frontend call payments and moved later: topology evidence for the origin
    assert any(e.kind == "topology" and "checkout" in e.explanation for e in top.evidence)
    # the new error template of payments is explained by the deploy: code ranks below change
    code = next(h for h in hyps if (h.service, h.cause) == ("payments", "code"))
    assert code.score < 0.75 * top.score and code.parts["E"] < 0.5
    # checkout's own errors come after its callee's: discounted below payments' hypotheses
    assert _score(hyps, "checkout", "code") < _score(hyps, "payments", "change")


def test_changes_are_correlated_with_the_sustained_metric_onset():
    """A stray slow span an hour early sets the localiser's onset; the detector's onset is used."""
    suspicions = _payments_incident(payments_onset=T0 - pd.Timedelta(minutes=40))
    hyps = rank(_window([DEPLOY]), suspicions)
    assert _top(hyps) == ("payments", "change")
    # without a metric onset the localiser's onset is all there is: the deploy came after it
    for s in suspicions:
        for e in s.evidence:
            e.time = None
    assert _score(rank(_window([DEPLOY]), suspicions), "payments", "change") == 0.0


def test_a_change_after_the_onset_does_not_count():
    late = ("2026-11-02T14:10:00Z", "payments", "deploy", "Deployed payments v2.15.0", "{}")
    hyps = rank(_window([late]), _payments_incident())
    assert _score(hyps, "payments", "change") == 0.0
    assert _top(hyps) == ("payments", "code")


def test_closer_changes_and_deploys_weigh_more_than_older_changes_and_flags():
    def change_score(ts, kind):
        return _score(rank(_window([(ts, "payments", kind, f"{kind} of payments", "{}")]), _payments_incident()),
                      "payments", "change")

    assert change_score("2026-11-02T14:02:00Z", "deploy") > change_score("2026-11-02T13:50:00Z", "deploy") > 0
    assert change_score("2026-11-02T14:02:00Z", "deploy") > change_score("2026-11-02T14:02:00Z", "feature_flag") > 0
    assert change_score("2026-11-02T14:02:00Z", "config_change") == pytest.approx(
        change_score("2026-11-02T14:02:00Z", "deploy"))
    # older than the 30-minute lookback: nothing
    assert change_score("2026-11-02T13:20:00Z", "deploy") == 0.0
    # another service's change never makes a change hypothesis for payments
    other = rank(_window([("2026-11-02T14:02:00Z", "catalog", "deploy", "Deployed catalog", "{}")]),
                 _payments_incident())
    assert _score(other, "payments", "change") == 0.0


def _orders_incident():
    return [
        ServiceSuspicion("orders", 4.0, onset=T0, evidence=[
            # magnitudes on the localiser's scale log1p(z) / log1p(10): the pool at z 120, the queue at z 35
            _m("orders", "db_pool_usage", 2.0), _m("orders", "latency_p99_ms", 1.6), _m("orders", "queue_depth", 1.5),
            _log("orders", "connection pool exhausted", 50)]),
        ServiceSuspicion("checkout", 2.0, onset=T0 + pd.Timedelta(minutes=1), evidence=[
            _m("checkout", "error_rate", 0.5, at=T0 + pd.Timedelta(minutes=1))]),
    ]


def test_resource_without_a_change_and_change_with_one():
    alone = rank(_window(), _orders_incident())
    assert _top(alone) == ("orders", "resource")
    assert alone[0].parts["E"] == pytest.approx(1.0)
    assert "db_pool_usage" in alone[0].summary
    assert any(e.kind == "metric" and "db_pool_usage" in e.signal for e in alone[0].evidence)
    config = ("2026-11-02T14:02:00Z", "orders", "config_change", "Config orders: db.pool.max_size 50 -> 5",
              '{"key":"db.pool.max_size","new":"5","old":"50"}')
    with_change = rank(_window([config]), _orders_incident())
    assert _top(with_change) == ("orders", "change")
    assert _score(with_change, "orders", "resource") < _score(alone, "orders", "resource")


def test_a_saturated_resource_missing_from_the_evidence_is_read_from_the_metrics():
    suspicions = [ServiceSuspicion("payments", 4.0, onset=T0, evidence=[_m("payments", "latency_p99_ms", 1.0)]),
                  ServiceSuspicion("checkout", 1.0, onset=T0 + pd.Timedelta(minutes=1), evidence=[
                      _m("checkout", "latency_p99_ms", 0.5, at=T0 + pd.Timedelta(minutes=1))])]
    calm = rank(_window(), suspicions)
    assert _top(calm) == ("payments", "dependency")
    busy = rank(_window(cpu=0.98), suspicions)
    assert _top(busy) == ("payments", "resource")
    assert any(e.kind == "metric" and "cpu_utilization" in e.signal and "robust z" in e.explanation
               for e in busy[0].evidence)


def test_a_mild_resource_move_is_a_symptom_not_a_cause():
    mild = [ServiceSuspicion("orders", 4.0, onset=T0, evidence=[
        _m("orders", "latency_p99_ms", 2.0), _m("orders", "cpu_utilization", 0.8)])]  # cpu at z 6
    hyps = rank(_window(), mild)
    assert _top(hyps) == ("orders", "dependency")
    assert _score(hyps, "orders", "resource") == 0.0


def test_new_error_template_without_change_is_code():
    hyps = rank(_window(), _payments_incident())
    assert _top(hyps) == ("payments", "code")
    assert "InvalidFormatException" in hyps[0].summary


def test_traffic_surge_at_the_entry_service_without_change():
    suspicions = [
        ServiceSuspicion("catalog", 4.0, onset=T0 - pd.Timedelta(minutes=1), evidence=[
            _m("catalog", "cpu_utilization", 1.0), _m("catalog", "latency_p95_ms", 0.6),
            _log("catalog", "503 Service Unavailable: request rejected, server overloaded", 20)]),
        ServiceSuspicion("frontend", 3.0, onset=T0, evidence=[
            _m("frontend", "request_rate", 0.9), _m("frontend", "latency_p95_ms", 0.5)]),
        ServiceSuspicion("checkout", 2.0, onset=T0, evidence=[_m("checkout", "cpu_utilization", 0.7)]),
    ]
    hyps = rank(_window(surge=3.0), suspicions)
    assert _top(hyps) == ("frontend", "traffic")
    assert "3.0x" in hyps[0].summary
    traffic = [e for e in hyps[0].evidence if e.kind == "traffic"]
    assert traffic and traffic[0].magnitude == pytest.approx(3.0, rel=0.05)
    # only entry services get a traffic hypothesis
    assert all(h.service == "frontend" for h in hyps if h.cause == "traffic")
    # no surge: no traffic hypothesis
    assert _score(rank(_window(surge=1.05), suspicions), "frontend", "traffic") == 0.0
    # a deploy of the frontend just before: the change explains it, not traffic
    deploy = ("2026-11-02T14:01:00Z", "frontend", "deploy", "Deployed frontend v4.13.0", "{}")
    changed = rank(_window([deploy], surge=3.0), suspicions)
    assert _score(changed, "frontend", "change") > _score(changed, "frontend", "traffic")


def test_a_callee_that_moved_first_is_preferred_over_its_caller():
    suspicions = [
        ServiceSuspicion("checkout", 4.0, onset=T0 + pd.Timedelta(minutes=2), evidence=[
            _m("checkout", "latency_p99_ms", 1.0, at=T0 + pd.Timedelta(minutes=2))]),
        ServiceSuspicion("payments", 3.0, onset=T0, evidence=[_m("payments", "latency_p99_ms", 1.0)]),
    ]
    hyps = rank(_window(), suspicions)
    assert hyps[0].service == "payments" and hyps[0].cause == "dependency"
    victim = next(h for h in hyps if h.service == "checkout")
    assert any(e.kind == "topology" and "payments" in e.signal for e in victim.evidence)
    assert victim.parts["P"] < 1


def test_errors_that_name_a_callee_point_at_the_callee():
    suspicions = [
        ServiceSuspicion("checkout", 4.0, onset=T0, evidence=[
            _log("checkout", "call to payments failed: <NUM> Internal Server Error", 50),
            _m("checkout", "error_rate", 1.0)]),
        ServiceSuspicion("payments", 3.0, onset=T0, evidence=[_m("payments", "error_rate", 1.0)]),
    ]
    hyps = rank(_window(), suspicions)
    assert hyps[0].service == "payments"
    checkout = [h for h in hyps if h.service == "checkout"]
    assert checkout and all(h.parts["P"] < 1 for h in checkout)
    assert not any(h.cause == "code" for h in checkout), "a callee's error is not checkout's code"
    dependency = next(h for h in checkout if h.cause == "dependency")
    assert "payments" in dependency.summary
    assert any(e.kind == "topology" and "name its callee payments" in e.explanation for e in dependency.evidence)


def test_history_adds_similar_incidents_and_a_bounded_bonus():
    past_doc = {"id": "INC-20260814-001", "title": "Payments failing after release", "services": ["payments"],
                "labels": {"symptom": "errors", "service": "payments"},
                "hypotheses": [{"service": "payments", "cause": "change", "status": "confirmed", "score": 0.9,
                                "evidence": [{"signal": "metric payments/error_rate", "magnitude": 8},
                                             {"signal": "log payments: InvalidFormatException", "magnitude": 7}]}]}
    history = [PastIncident("INC-20260814-001", "Payments failing after release", signature_from_document(past_doc),
                            [("payments", "change")])]
    plain = rank(_window([DEPLOY]), _payments_incident())
    helped = rank(_window([DEPLOY]), _payments_incident(), history=history)
    top = helped[0]
    assert (top.service, top.cause) == ("payments", "change")
    assert plain[0].score < top.score <= plain[0].score * 1.25 + 1e-9
    assert top.similar and top.similar[0]["incident_id"] == "INC-20260814-001"
    assert set(top.similar[0]) == {"incident_id", "title", "cause", "service", "similarity"}
    assert any(e.kind == "history" for e in top.evidence)
    listed = similar_incidents(signature_from_document(past_doc), history)
    assert listed == []  # an incident is never similar to itself
    # history_bonus=0: the similar incident is still shown, but no score moves
    shown_only = rank(_window([DEPLOY]), _payments_incident(), history=history, history_bonus=0.0)
    assert [h.score for h in shown_only] == [h.score for h in plain]
    assert shown_only[0].similar and any(e.kind == "history" for e in shown_only[0].evidence)
    doubled = rank(_window([DEPLOY]), _payments_incident(), history=history, history_bonus=0.5)
    assert doubled[0].score - plain[0].score == pytest.approx(2 * (top.score - plain[0].score))


def test_nothing_suspicious_gives_no_hypotheses():
    assert rank(_window(), []) == []
    assert rank(_window(), [ServiceSuspicion("payments", 0.0)]) == []


def test_confidence_is_a_probability_that_falls_with_the_rank_of_the_service():
    hyps = rank(_window([DEPLOY]), _payments_incident())
    best: dict[str, float] = {}
    for h in hyps:
        assert 0 <= h.confidence <= 1
        best.setdefault(h.service, h.confidence)  # a service's first hypothesis carries its probability
    assert list(best.values()) == sorted(best.values(), reverse=True)
    assert hyps[0].confidence == max(h.confidence for h in hyps) and hyps[0].to_dict()["confidence"] > 0.5
    # two services the evidence cannot tell apart: neither is confident
    tie = rank(_window(), [ServiceSuspicion("payments", 1.0, onset=T0, evidence=[_m("payments", "error_rate", 0.9)]),
                           ServiceSuspicion("orders", 1.0, onset=T0, evidence=[_m("orders", "error_rate", 0.9)])])
    assert max(h.confidence for h in tie) < 0.6


def test_a_thin_baseline_is_said_in_every_hypothesis():
    thin = _window()
    thin.baseline_start = START - pd.Timedelta(minutes=2)  # two metric steps before the incident
    hyps = rank(thin, _payments_incident())
    assert hyps and all("thin baseline (2 metric step(s)" in h.summary for h in hyps)
    assert not any("thin baseline" in h.summary for h in rank(_window(), _payments_incident()))


def test_ranking_is_deterministic_and_json_safe():
    a = [h.to_dict() for h in rank(_window([DEPLOY]), _payments_incident())]
    b = [h.to_dict() for h in rank(_window([DEPLOY]), _payments_incident())]
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert all(h["status"] == "proposed" for h in a)


def test_hypotheses_store_as_proposed_in_the_knowledge_base(workspace):
    kb = workspace.knowledge_base()
    try:
        inc = kb.create_incident(title="Checkout failures", started=T0, services=["payments"], who="test")
        hyps = rank(_window([DEPLOY]), _payments_incident())
        stored = kb.replace_proposed_hypotheses(inc.id, [h.to_dict() for h in hyps], who="test")
        assert [(h.service, h.cause, h.rank) for h in stored] == [(h.service, h.cause, h.rank) for h in hyps]
        assert {h.status for h in stored} == {"proposed"}
        assert stored[0].evidence[0]["kind"] == "change"
    finally:
        kb.close()
