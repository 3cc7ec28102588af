"""Signatures: building from suspicions and from documents, JSON round trip, similarity."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest

from workbench.analysis.evidence import Evidence, ServiceSuspicion
from workbench.analysis.signature import (Signature, parse_signal, rank_similar, signature_from_analysis,
                                          signature_from_document, similarity, similarity_parts, with_cause)

T0 = pd.Timestamp("2026-11-02T14:03:00Z")


@dataclass
class _Hyp:
    service: str
    cause: str
    score: float = 1.0


def _payments_suspicions(scale: float = 1.0, template: str = "payment <*> failed: InvalidFormatException amount_minor"):
    return [
        ServiceSuspicion("payments", 5.0 * scale, onset=T0, evidence=[
            Evidence("metric", "payments", "metric error_rate", T0, 0.9 * scale, "up"),
            Evidence("metric", "payments", "metric latency_p99_ms", T0, 0.6 * scale, "up"),
            Evidence("log", "payments", f"log payments: {template}", T0, 3.0, "up"),
        ]),
        ServiceSuspicion("checkout", 3.0 * scale, onset=T0 + pd.Timedelta(minutes=1), evidence=[
            Evidence("metric", "checkout", "metric error_rate", T0, 0.7 * scale, "up"),
        ]),
        ServiceSuspicion("frontend", 1.0, onset=T0 + pd.Timedelta(minutes=2), evidence=[
            Evidence("metric", "frontend", "metric latency_p99_ms", T0, 0.3, "up"),
        ]),
    ]


def _orders_suspicions():
    return [
        ServiceSuspicion("orders", 4.0, onset=T0, evidence=[
            Evidence("metric", "orders", "metric db_pool_usage", T0, 1.0, "up"),
            Evidence("metric", "orders", "metric queue_depth", T0, 0.8, "up"),
            Evidence("log", "orders", "log orders: could not get connection: connection pool exhausted", T0, 2.0),
        ]),
        ServiceSuspicion("checkout", 2.0, onset=T0, evidence=[
            Evidence("metric", "checkout", "metric error_rate", T0, 0.5, "up")]),
    ]


CHANGES = pd.DataFrame({"service": ["payments"], "kind": ["deploy"], "lag_minutes": [1.0], "rollback": [False]})

PAST_DOC = {
    "id": "INC-20260814-001", "services": ["payments", "checkout"],
    "labels": {"symptom": "errors", "service": "payments"},
    "hypotheses": [
        {"service": "checkout", "cause": "code", "status": "rejected", "score": 0.5, "evidence": []},
        {"service": "payments", "cause": "change", "status": "confirmed", "score": 0.92, "evidence": [
            {"signal": "event deploy payments v2.9.0", "magnitude": 1.0},
            {"signal": "metric payments/error_rate", "magnitude": 8.5, "explanation": "error rate 14% vs 0.2% baseline"},
            {"signal": "log payments: InvalidFormatException", "magnitude": 7.0},
        ]},
    ],
}


def test_signature_from_analysis_fields():
    sig = signature_from_analysis(_payments_suspicions(), [_Hyp("payments", "change")], incident_id="A",
                                  changes=CHANGES)
    assert sig.source == "telemetry" and sig.origin == "payments" and sig.cause == "change"
    assert sig.services["payments"] == 1.0 and 0 < sig.services["frontend"] < sig.services["checkout"] < 1
    assert sig.metrics["payments/error_rate"] == 1.0
    assert sig.metrics["checkout/error_rate"] > 0
    assert any("InvalidFormatException" in key for key in sig.templates)
    assert "payments/deploy" in sig.changes
    assert sig.symptom == "errors"


def test_signature_json_round_trip_is_exact_and_deterministic():
    sig = signature_from_analysis(_payments_suspicions(), [_Hyp("payments", "change")], incident_id="A",
                                  changes=CHANGES)
    text = json.dumps(sig.to_dict(), sort_keys=True)
    again = Signature.from_dict(json.loads(text))
    assert again == sig
    assert json.dumps(again.to_dict(), sort_keys=True) == text
    rebuilt = signature_from_analysis(_payments_suspicions(), [_Hyp("payments", "change")], incident_id="A",
                                      changes=CHANGES)
    assert json.dumps(rebuilt.to_dict(), sort_keys=True) == text


@pytest.mark.parametrize("bad, field", [
    ({"version": 99}, "version"),
    ({"origin": 3}, "origin"),
    ({"metrics": {"a/b": "x"}}, "metrics"),
    ({"services": ["a"]}, "services"),
    ({"source": "guess"}, "source"),
])
def test_from_dict_names_the_bad_field(bad, field):
    with pytest.raises(ValueError, match=field):
        Signature.from_dict(bad)


def test_similarity_properties():
    a = signature_from_analysis(_payments_suspicions(), [_Hyp("payments", "change")], incident_id="A", changes=CHANGES)
    recurrence = signature_from_analysis(_payments_suspicions(scale=1.2), [_Hyp("payments", "change")],
                                         incident_id="B", changes=CHANGES)
    other = signature_from_analysis(_orders_suspicions(), [_Hyp("orders", "change")], incident_id="C")
    assert similarity(a, a) == pytest.approx(1.0)
    assert similarity(a, recurrence) == pytest.approx(similarity(recurrence, a))
    assert similarity(a, recurrence) > 0.8
    assert similarity(a, other) < 0.4
    assert 0.0 <= similarity(a, other) <= 1.0
    assert similarity(Signature(), Signature()) == 0.0
    ranked = rank_similar(a, [other, recurrence, a])
    assert [s.incident_id for s, _ in ranked] == ["B", "C"]  # itself excluded, most similar first


def test_signature_from_document_uses_the_confirmed_hypothesis():
    sig = signature_from_document(PAST_DOC)
    assert sig.source == "document" and sig.incident_id == "INC-20260814-001"
    assert (sig.origin, sig.cause, sig.symptom) == ("payments", "change", "errors")
    assert sig.metrics == {"payments/error_rate": 1.0}
    assert sig.templates == {"payments: InvalidFormatException": 1.0}
    assert sig.changes == {"payments/deploy": 1.0}
    assert sig.services["payments"] == 1.0 and sig.services["checkout"] == 0.5


def test_document_and_telemetry_signatures_compare():
    past = signature_from_document(PAST_DOC)
    payments = signature_from_analysis(_payments_suspicions(), [_Hyp("payments", "change")], incident_id="A",
                                       changes=CHANGES)
    orders = signature_from_analysis(_orders_suspicions(), [_Hyp("orders", "change")], incident_id="C")
    parts = similarity_parts(past, payments)
    # the document's template words are found inside the mined template
    assert parts["templates"] > 0.3
    assert parts["origin"] == 1.0 and parts["cause"] == 1.0
    assert similarity(past, payments) > similarity(past, orders) + 0.3
    # a recurrence in telemetry is more alike than the document of a similar past incident
    recurrence = signature_from_analysis(_payments_suspicions(scale=1.2), [_Hyp("payments", "change")],
                                         incident_id="B", changes=CHANGES)
    assert similarity(payments, recurrence) > similarity(payments, past)


def test_document_without_templates_does_not_count_templates():
    doc = {"id": "X", "labels": {"service": "orders"},
           "hypotheses": [{"service": "orders", "cause": "resource", "status": "confirmed",
                           "evidence": [{"signal": "metric orders/db_pool_usage", "magnitude": 6}]}]}
    parts = similarity_parts(signature_from_document(doc), signature_from_analysis(_orders_suspicions()))
    assert "templates" not in parts and "metrics" in parts


def test_with_cause_overrides_origin_and_cause():
    sig = signature_from_analysis(_payments_suspicions(), [_Hyp("checkout", "code")])
    fixed = with_cause(sig, "payments", "change")
    assert (fixed.origin, fixed.cause) == ("payments", "change") and fixed.services["payments"] == 1.0


@pytest.mark.parametrize("kind, service, signal, expected", [
    ("metric", "payments", "metric error_rate", ("metric", "payments", "error_rate")),
    (None, None, "metric payments/error_rate", ("metric", "payments", "error_rate")),
    (None, None, "log payments: InvalidFormatException", ("log", "payments", "InvalidFormatException")),
    ("log", "payments", "log template payments: Payment <*> failed", ("log", "payments", "Payment <*> failed")),
    (None, None, "event deploy payments v2.9.0", ("change", "payments", "deploy")),
    ("change", "orders", "config_change db.pool.max_size", ("change", "orders", "config_change")),
])
def test_parse_signal(kind, service, signal, expected):
    assert parse_signal(kind, service, signal) == expected
