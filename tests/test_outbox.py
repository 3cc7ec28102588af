"""The notification outbox against a real HTTP receiver on 127.0.0.1: signatures, retries, dead
letters, re-sends and crashes at each step."""
from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench import config
from workbench.errors import ConfigError, ConflictError, NotFoundError, StoreError
from workbench.loop.notify import (Backoff, Webhook, attach, body_bytes, deliver, describe, list_outbox,
                                   load_webhooks, resend, targets_for, verify_signature)
from workbench.store import KnowledgeBase

SECRET = "s3cret-for-tests"
T0 = datetime(2026, 2, 20, 8, 0, tzinfo=timezone.utc)
FAST = Backoff(base=timedelta(seconds=10), factor=2.0, cap=timedelta(minutes=5))


class Receiver:
    """A webhook receiver on a free local port: records every request, answers from a plan."""

    def __init__(self):
        self.requests: list[dict] = []
        self.plan: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                              "body": body, "verified": verify_signature(SECRET, body, self.headers)})
                    plan = receiver.plan.get(self.path) or []
                    status = plan.pop(0) if plan else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(f"answer {status}".encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def ids(self, path: str | None = None) -> list[str]:
        return [r["headers"]["X-Workbench-Delivery"] for r in self.requests if path is None or r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'kb.sqlite'}"


@pytest.fixture
def kb(url):
    store = KnowledgeBase(url)
    yield store
    store.close()


def _incident(kb):
    return kb.create_incident(title="Checkout latency", started=T0, services=["checkout"], severity="SEV2",
                              links=[{"title": "runbook", "url": "https://runbooks.test/checkout"}], who="alice")


def _hook(receiver, name="ops", path="/hook", fmt="generic"):
    return Webhook(name=name, url=receiver.url(path), secret=SECRET, format=fmt, timeout=5)


def _recurrence(kb, inc, targets=("ops",)):
    """The state change and its notification in one transaction, as the recheck loop does it."""
    with kb.transaction():
        current = kb.get_incident(inc.id)
        kb.update_incident(inc.id, current.version, "recheck", status="recurred")
        return kb.enqueue_notification("recurrence", {
            "summary": "the signature of INC came back", "details": {"score": 0.93},
            "links": [{"title": "report", "url": "https://wb.test/r"}], "recipients": ["alice"],
        }, incident_id=inc.id, targets=list(targets))


def _later(seconds: float = 1) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


# ----------------------------------------------------------------------------- signatures and shapes

def test_signature_verifies_on_the_receiver_side(kb, receiver, tmp_path):
    inc = _incident(kb)
    [row] = _recurrence(kb, inc)
    report = deliver(kb, [_hook(receiver)], now=_later())
    assert (report.delivered, report.retried, report.dead) == (1, 0, 0)
    [req] = receiver.requests
    headers, body = req["headers"], req["body"]
    assert req["verified"]
    assert headers["X-Workbench-Delivery"] == row.delivery_id
    assert headers["X-Workbench-Event"] == "recurrence"
    assert headers["X-Workbench-Signature"].startswith("sha256=")
    assert verify_signature(SECRET, body, headers)
    assert not verify_signature("wrong secret", body, headers)
    assert not verify_signature(SECRET, body.replace(b"0.93", b"0.12"), headers)
    assert not verify_signature(SECRET, body, {**headers, "X-Workbench-Delivery": "another-id"})
    assert not verify_signature(SECRET, body, {**headers, "X-Workbench-Timestamp": str(int(time.time()) + 1)})
    assert not verify_signature(SECRET, body, headers, now=time.time() + 3600)  # a replay an hour later
    assert not verify_signature(SECRET, body, {k: v for k, v in headers.items() if k != "X-Workbench-Signature"})

    sent = json.loads(body)
    assert set(sent) == {"delivery_id", "kind", "created_at", "incident", "summary", "details", "links", "recipients"}
    assert sent["delivery_id"] == row.delivery_id and sent["kind"] == "recurrence"
    assert sent["incident"] == {"id": inc.id, "title": "Checkout latency", "severity": "SEV2",
                                "status": "recurred", "services": ["checkout"]}
    assert sent["details"] == {"score": 0.93} and sent["recipients"] == ["alice"]
    assert body == body_bytes(kb.get_notification(row.delivery_id))  # the stored row renders the same bytes

    done = kb.get_notification(row.delivery_id)
    assert done.status == "delivered" and done.attempts == 1 and done.delivered_at is not None
    raw = (tmp_path / "kb.sqlite").read_bytes()
    assert SECRET.encode() not in raw  # the secret never reaches the database


def test_ticket_format_is_signed_and_shaped_for_trackers(kb, receiver):
    inc = _incident(kb)
    _recurrence(kb, inc, targets=["tickets"])
    deliver(kb, [_hook(receiver, "tickets", "/tickets", fmt="ticket")], now=_later())
    [req] = receiver.requests
    assert req["verified"]
    ticket = json.loads(req["body"])
    assert set(ticket) == {"title", "body", "labels", "link"}
    assert ticket["title"].startswith(f"[workbench] recurrence: {inc.id}: ")
    assert "the signature of INC came back" in ticket["body"]
    assert req["headers"]["X-Workbench-Delivery"] in ticket["body"]
    assert ticket["labels"] == ["workbench", "recurrence", "sev2", "service:checkout"]
    assert ticket["link"] == "https://wb.test/r"


# ----------------------------------------------------------------------------- retries and dead letters

def test_retries_after_500s_with_backoff_then_delivered(kb, receiver):
    inc = _incident(kb)
    [row] = _recurrence(kb, inc)
    receiver.plan["/hook"] = [500, 500]
    hooks, t = [_hook(receiver)], _later()

    first = deliver(kb, hooks, now=t, backoff=FAST)
    assert (first.delivered, first.retried) == (0, 1)
    pending = kb.get_notification(row.delivery_id)
    assert pending.status == "pending" and pending.attempts == 1
    assert pending.next_attempt_at == t + timedelta(seconds=10) and "HTTP 500" in pending.last_error

    assert deliver(kb, hooks, now=t + timedelta(seconds=5), backoff=FAST).attempts == []  # not due yet
    second = deliver(kb, hooks, now=t + timedelta(seconds=10), backoff=FAST)
    assert second.retried == 1
    assert kb.get_notification(row.delivery_id).next_attempt_at == t + timedelta(seconds=30)  # 10 s, then 20 s
    third = deliver(kb, hooks, now=t + timedelta(seconds=30), backoff=FAST)
    assert third.delivered == 1
    assert receiver.ids() == [row.delivery_id] * 3
    assert all(r["verified"] for r in receiver.requests)
    assert kb.get_notification(row.delivery_id).status == "delivered"


def test_dead_letter_after_n_failures_stays_visible_and_resend_keeps_the_id(kb, receiver):
    inc = _incident(kb)
    [row] = _recurrence(kb, inc)
    receiver.plan["/hook"] = [503] * 3
    hooks, t = [_hook(receiver)], _later()
    for step in range(3):
        deliver(kb, hooks, now=t + timedelta(minutes=10 * step), max_attempts=3, backoff=FAST)
    dead = kb.get_notification(row.delivery_id)
    assert dead.status == "dead" and dead.attempts == 3 and "HTTP 503" in dead.last_error
    assert [n.delivery_id for n in list_outbox(kb, status="dead")] == [row.delivery_id]
    assert "dead" in describe(dead)
    assert deliver(kb, hooks, now=t + timedelta(days=1)).attempts == []  # dead letters are not retried

    with pytest.raises(NotFoundError):
        resend(kb, ["no-such-delivery"])
    [again] = resend(kb, [row.delivery_id], now=t + timedelta(hours=1))
    assert again.delivery_id == row.delivery_id and again.status == "pending" and again.attempts == 0
    report = deliver(kb, hooks, now=t + timedelta(hours=1))
    assert report.delivered == 1
    assert receiver.ids() == [row.delivery_id] * 4  # the same id throughout: receivers deduplicate
    assert list_outbox(kb, status="dead") == []
    with pytest.raises(ConflictError, match="already delivered"):
        resend(kb, [row.delivery_id])


def test_redirects_and_unreachable_hosts_are_failed_attempts(kb, receiver):
    inc = _incident(kb)
    _recurrence(kb, inc, targets=["moved", "down"])
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    hooks = [_hook(receiver, "moved", "/moved"), Webhook("down", f"http://127.0.0.1:{closed}/x", SECRET, timeout=2)]
    receiver.plan["/moved"] = [302]
    report = deliver(kb, hooks, now=_later())
    assert report.retried == 2 and report.delivered == 0
    errors = {n.target: n.last_error for n in kb.list_outbox()}
    assert "302" in errors["moved"] and "not followed" in errors["moved"]
    assert errors["down"].startswith(f"webhook down (http://127.0.0.1:{closed})")
    assert "/x" not in errors["down"] and "/moved" not in errors["moved"]  # paths may be credentials
    assert [r["path"] for r in receiver.requests] == ["/moved"]  # the redirect target was never called


# ----------------------------------------------------------------------------- crashes

def test_crash_between_commit_and_send_loses_nothing_and_sends_each_id_once(url, receiver):
    kb = KnowledgeBase(url)
    inc = _incident(kb)
    rows = _recurrence(kb, inc, targets=["a", "b"]) + _recurrence(kb, inc, targets=["a", "b"])
    assert len({r.delivery_id for r in rows}) == 4
    kb.close()
    del kb  # the "crash": every bit of process state is gone, only the committed database remains

    reopened = KnowledgeBase(url)
    hooks = [_hook(receiver, "a", "/a"), _hook(receiver, "b", "/b")]
    assert deliver(reopened, hooks, now=_later(), limit=1).delivered == 1
    report = deliver(reopened, hooks, now=_later())
    assert report.delivered == 3
    assert sorted(receiver.ids()) == sorted(r.delivery_id for r in rows)  # each id exactly once
    assert sorted(receiver.ids("/a")) == sorted(r.delivery_id for r in rows if r.target == "a")
    assert deliver(reopened, hooks, now=_later(3600)).attempts == []
    assert len(receiver.requests) == 4
    reopened.close()


CHILD = """
import os, sys
from datetime import datetime, timezone
from workbench.store import KnowledgeBase
kb = KnowledgeBase(sys.argv[1])
inc = kb.create_incident(title="t", started=datetime(2026, 2, 20, tzinfo=timezone.utc), services=["a"], who="x")
with kb.transaction():
    kb.update_incident(inc.id, 1, "recheck", status="recurred")
    rows = kb.enqueue_notification("recurrence", {"summary": "back"}, incident_id=inc.id, targets=["ops"])
print(rows[0].delivery_id, flush=True)
with kb.transaction():
    kb.update_incident(inc.id, 2, "recheck", status="closed")
    kb.enqueue_notification("follow_up_due", {"summary": "never committed"}, incident_id=inc.id, targets=["ops"])
    os._exit(137)  # killed inside the second transaction, after the first committed and before any send
"""


def test_a_killed_process_loses_no_committed_notification_and_leaks_no_uncommitted_one(url, receiver):
    done = subprocess.run([sys.executable, "-c", CHILD, url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 137, done.stderr
    committed = done.stdout.split()[0]
    with KnowledgeBase(url) as kb:
        [inc] = kb.list_incidents()
        assert inc.status == "recurred"  # the second change died with its notification
        assert [n.delivery_id for n in kb.list_outbox()] == [committed]
        assert deliver(kb, [_hook(receiver)], now=_later()).delivered == 1
    assert receiver.ids() == [committed]


def test_a_rolled_back_change_queues_nothing(kb):
    inc = _incident(kb)
    with pytest.raises(RuntimeError):
        with kb.transaction():
            kb.update_incident(inc.id, 1, "recheck", status="recurred")
            kb.enqueue_notification("recurrence", {"summary": "back"}, incident_id=inc.id, targets=["ops"])
            raise RuntimeError("crash before commit")
    assert kb.get_incident(inc.id).status == "open"
    assert kb.list_outbox() == []


class MarkCrashesOnce(KnowledgeBase):
    """A real knowledge base whose first ``mark_delivered`` fails, as if the process died there."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.crashed = False

    def mark_delivered(self, delivery_id, at=None):
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("crash after the 2xx, before marking")
        return super().mark_delivered(delivery_id, at)


def test_crash_after_send_before_mark_resends_the_same_delivery_id(url, receiver):
    kb = MarkCrashesOnce(url)
    inc = _incident(kb)
    [row] = _recurrence(kb, inc)
    hooks, t = [_hook(receiver)], _later()
    with pytest.raises(RuntimeError, match="before marking"):
        deliver(kb, hooks, now=t)
    kb.close()
    assert receiver.ids() == [row.delivery_id]

    reopened = KnowledgeBase(url)
    left = reopened.get_notification(row.delivery_id)
    assert left.status == "pending" and left.attempts == 1
    assert deliver(reopened, hooks, now=t).attempts == []  # still leased to the crashed run
    report = deliver(reopened, hooks, now=left.next_attempt_at)
    assert report.delivered == 1
    # The receiver sees the id twice: the documented at-least-once behaviour, deduplicable by id.
    assert receiver.ids() == [row.delivery_id, row.delivery_id]
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
    assert all(r["verified"] for r in receiver.requests)
    assert reopened.get_notification(row.delivery_id).status == "delivered"
    reopened.close()


# ----------------------------------------------------------------------------- enqueueing

def test_enqueue_targets_keys_and_payload_checks(kb, tmp_path):
    inc = _incident(kb)
    assert kb.enqueue_notification("recurrence", {"summary": "x"}, incident_id=inc.id) == []  # nobody to notify
    settings = _settings(tmp_path, """
        [webhooks.ops]
        url = "https://ops.test/hook"
        [webhooks.tickets]
        url = "https://tickets.test/hook"
        format = "ticket"
        kinds = ["escalation", "criterion_violated"]
    """)
    assert attach(kb, settings) == {"ops": None, "tickets": ("escalation", "criterion_violated")}
    assert targets_for(settings, "escalation") == ["ops", "tickets"]
    rows = kb.enqueue_notification("recurrence", {"summary": "x"}, incident_id=inc.id)
    assert [r.target for r in rows] == ["ops"]  # tickets does not take recurrences
    rows = kb.enqueue_notification("escalation", {"summary": "y"}, incident_id=inc.id, key="esc:1")
    assert [r.target for r in rows] == ["ops", "tickets"]
    assert kb.enqueue_notification("escalation", {"summary": "y"}, incident_id=inc.id, key="esc:1") == []
    assert len(kb.list_outbox(key="esc:1")) == 2

    with pytest.raises(StoreError, match="payload.summary"):
        kb.enqueue_notification("recurrence", {"details": {}}, targets=["ops"])
    with pytest.raises(StoreError, match="payload.secret"):
        kb.enqueue_notification("recurrence", {"summary": "x", "secret": "no"}, targets=["ops"])
    with pytest.raises(StoreError, match="'kind'.*recurrence"):
        kb.enqueue_notification("page", {"summary": "x"}, targets=["ops"])
    with pytest.raises(NotFoundError):
        kb.enqueue_notification("recurrence", {"summary": "x"}, incident_id="INC-missing", targets=["ops"])
    with pytest.raises(StoreError, match="payload.links"):
        kb.enqueue_notification("recurrence", {"summary": "x", "links": [{"title": "t", "url": "javascript:x"}]},
                                targets=["ops"])


def test_outbox_rows_survive_reopen_with_the_unique_delivery_id(url):
    with KnowledgeBase(url) as kb:
        rows = kb.enqueue_notification("follow_up_due", {"summary": "review"}, targets=["a", "b"])
    with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
        with pytest.raises(sqlite3.IntegrityError):
            con.execute("UPDATE outbox SET delivery_id = ? WHERE target = 'b'", (rows[0].delivery_id,))
    with KnowledgeBase(url) as kb:
        assert [r.delivery_id for r in kb.list_outbox(status="pending")] == [r.delivery_id for r in rows]


# ----------------------------------------------------------------------------- configuration

def _settings(tmp_path, text):
    path = tmp_path / "workbench.toml"
    path.write_text("[workbench]\n" + "\n".join(line.strip() for line in text.splitlines()) + "\n")
    return config.load_settings(path, environ={})


def test_webhooks_load_from_workbench_toml_with_secrets_from_the_environment(tmp_path):
    settings = _settings(tmp_path, """
        [webhooks.ops-eu]
        url = "https://hooks.test/a"
        [webhooks.tickets]
        url = "http://tracker.test/new"
        secret_env = "TRACKER_SECRET"
        format = "ticket"
        timeout = 3
    """)
    env = {"WORKBENCH_WEBHOOK_OPS_EU_SECRET": "first-secret", "TRACKER_SECRET": "two",
           "WORKBENCH_WEBHOOK_TICKETS_URL": "https://tracker.test/override"}
    ops, tickets = load_webhooks(settings, env)
    assert (ops.name, ops.url, ops.secret, ops.format, ops.kinds) == ("ops-eu", "https://hooks.test/a", "first-secret",
                                                                      "generic", None)
    assert (tickets.url, tickets.secret, tickets.format, tickets.timeout) == ("https://tracker.test/override", "two",
                                                                             "ticket", 3.0)
    assert "first-secret" not in repr(ops)
    assert load_webhooks(_settings(tmp_path, ""), {}) == []


@pytest.mark.parametrize("table, key, message", [
    ('url = "ftp://files.test/x"', "webhooks.ops.url", "http:// or https://"),
    ('url = "file:///etc/passwd"', "webhooks.ops.url", "http:// or https://"),
    ('url = "javascript:alert(1)"', "webhooks.ops.url", "http:// or https://"),
    ('url = "https://"', "webhooks.ops.url", "with a host"),
    ('secret_env = "X"', "webhooks.ops.url", "required"),
    ('url = "https://h.test"\nsecret = "plain"', "webhooks.ops.secret", "never read from workbench.toml"),
    ('url = "https://h.test"\nsecret_env = "UNSET_VAR"', "webhooks.ops.secret_env", "UNSET_VAR is not set"),
    ('url = "https://h.test"\nsecret_env = "not a name"', "webhooks.ops.secret_env", "environment variable"),
    ('url = "https://h.test"\nformat = "slack"', "webhooks.ops.format", "generic, ticket"),
    ('url = "https://h.test"\nformt = "ticket"', "webhooks.ops.formt", "did you mean 'format'"),
    ('url = "https://h.test"\nkinds = ["recurrence", "page"]', "webhooks.ops.kinds", "'page'"),
    ('url = "https://h.test"\ntimeout = 0', "webhooks.ops.timeout", "(0, 300]"),
])
def test_config_errors_name_the_key(tmp_path, table, key, message):
    settings = _settings(tmp_path, "[webhooks.ops]\n" + table)
    with pytest.raises(ConfigError) as err:
        load_webhooks(settings, {"WORKBENCH_WEBHOOK_OPS_SECRET": "x"})
    assert key in str(err.value) and message in str(err.value)


def test_missing_default_secret_names_the_variable_and_queueing_does_not_need_it(tmp_path):
    settings = _settings(tmp_path, '[webhooks.ops]\nurl = "https://h.test"')
    with pytest.raises(ConfigError, match="webhooks.ops.secret_env.*WORKBENCH_WEBHOOK_OPS_SECRET"):
        load_webhooks(settings, {})
    assert targets_for(settings, "recurrence", {}) == ["ops"]
    with pytest.raises(ConfigError, match="webhooks: expected tables"):
        load_webhooks({"webhooks": "https://h.test"}, {})
