"""The review pack's figures (workbench.review_pack) equal hand-computed ones on the sample's incident
documents plus incidents, reviews, action items, checks and decisions this test records through the
core: counts, MTTx with unknowns counted, AC@k now and in the previous period, fixes with their
verdicts, recurrence before/after a fix, overdue by owner, rotation, decisions; the hash binds the
content and a sign-off is refused once the content moved on."""
from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

import workbench
from conftest import SAMPLE
from workbench.errors import ConflictError, MetricsError, NotFoundError
from workbench.review_pack import Period, accept_suggestion, build, read, reject_suggestion, review_pack, sign
from workbench.review_pack import figures, interventions
from workbench.store import KnowledgeBase

SINCE, UNTIL = "2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z"
NOW = "2026-12-06T12:00:00Z"  # after UNTIL: figures are taken at UNTIL


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Clock:
    """The knowledge base's clock: history rows carry the time the test says."""

    def __init__(self):
        self.now = at("2026-11-01T00:00:00Z")

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = workbench.init(tmp_path_factory.mktemp("pack") / "ws")
    clock = Clock()
    with KnowledgeBase(ws.database_url, clock=clock) as kb:
        for path in sorted((SAMPLE / "incidents").glob("*.yaml")):
            kb.import_incident(path, who="test")
        record(kb, clock)
    return ws


def record(kb: KnowledgeBase, clock: Clock) -> None:
    # the engine's ranks of the causes reviewers confirmed (the sample's documents have none)
    h = kb.list_hypotheses("INC-20260814-001", status="confirmed")[0]
    kb.update_hypothesis(h.id, h.version, "test", rank=1)  # previous period: 1 ranked, at rank 1
    kb.add_hypothesis("INC-20261102-001", service="payments", cause="change", summary="deploy v2.15.0", score=0.9,
                      rank=1, status="confirmed", reviewer="carol", rationale="rollback fixed it", who="carol")
    kb.add_hypothesis("INC-20261103-001", service="orders", cause="resource", summary="pool", score=0.8, rank=1,
                      status="rejected", reviewer="carol", rationale="the pool was shrunk by hand", who="carol")
    kb.add_hypothesis("INC-20261103-001", service="orders", cause="change", summary="pool config", score=0.7,
                      rank=2, status="confirmed", reviewer="carol", rationale="config change", who="carol")
    kb.add_hypothesis("INC-20261106-001", service="payments", cause="change", summary="v2.15.1", score=0.5, rank=4,
                      status="confirmed", reviewer="dmitri", rationale="same bug", who="dmitri")
    # an incident without detection or resolution times, and a follow-up review after the fix
    kb.create_incident(id="INC-X1", title="Payments slow", started="2026-11-20T10:00:00Z", services=["payments"],
                       who="test")
    kb.create_incident(id="INC-20261102-001-R1", title="Recurrence", started="2026-11-25T08:00:00Z",
                       detected="2026-11-25T08:05:00Z", resolved="2026-11-25T08:30:00Z", services=["payments"],
                       follow_up_of="INC-20261102-001", status="open", who="recheck")
    # action items: one fixed on Nov 10 with verdicts after it, overdue ones, one without a due date
    clock.now = at("2026-11-03T09:00:00Z")
    a1 = kb.add_action_item("INC-20261102-001", title="Validate amount types", owner="payments-team", kind="prevent",
                            due="2026-11-20", who="carol",
                            verification={"signal": "metric", "service": "payments", "metric": "error_rate",
                                          "aggregate": "max", "comparator": "<", "threshold": 0.05,
                                          "duration": "7d"})
    kb.add_action_item("INC-20261103-001", title="Alert on pool saturation", owner="bob", kind="detect",
                       due="2026-11-15", id="AI-2", who="carol")
    kb.add_action_item("INC-20261105-001", title="Capacity review", owner="bob", kind="process", due="2026-12-15",
                       who="carol")
    kb.add_action_item("INC-20260814-001", title="Old fix", owner="alice", kind="prevent", due="2026-09-01",
                       who="alice")
    kb.add_action_item("INC-X1", title="Look into it", owner="erin", kind="process", who="erin")
    clock.now = at("2026-11-10T12:00:00Z")
    kb.update_action_item(a1.id, a1.version, "payments-team", status="done")
    for when, verdict, worst in (("2026-11-12", "holds", 0.01), ("2026-11-20", "violated", 0.2),
                                 ("2026-11-25", "holds", 0.02)):
        kb.record_check("INC-20261102-001", window_start=f"{when}T00:00:00Z", window_end=f"{when}T06:00:00Z",
                        verdict=verdict, score=worst, action_item_id=a1.id, at=f"{when}T06:00:00Z",
                        evidence=[{"explanation": f"max error_rate {worst}"}])
    # the recheck found the recurrence and proposed a runbook and an alert update
    kb.record_check("INC-20261102-001", window_start="2026-11-06T10:07:00Z", window_end="2026-11-06T16:07:00Z",
                    verdict="recurred", score=0.79, at="2026-11-06T16:07:00Z", evidence=[
                        {"kind": "recurrence", "reasons": ["signature"], "follow_up_id": "INC-20261102-001-R1"},
                        {"kind": "suggestion", "suggestion": {"kind": "runbook", "key": "runbook:payments",
                                                              "service": "payments", "reason": "recurrence",
                                                              "text": "Update the payments runbook"}},
                        {"kind": "suggestion", "suggestion": {"kind": "alert", "key": "alert:payments/error_rate",
                                                              "service": "payments", "reason": "recurrence",
                                                              "text": "Alert on payments error_rate > 0.03"}}])
    kb.record_check("INC-20261103-001", window_start="2026-11-07T00:00:00Z", window_end="2026-11-07T06:00:00Z",
                    verdict="clear", score=0.2, at="2026-11-07T06:00:00Z")
    # the meeting's decisions: an accepted suggestion becomes an action item; an owner changes
    clock.now = at("2026-11-12T15:00:00Z")
    accept_suggestion(kb, "INC-20261102-001", "alert:payments/error_rate", who="carol", owner="payments-team",
                      due="2026-11-30", rationale="agreed in the review")
    clock.now = at("2026-11-20T15:00:00Z")
    a2 = kb.get_action_item("AI-2")
    kb.update_action_item("AI-2", a2.version, "carol", owner="dmitri")


