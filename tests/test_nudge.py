"""Nudges for overdue action items on a real SQLite knowledge base: by owner, escalation, idempotence."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from workbench import config
from workbench.errors import ConfigError, StoreError
from workbench.loop.nudge import load_config, nudge, overdue
from workbench.store import KnowledgeBase

CONFIG = """
[nudge]
grace_days = 3

[roles]
alice = "checkout-lead"
erin = "payments-lead"

[approvers]
checkout-lead = "dave"
payments-lead = "erin"

[webhooks.chat]
url = "https://chat.test/hook"

[webhooks.tickets]
url = "https://tracker.test/hook"
format = "ticket"
kinds = ["escalation"]
"""


def _settings(tmp_path, text=CONFIG):
    path = tmp_path / "workbench.toml"
    path.write_text("[workbench]\n" + text)
    return config.load_settings(path, environ={})


@pytest.fixture
def kb(tmp_path):
    store = KnowledgeBase(f"sqlite:///{tmp_path / 'kb.sqlite'}")
    inc = store.create_incident(title="Checkout latency", started=datetime(2026, 2, 20, tzinfo=timezone.utc),
                                services=["checkout"], who="alice")
    add = lambda title, owner, due, status="open": store.add_action_item(  # noqa: E731
        inc.id, title=title, owner=owner, kind="prevent", due=due, status=status, id=title, who="alice")
    add("a-late-4-days", "alice", date(2026, 3, 1))
    add("b-late-1-day", "alice", date(2026, 3, 4), status="in_progress")
    add("c-done", "alice", date(2026, 2, 25), status="done")
    add("d-late-2-days", "bob", date(2026, 3, 3))
    add("e-no-due-date", "carol", None)
    add("f-due-later", "carol", date(2026, 4, 1))
    add("g-own-approver", "erin", date(2026, 2, 20))
    yield store
    store.close()


def test_overdue_items_by_owner(kb):
    got = overdue(kb, date(2026, 3, 5))
    assert list(got) == ["alice", "bob", "erin"]
    assert [i.id for i in got["alice"]] == ["a-late-4-days", "b-late-1-day"]
    assert [i.id for i in got["bob"]] == ["d-late-2-days"]
    # An aware time counts by its UTC day; due today is not overdue yet.
    assert [i.id for i in overdue(kb, "2026-03-04T23:30:00-02:00")["alice"]] == ["a-late-4-days", "b-late-1-day"]
    assert "alice" not in overdue(kb, date(2026, 3, 1))
    with pytest.raises(StoreError, match="as_of"):
        overdue(kb, datetime(2026, 3, 5))  # naive


def test_nudges_owners_and_escalates_after_the_grace_period(kb, tmp_path):
    report = nudge(kb, _settings(tmp_path), date(2026, 3, 5))
    assert report.overdue == {"alice": ["a-late-4-days", "b-late-1-day"], "bob": ["d-late-2-days"],
                              "erin": ["g-own-approver"]}
    decided = {(n.kind, n.action_item_id): n for n in report.nudges}
    assert decided[("action_item_overdue", "a-late-4-days")].status == "queued"
    esc = decided[("escalation", "a-late-4-days")]
    assert (esc.status, esc.recipient, esc.days_overdue) == ("queued", "dave", 4)
    assert ("escalation", "b-late-1-day") not in decided  # 1 day late: within the grace period
    assert ("escalation", "d-late-2-days") not in decided
    own = decided[("escalation", "g-own-approver")]
    assert own.status == "not_escalated" and "approves their own role" in own.reason

    rows = kb.list_outbox()
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row.kind, []).append(row)
    assert sorted((r.payload["recipients"][0], r.target) for r in by_kind["action_item_overdue"]) == [
        ("alice", "chat"), ("alice", "chat"), ("bob", "chat"), ("erin", "chat")]
    assert sorted(r.target for r in by_kind["escalation"]) == ["chat", "tickets"]  # tickets takes escalations only
    escalation = by_kind["escalation"][0]
    assert escalation.payload["recipients"] == ["dave"]
    assert escalation.payload["details"]["owner_role"] == "checkout-lead"
    assert escalation.payload["details"]["action_item"]["owner"] == "alice"
    assert escalation.payload["incident"]["title"] == "Checkout latency"
    assert "2 escalation(s) queued" not in report.summary() and "1 escalation(s) queued" in report.summary()


def test_nudging_is_idempotent_per_day(kb, tmp_path):
    settings = _settings(tmp_path)
    first = nudge(kb, settings, date(2026, 3, 5))
    count = len(kb.list_outbox())
    again = nudge(kb, settings, datetime(2026, 3, 5, 18, 0, tzinfo=timezone.utc))
    assert len(kb.list_outbox()) == count
    assert {n.status for n in again.nudges} == {"already_queued", "not_escalated"}
    assert again.count("action_item_overdue", "already_queued") == first.count("action_item_overdue")

    next_day = nudge(kb, settings, date(2026, 3, 6))
    assert next_day.count("action_item_overdue") == 4 and next_day.count("escalation") == 1
    assert len(kb.list_outbox()) == count + 4 + 2
    keys = [r.dedup_key for r in kb.list_outbox()]
    assert len(set(zip(keys, [r.target for r in kb.list_outbox()]))) == len(keys)

    later = nudge(kb, settings, date(2026, 3, 8))  # bob's item is 5 days late now, but bob has no role
    bob = [n for n in later.nudges if n.kind == "escalation" and n.owner == "bob"]
    assert bob[0].status == "not_escalated" and "owner 'bob' has no role" in bob[0].reason


def test_without_webhooks_nothing_is_queued_and_the_report_says_so(kb, tmp_path):
    report = nudge(kb, _settings(tmp_path, "[nudge]\ngrace_days = 0\n"), date(2026, 3, 5))
    assert kb.list_outbox() == []
    assert {n.status for n in report.nudges} == {"no_target", "not_escalated"}
    assert "without a webhook" in report.summary()


@pytest.mark.parametrize("text, key", [
    ("[nudge]\ngrace_days = -1\n", "nudge.grace_days"),
    ("[nudge]\ngrace_days = \"3\"\n", "nudge.grace_days"),
    ("[nudge]\ngrace = 3\n", "nudge.grace"),
    ("[roles]\nalice = 3\n", "roles.alice"),
    ("[approvers]\ncheckout-lead = \"\"\n", "approvers.checkout-lead"),
    ("roles = \"alice\"\n[nudge]\n", "roles"),
])
def test_config_errors_name_the_key(tmp_path, text, key):
    path = tmp_path / "workbench.toml"
    path.write_text(text)
    settings = config.load_settings(path, environ={})
    with pytest.raises(ConfigError, match=key):
        load_config(settings)


def test_grace_defaults_to_three_days(tmp_path):
    assert load_config(_settings(tmp_path, "")).grace_days == 3


def test_a_follow_up_review_left_open_reminds_the_people_of_the_original(tmp_path):
    opened = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    settings = _settings(tmp_path, CONFIG.replace("grace_days = 3", "grace_days = 3\nfollow_up_days = 2"))
    with KnowledgeBase(f"sqlite:///{tmp_path / 'kb.sqlite'}", clock=lambda: opened) as store:
        original = store.create_incident(title="Payments failing", started=datetime(2026, 2, 20, tzinfo=timezone.utc),
                                         services=["payments"], status="recurred", who="alice")
        store.add_action_item(original.id, title="Contract test", owner="erin", kind="prevent", status="done",
                              who="alice")
        store.add_signoff(original.id, name="dave", role="approver", who="dave")
        review = store.create_incident(title=f"Recurrence of {original.id}", started=opened, services=["payments"],
                                       follow_up_of=original.id, who="recheck")
        finished = store.create_incident(title="A reviewed follow-up", started=opened, services=["payments"],
                                         follow_up_of=original.id, status="closed", who="recheck")
        store.create_incident(title="Not a follow-up", started=opened, services=["payments"], who="alice")
        assert nudge(store, settings, date(2026, 3, 3)).count("follow_up_due") == 0  # 2 days: not due yet
        report = nudge(store, settings, date(2026, 3, 4))
        (due,) = [n for n in report.nudges if n.kind == "follow_up_due"]
        assert (due.incident_id, due.status, due.recipient, due.days_overdue) == (review.id, "queued", "dave, erin", 1)
        assert finished.id not in {n.incident_id for n in report.nudges}
        assert "1 follow-up review reminder(s)" in report.summary()
        rows = store.list_outbox(kind="follow_up_due")
        assert [r.target for r in rows] == ["chat"]  # the tickets webhook only takes escalations
        assert rows[0].payload["recipients"] == ["dave", "erin"]
        assert rows[0].payload["details"]["original"]["id"] == original.id
        assert nudge(store, settings, date(2026, 3, 4)).count("follow_up_due", "already_queued") == 1
        store.update_incident(review.id, review.version, "carol", status="closed")
        assert nudge(store, settings, date(2026, 3, 5)).count("follow_up_due") == 0
