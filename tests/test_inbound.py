"""The receivers' core without HTTP: Alertmanager groups to incidents, change events and their
adapters, a change applying an action item's fix (and the recheck verifying it from then on), tokens,
limits and the job queue (once, retries, a killed worker, two workers on PostgreSQL).

tests/test_inbound_http.py drives the same code through the served app with real clients."""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from conftest import HOSTILE_STRINGS, REPO
import workbench
from workbench.cli import main
from workbench.inbound import alerts, changes, remediation
from workbench.inbound.jobs import Worker, run_analysis
from workbench.errors import ConflictError, StoreError
from workbench.inbound.limits import RateLimiter, RequestError, decode_body, from_store_error, parse_json
from workbench.inbound.service import Inbound
from workbench.inbound.settings import receiver_settings
from workbench.inbound.tokens import Authenticator, create_token
from workbench.loop.criteria import evaluate
from workbench.loop.rechecks import recheck
from workbench.store import KnowledgeBase

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = receiver_settings({}, environ={}, debounce="0s", job_backoff="1s", job_attempts=2)


def notification(status="firing", alerts_=None, key='{}:{alertname="HighErrorRate"}', truncated=0):
    return {"version": "4", "groupKey": key, "status": status, "receiver": "workbench", "truncatedAlerts": truncated,
            "groupLabels": {"alertname": "HighErrorRate"}, "externalURL": "http://127.0.0.1:9093",
            "alerts": alerts_ or [alert()]}


def alert(name="HighErrorRate", service="payments", severity="warning", start="2026-12-01T11:50:00Z",
          end="0001-01-01T00:00:00Z", status="firing", fingerprint="f1", summary="error rate 16% > 5%", **labels):
    return {"status": status, "labels": {"alertname": name, "service": service, "severity": severity, **labels},
            "annotations": {"summary": summary, "runbook_url": "https://runbooks.example.com/payments"},
            "startsAt": start, "endsAt": end, "generatorURL": "http://prom/graph", "fingerprint": fingerprint}


def receive(kb, payload, now=NOW, settings=SETTINGS):
    return alerts.apply(kb, alerts.parse(parse_json(json.dumps(payload).encode(), 32)), settings, now=now)


# --------------------------------------------------------------------------- Alertmanager

def test_an_alert_group_opens_updates_and_resolves_one_incident(workspace):
    kb = workspace.knowledge_base()
    opened = receive(kb, notification())
    assert opened.action == "opened"
    incident = kb.get_incident(opened.incident_id)
    assert (incident.title, incident.services, incident.severity, incident.status) == (
        "HighErrorRate: error rate 16% > 5%", ("payments",), "SEV3", "open")
    assert incident.started == incident.detected == datetime(2026, 12, 1, 11, 50, tzinfo=timezone.utc)
    assert [link["url"] for link in incident.links] == ["https://runbooks.example.com/payments"]

    # Re-sent with a second alert: same incident, service added, severity raised, detection earlier.
    more = notification(alerts_=[alert(), alert(service="checkout", severity="critical", fingerprint="f2",
                                                start="2026-12-01T11:45:00Z")])
    updated = receive(kb, more, now=NOW + timedelta(minutes=5))
    assert (updated.action, updated.incident_id) == ("updated", opened.incident_id)
    incident = kb.get_incident(opened.incident_id)
    assert (incident.services, incident.severity) == (("payments", "checkout"), "SEV1")
    assert incident.detected == datetime(2026, 12, 1, 11, 45, tzinfo=timezone.utc)
    # one analysis job, however often the group arrives (debounced)
    assert [j.kind for j in kb.list_jobs()] == ["analysis"]

    done = notification("resolved", [alert(status="resolved", end="2026-12-01T12:20:00Z"),
                                     alert(service="checkout", status="resolved", fingerprint="f2",
                                           start="2026-12-01T11:45:00Z", end="2026-12-01T12:25:00Z")])
    assert receive(kb, done, now=NOW + timedelta(minutes=30)).action == "resolved"
    incident = kb.get_incident(opened.incident_id)
    assert (incident.status, incident.resolved) == ("resolved", datetime(2026, 12, 1, 12, 25, tzinfo=timezone.utc))

    # Firing again within the merge window re-opens it; much later it is a new incident.
    again = receive(kb, notification(), now=NOW + timedelta(minutes=40))
    assert (again.action, again.incident_id) == ("updated", opened.incident_id)
    assert kb.get_incident(opened.incident_id).status == "open"
    receive(kb, done, now=NOW + timedelta(minutes=45))
    later = receive(kb, notification(alerts_=[alert(start="2026-12-01T16:00:00Z")]), now=NOW + timedelta(hours=5))
    assert later.action == "opened" and later.incident_id != opened.incident_id
    kb.close()


