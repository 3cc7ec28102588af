"""Cross-incident figures (workbench.kpis) and the accuracy ledger (workbench.evaluation.ledger) on a real SQLite knowledge base, against numbers computed by hand.

The five incidents of :func:`kb` (times relative to ``started``; ``—`` = not recorded):

========  ===================  ========  ======  ======  ======  ==========  ===========================
incident  services             severity  detect  mitig.  resolv  status      labels / checks
========  ===================  ========  ======  ======  ======  ==========  ===========================
A 01-10   checkout, payments   SEV2      600     1800    3600    closed      errors/checkout/production
B 01-20   checkout             SEV3      1200    3600    7200    monitoring  latency/checkout
C 02-05   payments             SEV2      —       2400    —       recurred    errors/payments
D 02-15   orders, checkout     SEV3      300     —       5400    closed      none; check clear
E 03-10   checkout             SEV3      1800    2700    10800   resolved    latency/checkout/staging;
                                                                             check recurred
========  ===================  ========  ======  ======  ======  ==========  ===========================

Action items (as of 2026-04-01): a1 (A, payments-team) done on 2026-02-01 via update; a2 (A, web)
open due 03-01 (overdue); b1 (B, web) wont_do; b2 (B, web) done on 03-01 then reopened
(in_progress, due 05-01); c1 (C, payments-team) done on 03-05, no due date; e1 (E, web) open due
04-15. Confirmed causes: A rank 1, B rank 3, C added by a human (no rank), E rank 4; D has none.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from workbench import kpis
from workbench.errors import MetricsError
from workbench.evaluation.ledger import accuracy, ledger_table
from workbench.kpis.tables import before_after_table, summary_table
from workbench.errors import NotFoundError, StoreError
from workbench.store import KnowledgeBase

SAMPLE_INCIDENTS = Path(__file__).resolve().parents[1] / "data" / "sample" / "incidents"
AS_OF = "2026-04-01T00:00:00Z"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Clock:
    """The knowledge base's clock, set by the test so history times are known."""

    def __init__(self) -> None:
        self.now = t("2026-01-01T00:00:00Z")

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def kb(tmp_path, clock):
    store = KnowledgeBase(tmp_path / "kb.sqlite", clock=clock)
    _build(store, clock)
    yield store
    store.close()


def _incident(kb, id, started, services, severity, status, detect=None, mitigate=None, resolve=None, labels=None):
    s = t(started)
    at = lambda sec: None if sec is None else s + timedelta(seconds=sec)  # noqa: E731
    return kb.create_incident(id=id, title=f"incident {id}", started=s, services=services, severity=severity,
                              status=status, detected=at(detect), mitigated=at(mitigate), resolved=at(resolve),
                              labels=labels, who="alice")


def _confirm(kb, incident_id, service, cause, rank, score=0.5):
    kb.add_hypothesis(incident_id, service=service, cause=cause, summary=f"{service} {cause}", score=score,
                      rank=rank, status="confirmed", reviewer="carol", rationale="verified", who="carol")


