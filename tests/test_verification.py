"""Verification criteria on hand-built metrics in a real telemetry store (Parquet in tmp_path)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pytest

from workbench import schema
from workbench.store import KnowledgeBase
from workbench.telemetry import TelemetryStore
from workbench.verification import (MIN_COVERAGE, Criterion, CriterionError, criterion_of, describe, evaluate,
                                    record)

START = pd.Timestamp("2026-03-01T00:00:00Z")
UNTIL = START + pd.Timedelta(days=7)
P99 = {"signal": "metric", "service": "checkout", "metric": "latency_p99_ms", "aggregate": "max",
       "comparator": "<", "threshold": 300, "duration": "7d", "window": "5min"}
#: The store also holds a staging copy of the series (around 700 ms): criteria name their environment.
PROD = {**P99, "environment": "production"}


def _series(name, values, service="checkout", step="1min", start=START, environment="production"):
    times = pd.date_range(start, periods=len(values), freq=step)
    return pd.DataFrame({"timestamp": times, "service": service, "environment": environment, "name": name,
                         "value": np.asarray(values, dtype=float), "unit": "ms", "attributes": "{}"})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Eight days of one-minute samples: a healthy series, one with a spike, one with gaps."""
    rng = np.random.default_rng(7)
    n = 8 * 24 * 60
    healthy = 200 + rng.normal(0, 15, n).clip(-60, 60)
    spiky = healthy.copy()
    spiky[5 * 1440 + 600: 5 * 1440 + 612] = 420.0  # twelve bad minutes on day six
    gappy = _series("latency_gappy", healthy)
    gappy = gappy[(gappy["timestamp"] - START).dt.total_seconds() // 3600 % 2 == 0]  # every other hour
    throughput = _series("requests_per_s", 50 + rng.normal(0, 2, n))
    frames = [_series("latency_p99_ms", healthy), _series("latency_spiky", spiky), gappy, throughput,
              _series("latency_p99_ms", healthy + 500, environment="staging")]
    frame = schema.validate("metrics", pd.concat(frames, ignore_index=True)).frame
    ts = TelemetryStore(tmp_path_factory.mktemp("telemetry"))
    ts.write({"metrics": frame})
    return ts


# ----------------------------------------------------------------------------- the structure

def test_round_trip_and_describe():
    c = Criterion.from_dict(P99)
    assert c.to_dict() == {**P99, "threshold": 300.0}
    assert Criterion.from_dict(c.to_dict()) == c
    assert describe(c) == "max latency_p99_ms of checkout < 300 per 5min for 7d"
    assert describe({**P99, "environment": "production", "threshold": 0.25}) == \
        "max latency_p99_ms of checkout in production < 0.25 per 5min for 7d"
    without_window = {k: v for k, v in P99.items() if k != "window"}
    assert Criterion.from_dict(without_window).window == "5min"
    assert Criterion.from_dict({**P99, "duration": "168h", "window": "300s"}).to_dict()["duration"] == "7d"


@pytest.mark.parametrize("change, field, expected", [
    ({"aggregate": "p90"}, "aggregate", "mean, max, min, p50, p95, p99, sum, count"),
    ({"comparator": "=="}, "comparator", "'<', '<=', '>', '>='"),
    ({"signal": "trace"}, "signal", "metric, log_template, span_edge"),
    ({"signal": "log_template"}, "signal", "not yet supported"),
    ({"signal": "span_edge"}, "signal", "not yet supported"),
    ({"threshold": "300"}, "threshold", "a finite number"),
    ({"threshold": float("nan")}, "threshold", "a finite number"),
    ({"threshold": True}, "threshold", "a finite number"),
    ({"duration": "7"}, "duration", "a span such as"),
    ({"duration": "7 days"}, "duration", "a span such as"),
    ({"duration": "-1d"}, "duration", "a span such as"),
    ({"window": "2d", "duration": "1d"}, "window", "no longer than duration (1d)"),
    ({"service": " "}, "service", "a non-empty name"),
    ({"treshold": 3}, "treshold", "did you mean 'threshold'"),
    ({"metric": None}, "metric", "required"),
])
def test_validation_names_the_field_and_the_allowed_values(change, field, expected):
    with pytest.raises(CriterionError) as err:
        Criterion.from_dict({**P99, **change})
    assert f"'{field}'" in str(err.value) and expected in str(err.value)
    assert isinstance(err.value, ValueError)


def test_direct_construction_is_validated_too():
    with pytest.raises(CriterionError, match="'aggregate'"):
        Criterion("metric", "checkout", "latency", "median", "<", 1, "1d")


# ----------------------------------------------------------------------------- verdicts

def test_a_criterion_that_holds(store):
    v = evaluate(PROD, store, START, UNTIL)
    assert v.verdict == "holds"
    assert v.n_windows == 7 * 24 * 12 and v.n_with_data == v.n_windows and v.coverage == 1.0
    assert v.n_violations == 0 and v.worst < 300
    # Without an environment every environment counts: the staging copy breaks the criterion.
    assert evaluate(P99, store, START, UNTIL).verdict == "violated"
    assert v.explanation.startswith("holds: max latency_p99_ms of checkout stayed < 300 in every 5min window for 7d")
    # The default window is the last `duration` before `until`.
    assert evaluate(PROD, store, until=UNTIL).since == START
    # A "stays above" criterion on another metric.
    floor = {**PROD, "metric": "requests_per_s", "aggregate": "mean", "comparator": ">=", "threshold": 40}
    assert evaluate(floor, store, START, UNTIL).verdict == "holds"


def test_a_violated_criterion_says_when_and_how_bad(store):
    v = evaluate({**PROD, "metric": "latency_spiky"}, store, START, UNTIL)
    assert v.verdict == "violated"
    assert v.worst == 420.0
    spike = START + pd.Timedelta(days=5, minutes=600)
    assert v.worst_at == spike and v.first_violation_at == spike
    assert 2 <= v.n_violations <= 4  # twelve minutes touch three 5-minute windows
    assert "reached 420" in v.explanation and "required < 300" in v.explanation
    # Two windows lie entirely inside the spike, so even their minimum breaks it; no window's mean reaches 450.
    assert evaluate({**PROD, "metric": "latency_spiky", "aggregate": "min"}, store, START, UNTIL).verdict == "violated"
    assert evaluate({**PROD, "metric": "latency_spiky", "aggregate": "mean", "threshold": 450}, store, START,
                    UNTIL).verdict == "holds"


def test_no_data_is_never_holding(store):
    missing = evaluate({**PROD, "metric": "latency_that_does_not_exist"}, store, START, UNTIL)
    assert missing.verdict == "no_data" and missing.coverage == 0 and missing.worst is None
    other_service = evaluate({**PROD, "service": "payments"}, store, START, UNTIL)
    assert other_service.verdict == "no_data"
    assert "no data: only 0 of 2016" in missing.explanation


def test_partial_coverage_is_no_data(store):
    v = evaluate({**PROD, "metric": "latency_gappy"}, store, START, UNTIL)
    assert v.n_violations == 0 and 0.45 <= v.coverage <= 0.55 < MIN_COVERAGE
    assert v.verdict == "no_data"
    # Telemetry ending before `until` is partial coverage too: the last 2 of 7 days are missing.
    v = evaluate(PROD, store, START + pd.Timedelta(days=3), UNTIL + pd.Timedelta(days=3))
    assert v.verdict == "no_data" and v.coverage == pytest.approx(5 / 7, abs=0.01)


def test_a_window_shorter_than_the_duration_is_inconclusive(store):
    v = evaluate(PROD, store, START, START + pd.Timedelta(days=2))
    assert v.verdict == "inconclusive" and "2d so far, 7d needed" in v.explanation


def test_evaluation_window_checks(store):
    with pytest.raises(CriterionError, match="until"):
        evaluate(PROD, store, UNTIL, START)
    with pytest.raises(CriterionError, match="no time zone"):
        evaluate(PROD, store, "2026-03-01T00:00:00", UNTIL)


# ----------------------------------------------------------------------------- action items

def test_stored_on_the_action_item_and_recorded_as_checks(store, tmp_path):
    kb = KnowledgeBase(f"sqlite:///{tmp_path / 'kb.sqlite'}")
    kb.set_notification_targets(["ops"])
    inc = kb.create_incident(title="Slow checkout", started=datetime(2026, 2, 20, tzinfo=timezone.utc),
                             services=["checkout"], who="alice")
    item = kb.add_action_item(inc.id, title="cap the retry storm", owner="alice", kind="prevent",
                              due=date(2026, 3, 1), verification=Criterion.from_dict(PROD).to_dict(), who="alice")
    assert criterion_of(kb.list_action_items(inc.id)[0]) == Criterion.from_dict(PROD)

    check = record(kb, item, evaluate(PROD, store, START, UNTIL))
    assert check.verdict == "holds" and check.action_item_id == item.id and check.score < 300
    assert check.evidence[0]["criterion"] == Criterion.from_dict(PROD).to_dict()
    assert kb.list_outbox() == []

    spiky = {**PROD, "metric": "latency_spiky"}
    first = record(kb, item, evaluate(spiky, store, START, UNTIL))
    [note] = kb.list_outbox(kind="criterion_violated")
    assert note.incident_id == inc.id and note.payload["recipients"] == ["alice"]
    assert note.payload["details"]["check_id"] == first.id and "reached 420" in note.payload["summary"]
    record(kb, item, evaluate(spiky, store, START, UNTIL))  # still violated: no second notification
    assert len(kb.list_outbox(kind="criterion_violated")) == 1
    assert [c.verdict for c in kb.list_checks(action_item_id=item.id)] == ["holds", "violated", "violated"]
    kb.close()