def test_alert_strings_are_stored_byte_identically_or_refused_naming_the_field(workspace):
    kb = workspace.knowledge_base()
    for i, text in enumerate(HOSTILE_STRINGS):
        service = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")  # names are one line
        receipt = receive(kb, notification(alerts_=[alert(name=text, service=service, summary="", fingerprint=f"h{i}")],
                                           key=f"group-{i}", truncated=2))
        incident = kb.get_incident(receipt.incident_id)
        assert (incident.title, incident.services) == (text, (service,))
        assert receipt.truncated == 2 and "left out 2 alert(s)" in receipt.warnings[0]
        events = alerts.events(alerts.parse(notification(alerts_=[alert(name=text)])), receipt.incident_id, SETTINGS)
        assert events["attributes"][0]["alertname"] == text
    with pytest.raises(RequestError) as err:
        parse_json(json.dumps(notification(alerts_=[alert(service="pay\x00ments")])).encode(), 32)
    assert err.value.status == 400 and err.value.field == "alerts[0].labels.service"
    # A service name with a line break is refused (the knowledge base's and the events' one-line rule
    # for names) before anything is written, naming the label.
    inbound = Inbound(workspace, settings=SETTINGS)
    try:
        before = len(kb.list_incidents())
        with pytest.raises(RequestError) as err:
            inbound.alertmanager(notification(alerts_=[alert(), alert(service="pay\nments", fingerprint="x")],
                                              key="one-line"))
        assert (err.value.status, err.value.field) == (400, "alerts[1].labels.service")
        assert len(kb.list_incidents()) == before
    finally:
        inbound.close()
    with pytest.raises(RequestError) as err:
        alerts.parse({**notification(), "version": "3"})
    assert err.value.field == "version"
    with pytest.raises(RequestError) as err:
        alerts.parse(notification(alerts_=[alert(start="yesterday")]))
    assert err.value.field == "alerts[0].startsAt"
    kb.close()


# --------------------------------------------------------------------------- change events

def test_change_events_the_documented_shape_and_the_github_and_argocd_adapters():
    change = changes.parse({"service": "payments", "version": "2.14.4", "previous_version": "2.15.0", "commit": "26934b4",
                            "author": "erin", "refs": ["PM-1242"], "timestamp": "2026-11-02T14:30:00Z"}, SETTINGS)
    assert (change.kind, change.environment, change.title) == ("deploy", "production",
                                                               "Deployed payments 2.14.4 (was 2.15.0)")
    event = change.event().iloc[0]
    assert event["attributes"]["actor"] == "erin" and event["attributes"]["refs"] == ["PM-1242"]
    with pytest.raises(RequestError) as err:
        changes.parse({"service": "payments", "verison": "1"}, SETTINGS)
    assert err.value.field == "verison" and "did you mean 'version'" in str(err.value)
    with pytest.raises(RequestError) as err:
        changes.parse({"service": "payments", "kind": "reboot"}, SETTINGS)
    assert err.value.field == "kind"
    with pytest.raises(RequestError) as err:  # found by schemathesis: was a server error in the store
        changes.parse({"service": "payments", "timestamp": "0401-12-29T12:24:36.93-11:15"}, SETTINGS)
    assert (err.value.status, err.value.field) == (400, "timestamp")

    github = {"action": "created",
              "deployment_status": {"state": "success", "environment": "production", "created_at": "2026-11-04T13:26:08Z",
                                    "log_url": "https://github.com/shop/payments/actions/runs/1"},
              "deployment": {"id": 7, "sha": "e58b081", "ref": "v2.14.5", "environment": "production",
                             "description": "Fix amount serialisation (PM-1242)", "creator": {"login": "farid"},
                             "payload": {}},
              "repository": {"name": "payments", "full_name": "shop/payments"}, "sender": {"login": "farid"}}
    change = changes.from_github(github, "deployment_status", SETTINGS)
    assert (change.service, change.version, change.commit, change.author, change.source) == (
        "payments", "v2.14.5", "e58b081", "farid", "github")
    assert "PM-1242" in remediation.references(change)
    pending = {**github, "deployment_status": {**github["deployment_status"], "state": "pending"}}
    assert changes.from_github(pending, "deployment_status", SETTINGS) is None

    argo = {"argocdUrl": "https://argocd.example.com", "app": {
        "metadata": {"name": "payments", "annotations": {"workbench.io/refs": "PM-1242, act-0123456789ab"}},
        "spec": {"destination": {"namespace": "production"}},
        "status": {"operationState": {"phase": "Succeeded", "finishedAt": "2026-11-04T13:27:00Z",
                                      "syncResult": {"revision": "e58b081"},
                                      "operation": {"initiatedBy": {"automated": True}}},
                   "history": [{"revision": "7f80e22"}, {"revision": "e58b081"}]}}}
    change = changes.from_argocd(argo, SETTINGS)
    assert (change.environment, change.previous_version, change.author, change.url) == (
        "production", "7f80e22", "automated", "https://argocd.example.com/applications/payments")
    assert change.refs == ["PM-1242", "act-0123456789ab"]
    failed = json.loads(json.dumps(argo))
    failed["app"]["status"]["operationState"]["phase"] = "Failed"
    assert changes.from_argocd(failed, SETTINGS) is None