def _build(kb, clock):
    _incident(kb, "A", "2026-01-10T10:00:00Z", ["checkout", "payments"], "SEV2", "closed", 600, 1800, 3600,
              {"symptom": "errors", "service": "checkout", "environment": "production", "confidence": 0.9})
    _incident(kb, "B", "2026-01-20T10:00:00Z", ["checkout"], "SEV3", "monitoring", 1200, 3600, 7200,
              {"symptom": "latency", "service": "checkout"})
    _incident(kb, "C", "2026-02-05T10:00:00Z", ["payments"], "SEV2", "recurred", None, 2400, None,
              {"symptom": "errors", "service": "payments"})
    _incident(kb, "D", "2026-02-15T10:00:00Z", ["orders", "checkout"], "SEV3", "closed", 300, None, 5400)
    _incident(kb, "E", "2026-03-10T10:00:00Z", ["checkout"], "SEV3", "resolved", 1800, 2700, 10800,
              {"symptom": "latency", "service": "checkout", "environment": "staging"})

    clock.now = t("2026-01-11T00:00:00Z")
    a1 = kb.add_action_item("A", title="validate amount types", owner="payments-team", kind="prevent",
                            due="2026-02-15", id="a1", who="alice")
    kb.add_action_item("A", title="alert on PSP rejects", owner="web", kind="detect", due="2026-03-01", id="a2",
                       who="alice")
    kb.add_action_item("B", title="rewrite cache", owner="web", kind="process", due="2026-02-01", status="wont_do",
                       id="b1", who="alice")
    b2 = kb.add_action_item("B", title="scale cart", owner="web", kind="mitigate", due="2026-05-01", id="b2",
                            who="alice")
    c1 = kb.add_action_item("C", title="contract test", owner="payments-team", kind="prevent", id="c1", who="alice")
    kb.add_action_item("E", title="latency SLO alert", owner="web", kind="detect", due="2026-04-15", id="e1",
                       who="alice")
    clock.now = t("2026-02-01T00:00:00Z")
    kb.update_action_item("a1", a1.version, "bob", status="done")
    clock.now = t("2026-03-01T00:00:00Z")
    b2 = kb.update_action_item("b2", b2.version, "bob", status="done")
    clock.now = t("2026-03-02T00:00:00Z")
    kb.update_action_item("b2", b2.version, "bob", status="in_progress")  # reopened: not a finished fix
    clock.now = t("2026-03-05T00:00:00Z")
    kb.update_action_item("c1", c1.version, "bob", status="done")

    kb.record_check("D", window_start="2026-03-01T00:00:00Z", window_end="2026-03-02T00:00:00Z", verdict="clear",
                    at="2026-03-02T00:00:00Z")
    kb.record_check("E", window_start="2026-03-20T00:00:00Z", window_end="2026-03-21T00:00:00Z",
                    verdict="recurred", at="2026-03-21T00:00:00Z")
    # A verification check of an action item is not a recurrence check, whatever its verdict.
    kb.record_check("A", window_start="2026-03-20T00:00:00Z", window_end="2026-03-21T00:00:00Z",
                    verdict="violated", action_item_id="a2", at="2026-03-21T00:00:00Z")

    _confirm(kb, "A", "payments", "change", 1, 0.9)
    kb.add_hypothesis("A", service="checkout", cause="code", summary="npe", score=0.4, rank=2, who="engine")
    kb.add_hypothesis("B", service="cart", cause="change", summary="deploy", score=0.8, rank=1, status="rejected",
                      reviewer="carol", rationale="no deploy", who="carol")
    proposed = kb.add_hypothesis("B", service="checkout", cause="resource", summary="pool", score=0.5, rank=3,
                                 who="engine")
    kb.update_hypothesis(proposed.id, proposed.version, "carol", status="confirmed", reviewer="carol",
                         rationale="pool metrics")
    _confirm(kb, "C", "payments", "code", None)  # a human's cause, not ranked by the engine
    kb.add_hypothesis("D", service="orders", cause="resource", summary="pool", score=0.7, rank=1, who="engine")
    _confirm(kb, "E", "checkout", "change", 4)


# --------------------------------------------------------------------------- durations and counts

def test_per_incident_times_keep_unknowns_as_none(kb):
    times = {x.incident_id: x for x in kpis.summarize(kb, as_of=AS_OF).incidents}
    a = times["A"]
    assert [a.time_to_detect, a.time_to_mitigate, a.time_to_resolve] == [600.0, 1800.0, 3600.0]
    assert times["C"].time_to_detect is None and times["C"].time_to_resolve is None
    assert times["C"].time_to_mitigate == 2400.0
    assert times["D"].time_to_mitigate is None


def test_summary_means_and_medians_count_unknowns_apart(kb):
    s = kpis.summarize(kb, as_of=AS_OF)
    assert s.count == 5
    assert s.durations["mttd"] == kpis.DurationStats(n_known=4, n_unknown=1, mean=975.0, median=900.0)
    assert s.durations["mttm"] == kpis.DurationStats(n_known=4, n_unknown=1, mean=2625.0, median=2550.0)
    assert s.durations["mttr"] == kpis.DurationStats(n_known=4, n_unknown=1, mean=6750.0, median=6300.0)


def test_counts_per_service_and_label(kb):
    s = kpis.summarize(kb, as_of=AS_OF)
    assert s.by_service == {"checkout": 4, "payments": 2, "orders": 1}
    assert s.by_label["symptom"] == {"errors": 2, "latency": 2}
    assert s.by_label["service"] == {"checkout": 3, "payments": 1}
    assert s.by_label["environment"] == {"production": 1, "staging": 1}
    assert s.unlabelled == {"symptom": 1, "service": 1, "environment": 3}


