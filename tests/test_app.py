"""The served app without a browser: its tables from core records, escaping, filters, and the
``workbench serve`` refusals (tests/test_app_browser.py drives it in Chromium)."""
from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import sys
from datetime import date
from html.parser import HTMLParser

import pandas as pd
import pytest

pn = pytest.importorskip("panel")

from conftest import HOSTILE_STRINGS, free_port, self_signed_certificate as _self_signed  # noqa: E402
from test_reports import (HOSTILE_INCIDENT, HOSTILE_SERVICES, HOSTILE_SHOWN, HOSTILE_TITLE,  # noqa: E402
                          add_hostile_incident)
import workbench
from workbench.errors import NotFoundError  # noqa: E402
from workbench.reports.app import TABS, WorkbenchApp, app, serve  # noqa: E402
from workbench.reports.app_views import (ANY, ActionItemsOverview, MetricsOverview, filter_options, incident_frame,
                                         open_items_frame, overdue_frame, owner_frame, seconds_text)

TODAY = date(2026, 11, 27)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """The hostile incident and three plain ones: one without a resolved time, two labelled."""

    ws = workbench.init(tmp_path_factory.mktemp("app") / "ws")
    add_hostile_incident(ws)
    with ws.knowledge_base() as kb:
        kb.create_incident(id="INC-A", title="Checkout errors", started="2026-10-01T10:00:00Z",
                           detected="2026-10-01T10:05:00Z", resolved="2026-10-01T11:00:00Z", services=["checkout"],
                           severity="SEV2", status="closed", labels={"symptom": "errors", "service": "checkout"},
                           who="test")
        kb.create_incident(id="INC-B", title="Payments slow", started="2026-10-05T10:00:00Z", services=["payments"],
                           severity="SEV3", labels={"symptom": "latency"}, who="test")
        kb.create_incident(id="INC-C", title="Checkout slow", started="2026-10-09T10:00:00Z",
                           detected="2026-10-09T10:10:00Z", services=["checkout", "payments"], severity="SEV3",
                           labels={"symptom": "latency"}, who="test")
        kb.add_action_item("INC-A", title="Add a canary", owner="sre", kind="prevent", due="2026-11-01", who="test")
        kb.add_action_item("INC-A", title="Write the runbook", owner="alice", kind="process", due="2026-11-20",
                           status="in_progress", who="test")
        kb.add_action_item("INC-B", title="Done already", owner="alice", kind="detect", due="2026-10-10",
                           status="done", who="test")
        kb.add_action_item("INC-C", title="Due today", owner="bob", kind="detect", due=TODAY, who="test")
        kb.add_action_item("INC-C", title="No due date", owner="bob", kind="mitigate", who="test")
    return ws


@pytest.fixture(scope="module")
def records(ws):
    with ws.knowledge_base() as kb:
        return kb.list_incidents(), kb.list_action_items()


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def rendered(view) -> _Dom:
    """Tags and text of every HTML pane of a view, as a browser would parse them."""
    dom = _Dom()
    for pane in pn.panel(view).select(pn.pane.HTML):
        dom.feed(pane.object)
    dom.close()
    return dom


# --------------------------------------------------------------------------- frames

def test_incident_frame_lists_newest_first_with_unknown_durations(records):
    incidents, _ = records
    frame = incident_frame(incidents)
    assert list(frame["id"]) == [HOSTILE_INCIDENT, "INC-C", "INC-B", "INC-A"]
    row = frame.set_index("id").loc["INC-C"]
    assert row["services"] == "checkout, payments" and row["started"] == "2026-10-09 10:00"
    assert row["time to detect"] == "10 min" and row["time to resolve"] == "unknown"  # never 0
    assert frame.set_index("id").loc["INC-A", "labels"] == "errors · checkout"
    assert frame.set_index("id").loc[HOSTILE_INCIDENT, "title"] == HOSTILE_TITLE
    assert seconds_text(None) == "unknown" and seconds_text(3900) == "1 h 5 min"