def test_a_change_naming_an_action_item_applies_its_fix_and_the_recheck_verifies_from_then(sample_copy):
    """The sample's payments rollback of 2026-11-06 15:44 names the action item of the first payments
    incident by its ticket: the fix is applied then, and the next recheck evaluates the criterion from
    15:44 on. Before it, the same criterion over the same span is violated by the recurrence (15:21)."""
    ws = sample_copy("remediation")
    criterion = {"signal": "metric", "service": "payments", "metric": "error_rate", "aggregate": "max",
                 "comparator": "<", "threshold": 0.05, "duration": "7d", "window": "5min"}
    with ws.knowledge_base() as kb:
        item = kb.add_action_item("INC-20261102-001", title="Contract test for amount serialisation", owner="erin",
                                  kind="prevent", ticket="PM-1242", verification=criterion, who="test")
        other = kb.add_action_item("INC-20261102-001", title="Unrelated", owner="bob", kind="process", who="test")
    inbound = Inbound(ws, settings=SETTINGS)
    try:
        change = inbound.change({"service": "payments", "title": "Rolled back payments to v2.14.7 (pm-1242)",
                                 "version": "2.14.7", "previous_version": "2.15.1", "commit": "7f80e22",
                                 "author": "erin", "timestamp": "2026-11-06T15:44:00Z"}, "api")
        from workbench.inbound.tokens import Caller

        caller = Caller("tok-x", "deploy-bot", ("changes:write",))
        applied = inbound.apply_change(change, caller)
        assert [(a.action_item_id, a.status, a.changed) for a in applied] == [(item.id, "done", True)]
        assert inbound.apply_change(change, caller)[0].changed is False  # the same change twice: nothing new
    finally:
        inbound.close()
    applied_at = datetime(2026, 11, 6, 15, 44, tzinfo=timezone.utc)
    with ws.knowledge_base() as kb:
        stored = next(a for a in kb.list_action_items("INC-20261102-001") if a.id == item.id)
        assert (stored.applied_at, stored.status, stored.applied_change["commit"]) == (applied_at, "done", "7f80e22")
        rows = [h for h in kb.history(entity="action_item", entity_id=item.id) if h.field == "applied_change"]
        assert [(h.who, h.new["received_by"]) for h in rows] == [("erin", "token:deploy-bot")]
        assert next(a for a in kb.list_action_items("INC-20261102-001") if a.id == other.id).applied_at is None
        assert "PM-1242" in kb.export_incident("INC-20261102-001")

    report = recheck(ws, ["INC-20261102-001"], until="2026-11-06T17:00:00Z", window="1h", executor="serial")
    [check] = report.results[0].criteria
    assert check.verdict.since == pd.Timestamp(applied_at) and check.verdict.verdict != "violated"
    # Without the fix's time the criterion would have been judged from the incident's own end: violated.
    control = evaluate(criterion, ws.telemetry(), since="2026-11-02T15:10:00Z", until="2026-11-06T17:00:00Z")
    assert control.verdict == "violated"
    with ws.knowledge_base() as kb:
        stored = next(a for a in kb.list_action_items("INC-20261102-001") if a.id == item.id)
        text = remediation.fix_status(stored, kb.list_checks(action_item_id=item.id))
    assert text.startswith("fix applied at 2026-11-06T15:44:00Z (payments 2.14.7), criterion ")