@pytest.fixture(scope="module")
def pack(ws):
    return review_pack(ws, Period.of(SINCE, UNTIL, now=NOW))


def test_the_period_is_fixed_when_built():
    p = Period.of(SINCE, UNTIL, now=NOW)
    assert p.as_of == at(UNTIL) and p.previous.since == at("2026-08-01T00:00:00Z")
    assert Period.of(SINCE, now="2026-10-20T00:00:00Z").as_of == at("2026-10-20T00:00:00Z")
    assert Period.from_dict(p.to_dict()) == p and p.key == f"{SINCE}..{UNTIL}"
    assert Period.last(30, now=NOW).since == at(NOW) - timedelta(days=30)
    with pytest.raises(MetricsError, match="until"):
        Period.of(UNTIL, SINCE)


def test_incidents_count_unknown_times_as_unknown(pack):
    s = pack.sections["incidents"]
    # the sample's 6 from Oct 5 on, the incident without times, the follow-up review
    assert s["count"] == 8 and s["follow_ups"] == 1
    assert s["by_severity"] == {"SEV2": 3, "SEV3": 5}
    mttd, mttr = s["durations"]["mttd"], s["durations"]["mttr"]
    assert (mttd["n_known"], mttd["n_unknown"], mttr["n_known"], mttr["n_unknown"]) == (7, 1, 7, 1)
    # MTTR by hand from the documents (resolved - started) and the R1's 30 min
    sample = {"INC-20261005-001": 5400, "INC-20261012-003": 3780, "INC-20261102-001": 3120,
              "INC-20261103-001": 3480, "INC-20261105-001": 5400, "INC-20261106-001": 2640}
    rows = {r["incident_id"]: r for r in s["rows"]}
    assert {k: rows[k]["mttr_s"] for k in sample} == sample
    assert rows["INC-X1"]["mttr_s"] is None and rows["INC-X1"]["mttd_s"] is None
    assert mttr["mean_s"] == pytest.approx((sum(sample.values()) + 1800) / 7)
    assert rows["INC-20261103-001"]["cause"] == "orders/change"