def test_recurrence_rate_over_incidents_under_watch(kb):
    r = kpis.summarize(kb, as_of=AS_OF).recurrence
    assert set(r.recurred) == {"C", "E"}            # status recurred; a recurrence check said recurred
    assert set(r.under_watch) == {"B", "C", "D", "E"}  # A has only a verification check
    assert r.rate == 0.5
    assert r.unjudged == ("B",)                     # monitoring, no check yet
    # Checks after as_of do not count: E's check is on 03-21.
    early = kpis.summarize(kb, as_of="2026-03-15T00:00:00Z").recurrence
    assert set(early.recurred) == {"C"} and set(early.under_watch) == {"B", "C", "D"}


def test_action_item_completion_excludes_wont_do_and_overdue_by_owner(kb):
    s = kpis.summarize(kb, as_of=AS_OF)
    a = s.action_items
    assert (a.total, a.done, a.overdue, a.no_due) == (6, 2, 1, 1)
    assert a.by_status == {"open": 2, "in_progress": 1, "done": 2, "wont_do": 1}
    assert a.completion == 2 / 5
    pay, web = s.by_owner["payments-team"], s.by_owner["web"]
    assert (pay.total, pay.done, pay.overdue, pay.completion) == (2, 2, 0, 1.0)
    assert (web.total, web.done, web.overdue, web.completion) == (4, 0, 1, 0.0)
    # On 2026-03-01 a2 (due that day) is not yet overdue; b1 (due 02-01) is wont_do.
    assert kpis.summarize(kb, as_of=date(2026, 3, 1)).action_items.overdue == 0
    assert kpis.summarize(kb, as_of="2026-03-02T00:00:00Z").action_items.overdue == 1