# --------------------------------------------------------------------------- tokens and limits

def test_tokens_are_hashed_scoped_and_revocable(workspace):
    kb = workspace.knowledge_base()
    token, secret = create_token(kb, "alertmanager", ["alerts:write"], who="test")
    assert secret.startswith("wbt_") and secret not in (workspace.root / "workbench.sqlite").read_bytes().decode("latin-1")
    auth = Authenticator(kb)
    assert auth.authenticate(f"Bearer {secret}", "alerts:write").name == "alertmanager"
    import base64

    basic = base64.b64encode(f"github:{secret}".encode()).decode()
    assert auth.authenticate(f"Basic {basic}", "alerts:write").token_id == token.id
    for header, status in ((None, 401), ("Bearer wbt_wrong", 401), (f"Bearer {secret}x", 401)):
        with pytest.raises(RequestError) as err:
            auth.authenticate(header, "alerts:write")
        assert err.value.status == status
    with pytest.raises(RequestError) as err:
        auth.authenticate(f"Bearer {secret}", "api:write")
    assert err.value.status == 403 and "lacks the scope 'api:write'" in str(err.value)
    kb.revoke_token("alertmanager")
    auth.forget()
    with pytest.raises(RequestError) as err:
        auth.authenticate(f"Bearer {secret}", "alerts:write")
    assert err.value.status == 401
    assert main(["token", "list", "--revoked", "-w", str(workspace.root)]) == 0
    kb.close()


def test_bodies_are_bounded_in_size_compression_and_depth():
    data = json.dumps({"a": "x" * 1000}).encode()
    assert decode_body(gzip.compress(data), "gzip", 4096) == data
    assert decode_body(zlib.compress(data), "deflate", 4096) == data
    bomb = gzip.compress(b"0" * 10_000_000)  # 10 MB of zeros in ~10 kB
    with pytest.raises(RequestError) as err:
        decode_body(bomb, "gzip", 1 << 20)
    assert err.value.status == 413
    with pytest.raises(RequestError) as err:
        decode_body(b"not gzip", "gzip", 4096)
    assert err.value.status == 400
    with pytest.raises(RequestError) as err:
        decode_body(data, "br", 4096)
    assert err.value.status == 415
    with pytest.raises(RequestError) as err:
        parse_json(b"[" * 100_000 + b"]" * 100_000, 32)
    assert err.value.code == "too_deep"
    with pytest.raises(RequestError) as err:
        parse_json(json.dumps({"a": [[[[{"b": 1}]]]]}).encode(), 4)
    assert err.value.code == "too_deep"
    clock = iter([0.0, 0.0, 0.0, 1.1]).__next__
    limiter = RateLimiter(rate=1, burst=2, clock=clock)
    limiter.take("t")
    limiter.take("t")
    with pytest.raises(RequestError) as err:
        limiter.take("t")
    assert err.value.status == 429 and err.value.retry_after == 1
    limiter.take("t")  # a second later a token is back
    # What a knowledge-base error means for a sender: its fault (400, named) or retry later (503).
    assert from_store_error(StoreError("field 'title': expected non-empty text, got ' '")).field == "title"
    assert from_store_error(ConflictError("incident 'x' is at version 3, not 2")).status == 503
    assert from_store_error(StoreError("sqlite: database error: database is locked")).retry_after == 1


# --------------------------------------------------------------------------- the job queue

def _incident(kb, title="x"):
    return kb.create_incident(title=title, started="2026-12-01T10:00:00Z", services=["payments"], who="test")