def test_engine_against_reviewers(pack):
    e = pack.sections["engine"]
    ranks = {r["incident_id"]: r["rank"] for r in e["confirmed"]}
    assert ranks == {"INC-20261005-001": None, "INC-20261012-003": None, "INC-20261102-001": 1,
                     "INC-20261103-001": 2, "INC-20261106-001": 4}
    now, before = e["accuracy"]["period"], e["accuracy"]["previous"]
    assert (now["n_incidents"], now["n_ranked"], now["n_not_ranked"]) == (5, 3, 2)
    assert now["ac1"] == pytest.approx(1 / 3) and now["ac3"] == pytest.approx(2 / 3)
    assert (now["hits1"], now["hits3"]) == (1, 2)
    assert (before["n_ranked"], before["ac1"], before["n_not_ranked"]) == (1, 1.0, 2)
    assert [r["incident_id"] for r in e["missed"]] == ["INC-20261005-001", "INC-20261012-003"]
    assert e["calibration"]["cases"] == 0 and not e["calibration"]["enough"]  # no stated confidence yet


def test_calibration_by_hand():
    h = lambda iid, status, p, rank=1: SimpleNamespace(incident_id=iid, status=status, confidence=p, rank=rank)  # noqa: E731
    records = SimpleNamespace(hypotheses={
        "a": [h("a", "confirmed", 0.9), h("a", "proposed", 0.3, 2), h("a", "proposed", None, 3)],
        "b": [h("b", "rejected", 0.7), h("b", "confirmed", 0.5, 2)],
        "c": [h("c", "proposed", 0.8)],  # undecided: not a case
        "d": [h("d", "confirmed", 0.95, None)],  # a person's: not the engine's
    })
    cal = figures.calibration(records, [SimpleNamespace(id=i) for i in "abcd"])
    assert (cal["cases"], cal["right"]) == (4, 2)
    assert cal["brier"] == pytest.approx(((0.9 - 1) ** 2 + 0.3 ** 2 + 0.7 ** 2 + (0.5 - 1) ** 2) / 4, abs=1e-4)
    bins = {b["bin"]: (b["cases"], b["predicted"], b["observed"]) for b in cal["bins"]}
    assert bins["0.8-1.0"] == (1, 0.9, 1.0) and bins["0.4-0.6"] == (1, 0.5, 1.0) and bins["0.6-0.8"] == (1, 0.7, 0.0)
    assert bins["0.2-0.4"] == (1, 0.3, 0.0) and bins["0.0-0.2"] == (0, None, None)


def test_fixes_due_or_done_in_the_period(pack):
    f = pack.sections["fixes"]
    assert [r["title"] for r in f["rows"]] == ["Alert on pool saturation", "Validate amount types",
                                               "Alert on payments error_rate > 0.03"]
    assert (f["count"], f["done"], f["overdue"]) == (3, 1, 2)
    fixed = f["rows"][1]
    assert fixed["fixed_at"] == "2026-11-10T12:00:00Z" and fixed["status"] == "done" and not fixed["overdue"]
    assert [v["verdict"] for v in fixed["verdicts"]] == ["holds", "violated", "holds"]
    assert fixed["counts"] == {"holds": 2, "violated": 1, "no_data": 0, "inconclusive": 0}
    assert fixed["expected"] == "max error_rate of payments < 0.05 per 5min for 7d"
    assert fixed["observed"] == "max error_rate 0.02" and fixed["latest"] == "holds"
    pool = f["rows"][0]
    assert pool["owner"] == "dmitri" and pool["overdue"] and pool["days_overdue"] == 16
    accepted = f["rows"][2]
    assert accepted["kind"] == "detect" and accepted["days_overdue"] == 1 and accepted["expected"] is None