def test_filter_options_come_from_the_incidents(records):
    incidents, _ = records
    options = filter_options(incidents)
    assert all(list(o.items())[0] == (ANY, "") for o in options.values())
    assert list(options["severity"].values())[1:] == ["SEV1", "SEV2", "SEV3"]
    assert set(options["service"].values()) == {"", "checkout", "payments", *HOSTILE_SERVICES}
    assert options["label"]["symptom: latency"] == ("symptom", "latency")
    assert ("service", HOSTILE_STRINGS[3]) in options["label"].values()
    assert not any(k == "confidence" for k, *_ in [v for v in options["label"].values() if v])


def test_overdue_items_by_owner_and_open_items(records):
    _, items = records
    overdue = overdue_frame(items, TODAY)
    assert list(overdue.columns) == ["owner", "incident", "title", "due", "days overdue", "kind", "status"]
    by_title = overdue.set_index("title")
    assert by_title.loc["Add a canary", "days overdue"] == 26
    assert by_title.loc["Write the runbook", "days overdue"] == 7
    assert "Due today" not in by_title.index and "Done already" not in by_title.index  # due today is not late
    assert list(overdue["owner"]) == sorted(overdue["owner"])
    owners = owner_frame(overdue).set_index("owner")
    assert owners.loc["sre", "overdue items"] == 1 and owners.loc[HOSTILE_STRINGS[4], "most days overdue"] == 330
    open_items = open_items_frame(items, TODAY)
    assert list(open_items["title"])[-1] == "No due date"
    assert "Done already" not in set(open_items["title"])
    assert len(open_items) == len(overdue) + 2


# --------------------------------------------------------------------------- views

def test_action_items_view_escapes_and_counts(ws):
    with ws.knowledge_base() as kb:
        view = ActionItemsOverview.from_knowledge_base(kb, today=TODAY)
    dom = rendered(view)
    assert not {t for t, _ in dom.tags} & {"script", "img", "iframe"}
    assert not [a for _, attrs in dom.tags for a in attrs if a.startswith("on")]
    text = "".join(dom.text)
    assert HOSTILE_SHOWN["action item"] in text and HOSTILE_STRINGS[4] in text
    assert "3 overdue action item(s) of 5 open ones, as of 2026-11-27" in text


def test_metrics_view_shows_known_and_unknown_counts_and_the_ledger(ws):
    with ws.knowledge_base() as kb:
        view = MetricsOverview.from_knowledge_base(kb, as_of="2026-11-27T00:00:00Z")
    dom = rendered(view)
    assert not {t for t, _ in dom.tags} & {"script", "img", "iframe"}
    assert not [a for _, attrs in dom.tags for a in attrs if a.startswith("on")]
    text = "".join(dom.text)
    for service in HOSTILE_SERVICES:
        assert service in text
    assert HOSTILE_TITLE in text
    # MTTR: known for INC-A and the hostile incident, unknown for INC-B and INC-C
    durations = pd.DataFrame([(m, d.n_known, d.n_unknown) for m, d in view.summary.durations.items()],
                             columns=["m", "known", "unknown"]).set_index("m")
    assert tuple(durations.loc["mttr"]) == (2, 2)
    assert "time to resolve (MTTR)" in text and "unknown" in text
    assert view.ledger.overall.n_incidents == 1  # the hostile incident's confirmed cause


# --------------------------------------------------------------------------- the app

def test_filters_narrow_the_list_through_the_knowledge_base(ws, records):
    incidents, _ = records
    session = WorkbenchApp(ws, incidents)
    assert len(session.table.value) == 4 and session.tabs.active == TABS.index("Incidents")
    session.filters["service"].value = "payments"
    assert sorted(session.table.value["id"]) == ["INC-B", "INC-C"]
    session.filters["label"].value = ("symptom", "latency")
    session.filters["severity"].value = "SEV3"
    assert sorted(session.table.value["id"]) == ["INC-B", "INC-C"]
    session.filters["status"].value = "closed"
    assert session.table.value.empty
    assert 'incident-count">0</b> of 4 incidents' in session.count.object
    for widget in session.filters.values():
        widget.value = ""
    session.filters["service"].value = HOSTILE_SERVICES[0]
    assert list(session.table.value["id"]) == [HOSTILE_INCIDENT]
    session.open("INC-A")
    assert session.picker.value == "INC-A" and session.tabs.active == TABS.index("Report")
    pn.panel(session).get_root()  # renders (only the active tab is built)


