"""The receivers and REST API served beside the app, driven by real clients: a real Alertmanager
(Debian's prometheus-alertmanager) with a bearer token, the OpenTelemetry Python SDK's OTLP/HTTP
exporters, GitHub-style signed change webhooks, and schemathesis over the OpenAPI document with
the hostile-strings corpus. One served app for the module."""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

pytest.importorskip("panel")
pytest.importorskip("opentelemetry.proto")

from conftest import HOSTILE_STRINGS  # noqa: E402
from conftest import free_port  # noqa: E402
import workbench  # noqa: E402
from workbench.inbound.limits import RateLimiter  # noqa: E402
from workbench.inbound.service import Inbound  # noqa: E402
from workbench.inbound.settings import receiver_settings  # noqa: E402
from workbench.inbound.tokens import create_token  # noqa: E402
from workbench.reports.app import serve  # noqa: E402

SECRET = "webhook-signing-secret"
SCOPES = {"alerts": ["alerts:write"], "telemetry": ["telemetry:write"], "changes": ["changes:write"],
          "read": ["api:read"], "write": ["api:read", "api:write"],
          "all": ["alerts:write", "telemetry:write", "changes:write", "api:read", "api:write"]}


class Site:
    """The served app of one workspace: its URL, tokens by role, the Inbound behind it."""

    def __init__(self, ws, inbound, port, tokens):
        self.ws, self.inbound, self.port, self.tokens = ws, inbound, port, tokens
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method, path, body=None, token="write", headers=None, raw=None):
        """(status, headers, parsed JSON or bytes) of one request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        head = dict(headers or {})
        if token is not None:
            head.setdefault("Authorization", f"Bearer {self.tokens.get(token, token)}")
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is not None:
            head.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=head)
            resp = conn.getresponse()
            payload = resp.read()
            kind = resp.getheader("Content-Type") or ""
            return resp.status, dict(resp.getheaders()), json.loads(payload) if "json" in kind and payload else payload
        finally:
            conn.close()

    def kb(self):
        return self.ws.knowledge_base()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    ws = workbench.init(tmp_path_factory.mktemp("inbound") / "ws")
    tokens = {}
    with ws.knowledge_base() as kb:
        for role, scopes in SCOPES.items():
            tokens[role] = create_token(kb, f"test-{role}", scopes, who="test")[1]
    settings = receiver_settings({}, environ={}, queue=1, max_body="1MiB", max_depth=16, debounce="0s",
                                 rate=1000, burst=1000)
    inbound = Inbound(ws, settings=settings, secret=SECRET)
    port = free_port()
    server = serve(ws, port=port, threaded=True, inbound=inbound)
    here = Site(ws, inbound, port, tokens)
    for _ in range(200):
        try:
            if here.request("GET", "/api/v1/openapi.json", token=None)[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    yield here
    server.stop()
    inbound.close()


# --------------------------------------------------------------------------- Alertmanager

def running_alertmanager(config: str):
    """tests/prom.py's Alertmanager with ``config`` (skipped without the binary)."""
    from prom import Unavailable, start_alertmanager

    try:
        return start_alertmanager(config)
    except Unavailable as exc:
        pytest.skip(f"Alertmanager tests skipped: {exc}")


