"""Verification criteria on hand-built metrics, and on the sample's logs and spans, in real telemetry stores
(Parquet in tmp_path).

Sample ground truth (data/sample/README.md): payments' InvalidFormatException template appears in
INC-20261102-001 (2026-11-02 14:03Z) and its recurrence INC-20261106-001 (2026-11-06 15:21Z) only;
2026-11-04 is a calm day.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pytest

from workbench.telemetry import schema
from workbench.loop.readers import template_matches
from workbench.telemetry.sources import open_source
from workbench.store import KnowledgeBase
from workbench.telemetry.store import TelemetryStore
from workbench.loop.criteria import MIN_COVERAGE, Criterion, CriterionError, criterion_of, describe, evaluate, record

from conftest import SAMPLE

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
    ({"signal": "log_template"}, "metric", "not a key of log_template criteria"),
    ({"signal": "span_edge"}, "service", "not a key of span_edge criteria"),
    ({"template": "x"}, "template", "not a key of metric criteria"),
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


# ----------------------------------------------------------------------------- log templates and span edges

T = pd.Timestamp
FIRST = (T("2026-11-02T14:00Z"), T("2026-11-02T15:00Z"))  # INC-20261102-001
RECURRENCE = (T("2026-11-06T15:00Z"), T("2026-11-06T16:30Z"))  # INC-20261106-001
CALM = (T("2026-11-04T00:00Z"), T("2026-11-05T00:00Z"))
WEEK = (T("2026-11-01T00:00Z"), T("2026-11-08T00:00Z"))
IFE = {"signal": "log_template", "service": "payments", "template": "InvalidFormatException", "aggregate": "count",
       "comparator": "<", "threshold": 1, "duration": "1d", "window": "1h"}
#: The template exactly as the workbench shows it for those lines (logs.mine on the sample).
IFE_SHOWN = ('charge pi_<HEX> failed: com.fasterxml.jackson.databind.exc.InvalidFormatException: Cannot deserialize '
             'value of type `long` from String "<NUM>": not a valid `long` value (through reference chain: '
             'PaymentIntent["amount_minor"])')
EDGE = {"signal": "span_edge", "caller": "checkout", "callee": "payments", "metric": "error_rate",
        "comparator": "<", "threshold": 0.05, "duration": "1d", "window": "6h"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample's logs and spans (the whole week) in a telemetry store."""
    tables = {raw.table: schema.validate(raw.table, raw.frame, source=raw.origin, tz=raw.tz).frame
              for raw in open_source(str(SAMPLE)).frames() if raw.table in ("logs", "spans")}
    ts = TelemetryStore(tmp_path_factory.mktemp("sample"))
    ts.write(tables)
    return ts


class _Recording:
    """The real store, remembering what it was asked (the recheck loop memoises these calls)."""

    def __init__(self, store):
        self.store, self.calls = store, []

    def query(self, table, start=None, end=None, services=None, names=None):
        self.calls.append((table, services, names))
        return self.store.query(table, start, end, services=services, names=names)


def test_an_edge_call_whose_parent_started_before_the_window_counts(tmp_path):
    from workbench.loop.readers import EDGE_LOOKBACK, edge_values

    since = T("2026-11-02T10:00:00Z")
    rows = []
    for i, (parent_at, child_at) in enumerate([(-20, 1), (-EDGE_LOOKBACK.total_seconds() - 60, 2), (-30, -10),
                                               (5, 6)]):
        rows += [{"trace_id": f"t{i}", "span_id": f"p{i}", "parent_span_id": "", "service": "checkout",
                  "name": "POST /checkout", "start": since + pd.Timedelta(seconds=parent_at), "duration_ms": 90_000.0,
                  "status": "ok", "attributes": "{}"},
                 {"trace_id": f"t{i}", "span_id": f"c{i}", "parent_span_id": f"p{i}", "service": "payments",
                  "name": "charge", "start": since + pd.Timedelta(seconds=child_at), "duration_ms": 50.0,
                  "status": "error" if i == 0 else "ok", "attributes": "{}"}]
    store = TelemetryStore(tmp_path / "telemetry")
    store.write({"spans": schema.validate("spans", pd.DataFrame(rows), source="test").frame})
    c = Criterion.from_dict({**EDGE, "metric": "count", "comparator": ">", "threshold": 0, "duration": "1h",
                             "window": "1h"})
    counted = edge_values(c, store, since, since + pd.Timedelta(hours=1), pd.Timedelta(hours=1))
    # the calls at +1 s (parent 20 s before the window) and +6 s; not the one made before the window,
    # nor the one whose parent started more than the lookback earlier
    assert counted.to_dict() == {0: 2.0}