def test_a_job_queued_twice_runs_once_and_a_failing_one_retries_then_shows_as_failed(workspace):
    kb = workspace.knowledge_base()
    incident = _incident(kb)
    runs = []
    kb.enqueue_job(incident.id, "analysis", reason="first", max_attempts=2)
    kb.enqueue_job(incident.id, "analysis", reason="again", max_attempts=2)
    handlers = {"analysis": lambda ws, job: runs.append(job.id) or {"ok": True},
                "notebook": lambda ws, job: (_ for _ in ()).throw(RuntimeError("kernel died"))}
    worker = Worker(workspace, handlers, settings=SETTINGS, poll=0.05)
    done = worker.run(once=True)
    assert len(runs) == 1 and [o.job.kind for o in done] == ["analysis", "notebook"]
    notebook = done[1].job
    assert (notebook.status, notebook.attempts, notebook.error) == ("queued", 1, "RuntimeError: kernel died")
    assert notebook.run_after > datetime.now(timezone.utc)  # backoff: not due at once
    time.sleep(1.1)
    [last] = worker.run(once=True)
    assert (last.job.status, last.job.attempts) == ("failed", 2)
    assert kb.list_jobs(status="failed")[0].id == notebook.id
    assert main(["jobs", "list", "--failed", "-w", str(workspace.root)]) == 0
    kb.retry_job(notebook.id)
    assert kb.get_job(notebook.id).status == "queued"
    worker.close()
    kb.close()


KILLED_WORKER = """
import sys, time
from workbench.inbound.jobs import Worker, run_analysis
from workbench.inbound.settings import receiver_settings
def slow(ws, job):
    print("started", flush=True)
    time.sleep(600)
Worker(sys.argv[1], {"analysis": slow}, settings=receiver_settings({}, environ={}, job_lease="10m")).run(max_jobs=1)
"""


def test_a_killed_workers_job_runs_again_when_a_worker_restarts(workspace):
    kb = workspace.knowledge_base()
    incident = _incident(kb)
    kb.enqueue_job(incident.id, "analysis", reason="test")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, str(workspace.root)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "started"
        assert kb.list_jobs()[0].status == "running"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    ran = []
    worker = Worker(workspace, {"analysis": lambda ws, job: ran.append(job.attempts) or {}}, settings=SETTINGS)
    worker.run(once=True)  # the lease (10 min) has not run out, but its process is gone
    assert ran == [2] and kb.list_jobs(kind="analysis")[0].status == "done"
    worker.close()
    kb.close()


@pytest.mark.postgres
def test_two_workers_on_postgresql_never_take_the_same_job():
    import pg

    with pg.running_server() as server, server.database() as url:
        kb = KnowledgeBase(url)
        ids = [_incident(kb, f"incident {i}").id for i in range(30)]
        for incident_id in ids:
            kb.enqueue_job(incident_id, "analysis", reason="test")
        taken: list[list[int]] = [[], [], []]

        def claim(slot: int) -> None:
            mine = KnowledgeBase(url)
            while True:
                job = mine.claim_job(f"w{slot}", lease=timedelta(minutes=5))
                if job is None:
                    break
                taken[slot].append(job.id)
                time.sleep(0.005)  # hold the claim a moment, as a real job would
                mine.finish_job(job.id, job.lease_token, result={})
            mine.close()

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        claimed = [j for slot in taken for j in slot]
        assert sorted(claimed) == sorted(j.id for j in kb.list_jobs()) and len(set(claimed)) == len(claimed) == 30
        assert sum(1 for slot in taken if slot) >= 2  # they really ran side by side

        # Two Alertmanager replicas sending the same group at once open ONE incident (advisory lock).
        barrier = threading.Barrier(2)
        receipts = []

        def replica() -> None:
            mine = KnowledgeBase(url)
            barrier.wait()
            receipts.append(receive(mine, notification(key="replicated")))
            mine.close()

        threads = [threading.Thread(target=replica) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(r.action for r in receipts) == ["opened", "updated"]
        assert len({r.incident_id for r in receipts}) == 1
        kb.close()


# --------------------------------------------------------------------------- OTLP partial success

def test_an_otlp_request_with_an_invalid_resource_block_stores_the_rest_and_says_what_was_rejected():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    from workbench.inbound import otlp

    def block(service, span_id, end=True):
        span = {"traceId": "0" * 31 + "1", "spanId": span_id, "name": "op", "startTimeUnixNano": "1767225600000000000"}
        if end:
            span["endTimeUnixNano"] = "1767225600100000000"
        return {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"spans": [span]}]}

    doc = {"resourceSpans": [block("good", "00000000000000a1"), block("bad", "00000000000000b2", end=False)]}
    batch = otlp.read("traces", doc, "test")
    assert (batch.items, batch.rejected, list(batch.tables["spans"]["service"])) == (2, 1, ["good"])
    assert "resourceSpans[1]" in batch.message and "missing endTimeUnixNano" in batch.message
    body, kind = otlp.response("traces", "protobuf", batch)
    answer = ExportTraceServiceResponse.FromString(body)
    assert kind == otlp.PROTOBUF and answer.partial_success.rejected_spans == 1
    assert json.loads(otlp.response("traces", "json", batch)[0])["partialSuccess"]["rejectedSpans"] == "1"
    with pytest.raises(RequestError) as err:  # nothing valid at all: 400 naming the column
        otlp.read("traces", {"resourceSpans": [block("bad", "00000000000000b2", end=False)]}, "test")
    assert err.value.status == 400 and "missing endTimeUnixNano" in str(err.value)
    for malformed in ({"resourceSpans": [1, 2]}, {"resourceSpans": [{"scopeSpans": "x"}]},
                      {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "9" * 30,
                                                                      "endTimeUnixNano": "2"}]}]}]}):
        with pytest.raises(RequestError) as err:  # answered 400, never a server error
            otlp.read("traces", malformed, "test")
        assert err.value.status == 400