def post_alerts(url: str, alerts: list[dict]) -> None:
    req = urllib.request.Request(f"{url}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def failed_notifications(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("alertmanager_notifications_failed_total") and 'integration="webhook"' in line)


def wait_for(check, timeout=30.0, every=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    return check()


@pytest.mark.prometheus
def test_a_real_alertmanager_opens_and_resolves_an_incident_and_a_wrong_token_creates_nothing(site):
    hook = f"{site.url}/api/v1/alerts/alertmanager"
    config = f"""
route:
  receiver: workbench
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: wrong-token
      matchers: ['route="wrong"']
receivers:
  - name: workbench
    webhook_configs:
      - url: {hook}
        send_resolved: true
        http_config: {{authorization: {{type: Bearer, credentials: {site.tokens['alerts']}}}}}
  - name: wrong-token
    webhook_configs:
      - url: {hook}
        http_config: {{authorization: {{type: Bearer, credentials: wbt_not-a-token}}}}
"""
    server = running_alertmanager(config)
    am = server.url
    try:
        start = (datetime.now(timezone.utc) - timedelta(minutes=3)).replace(microsecond=0)
        alert = {"labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"},
                 "annotations": {"summary": "error rate 12% > 5%", "runbook_url": "https://runbooks.example.com/c"},
                 "startsAt": start.isoformat().replace("+00:00", "Z"), "generatorURL": "http://prometheus/graph"}
        post_alerts(am, [alert])

        def opened():
            with site.kb() as kb:
                return [i for i in kb.list_incidents() if i.title.startswith("CheckoutErrors")]
        [incident] = wait_for(opened)
        assert (incident.services, incident.severity, incident.status, incident.detected) == (
            ("checkout",), "SEV1", "open", start)
        with site.kb() as kb:
            assert [j.kind for j in kb.list_jobs(incident_id=incident.id)] == ["analysis"]
        # the webhook answers once the alert events are stored too
        window = (start - timedelta(hours=1), start + timedelta(hours=1))
        assert wait_for(lambda: len(site.ws.telemetry().query("events", *window)) > 0)
        events = site.ws.telemetry().query("events", *window)
        assert list(events["kind"]) == ["alert"] and json.loads(events["attributes"].iloc[0])["incident_id"] == incident.id

        ended = datetime.now(timezone.utc).replace(microsecond=0)
        post_alerts(am, [{**alert, "endsAt": ended.isoformat().replace("+00:00", "Z")}])

        def resolved():
            with site.kb() as kb:
                current = kb.get_incident(incident.id)
            return current if current.status == "resolved" else None
        current = wait_for(resolved)
        assert current is not None and current.resolved == ended

        before = failed_notifications(am)
        post_alerts(am, [{**alert, "labels": {**alert["labels"], "alertname": "WrongToken", "route": "wrong"}}])
        assert wait_for(lambda: failed_notifications(am) > before), server.log()
        with site.kb() as kb:
            assert not [i for i in kb.list_incidents() if i.title.startswith("WrongToken")]
    finally:
        server.stop()


# --------------------------------------------------------------------------- OpenTelemetry SDK

def _exporters(site, compression=None):
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    headers = {"Authorization": f"Bearer {site.tokens['telemetry']}"}
    return (OTLPSpanExporter(endpoint=f"{site.url}/v1/traces", headers=headers, compression=compression),
            OTLPLogExporter(endpoint=f"{site.url}/v1/logs", headers=headers),
            OTLPMetricExporter(endpoint=f"{site.url}/v1/metrics", headers=headers, compression=compression))


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
def test_the_otel_sdk_sends_spans_logs_and_metrics_that_arrive_as_sent(site):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    resource = Resource.create({"service.name": "otel-shop", "deployment.environment": "production"})
    spans, logs, metrics = _exporters(site, compression=Compression.Gzip)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = tracer_provider.get_tracer("test")
    sent = {}
    with tracer.start_as_current_span("checkout") as parent:
        parent.set_attribute("note", HOSTILE_STRINGS[3])
        for i in range(3):
            with tracer.start_as_current_span(f"charge {i}") as child:
                if i == 2:
                    child.set_status(Status(StatusCode.ERROR, "card declined"))
                sent[format(child.get_span_context().span_id, "016x")] = (
                    format(child.get_span_context().trace_id, "032x"), format(parent.get_span_context().span_id, "016x"))
        sent[format(parent.get_span_context().span_id, "016x")] = (format(parent.get_span_context().trace_id, "032x"), "")
    trace_id = format(parent.get_span_context().trace_id, "032x")

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger = logging.getLogger("wb-otel-test")
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
    logger.setLevel(logging.INFO)
    for text in HOSTILE_STRINGS:
        logger.warning(text)

    reader = PeriodicExportingMetricReader(metrics, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    counter = meter_provider.get_meter("test").create_counter("orders_total", unit="1")
    counter.add(7, {"route": "/checkout"})
    meter_provider.force_flush()
    for provider in (tracer_provider, logger_provider, meter_provider):
        provider.shutdown()

    now = pd.Timestamp.now(tz="UTC")
    store = site.ws.telemetry()
    stored = store.query("spans", now - pd.Timedelta("1h"), now + pd.Timedelta("1h"), services=["otel-shop"])
    assert {r.span_id: (r.trace_id, r.parent_span_id) for r in stored.itertuples()} == sent
    assert sorted(stored["status"]) == ["error", "ok", "ok", "ok"]
    assert next(a["note"] for a in map(json.loads, stored["attributes"]) if "note" in a) == HOSTILE_STRINGS[3]
    assert set(stored["trace_id"]) == {trace_id}
    got = store.query("logs", now - pd.Timedelta("1h"), now + pd.Timedelta("1h"), services=["otel-shop"])
    assert sorted(got["body"]) == sorted(HOSTILE_STRINGS) and set(got["severity"]) == {"WARN"}
    values = store.query("metrics", now - pd.Timedelta("1h"), now + pd.Timedelta("1h"), services=["otel-shop"])
    assert set(values.loc[values["name"] == "orders_total", "value"]) == {7.0}


def test_a_full_ingest_queue_answers_503_and_the_sdks_retry_lands_the_data_once(site):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    spans, _, _ = _exporters(site)
    provider = TracerProvider(resource=Resource.create({"service.name": "queue-test"}))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    body = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "queue-test"}}]},
                              "scopeLogs": [{"logRecords": [{"timeUnixNano": str(time.time_ns()), "severityText": "INFO",
                                                             "body": {"stringValue": "first in the queue"}}]}]}]}
    refused = site.inbound.queue.refused
    answers = {}
    with site.inbound.queue.hold():  # the store accepts nothing for a moment
        first = threading.Thread(target=lambda: answers.setdefault(
            "json", site.request("POST", "/v1/logs", body, token="telemetry")[0]))
        first.start()
        assert wait_for(lambda: site.inbound.queue.pending == 1, 10)  # the one slot is taken

        def export():
            with tracer.start_as_current_span("retried"):
                pass
        second = threading.Thread(target=export)
        t0 = time.monotonic()
        second.start()
        assert wait_for(lambda: site.inbound.queue.refused > refused, 10)  # 503 + Retry-After for the SDK
        direct = site.request("POST", "/v1/logs", body, token="telemetry")
        assert direct[0] == 503 and direct[1]["Retry-After"] == "1"
    first.join(30)
    second.join(30)
    provider.shutdown()
    assert answers["json"] == 200 and time.monotonic() - t0 >= 0.9  # the SDK waited Retry-After, then landed
    now = pd.Timestamp.now(tz="UTC")
    stored = site.ws.telemetry().query("spans", now - pd.Timedelta("1h"), now + pd.Timedelta("1h"),
                                       services=["queue-test"])
    assert list(stored["name"]) == ["retried"]  # exactly once