def test_template_and_edge_criteria_round_trip_and_describe():
    c = Criterion.from_dict({k: v for k, v in IFE.items() if k not in ("aggregate", "window")})
    assert (c.aggregate, c.window) == ("count", "5min")
    assert Criterion.from_dict(c.to_dict()) == c and "metric" not in c.to_dict()
    assert describe(IFE) == "count of log lines of payments matching 'InvalidFormatException' < 1 per 1h for 1d"
    full = {**IFE, "aggregate": "share", "severity": "err", "environment": "production", "threshold": 0.01}
    assert Criterion.from_dict(full).severity == "ERROR"
    assert describe(full) == ("share of ERROR+ log lines of payments in production matching 'InvalidFormatException' "
                              "< 0.01 per 1h for 1d")
    e = Criterion.from_dict(EDGE)
    assert e.to_dict() == {**EDGE, "threshold": 0.05} and Criterion.from_dict(e.to_dict()) == e
    assert describe(EDGE) == "error_rate of checkout→payments calls < 0.05 per 6h for 1d"
    assert describe({**EDGE, "metric": "p95_ms", "threshold": 800}) == \
        "p95_ms of checkout→payments calls < 800 per 6h for 1d"
    assert Criterion.from_dict({**EDGE, "environment": None}) == e  # a null key of another signal is absent
    assert Criterion("span_edge", metric="count", comparator=">", threshold=0, duration="1h", caller="a",
                     callee="b").window == "5min"


@pytest.mark.parametrize("entry, field, expected", [
    ({**EDGE, "metric": "latency_p95_ms"}, "metric", "error_rate, count, p50_ms, p95_ms, p99_ms"),
    ({k: v for k, v in EDGE.items() if k != "callee"}, "callee", "required for span_edge criteria"),
    ({**EDGE, "callee": "checkout"}, "callee", "a service other than the caller"),
    ({**EDGE, "calee": "payments"}, "calee", "did you mean 'callee'"),
    ({**EDGE, "environment": "production"}, "environment", "not a key of span_edge criteria"),
    ({**IFE, "template": ""}, "template", "not empty"),
    ({**IFE, "template": "   "}, "template", "not empty"),
    ({k: v for k, v in IFE.items() if k != "template"}, "template", "required for log_template criteria"),
    ({**IFE, "aggregate": "max"}, "aggregate", "one of count, share"),
    ({**IFE, "severity": "LOUD"}, "severity", "one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"),
    ({**IFE, "metric": "error_rate"}, "metric", "not a key of log_template criteria"),
    ({**IFE, "templat": "x"}, "templat", "did you mean 'template'"),
])
def test_template_and_edge_entries_are_refused_naming_the_field(entry, field, expected):
    with pytest.raises(CriterionError) as err:
        Criterion.from_dict(entry)
    assert f"'{field}'" in str(err.value) and expected in str(err.value)


def test_template_matching_follows_the_shown_templates():
    bodies = pd.Series(["charge pi_0a1b2c3d4e5f failed: InvalidFormatException  from String \"25.5\"",
                        "charge pi_0a1b2c3d4e5f authorized: 12.50 EUR in 130ms",
                        "invalidformatexception in lower case", "PSP response slow: 2.5 s for pi_x",
                        "proxy.example.com:5070 open through proxy 10.0.0.1:8080 HTTPS", "ids 1 2 3 done"])

    def hits(template):
        return [i for i, hit in enumerate(template_matches(template, bodies)) if hit]
    assert hits("InvalidFormatException") == [0]  # a case-sensitive substring
    assert hits("charge <*> failed: InvalidFormatException from String") == [0]  # blanks match any blanks
    assert hits('from String "<NUM>"') == [0]
    assert hits("charge <*> authorized: <NUM> EUR in <DUR>") == [1]
    assert hits("charge <*> EUR") == []  # a variable stands for text within one token
    assert hits("PSP response slow: <DUR> for <*>") == [3]  # "2.5 s" is one <DUR> once masked
    assert hits("for pi_<*>") == [3] and hits("for pi_x<*>") == []  # never empty
    # The miner shows a group's most general template: a mask there is a variable like <*>.
    assert hits("<IP> open through proxy <*> HTTPS") == [4]
    assert hits("ids <NUM> done") == [5]  # a run of masks is one
    assert hits("<*>") == [0, 1, 2, 3, 4, 5]