def test_app_opens_on_the_report_of_a_given_incident_and_refuses_unknown_ones(ws, tmp_path):

    assert app(ws, "INC-A") is not None
    with pytest.raises(NotFoundError):
        app(ws, "INC-NOPE")
    with pytest.raises(NotFoundError):
        serve(ws, incident_id="INC-NOPE", port=1)  # before any server starts
    empty = app(workbench.init(tmp_path / "empty"))
    assert "No incidents" in empty.object


# --------------------------------------------------------------------------- workbench serve


def _serve(args, ws):
    return subprocess.run([sys.executable, "-m", "workbench.cli", "serve", *args, "-w", str(ws.root)],
                          capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_non_loopback_address_without_basic_auth(ws):
    port = free_port()
    done = _serve(["--address", "0.0.0.0", "--port", str(port)], ws)
    assert done.returncode == 2
    assert "--basic-auth" in done.stderr and "serving" not in done.stdout
    with socket.socket() as s:  # nothing listens on the port
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_refuses_short_passwords_and_unknown_incidents(ws, tmp_path, capsys):
    from workbench.cli import main

    # both are refused before a server is built, so this runs in-process
    secret = tmp_path / "password"
    secret.write_text("short\n")
    assert main(["serve", "--address", "0.0.0.0", "--basic-auth", str(secret), "-w", str(ws.root)]) == 2
    assert "12 characters" in capsys.readouterr().err
    assert main(["serve", "--port", str(free_port()), "--incident", "INC-NOPE", "-w", str(ws.root)]) == 2
    assert "INC-NOPE" in capsys.readouterr().err
    assert main(["serve", "--port", str(free_port()), "--trusted-proxy", "proxy.example", "-w", str(ws.root)]) == 2
    assert "'proxy.example'" in capsys.readouterr().err


def test_websocket_origins_cover_the_names_a_browser_uses():
    from workbench.reports.app import websocket_origins

    assert websocket_origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]
    assert "[::1]:5006" in websocket_origins("::1", 5006)
    wildcard = websocket_origins("0.0.0.0", 5006)
    assert "0.0.0.0:5006" not in wildcard and f"{socket.gethostname().lower()}:5006" in wildcard


def test_serve_off_loopback_needs_tls_or_an_explicit_proxy_and_refuses_bad_key_pairs(ws, tmp_path, capsys):
    from workbench.cli import main

    secret = tmp_path / "password"
    secret.write_text("a-long-enough-password\n")
    base = ["serve", "--address", "0.0.0.0", "--port", str(free_port()), "--basic-auth", str(secret), "-w", str(ws.root)]
    assert main(base) == 2
    assert "clear text" in capsys.readouterr().err
    assert main([*base, "--tls-cert", str(secret)]) == 2
    assert "both --tls-cert and --tls-key" in capsys.readouterr().err
    assert main([*base, "--tls-cert", str(secret), "--tls-key", str(secret)]) == 2
    assert f"cannot load the certificate {secret}" in capsys.readouterr().err


