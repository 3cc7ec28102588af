"""Reviewing hypotheses without JupyterLab: `workbench review` and workbench.postmortem.review.decide."""
from __future__ import annotations

import json

import pytest

import workbench
from workbench.cli import main
from workbench.errors import NotFoundError, StoreError
from workbench.postmortem.review import ReviewError, decide, parse_pair
from workbench.store import KnowledgeBase


@pytest.fixture
def kb(tmp_path):
    with KnowledgeBase(tmp_path / "kb.sqlite") as store:
        inc = store.create_incident(id="INC-20261102-001", title="Payments failing", started="2026-11-02T14:03:00Z",
                                    services=["payments", "checkout"], who="t")
        store.add_hypothesis(inc.id, service="payments", cause="change", summary="deploy", score=0.9, rank=1, who="t")
        store.add_hypothesis(inc.id, service="checkout", cause="dependency", summary="callee", score=0.3, rank=2,
                             who="t")
        yield store


def test_confirm_and_reject_by_service_and_cause_with_history(kb):
    confirmed = decide(kb, "INC-20261102-001", "payments", "change", "confirmed", reviewer="carol",
                       rationale="the rollback fixed it")
    assert (confirmed.status, confirmed.reviewer, confirmed.rank) == ("confirmed", "carol", 1)
    rejected = decide(kb, "INC-20261102-001", "checkout", "dependency", "rejected", reviewer="carol",
                      rationale="a symptom of payments")
    assert rejected.status == "rejected"
    assert {e.field for e in kb.history("hypothesis", confirmed.id)} >= {"status", "reviewer", "rationale"}
    assert kb.confirmed_hypotheses()["INC-20261102-001"] == [confirmed]


def test_an_unproposed_cause_is_refused_unless_added(kb):
    with pytest.raises(NotFoundError, match=r"no hypothesis payments/resource .*did you mean payments/change.*--add"):
        decide(kb, "INC-20261102-001", "payments", "resource", "confirmed", reviewer="carol", rationale="pool")
    added = decide(kb, "INC-20261102-001", "payments", "resource", "confirmed", reviewer="carol", rationale="pool",
                   add=True)
    assert added.rank is None and added.status == "confirmed"  # the ledger counts it as not ranked
    with pytest.raises(StoreError, match="rationale"):
        decide(kb, "INC-20261102-001", "payments", "change", "confirmed", reviewer="carol", rationale="")
    with pytest.raises(ReviewError, match="confirmed, rejected"):
        decide(kb, "INC-20261102-001", "payments", "change", "maybe", reviewer="carol", rationale="x")


@pytest.mark.parametrize("text", ["payments", "/change", "payments/", ""])
def test_a_pair_needs_service_and_cause(text):
    with pytest.raises(ReviewError, match="SERVICE/CAUSE"):
        parse_pair(text)


def test_the_cli_confirms_and_reports(tmp_path, capsys):

    ws = workbench.init(tmp_path / "ws")
    with ws.knowledge_base() as store:
        inc = store.create_incident(title="Orders slow", started="2026-11-03T10:42:00Z", services=["orders"], who="t")
        store.add_hypothesis(inc.id, service="orders", cause="change", summary="config", score=0.8, rank=1, who="t")
    argv = ["review", inc.id, "--confirm", "orders/change", "--as", "dave", "--why", "reverting fixed it",
            "-w", str(ws.root), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["reviewer"], out["rationale"]) == ("confirmed", "dave", "reverting fixed it")
    assert main(["review", inc.id, "--as", "dave", "--why", "x", "-w", str(ws.root)]) == 2
    assert "exactly one of --confirm" in capsys.readouterr().err
    assert main(["review", inc.id, "--reject", "orders/chnage", "--as", "dave", "--why", "x", "-w", str(ws.root)]) == 2
    assert "did you mean orders/change" in capsys.readouterr().err


def test_another_reviewers_decision_is_never_overwritten_silently(kb):
    from workbench.errors import ConflictError

    first = decide(kb, "INC-20261102-001", "payments", "change", "confirmed", reviewer="carol", rationale="rollback")
    with pytest.raises(ConflictError, match=r"already confirmed by carol \(version 2.*--expect-version 2"):
        decide(kb, "INC-20261102-001", "payments", "change", "rejected", reviewer="dave", rationale="no")
    assert kb.list_hypotheses("INC-20261102-001")[0].status == "confirmed"
    # the same reviewer re-confirming only updates the rationale; naming the version changes the decision
    again = decide(kb, "INC-20261102-001", "payments", "change", "confirmed", reviewer="carol", rationale="rollback, checked")
    with pytest.raises(ConflictError, match="is at version 3, not 2"):  # a stale version read
        decide(kb, "INC-20261102-001", "payments", "change", "rejected", reviewer="dave", rationale="no", version=2)
    changed = decide(kb, "INC-20261102-001", "payments", "change", "rejected", reviewer="dave", rationale="no",
                     version=again.version)
    assert (first.version, again.version, changed.status, changed.reviewer) == (2, 3, "rejected", "dave")


def test_two_reviews_at_the_same_time_one_wins_the_other_is_refused(tmp_path):
    import subprocess
    import sys

    ws = workbench.init(tmp_path / "ws")
    with ws.knowledge_base() as kb:
        kb.create_incident(id="INC-1", title="t", started="2026-11-02T14:03:00Z", services=["payments"], who="t")
        kb.add_hypothesis("INC-1", service="payments", cause="change", summary="deploy", score=0.9, rank=1, who="t")
    argv = [sys.executable, "-m", "workbench.cli", "review", "INC-1", "-w", str(ws.root)]
    procs = [subprocess.Popen([*argv, "--confirm", "payments/change", "--as", "carol", "--why", "rollback"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
             subprocess.Popen([*argv, "--reject", "payments/change", "--as", "dave", "--why", "not it"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "nothing was written" in loser
    with ws.knowledge_base() as kb:
        (h,) = kb.list_hypotheses("INC-1")
        winner = "carol" if results[0][0] == 0 else "dave"
        assert h.reviewer == winner and h.version == 2