@pytest.mark.parametrize("filters, expected", [
    ({"since": "2026-02-01T00:00:00Z"}, ["C", "D", "E"]),
    ({"until": "2026-02-01T00:00:00Z"}, ["A", "B"]),
    ({"since": "2026-01-15T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, ["B", "C", "D"]),
    ({"service": "payments"}, ["A", "C"]),
    ({"severity": "SEV2"}, ["A", "C"]),
    ({"label": "symptom=latency"}, ["B", "E"]),
    ({"label": {"service": "checkout", "symptom": "errors"}}, ["A"]),
])
def test_selection_filters(kb, filters, expected):
    s = kpis.summarize(kb, as_of=AS_OF, **filters)
    assert [x.incident_id for x in s.incidents] == expected
    # Action items follow the selection: only those of the selected incidents count.
    assert s.action_items.total == sum(1 for x in kb.list_action_items() if x.incident_id in expected)


def test_selection_of_services_filters_mttd(kb):
    s = kpis.summarize(kb, as_of=AS_OF, service="payments")
    assert s.durations["mttd"] == kpis.DurationStats(1, 1, 600.0, 600.0)
    assert s.durations["mttr"] == kpis.DurationStats(1, 1, 3600.0, 3600.0)


def test_bad_filters_name_the_argument(kb):
    with pytest.raises(MetricsError, match="label"):
        kpis.summarize(kb, label="symptom")
    with pytest.raises(MetricsError, match="until"):
        kpis.summarize(kb, since="2026-03-01T00:00:00Z", until="2026-02-01T00:00:00Z")
    with pytest.raises(StoreError, match="severity"):
        kpis.summarize(kb, severity="critical")
    with pytest.raises(StoreError, match="since"):
        kpis.summarize(kb, since="2026-03-01T00:00:00")  # naive


def test_empty_selection_is_unknown_not_zero(kb):
    s = kpis.summarize(kb, as_of=AS_OF, service="nope")
    assert s.count == 0
    assert s.durations["mttd"] == kpis.DurationStats(0, 0, None, None)
    assert s.recurrence.rate is None and s.action_items.completion is None


def test_summary_to_dict_is_json_safe(kb):
    d = kpis.summarize(kb, as_of=AS_OF).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["durations"]["mttd"] == {"n_known": 4, "n_unknown": 1, "mean_s": 975.0, "median_s": 900.0}
    c = next(x for x in d["incidents"] if x["incident_id"] == "C")
    assert c["started"] == "2026-02-05T10:00:00Z" and c["time_to_detect_s"] is None and c["detected"] is None
    assert d["action_items"]["completion"] == 0.4 and d["recurrence"]["rate"] == 0.5
    assert d["as_of"] == AS_OF


def test_frame_has_nan_for_unknown(kb):
    frame = kpis.summarize(kb, as_of=AS_OF).frame()
    assert list(frame["incident_id"]) == ["A", "B", "C", "D", "E"]
    assert frame["time_to_detect_s"].isna().tolist() == [False, False, True, False, False]
    assert frame["time_to_detect_s"].mean() == 975.0


# --------------------------------------------------------------------------- before / after

def test_before_after_uses_last_done_item_and_equal_windows(kb):
    # checkout: a1 done 02-01 (b2 was done on 03-01 but reopened, so it does not count).
    ba = kpis.before_after(kb, "checkout", window=timedelta(days=30), as_of=AS_OF)
    assert ba.done_at == t("2026-02-01T00:00:00Z") and ba.done_from == "history"
    assert ba.action_item_ids == ("a1",)
    assert ba.window == timedelta(days=30)
    assert [x.incident_id for x in ba.before.incidents] == ["A", "B"]
    assert [x.incident_id for x in ba.after.incidents] == ["D"]        # E (03-10) is past 03-03
    assert ba.before.durations["mttd"] == kpis.DurationStats(2, 0, 900.0, 900.0)
    assert ba.after.durations["mttd"] == kpis.DurationStats(1, 0, 300.0, 300.0)
    assert ba.after.durations["mttm"] == kpis.DurationStats(0, 1, None, None)
    diff = ba.difference
    assert diff["count"] == -1
    assert diff["mttd"] == {"mean_s": -600.0, "median_s": -600.0}
    assert diff["mttr"] == {"mean_s": 0.0, "median_s": 0.0}
    assert diff["mttm"] == {"mean_s": None, "median_s": None}
    # B (monitoring) before; D (check clear) after.
    assert diff["recurrence_rate"] == 0.0


def test_before_after_window_is_capped_by_time_since_done(kb):
    ba = kpis.before_after(kb, "checkout", as_of=AS_OF)  # default 90 days, but only 59 days since 02-01
    assert ba.window == timedelta(days=59)
    assert ba.to_dict()["window_s"] == 59 * 86400.0
    assert [x.incident_id for x in ba.before.incidents] == ["A", "B"]
    assert [x.incident_id for x in ba.after.incidents] == ["D", "E"]
    assert ba.after.durations["mttd"] == kpis.DurationStats(2, 0, 1050.0, 1050.0)
    assert ba.after.durations["mttm"] == kpis.DurationStats(1, 1, 2700.0, 2700.0)
    assert ba.after.durations["mttr"] == kpis.DurationStats(2, 0, 8100.0, 8100.0)
    assert ba.difference["mttr"]["mean_s"] == 8100.0 - 5400.0


def test_before_after_last_of_several_done_items(kb):
    ba = kpis.before_after(kb, "payments", as_of=AS_OF)
    assert ba.done_at == t("2026-03-05T00:00:00Z") and ba.action_item_ids == ("a1", "c1")
    assert ba.window == timedelta(days=27)
    assert (ba.before.count, ba.after.count) == (0, 0)
    # As of 03-01, c1 was not done yet: a1's time is the remediation.
    assert kpis.before_after(kb, "payments", as_of="2026-03-01T00:00:00Z").done_at == t("2026-02-01T00:00:00Z")


def test_before_after_with_a_given_date(kb):
    ba = kpis.before_after(kb, "payments", done_at="2026-02-01T00:00:00Z", window=timedelta(days=10),
                              as_of=AS_OF)
    assert ba.done_from == "given" and ba.action_item_ids == ()
    assert [x.incident_id for x in ba.after.incidents] == ["C"] and ba.before.count == 0
    assert json.loads(json.dumps(ba.to_dict()))["difference"]["count"] == 1


def test_before_after_without_done_items_or_with_bad_arguments(kb):
    with pytest.raises(NotFoundError, match="orders"):
        kpis.before_after(kb, "orders", as_of=AS_OF)
    with pytest.raises(MetricsError, match="done_at"):
        kpis.before_after(kb, "orders", done_at="2026-05-01T00:00:00Z", as_of=AS_OF)
    with pytest.raises(MetricsError, match="window"):
        kpis.before_after(kb, "checkout", window=timedelta(0), as_of=AS_OF)


# --------------------------------------------------------------------------- accuracy ledger

def test_accuracy_ledger(kb):
    led = accuracy(kb)
    assert [(e.incident_id, e.cause, e.rank) for e in led.entries] == [
        ("A", "change", 1), ("B", "resource", 3), ("C", "code", None), ("E", "change", 4)]
    o = led.overall
    assert (o.n_incidents, o.n_ranked, o.n_not_ranked) == (4, 3, 1)
    assert o.ac(1) == 1 / 3 and o.ac(3) == 2 / 3 and o.mean_rank == 8 / 3
    assert {m: g.to_dict() for m, g in led.by_month.items()} == {
        "2026-01": {"n_incidents": 2, "n_ranked": 2, "n_not_ranked": 0, "ac1": 0.5, "ac3": 1.0, "mean_rank": 2.0},
        "2026-02": {"n_incidents": 1, "n_ranked": 0, "n_not_ranked": 1, "ac1": None, "ac3": None, "mean_rank": None},
        "2026-03": {"n_incidents": 1, "n_ranked": 1, "n_not_ranked": 0, "ac1": 0.0, "ac3": 0.0, "mean_rank": 4.0},
    }
    assert list(led.by_cause) == ["change", "resource", "code"]
    change = led.by_cause["change"]
    assert (change.ac(1), change.ac(3), change.mean_rank) == (0.5, 0.5, 2.5)
    assert led.by_cause["code"].n_not_ranked == 1 and led.by_cause["code"].ac(1) is None
    d = led.to_dict()
    assert json.loads(json.dumps(d)) == d and d["overall"]["ac3"] == 2 / 3


def test_accuracy_ledger_follows_the_selection(kb):
    led = accuracy(kb, since="2026-02-01T00:00:00Z")
    assert [e.incident_id for e in led.entries] == ["C", "E"]
    assert led.overall.ac(1) == 0.0 and led.overall.n_not_ranked == 1


def test_several_confirmed_causes_use_the_best_rank(kb):
    _confirm(kb, "E", "payments", "dependency", 2)
    entry = next(e for e in accuracy(kb).entries if e.incident_id == "E")
    assert (entry.rank, entry.cause, entry.confirmed) == (2, "dependency", 2)


# --------------------------------------------------------------------------- text

def test_format_table_shows_unknowns_and_counts(kb):
    text = summary_table(kpis.summarize(kb, as_of=AS_OF))
    assert "incidents: 5" in text
    assert "MTTD (detect)" in text and "16m 15s" in text and "unknown" in text
    assert "2 recurred of 4 under watch = 50.0 %" in text
    assert "2 done of 5 (wont_do 1 excluded) = 40.0 %" in text
    ba = before_after_table(kpis.before_after(kb, "checkout", window=timedelta(days=30), as_of=AS_OF))
    assert "service checkout" in ba and "-10m 00s" in ba
    led = ledger_table(accuracy(kb))
    assert "33.3 %" in led and "not ranked" in led
    short = summary_table(kpis.summarize(kb, as_of=AS_OF), max_rows=2)
    assert "... 3 more" in short and len(short.splitlines()) < len(text.splitlines())


# --------------------------------------------------------------------------- the committed sample

def test_sample_history(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    try:
        files = sorted(SAMPLE_INCIDENTS.glob("*.yaml"))
        for path in files:
            kb.import_incident(path, who="test")
        s = kpis.summarize(kb, as_of="2026-11-08T00:00:00Z")
        assert s.count == len(files) == 10
        with_detected = {p.stem for p in files if "\ndetected:" in p.read_text()}
        known = {x.incident_id for x in s.incidents if x.time_to_detect is not None}
        assert known == with_detected
        assert s.durations["mttd"].n_known == len(with_detected)
        assert s.durations["mttd"].n_unknown == 10 - len(with_detected)
        assert all(x.time_to_detect > 0 for x in s.incidents if x.time_to_detect is not None)
        assert s.by_service["checkout"] == 7 and s.by_service["payments"] == 3
        assert s.unlabelled["symptom"] == 4  # the four recent incidents have no labels yet
        recent = kpis.summarize(kb, since="2026-11-01T00:00:00Z", as_of="2026-11-08T00:00:00Z")
        assert [x.incident_id for x in recent.incidents] == [
            "INC-20261102-001", "INC-20261103-001", "INC-20261105-001", "INC-20261106-001"]
        led = accuracy(kb)
        assert led.overall.n_incidents == 6 and led.overall.n_not_ranked == 6 and led.overall.ac(1) is None
        assert {c: g.n_incidents for c, g in led.by_cause.items()} == {
            "change": 1, "resource": 2, "dependency": 1, "code": 1, "traffic": 1}
    finally:
        kb.close()