def test_serve_speaks_https_with_a_certificate(ws, tmp_path):
    import ssl
    import time
    import urllib.error
    import urllib.request

    cert, key = _self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--port", str(port), "--tls-cert", str(cert),
                             "--tls-key", str(key), "-w", str(ws.root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        deadline, page = time.monotonic() + 60, None
        while time.monotonic() < deadline and page is None:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/", context=context, timeout=5) as response:
                    page = (response.status, response.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.3)
        assert page is not None and page[0] == 200 and b"<html" in page[1].lower()
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()  # no plain HTTP on that port
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"https://127.0.0.1:{port}/" in out


def test_a_restart_keeps_logins_and_a_new_password_ends_them(ws, tmp_path):
    """The login cookies are signed with the workspace's key mixed with the password: a restarted
    server accepts them, a server with another password sends the browser back to the login."""
    import http.cookies
    import os
    import time
    import urllib.request

    from workbench.reports import auth
    from workbench.reports.app import serve

    def started(password):
        port = free_port()
        server = serve(ws, port=port, basic_auth=password, threaded=True)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5).read()
                return server, port
            except OSError:
                time.sleep(0.05)
        raise AssertionError("serve did not start")

    def status(port, cookie):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/", headers={"Cookie": cookie})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Location", "")

    server, port = started("a-long-enough-password")
    try:
        code, headers, _ = _post_login(f"http://127.0.0.1:{port}/login", "a-long-enough-password")
        assert code == 302
        jar = http.cookies.SimpleCookie()
        for value in headers.get_all("Set-Cookie"):
            jar.load(value)
        cookie = "; ".join(f"{k}={m.value}" for k, m in jar.items())
        assert status(port, cookie)[0] == 200 and status(port, "")[0] == 302
    finally:
        server.stop()
    key = ws.root / auth.KEY_FILE
    assert os.stat(key).st_mode & 0o777 == 0o600
    server, port = started("a-long-enough-password")  # the restart
    try:
        assert status(port, cookie)[0] == 200
    finally:
        server.stop()
    server, port = started("another-long-password")
    try:
        code, where = status(port, cookie)
        assert code == 302 and "/login" in where
    finally:
        server.stop()
    key.write_text("short\n")
    with pytest.raises(OSError, match=auth.KEY_FILE):
        auth.cookie_secret(ws.root, "a-long-enough-password")


def test_login_throttle_locks_an_address_out_after_repeated_failures():
    from workbench.reports.auth import LoginThrottle

    now = [0.0]
    throttle = LoginThrottle(max_failures=3, window=60, lockout=120, clock=lambda: now[0])
    for t in (0, 55, 100):  # the first failure left the 60 s window before the third
        now[0] = t
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0
    now[0] = 110
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 120 and throttle.retry_after("10.0.0.2") == 0
    now[0] = 229
    assert throttle.retry_after("10.0.0.1") == pytest.approx(1)
    now[0] = 231
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    throttle.succeeded("10.0.0.1")  # a good login clears the count
    for _ in range(2):
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0


@contextlib.contextmanager
def _login_server(handler, tls=None):
    """Tornado serving ``handler`` at /login on a free loopback port (and, given an
    ``ssl.SSLContext`` as ``tls``, on a TLS one too), in a thread; yields ``(port, tls_port)``."""
    import asyncio
    import threading

    import tornado.web

    ports = (free_port(), free_port() if tls is not None else None)
    started, holder = threading.Event(), {}

    def run():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        holder["loop"] = loop
        application = tornado.web.Application([(r"/login", handler)], cookie_secret="x" * 32)
        holder["servers"] = [application.listen(ports[0], address="127.0.0.1")]
        if tls is not None:
            holder["servers"].append(application.listen(ports[1], address="127.0.0.1", ssl_options=tls))
        loop.call_soon(started.set)
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield ports
    finally:
        for server in holder["servers"]:
            holder["loop"].call_soon_threadsafe(server.stop)
        holder["loop"].call_soon_threadsafe(holder["loop"].stop)
        thread.join(10)


