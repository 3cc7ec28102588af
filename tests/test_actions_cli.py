"""``workbench action add | list | update``: action items from the command line, with the version
check that keeps two people from overwriting each other."""
from __future__ import annotations

import json

import pytest

from workbench.cli import main

CRITERION = ('{"signal": "metric", "service": "checkout", "metric": "latency_p99_ms", "aggregate": "max", '
             '"comparator": "<", "threshold": 300, "duration": "7d"}')


@pytest.fixture
def ws(workspace):
    with workspace.knowledge_base() as kb:
        kb.create_incident(id="INC-1", title="Checkout slow", started="2026-11-02T14:00:00Z", services=["checkout"],
                           who="test")
    return workspace


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_update_with_a_criterion(ws, capsys):
    w = ["-w", str(ws.root)]
    code, out, _ = _run(capsys, "action", "add", "INC-1", "--title", "Add a p99 alert", "--owner", "alice",
                        "--kind", "detect", "--due", "2026-12-01", "--criterion", CRITERION, "--json", *w)
    assert code == 0
    item = json.loads(out)
    assert item["verification"]["threshold"] == 300 and item["version"] == 1
    code, out, _ = _run(capsys, "action", "list", "--incident", "INC-1", *w)
    assert code == 0 and item["id"] in out and "max latency_p99_ms of checkout < 300" in out
    code, out, _ = _run(capsys, "action", "update", item["id"], "--expect-version", "1", "--status", "done",
                        "--as", "bob", "--json", *w)
    assert code == 0 and json.loads(out)["status"] == "done" and json.loads(out)["version"] == 2
    with ws.knowledge_base() as kb:
        changes = [h for h in kb.history(entity="action_item", entity_id=item["id"]) if h.field == "status"]
    assert [(h.old, h.new, h.who) for h in changes] == [("open", "done", "bob")]


def test_a_ticket_key_is_set_on_add_and_update_and_listed(ws, capsys):
    """The tracker key a change event may name to mark the fix applied (issue 15)."""
    w = ["-w", str(ws.root)]
    code, out, _ = _run(capsys, "action", "add", "INC-1", "--title", "Fix retries", "--owner", "alice",
                        "--kind", "prevent", "--ticket", "PM-1242", "--json", *w)
    item = json.loads(out)
    assert code == 0 and item["ticket"] == "PM-1242"
    code, out, _ = _run(capsys, "action", "list", *w)
    assert "(PM-1242)" in out
    code, out, _ = _run(capsys, "action", "update", item["id"], "--ticket", "PM-1300", "--json", *w)
    assert code == 0 and json.loads(out)["ticket"] == "PM-1300"


def test_a_stale_version_is_refused_showing_what_is_there_now(ws, capsys):
    w = ["-w", str(ws.root)]
    _, out, _ = _run(capsys, "action", "add", "INC-1", "--title", "t", "--owner", "alice", "--kind", "prevent", *w)
    item_id = out.strip()
    assert _run(capsys, "action", "update", item_id, "--expect-version", "1", "--owner", "bob", *w)[0] == 0
    code, _, err = _run(capsys, "action", "update", item_id, "--expect-version", "1", "--owner", "carol", *w)
    assert code == 2 and "is at version 2, not 1" in err and "owner='bob'" in err and err.count("\n") == 1
    with ws.knowledge_base() as kb:
        assert kb.get_action_item(item_id).owner == "bob"


@pytest.mark.parametrize("args, message", [
    (["--criterion", '{"signal": "metric"}'], "--criterion"),
    (["--criterion", "not json"], "not JSON"),
    (["--kind", "fix"], "kind"),
    (["--due", "tomorrow"], "due"),
])
def test_bad_fields_are_refused_naming_them_and_nothing_is_added(ws, capsys, args, message):
    base = ["action", "add", "INC-1", "--title", "t", "--owner", "alice", "--kind", "prevent"]
    argv = base + args if "--kind" not in args else base[:-2] + args
    code, _, err = _run(capsys, *argv, "-w", str(ws.root))
    assert code == 2 and message in err
    with ws.knowledge_base() as kb:
        assert kb.list_action_items("INC-1") == []
