"""The loop end to end, as it runs in production: the demo workspace, a reviewer's confirmations, an
hourly ``workbench recheck --all`` replayed over the sample's recurrence day (each run sees what
cron would have seen at that hour), ``workbench outbox deliver`` to a real local receiver, and the
accuracy ledger.

This is issue 6's "done means": a scheduled ``workbench recheck --all`` on the demo workspace flags
the recurrence, records every check, delivers a signed webhook to a local receiver, and the
accuracy ledger shows the sample's confirmed incidents. Ground truth from data/sample/labels.yaml
(only tests read it).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import SAMPLE
from test_outbox import SECRET, Receiver
import workbench
from workbench import config
from workbench.cli import main
from workbench.telemetry.windows import analysis_window

ORIGINAL = "INC-20261102-001"
#: cron's ``7 * * * *`` on the recurrence's day: before it (14:07, 15:07), during and after it.
SCHEDULE = [pd.Timestamp(f"2026-11-06T{h:02d}:07:00Z") for h in range(14, 21)]
#: The run made by a real cron-style process (the others run in-process to keep the test fast).
CRON_RUN = SCHEDULE[2]


def _cli(*args: str) -> str:
    """``workbench ARGS`` in this process; its stdout (fails with its stderr on a non-zero exit)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    assert rc == 0, err.getvalue()
    return out.getvalue()


def _confirm_as_reviewer(ws: Path, incident_id: str, truth: dict) -> None:
    """What a reviewer without JupyterLab does: export the document (for review in git), mark the
    engine's hypothesis naming the true cause confirmed, import it back (the store checks the version)."""
    path = Path(_cli("incident", "export", incident_id, "--out", str(ws.parent / "postmortems"), "-w", str(ws)).strip())
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    chosen = next(h for h in doc["hypotheses"]
                  if (h["service"], h["cause"]) == (truth["root_cause_service"], truth["cause"]))
    chosen.update(status="confirmed", reviewer="carol", rationale="the timeline and the rollback agree")
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    _cli("incident", "import", str(path), "-w", str(ws))


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory, receiver):
    """The demo workspace after the review and the hourly reruns; the outbox delivered once."""
    labels = {i["id"]: i for i in yaml.safe_load((SAMPLE / "labels.yaml").read_text(encoding="utf-8"))["incidents"]}
    ws = tmp_path_factory.mktemp("schedule") / "demo-workspace"
    _cli("demo", "--quick", "--workspace", str(ws), "--sample", str(SAMPLE))
    with open(ws / config.CONFIG_FILE, "a", encoding="utf-8") as fh:
        fh.write(f'\n[webhooks.ops]\nurl = "{receiver.url("/hook")}"\nkinds = ["recurrence"]\n')
    _cli("analyze", "--all", "-w", str(ws))
    for incident_id, truth in labels.items():
        _confirm_as_reviewer(ws, incident_id, truth)
    # A fix of the orders incident (done) with a criterion the following days must hold.
    with workbench.open_workspace(ws).knowledge_base() as kb:
        kb.add_action_item("INC-20261103-001", title="Pool size changes need review", owner="dave", kind="prevent",
                           status="done", who="carol",
                           verification={"signal": "metric", "service": "orders", "metric": "db_pool_usage",
                                         "aggregate": "max", "comparator": "<", "threshold": 0.95,
                                         "duration": "1d", "window": "5min"})
    runs = {}
    for until in SCHEDULE:
        if until == CRON_RUN:
            runs[until] = _cron(ws, until)
        else:
            runs[until] = json.loads(_cli("recheck", "--all", "--until", until.isoformat(), "--executor", "serial",
                                          "--json", "-w", str(ws)))
    env = {**os.environ, "WORKBENCH_WEBHOOK_OPS_SECRET": SECRET}
    delivered = subprocess.run([*_workbench(), "outbox", "deliver", "-w", str(ws), "--json"], env=env,
                               capture_output=True, text=True, timeout=120)
    assert delivered.returncode == 0, delivered.stderr
    return ws, labels, runs, json.loads(delivered.stdout)


def _workbench() -> list[str]:
    script = Path(sys.executable).with_name("workbench")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "workbench.cli"]