def _post_login(url: str, password: str, context=None, headers=None):
    """POST the login form without following the redirect: ``(status, headers, body)``."""
    import urllib.error
    import urllib.parse
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    body = urllib.parse.urlencode({"username": "sre", "password": password}).encode()
    try:
        with opener.open(urllib.request.Request(url, data=body, headers=headers or {}), timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_the_login_handler_refuses_a_locked_out_address_before_checking_the_password():
    from workbench.reports.auth import LoginThrottle, provider

    now = [0.0]
    throttle = LoginThrottle(max_failures=2, window=60, lockout=30, clock=lambda: now[0])
    handler = provider("a-long-enough-password", throttle=throttle).login_handler
    with _login_server(handler) as (port, _):
        url = f"http://127.0.0.1:{port}/login"
        for _ in range(2):
            status, headers, _ = _post_login(url, "wrong password!")
            assert status == 302 and "error=" in headers["Location"]
        status, headers, page = _post_login(url, "a-long-enough-password")  # right password, but locked out
        assert status == 429 and headers["Retry-After"] == "31" and "Too many failed logins" in page
        assert not headers.get_all("Set-Cookie")
        now[0] = 31
        status, headers, _ = _post_login(url, "a-long-enough-password")
        assert status == 302 and "error=" not in headers["Location"]
        assert any(c.startswith("user=") for c in headers.get_all("Set-Cookie"))


def test_behind_a_trusted_proxy_failed_logins_count_against_the_forwarded_client():
    from workbench.reports.auth import LoginThrottle, client_address, provider, proxy_networks

    nets = proxy_networks(["127.0.0.1", "10.0.0.0/8"])
    assert client_address("127.0.0.1", ["198.51.100.7"], nets) == "198.51.100.7"
    # the client's own claims (left) are skipped; the right-most untrusted entry counts
    assert client_address("127.0.0.1", ["1.2.3.4, 198.51.100.7", "10.1.2.3"], nets) == "198.51.100.7"
    assert client_address("192.0.2.1", ["1.2.3.4"], nets) == "192.0.2.1"  # not a proxy: its header is ignored
    assert client_address("::ffff:10.0.0.5", ["198.51.100.7"], nets) == "198.51.100.7"  # a dual-stack socket
    assert client_address("192.0.2.1", ["1.2.3.4"], proxy_networks([])) == "192.0.2.1"
    with pytest.raises(ValueError, match="'proxy.example'"):
        proxy_networks(["proxy.example"])

    throttle = LoginThrottle(max_failures=2, window=60, lockout=30, clock=lambda: 0.0)
    handler = provider("a-long-enough-password", throttle=throttle, trusted_proxies=["127.0.0.1"]).login_handler
    with _login_server(handler) as (port, _):
        url = f"http://127.0.0.1:{port}/login"
        for spoof in ("203.0.113.1", "203.0.113.2"):  # rotating the claimed address does not help
            _post_login(url, "wrong password!", headers={"X-Forwarded-For": f"{spoof}, 198.51.100.7"})
        status, _, _ = _post_login(url, "a-long-enough-password", headers={"X-Forwarded-For": "198.51.100.7"})
        assert status == 429  # that client is locked out ...
        status, headers, _ = _post_login(url, "a-long-enough-password", headers={"X-Forwarded-For": "198.51.100.8"})
        assert status == 302 and "error=" not in headers["Location"]  # ... its neighbours behind the proxy are not


def test_login_cookies_are_secure_over_https_and_lax_everywhere(tmp_path):
    import ssl

    from workbench.reports.auth import provider

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(cert), str(key))

    def cookies(url, context=None):
        status, headers, _ = _post_login(url, "a-long-enough-password", context)
        assert status == 302, "expected a redirect after the login"
        return [c for c in headers.get_all("Set-Cookie") if c.startswith(("user=", "id_token="))]

    with _login_server(provider("a-long-enough-password").login_handler, tls=server_ctx) as (plain_port, tls_port):
        secure = cookies(f"https://127.0.0.1:{tls_port}/login", ssl.create_default_context(cafile=str(cert)))
        plain = cookies(f"http://127.0.0.1:{plain_port}/login")
    assert secure and all("Secure" in c and "SameSite=Lax" in c and "HttpOnly" in c for c in secure)
    assert plain and all("Secure" not in c and "SameSite=Lax" in c for c in plain)