def test_recurrence_before_and_after_the_fix(pack, ws):
    s = pack.sections["interventions"]
    [fix] = s["fixes"]
    assert fix["fixed_at"] == "2026-11-10T12:00:00Z" and fix["days"] == pytest.approx(20.5)
    # 20.5 days on each side: [Oct 20 12:00, Nov 10 12:00) and [Nov 10 12:00, Dec 1)
    assert fix["before"] == ["INC-20261102-001", "INC-20261106-001"]  # the fixed one and its recurrence
    assert fix["after"] == ["INC-20261102-001-R1"]  # the follow-up review
    prevent = s["by_kind"]["prevent"]
    assert prevent["before"]["per_30_days"] == pytest.approx(2 / 20.5 * 30, abs=1e-3)
    assert prevent["after"]["per_30_days"] == pytest.approx(1 / 20.5 * 30, abs=1e-3)
    assert prevent["after"]["mttr"]["mean_s"] == 1800 and prevent["before"]["mttr"]["mean_s"] == (3120 + 2640) / 2
    assert prevent["recurred_after"] == 1
    assert prevent["verdict"] == "too few" and prevent["statement"].startswith("too few to say")
    assert s["by_kind"]["detect"]["fixes"] == 0 and set(s["by_service"]) == {"payments", "checkout"}


def test_a_group_with_enough_fixes_states_its_comparison():
    incidents = {f"i{n}": SimpleNamespace(id=f"i{n}", title="", severity="SEV3", status="closed", services=(),
                                          started=at("2026-01-01T00:00:00Z"), detected=None, mitigated=None,
                                          resolved=None) for n in range(6)}
    fixes = [interventions.Fix(f"a{n}", "i0", "prevent", ("x",), at("2026-02-01T00:00:00Z"), 30.0,
                               ("i0", "i1"), ("i2",) if n == 0 else ()) for n in range(3)]
    g = interventions.group(fixes, incidents)
    assert g["before"]["per_30_days"] == 2.0 and g["after"]["per_30_days"] == pytest.approx(1 / 3, abs=1e-4)
    assert g["verdict"] == "fewer" and g["recurred_after"] == 1 and "1 of 3 fixes" in g["statement"]
    assert g["before"]["mttr"]["n_unknown"] == 2  # distinct incidents, unknown times counted as unknown


def test_recurrences_suggestions_and_decisions(pack):
    r = pack.sections["recurrences"]
    assert [(c["incident_id"], c["follow_up_id"]) for c in r["checks"]] == [("INC-20261102-001", "INC-20261102-001-R1")]
    assert [f["incident_id"] for f in r["follow_ups"]] == ["INC-20261102-001-R1"]
    s = pack.sections["suggestions"]
    states = {row["key"]: (row["status"], row["decided_by"]) for row in s["rows"]}
    assert states == {"runbook:payments": ("proposed", None), "alert:payments/error_rate": ("accepted", "carol")}
    assert s["counts"] == {"proposed": 1, "accepted": 1, "rejected": 0}
    d = pack.sections["decisions"]
    assert [(x["key"], x["who"]) for x in d["suggestions"]] == [("alert:payments/error_rate", "carol")]
    owner = [x for x in d["action_items"] if x["field"] == "owner"]
    assert owner == [{"at": "2026-11-20T15:00:00Z", "who": "carol", "incident_id": "INC-20261103-001",
                      "action_item_id": "AI-2", "field": "owner", "old": "bob", "new": "dmitri"}]
    assert [x["new"] for x in d["action_items"] if x["field"] == "status"] == ["done"]


def test_ownership_overdue_by_owner_and_rotation(pack):
    o = pack.sections["ownership"]
    assert [(x["owner"], x["action_item_id"] if x["owner"] != "payments-team" else "accepted", x["days_overdue"])
            for x in o["overdue"]] == [("alice", o["overdue"][0]["action_item_id"], 91), ("dmitri", "AI-2", 16),
                                       ("payments-team", "accepted", 1)]
    leads = {x["owner"]: x["reviews"] for x in o["review_leads"]}
    assert leads == {"carol": 2, "alice": 1, "erin": 1, "dmitri": 1}
    assert sorted(o["unassigned"]) == ["INC-20261102-001-R1", "INC-20261105-001", "INC-X1"]
    assert o["rotation"]["top"] == "carol" and o["rotation"]["top_share"] == 0.4 and not o["rotation"]["concentrated"]
    owners = {x["owner"]: x for x in o["action_owners"]}
    assert (owners["bob"]["items"], owners["bob"]["overdue"]) == (1, 0)  # his pool item moved to dmitri
    assert (owners["erin"]["items"], owners["erin"]["no_due"]) == (1, 1)