# --------------------------------------------------------------------------- change webhooks

def test_change_webhooks_need_a_token_and_a_valid_signature_and_apply_fixes(site):
    with site.kb() as kb:
        incident = kb.create_incident(title="Payments broke", started="2026-11-02T14:03:00Z", services=["payments"],
                                      status="resolved", resolved="2026-11-02T14:55:00Z", who="test")
        item = kb.add_action_item(incident.id, title="Contract test", owner="erin", kind="prevent", ticket="PM-1242",
                                  who="test")
    github = {"deployment_status": {"state": "success", "environment": "production",
                                    "created_at": "2026-11-04T13:26:08Z"},
              "deployment": {"id": 9, "sha": "e58b081", "ref": "v2.14.5", "description": "Fix serialisation PM-1242",
                             "creator": {"login": "farid"}, "payload": {}},
              "repository": {"name": "payments", "full_name": "shop/payments"}}
    raw = json.dumps(github).encode()
    signed = {"X-GitHub-Event": "deployment_status",
              "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()}
    status, _, answer = site.request("POST", "/api/v1/changes/github", raw=raw, token="changes", headers=signed)
    assert status == 200 and answer["recorded"] and answer["applied"][0]["action_item_id"] == item.id
    assert site.request("POST", "/api/v1/changes/github", raw=raw, token=None, headers=signed)[0] == 401
    bad = {**signed, "X-Hub-Signature-256": "sha256=" + "0" * 64}
    status, _, answer = site.request("POST", "/api/v1/changes/github", raw=raw, token="changes", headers=bad)
    assert status == 401 and answer["error"]["field"] == "X-Hub-Signature-256"
    assert site.request("POST", "/api/v1/changes/github", raw=raw, token="alerts", headers=signed)[0] == 403
    events = site.ws.telemetry().query("events", "2026-11-04T00:00:00Z", "2026-11-05T00:00:00Z")
    assert len(events) == 1 and json.loads(events["attributes"].iloc[0])["actor"] == "farid"
    with site.kb() as kb:
        stored = kb.list_action_items(incident.id)[0]
    assert (stored.status, stored.applied_at) == ("done", datetime(2026, 11, 4, 13, 26, 8, tzinfo=timezone.utc))


# --------------------------------------------------------------------------- the app's job column

def test_the_app_shows_each_incidents_job_state_with_the_error(site):
    from workbench.reports.app import app
    from workbench.reports.app_views import incident_frame

    with site.kb() as kb:
        quiet = kb.create_incident(title="No jobs", started="2026-08-01T10:00:00Z", services=["a"], who="test")
        busy = kb.create_incident(title="Busy", started="2026-08-02T10:00:00Z", services=["a"], who="test")
        broken = kb.create_incident(title="Broken", started="2026-08-03T10:00:00Z", services=["a"], who="test")
        kb.enqueue_job(broken.id, "analysis", reason="test", max_attempts=1)
        kb.enqueue_job(busy.id, "analysis", reason="test", delay=timedelta(hours=1))
        job = kb.claim_job("w", lease=timedelta(minutes=1))
        while job.incident_id != broken.id:  # jobs the module's earlier tests queued come first
            kb.finish_job(job.id, job.lease_token, result={})
            job = kb.claim_job("w", lease=timedelta(minutes=1))
        kb.finish_job(job.id, job.lease_token, error=f"NotebookExecutionError: {HOSTILE_STRINGS[3]}")
        frame = incident_frame([quiet, busy, broken], kb.latest_jobs())
    jobs = frame.set_index("id")["jobs"]
    assert jobs[quiet.id] == "" and jobs[broken.id] == f"failed (analysis): NotebookExecutionError: {HOSTILE_STRINGS[3]}"
    assert jobs[busy.id] == "queued (analysis)"
    table = app(site.ws).objects[1][0].objects[2]  # the incident list's Tabulator
    assert "jobs" in table.value.columns and table.formatters["jobs"] == {"type": "textarea"}  # escaped text


def test_the_report_shows_when_a_fix_was_applied_and_since_when_its_criterion_holds(site):
    from workbench.inbound import changes, remediation
    from workbench.reports.views import ActionItemsView

    criterion = {"signal": "metric", "service": "cart", "metric": "error_rate", "aggregate": "max",
                 "comparator": "<", "threshold": 0.05, "duration": "1d", "window": "5min"}
    with site.kb() as kb:
        incident = kb.create_incident(title="Cart errors", started="2026-07-01T10:00:00Z", services=["cart"],
                                      status="resolved", resolved="2026-07-01T11:00:00Z", who="test")
        item = kb.add_action_item(incident.id, title="Retry budget", owner="sre", kind="prevent", ticket="OPS-77",
                                  verification=criterion, who="test")
        change = changes.parse({"service": "cart", "version": HOSTILE_STRINGS[3], "refs": ["OPS-77"],
                                "timestamp": "2026-07-02T09:00:00Z"}, site.inbound.settings)
        remediation.apply_change(kb, change, who="token:deploys")
        kb.record_check(incident.id, window_start="2026-07-02T09:00:00Z", window_end="2026-07-02T12:00:00Z",
                        verdict="holds", action_item_id=item.id, at="2026-07-02T12:00:00Z")
        kb.record_check(incident.id, window_start="2026-07-02T12:00:00Z", window_end="2026-07-02T15:00:00Z",
                        verdict="holds", action_item_id=item.id, at="2026-07-02T15:00:00Z")
        items, checks = kb.list_action_items(incident.id), kb.list_checks(incident.id)
    cell = str(ActionItemsView(items, checks).rows()[0][-1])
    assert 'data-testid="fix-status"' in cell and "criterion holding since 2026-07-02T09:00:00Z" in cell
    assert "fix applied at 2026-07-02T09:00:00Z (cart &lt;script&gt;" in cell and "<script>" not in cell


# --------------------------------------------------------------------------- REST API

def test_the_rest_api_names_versions_pages_and_refuses_what_it_must(site):
    created = []
    for i in range(3):
        status, _, body = site.request("POST", "/api/v1/incidents", {
            "title": f"API incident {i}", "started": f"2026-10-0{i + 1}T10:00:00Z", "services": ["api-cart"]})
        assert status == 201 and body["version"] == 1
        created.append(body["id"])
    status, _, page = site.request("GET", "/api/v1/incidents?service=api-cart&limit=2", token="read")
    assert status == 200 and [i["id"] for i in page["items"]] == created[:0:-1] and page["next_offset"] == 2
    status, _, rest = site.request("GET", "/api/v1/incidents?service=api-cart&limit=2&offset=2", token="read")
    assert [i["id"] for i in rest["items"]] == [created[0]] and rest["next_offset"] is None

    with site.kb() as kb:
        hyp = kb.add_hypothesis(created[0], service="api-cart", cause="change", summary="deploy", score=0.9, rank=1,
                                who="engine")
        item = kb.add_action_item(created[0], title="Canary", owner="sre", kind="prevent", who="test")
        kb.update_hypothesis(hyp.id, 1, who="someone", summary="a newer summary")
    review = {"service": "api-cart", "cause": "change", "decision": "confirmed", "reviewer": "carol",
              "rationale": "rollback fixed it", "version": 1}
    status, _, body = site.request("POST", f"/api/v1/incidents/{created[0]}/review", review)
    assert status == 409 and body["error"]["field"] == "version" and body["error"]["current"]["version"] == 2
    status, _, body = site.request("POST", f"/api/v1/incidents/{created[0]}/review", {**review, "version": 2})
    assert status == 200 and (body["status"], body["reviewer"]) == ("confirmed", "carol")
    status, _, body = site.request("PATCH", f"/api/v1/action-items/{item.id}", {"status": "done", "version": 7})
    assert status == 409 and body["error"]["current"]["status"] == "open"
    status, _, body = site.request("PATCH", f"/api/v1/action-items/{item.id}", {"status": "done", "version": 1})
    assert status == 200 and body["status"] == "done"
    status, _, detail = site.request("GET", f"/api/v1/incidents/{created[0]}", token="read")
    assert detail["hypotheses"][0]["status"] == "confirmed" and detail["action_items"][0]["status"] == "done"

    # No write without a token (on loopback too), scopes enforced, one error shape.
    writes = [("POST", "/api/v1/incidents"), ("POST", f"/api/v1/incidents/{created[0]}/review"),
              ("PATCH", f"/api/v1/action-items/{item.id}"), ("POST", "/api/v1/alerts/alertmanager"),
              ("POST", "/api/v1/changes"), ("POST", "/v1/traces")]
    for method, path in writes:
        status, _, body = site.request(method, path, {"x": 1}, token=None)
        assert status == 401, (method, path)
    status, _, body = site.request("POST", "/api/v1/incidents", {"title": "x"}, token="read")
    assert status == 403 and set(body["error"]) == {"code", "message", "field"}
    status, _, body = site.request("POST", "/api/v1/incidents", {"title": "x", "started": "2026-10-01T10:00:00Z",
                                                                 "services": [], "links": [{"title": "t", "url": "javascript:alert(1)"}]})
    assert status == 400 and body["error"]["field"] == "links[0].url"
    # Refused from the headers, before the body is read: the client sees the 413 at once.
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as conn:
        conn.sendall((f"POST /api/v1/incidents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {site.tokens['write']}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {1024 * 1024 + 10}\r\n\r\n").encode())
        head = ""
        while '"too_large"' not in head and (chunk := conn.recv(65536)):
            head += chunk.decode("latin-1")
    assert head.startswith("HTTP/1.1 413") and '"too_large"' in head
    status, _, body = site.request("POST", "/api/v1/incidents", raw=b"[" * 50 + b"]" * 50)
    assert status == 400 and body["error"]["code"] == "too_deep"
    status, _, body = site.request("POST", "/api/v1/incidents", raw=b"{}", headers={"Content-Type": "text/plain"})
    assert status == 415
    limiter, site.inbound.limiter = site.inbound.limiter, RateLimiter(rate=0.01, burst=1)
    try:
        assert site.request("GET", "/api/v1/jobs", token="read")[0] == 200
        status, headers, body = site.request("GET", "/api/v1/jobs", token="read")
        assert status == 429 and int(headers["Retry-After"]) >= 1 and body["error"]["code"] == "rate_limited"
    finally:
        site.inbound.limiter = limiter


def test_the_openapi_document_matches_the_implementation_with_the_hostile_corpus(site):
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                     status_code_conformance)

    schema = schemathesis.openapi.from_url(f"{site.url}/api/v1/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    auth = {"Authorization": f"Bearer {site.tokens['write']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    secret, site.inbound.secret = site.inbound.secret, None  # unsigned change webhooks for this test
    try:
        _fuzz(site, schema, operations, checks)
        _hostile(site, schema, auth, checks)
    finally:
        site.inbound.secret = secret


def _fuzz(site, schema, operations, checks):
    from hypothesis import HealthCheck, given, settings

    headers = {"Authorization": f"Bearer {site.tokens['all']}"}
    for op in operations:

        @settings(max_examples=6, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def conforms(case):
            case.call_and_validate(base_url=site.url, headers=headers, checks=checks)

        conforms()


def _hostile(site, schema, auth, checks):
    create = schema["/api/v1/incidents"]["POST"]
    change = schema["/api/v1/changes"]["POST"]
    changes_auth = {"Authorization": f"Bearer {site.tokens['changes']}"}
    for i, text in enumerate(HOSTILE_STRINGS):
        name = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")  # names are one line
        case = create.Case(body={"title": text, "started": "2026-09-01T10:00:00Z", "services": [name],
                                 "environment": name, "labels": {"symptom": text}})
        response = case.call_and_validate(base_url=site.url, headers=auth, checks=checks)
        assert response.status_code == 201
        status, _, back = site.request("GET", f"/api/v1/incidents/{response.json()['id']}", token="read")
        assert (back["title"], back["services"], back["environment"], back["labels"]["symptom"]) == (
            text, [name], name, text)
        if name != text:  # a line break in a name: 400 naming the field, nothing created
            case = create.Case(body={"title": "t", "started": "2026-09-01T10:00:00Z", "services": [text]})
            refused = case.call_and_validate(base_url=site.url, headers=auth, checks=checks)
            assert refused.status_code == 400 and "services[0]" in refused.text
        case = change.Case(body={"service": f"svc{i}", "title": text, "author": text, "refs": [text],
                                 "timestamp": "2026-09-02T10:00:00Z"})
        assert case.call_and_validate(base_url=site.url, headers=changes_auth, checks=checks).status_code == 200
    events = site.ws.telemetry().query("events", "2026-09-02T00:00:00Z", "2026-09-03T00:00:00Z")
    assert sorted(events["summary"]) == sorted(HOSTILE_STRINGS)
    assert sorted(json.loads(a)["actor"] for a in events["attributes"]) == sorted(HOSTILE_STRINGS)