def test_new_telemetry_in_an_open_incidents_window_queues_its_analysis_once(workspace):
    from workbench.inbound import otlp

    now = datetime.now(timezone.utc).replace(microsecond=0)
    with workspace.knowledge_base() as kb:
        live = kb.create_incident(title="Live", started=now - timedelta(minutes=10), services=["cart"], who="test")
        kb.create_incident(title="Elsewhere", started=now - timedelta(minutes=10), services=["search"],
                                   who="test")
        kb.create_incident(title="Old", started="2026-01-01T00:00:00Z", services=["cart"], who="test")
    inbound = Inbound(workspace, settings=receiver_settings({}, environ={}, debounce="1h"))
    try:
        nanos = str(int(now.timestamp() * 1e9))
        doc = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
                                 "scopeLogs": [{"logRecords": [{"timeUnixNano": nanos, "body": {"stringValue": "x"}}]}]}]}
        for _ in range(3):  # a burst of telemetry: one queued analysis, due after the debounce
            inbound.submit(otlp.read("logs", doc, "test").tables).result(30)
    finally:
        inbound.close()
    with workspace.knowledge_base() as kb:
        jobs = kb.list_jobs()
    # only the open incident of that service whose window holds the rows (not "other", not "old")
    assert [(j.incident_id, j.kind, j.reason) for j in jobs] == [(live.id, "analysis", "new telemetry")]
    assert jobs[0].run_after > datetime.now(timezone.utc) + timedelta(minutes=50)


def test_a_client_sending_one_request_at_a_time_never_finds_the_queue_full(workspace):
    """The writer frees a slot before it answers (schemathesis found a 503 for the next request)."""
    from workbench.inbound import otlp
    from workbench.inbound.queue import IngestQueue

    queue = IngestQueue(workspace.telemetry(), capacity=1)
    try:
        for i in range(30):
            doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
                {"timeUnixNano": str(1767225600_000000000 + i), "body": {"stringValue": f"line {i}"}}]}]}]}
            queue.submit(otlp.read("logs", doc, "test").tables).result(30)
    finally:
        queue.close()
    assert queue.refused == 0 and workspace.telemetry().counts()["logs"] == 30


@pytest.mark.prometheus
def test_the_analysis_job_fetches_the_window_from_the_live_sources_first(prometheus, workspace):
    """Like `workbench analyze`: an incident opened by an alert in a workspace pointed at Prometheus
    is analysed on the window pulled from it, without anyone fetching by hand."""
    with open(workspace.root / "workbench.toml", "a", encoding="utf-8") as f:
        f.write(f'\n[sources.shop]\nurl = "prometheus:{prometheus.url}"\nselectors = [\'{{service="payments"}}\']\n')
    ws = workbench.open_workspace(workspace.root)
    with ws.knowledge_base() as kb:
        incident = kb.create_incident(title="Payments errors", started="2026-11-02T14:03:00Z", services=["payments"],
                                      window_start="2026-11-02T13:00:00Z", window_end="2026-11-02T15:10:00Z",
                                      who="test")
        kb.enqueue_job(incident.id, "analysis", reason="test")
    worker = Worker(ws, {"analysis": run_analysis}, settings=SETTINGS)
    try:
        [outcome] = worker.run(once=True)
    finally:
        worker.close()
    assert outcome.ok, outcome.error
    assert any(line.startswith("shop: fetched") for line in outcome.job.result["fetched"])
    assert ws.telemetry().counts()["metrics"] > 0 and outcome.job.result["hypotheses"] > 0