def test_trend_by_month(pack):
    months = {m["month"]: m for m in pack.sections["trend"]["months"]}
    assert list(months) == ["2026-08", "2026-09", "2026-10", "2026-11"]
    assert [months[m]["incidents"] for m in months] == [1, 2, 2, 6]
    assert months["2026-11"]["recurrences"] == 1 and months["2026-11"]["follow_ups"] == 1
    assert months["2026-11"]["mttr_unknown"] == 1 and months["2026-08"]["ac1"] == 1.0
    assert months["2026-11"]["ac1"] == pytest.approx(1 / 3)


def test_the_hash_binds_the_content_and_a_stale_signoff_is_refused(ws, pack):
    period = pack.period
    again = review_pack(ws, period)
    assert again.content_hash == pack.content_hash and again.to_dict()["sections"] == pack.to_dict()["sections"]
    signed = sign(ws, period, pack.content_hash, name="carol", role="review lead")
    assert signed.content_hash == pack.content_hash
    assert review_pack(ws, period).approved()
    with ws.knowledge_base() as kb:
        reject_suggestion(kb, "INC-20261102-001", "runbook:payments", who="erin", rationale="the runbook is fine")
        with pytest.raises(NotFoundError, match="runbook:payments"):
            reject_suggestion(kb, "INC-20261102-001", "runbook:nope", who="erin", rationale="x")
        with pytest.raises(ConflictError, match="already accepted"):
            accept_suggestion(kb, "INC-20261102-001", "alert:payments/error_rate", who="x", owner="y")
    later = review_pack(ws, Period.of(SINCE, "2030-01-01T00:00:00Z", now="2030-01-01T00:00:00Z"))
    assert later.sections["suggestions"]["counts"]["rejected"] == 1
    moved = review_pack(ws, period)  # the rejection happened after UNTIL: this period's pack is unchanged
    assert moved.content_hash == pack.content_hash
    with ws.knowledge_base() as kb:
        item = kb.get_action_item("AI-2")
        kb.update_action_item("AI-2", item.version, "carol", title="Alert on pool saturation (renamed)")
    with pytest.raises(ConflictError, match="changed since it was written"):
        sign(ws, period, pack.content_hash, name="erin", role="sre")


def test_records_by_hand_give_the_same_pack(ws, pack):
    with ws.knowledge_base() as kb:
        records = read(ws, pack.period, kb=kb)
    assert build(records, pack.period).sections["incidents"] == pack.sections["incidents"]


def test_fields_of_the_ranking_and_receivers_branches_are_read_when_present():
    """``Hypothesis.confidence`` (issue 11) and ``ActionItem.applied_at``/``applied_change`` (issue 15)
    are not on every record yet: the figures read them when present."""
    from workbench.review_pack import Records

    t = at("2026-11-02T14:03:00Z")
    inc = SimpleNamespace(id="I", title="t", severity="SEV2", status="resolved", services=("payments",), started=t,
                          detected=None, mitigated=None, resolved=t + timedelta(minutes=30), follow_up_of=None,
                          labels={})
    hyp = SimpleNamespace(id="h", incident_id="I", service="payments", cause="change", status="confirmed", rank=1,
                          score=1.0, confidence=0.83, reviewer="carol", updated=t)
    item = SimpleNamespace(id="A", incident_id="I", title="fix", owner="o", kind="prevent", status="done",
                           due=None, verification=None, applied_at=t + timedelta(days=1),
                           applied_change={"service": "payments", "version": "2.15.2", "commit": "abc", "x": 1})
    records = Records(incidents=[inc], hypotheses={"I": [hyp]}, confirmed={"I": [hyp]}, action_items=[item])
    period = Period.of("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", now=NOW)
    assert figures.fix_times(records, period.as_of) == {"A": t + timedelta(days=1)}  # no history needed
    [row] = figures.fixes_section(records, period)["rows"]
    assert row["applied_by"] == {"service": "payments", "version": "2.15.2", "commit": "abc"}
    assert row["applied_at"] == row["fixed_at"] == "2026-11-03T14:03:00Z"
    [confirmed] = figures.engine_section(records, period)["confirmed"]
    assert confirmed["confidence"] == 0.83 and confirmed["hit1"] is True
    assert figures.calibration(records, [inc])["cases"] == 1