def test_a_log_template_criterion_on_the_sample(sample):
    for since, until in (FIRST, RECURRENCE):
        v = evaluate(IFE, sample, since, until)
        assert v.verdict == "violated" and v.worst >= 20, v.explanation
        assert since <= v.first_violation_at < until
        assert evaluate({**IFE, "template": IFE_SHOWN}, sample, since, until).verdict == "violated"
    calm = evaluate(IFE, sample, *CALM)
    assert calm.verdict == "holds" and calm.coverage == 1.0 and calm.worst == 0, calm.explanation
    # Over the week it fails in exactly the two incident hours.
    week = evaluate({**IFE, "duration": "7d"}, sample, *WEEK)
    assert week.verdict == "violated" and week.n_violations == 2 and week.n_windows == 7 * 24
    assert "reached" in week.explanation and "InvalidFormatException" in week.explanation
    # share: matching / all lines of payments in the hour; severity narrows the matching lines only.
    share = evaluate({**IFE, "aggregate": "share", "threshold": 0.05}, sample, *FIRST)
    assert share.verdict == "violated" and 0.2 <= share.worst <= 1
    assert evaluate({**IFE, "severity": "FATAL"}, sample, *FIRST).verdict == "inconclusive"  # 1h of 1d
    assert evaluate({**IFE, "severity": "ERROR"}, sample, *FIRST).verdict == "violated"


def test_a_template_criterion_without_logs_is_no_data(sample):
    silent = evaluate({**IFE, "service": "billing"}, sample, *CALM)
    assert silent.verdict == "no_data" and silent.coverage == 0 and silent.worst is None
    assert "no data: only 0 of 24 1h windows" in silent.explanation and "log lines of billing" in silent.explanation
    # The logs end with the week: a day after it has no data, it does not "hold".
    after = evaluate(IFE, sample, T("2026-11-08T00:00Z"), T("2026-11-09T00:00Z"))
    assert after.verdict == "no_data"
    assert evaluate({**IFE, "environment": "staging"}, sample, *CALM).verdict == "no_data"


def test_a_span_edge_criterion_on_the_sample(sample):
    v = evaluate(EDGE, sample, *RECURRENCE)
    assert v.verdict == "violated" and v.worst > 0.1, v.explanation
    assert "error_rate of checkout→payments calls reached" in v.explanation
    calm = evaluate(EDGE, sample, *CALM)
    assert calm.verdict == "holds" and calm.coverage == 1.0 and calm.worst < 0.05, calm.explanation
    # Calls are counted per window; the incident's calls are slower than the calm day's.
    assert evaluate({**EDGE, "metric": "count", "comparator": ">=", "threshold": 20}, sample, *CALM).verdict == "holds"
    p95 = {**EDGE, "metric": "p95_ms", "threshold": 1e9}
    assert evaluate(p95, sample, *FIRST).worst > evaluate(p95, sample, *CALM).worst
    # Over the week with 6 h windows only the two incident windows break it.
    week = evaluate({**EDGE, "duration": "7d"}, sample, *WEEK)
    assert week.verdict == "violated" and week.n_violations == 2 and week.coverage == 1.0


def test_an_edge_that_does_not_exist_is_no_data(sample):
    v = evaluate({**EDGE, "caller": "shipping"}, sample, *CALM)
    assert v.verdict == "no_data" and v.n_with_data == 0 and "shipping→payments calls" in v.explanation
    # Reversed direction: payments never calls checkout.
    assert evaluate({**EDGE, "caller": "payments", "callee": "checkout"}, sample, *CALM).verdict == "no_data"


def test_a_log_criterion_read_a_piece_at_a_time_equals_one_read(sample, monkeypatch):
    """Windows that straddle the pieces (5 h windows, 6 h pieces) add up across them: counts and
    shares equal those of one read of the whole week."""
    from workbench.loop import readers

    for aggregate in ("count", "share"):
        c = Criterion.from_dict({**IFE, "aggregate": aggregate, "window": "5h", "duration": "7d"})
        pieces = readers.template_values(c, sample, *WEEK, c.window_span)
        with monkeypatch.context() as m:
            m.setattr(readers, "LOG_CHUNK", pd.Timedelta(days=400))
            assert len(readers.log_chunks(*WEEK)) == 1
            whole = readers.template_values(c, sample, *WEEK, c.window_span)
        assert len(readers.log_chunks(*WEEK)) == 28 and len(whole) > 30 and whole.sum() > 0
        pd.testing.assert_series_equal(pieces, whole, check_names=False, check_index_type=False)


def test_each_signal_reads_narrow_queries(sample, store):
    from workbench.loop.readers import log_chunks

    for criterion, since, until, expected in (
            (IFE, *CALM, [("logs", ["payments"], None)] * len(log_chunks(*CALM))),  # a piece at a time
            (EDGE, *CALM, [("spans", ["checkout", "payments"], None)]),
            (PROD, START, UNTIL, [("metrics", ["checkout"], ["latency_p99_ms"])])):
        recording = _Recording(store if criterion is PROD else sample)
        evaluate(criterion, recording, since, until)
        assert recording.calls == expected