def _cron(ws: Path, until: pd.Timestamp) -> dict:
    """The crontab line of workbench/loop.py's docstring: WORKBENCH_HOME, the default local process
    pool, JSON on stdout; ``--until`` stands for the clock of that hour."""
    env = {**os.environ, "WORKBENCH_HOME": str(ws)}
    env.pop("WORKBENCH_WEBHOOK_OPS_SECRET", None)  # the recheck only queues: it needs no secret
    done = subprocess.run([*_workbench(), "recheck", "--all", "--json", "--until", until.isoformat()], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _own_end(ws: Path, incident_id: str) -> pd.Timestamp:
    with workbench.open_workspace(ws).knowledge_base() as kb:
        return analysis_window(kb.get_incident(incident_id))[1]


def _results(run: dict) -> dict[str, dict]:
    return {r["incident_id"]: r for r in run["results"]}


def test_every_scheduled_run_checks_every_watched_incident_and_records_it(scheduled):
    ws, labels, runs, _ = scheduled
    with workbench.open_workspace(ws).knowledge_base() as kb:
        for incident_id in labels:
            checks = [c for c in kb.list_checks(incident_id) if c.action_item_id is None]
            # a run whose window would end inside the incident's own window checks nothing for it
            due = [u for u in SCHEDULE if u > _own_end(ws, incident_id)]
            assert sorted(pd.Timestamp(c.window_end) for c in checks) == due, incident_id
            for c in checks:
                start = max(pd.Timestamp(c.window_end) - pd.Timedelta(hours=6), _own_end(ws, incident_id))
                assert pd.Timestamp(c.window_start) == start and c.verdict in ("clear", "recurred")
                assert c.evidence[0]["kind"] == "recurrence" and c.evidence[0]["threshold"] == 0.65
    for until, run in runs.items():
        assert run["until"] == until.strftime("%Y-%m-%dT%H:%M:%SZ") and run["until_source"] == "given"
        assert all(r["error"] is None for r in run["results"]), until
        assert set(_results(run)) >= set(labels), until  # --all: the four resolved incidents are watched
    assert runs[CRON_RUN]["executor"] == "local"  # the cron process used the default process pool


def test_the_recurrence_is_flagged_from_the_first_run_that_sees_it_and_opens_one_follow_up(scheduled):
    ws, labels, runs, _ = scheduled
    onset = pd.Timestamp(labels["INC-20261106-001"]["onset"])
    verdicts = {until: _results(run)[ORIGINAL]["verdict"] for until, run in runs.items()}
    assert all(v == "clear" for u, v in verdicts.items() if u <= onset)
    flagged = [u for u, v in verdicts.items() if v == "recurred"]
    assert flagged and flagged[0] == min(u for u in SCHEDULE if u > onset)  # the next hourly run after the onset
    assert all(u in flagged for u in SCHEDULE if u > flagged[0])  # and every run while it is in the window
    with workbench.open_workspace(ws).knowledge_base() as kb:
        assert kb.get_incident(ORIGINAL).status == "recurred"
        follow_ups = kb.list_incidents(follow_up_of=ORIGINAL)
    assert [f.id for f in follow_ups] == [f"{ORIGINAL}-R1"]  # one episode, one review, however many runs saw it
    assert pd.Timestamp(follow_ups[0].started) >= onset - pd.Timedelta(minutes=5)


@pytest.mark.parametrize("incident_id", ["INC-20261103-001", "INC-20261105-001", "INC-20261106-001"])
def test_other_incidents_stay_clear_in_every_run(scheduled, incident_id):
    ws, _, runs, _ = scheduled
    seen = [_results(run)[incident_id] for run in runs.values()]
    assert all(r["verdict"] in ("clear", None) for r in seen)
    with workbench.open_workspace(ws).knowledge_base() as kb:
        assert kb.get_incident(incident_id).status == "resolved"
        assert kb.list_incidents(follow_up_of=incident_id) == []


def test_the_done_fix_is_verified_by_every_run(scheduled):
    ws, _, runs, _ = scheduled
    with workbench.open_workspace(ws).knowledge_base() as kb:
        checks = [c for c in kb.list_checks("INC-20261103-001") if c.action_item_id is not None]
    assert len(checks) == len(SCHEDULE) and {c.verdict for c in checks} == {"holds"}


def test_the_signed_recurrence_webhook_reaches_the_receiver_once(scheduled, receiver):
    _, _, _, delivered = scheduled
    assert receiver.requests, "nothing was delivered"
    assert all(r["verified"] for r in receiver.requests)  # HMAC-SHA256 over timestamp.delivery_id.body
    ids = receiver.ids("/hook")
    assert len(ids) == len(set(ids)) == 1
    body = json.loads(receiver.requests[0]["body"])
    assert body["kind"] == "recurrence" and body["incident"]["id"] == ORIGINAL
    assert body["incident"]["status"] == "recurred" and body["details"]["follow_up_id"] == f"{ORIGINAL}-R1"
    assert body["delivery_id"] == ids[0] and delivered["delivered"] == 1


def test_the_accuracy_ledger_shows_the_confirmed_sample_incidents(scheduled):
    ws, labels, _, _ = scheduled
    ledger = json.loads(_cli("metrics", "--accuracy", "--json", "-w", str(ws)))
    ranked = {e["incident_id"]: e for e in ledger["entries"] if e["rank"] is not None}
    assert set(ranked) == set(labels)
    for incident_id, truth in labels.items():
        entry = ranked[incident_id]
        assert (entry["service"], entry["cause"]) == (truth["root_cause_service"], truth["cause"])
        assert entry["rank"] == 1
    assert ledger["overall"]["ac1"] == 1.0 and ledger["overall"]["n_ranked"] == 4
