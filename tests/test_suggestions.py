"""Runbook and alert suggestions on synthetic series: the threshold fires at the onset and never in
the baseline, drops get a below-threshold, the runbook suggestion follows the incident's links,
the detection gap comes from the chosen hypothesis. (On the sample, through the recheck:
tests/test_loop.py.)"""
from __future__ import annotations

import pandas as pd

from workbench.loop import suggestions


def _series(values, start="2026-01-01T00:00:00Z", service="payments", name="error_rate"):
    times = pd.date_range(start, periods=len(values), freq="1min", tz="UTC")
    return pd.DataFrame({"timestamp": times, "service": service, "name": name, "value": values})


def test_an_alert_threshold_fires_at_the_onset_and_never_in_the_baseline():
    base = [0.01, 0.02, 0.015] * 20  # 60 steps, max 0.02
    metrics = _series(base + [0.30, 0.35, 0.40, 0.40])
    onset = pd.Timestamp("2026-01-01T01:00:00Z")
    s = suggestions.alert_threshold(metrics, "payments", "error_rate", "up", onset,
                                    (pd.Timestamp("2026-01-01T00:00:00Z"), onset),
                                    detected=onset + pd.Timedelta(minutes=9), incident_id="X")
    assert 0.02 < s.details["threshold"] < 0.30
    assert s.details["fires_at"] == "2026-01-01T01:02:00Z" and s.details["minutes_earlier"] == 7.0
    assert s.key == "alert:payments/error_rate" and "for 2min" in s.text


def test_no_alert_when_the_onset_is_inside_the_normal_range():
    metrics = _series([0.1, 0.5] * 30 + [0.4, 0.45])
    onset = pd.Timestamp("2026-01-01T01:00:00Z")
    assert suggestions.alert_threshold(metrics, "payments", "error_rate", "up", onset,
                                       (pd.Timestamp("2026-01-01T00:00:00Z"), onset)) is None


def test_a_drop_gets_a_below_threshold():
    metrics = _series([100.0, 110.0, 105.0] * 20 + [20.0, 10.0, 5.0], name="request_rate")
    onset = pd.Timestamp("2026-01-01T01:00:00Z")
    s = suggestions.alert_threshold(metrics, "payments", "request_rate", "down", onset,
                                    (pd.Timestamp("2026-01-01T00:00:00Z"), onset))
    assert s.details["comparator"] == "<" and 20.0 < s.details["threshold"] < 100.0


def test_runbook_suggestion_updates_the_linked_runbook_or_asks_for_one():
    incident = {"id": "INC-1", "services": ["orders"], "labels": {},
                "links": [{"title": "Payments runbook", "url": "https://runbooks.example.com/payments"}]}
    linked = suggestions.runbook(incident, None, "recurrence", service="payments")
    missing = suggestions.runbook(incident, None, "recurrence", service="orders")
    assert linked.details["link"]["title"] == "Payments runbook" and linked.text.startswith("Update the runbook")
    assert missing.details["link"] is None and missing.text.startswith("Link a runbook for orders")


def test_detection_gap_comes_from_the_chosen_hypothesis():
    hypotheses = [
        {"service": "orders", "cause": "resource", "status": "proposed", "rank": 1, "score": 0.9,
         "evidence": [{"kind": "metric", "service": "orders", "signal": "metric error_rate",
                       "time": "2026-01-01T10:00:00Z", "magnitude": 2.0, "direction": "up"}]},
        {"service": "payments", "cause": "change", "status": "confirmed", "score": 0.5, "rank": 2,
         "evidence": [{"kind": "change", "service": "payments", "signal": "deploy v2", "time": "2026-01-01T09:58:00Z"},
                      {"kind": "metric", "service": "payments", "signal": "metric latency_p99_ms",
                       "time": "2026-01-01T10:02:00Z", "magnitude": 1.0, "direction": "up"},
                      {"kind": "metric", "service": "payments", "signal": "metric error_rate",
                       "time": "2026-01-01T10:01:00Z", "magnitude": 2.0, "direction": "up"}]},
    ]
    gap, facts = suggestions.detection_gap({"detected": "2026-01-01T10:07:30Z"}, hypotheses)
    assert facts["service"] == "payments" and facts["metric"]["metric"] == "error_rate"
    assert gap == pd.Timedelta(minutes=6, seconds=30) and gap > suggestions.DETECTION_GAP_MIN


def test_a_runbook_link_names_its_service_as_a_whole_word():
    from workbench.loop.suggestions import _runbook_link

    other = {"title": "ts-train-food-service runbook", "url": "https://runbooks.example.com/ts-train-food-service"}
    own = {"title": "Food runbook", "url": "https://runbooks.example.com/ts-food-service"}
    assert _runbook_link([other], "ts-food-service") is None
    assert _runbook_link([other, own], "ts-food-service") == own
