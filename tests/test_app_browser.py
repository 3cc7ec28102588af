"""The served workbench app, started as a user starts it (``workbench serve`` in a subprocess),
driven in a real headless Chromium (Debian's, via Playwright).

The workspace is the one of tests/test_reports.py (sample incidents, one reviewed, and an incident
whose every string is hostile) plus overdue action items due a few days before today, so the
Action items tab has rows whatever the date. Every request that does not go to the app's own
server is recorded and aborted, and must not happen. Screenshots go to test-artifacts/app-*.png.
"""
from __future__ import annotations

import http.client
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import HOSTILE_STRINGS, free_port, require_browser, stop_process
from test_reports_browser import ARTIFACTS

pytestmark = pytest.mark.browser

SAMPLE_TITLE = "Checkout failures and slow order placement"
PASSWORD = "correct horse battery staple"
#: Overdue items added to the workspace: (incident, owner, title, days overdue).
OVERDUE = [("INC-20261102-001", "release-eng", "Freeze payments deploys on Fridays", 5),
           ("INC-HOSTILE-1", HOSTILE_STRINGS[3], HOSTILE_STRINGS[4] + " overdue", 3)]
#: Elements or handlers that data turned into markup would create (data lives in shadow roots;
#: the page's own scripts sit in the document).
INJECTED = """() => { const bad = []; const visit = (root, inShadow) => {
    for (const el of root.querySelectorAll('*')) {
      for (const a of el.attributes) if (a.name.startsWith('on')) bad.push(el.tagName + ' ' + a.name);
      if (['IMG', 'IFRAME', 'OBJECT', 'EMBED'].includes(el.tagName)) bad.push(el.tagName);
      if (inShadow && el.tagName === 'SCRIPT') bad.push('SCRIPT');
      if (el.shadowRoot) visit(el.shadowRoot, true); } };
    visit(document, false); return bad; }"""
#: All text of the page, shadow roots included (leaf elements only).
ALL_TEXT = """() => { const parts = []; const visit = (root) => {
    for (const el of root.querySelectorAll('*')) { if (el.shadowRoot) visit(el.shadowRoot);
      if (!el.children.length) parts.push(el.textContent); } };
    visit(document); return parts.join('\\n'); }"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    require_browser("panel")
    from test_reports import build_workspace

    # the reviewed sample incident's baseline and analysis window are all its report reads
    ws = build_workspace(tmp_path_factory.mktemp("app") / "ws", "2026-11-01T13:00Z", "2026-11-02T15:15Z")
    today = datetime.now(timezone.utc).date()
    with ws.knowledge_base() as kb:
        for incident, owner, title, days in OVERDUE:
            kb.add_action_item(incident, title=title, owner=owner, kind="process", due=today - timedelta(days=days),
                               who="test")
    return ws


@pytest.fixture(scope="module")
def incidents(ws):
    with ws.knowledge_base() as kb:
        return kb.list_incidents()



def start_cli(args: list[str], log: Path, timeout: float = 30.0):
    """``python -m workbench.cli serve ARGS`` on a free loopback port, once it answers HTTP.

    Returns ``(process, "127.0.0.1:PORT", seconds until ready)``.
    """
    port = free_port()
    started = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--port", str(port), *args],
                                stdout=fh, stderr=subprocess.STDOUT)
    while True:
        try:
            status, _, _ = http_get(f"127.0.0.1:{port}", "/static/js/bokeh.min.js")
            if status == 200:
                return proc, f"127.0.0.1:{port}", time.monotonic() - started
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() - started > timeout:
            stop_process(proc)
            pytest.fail(f"workbench serve did not start:\n{log.read_text()}")
        time.sleep(0.1)


def http_get(origin: str, path: str) -> tuple[int, dict[str, str], str]:
    """A plain GET without cookies that does not follow redirects."""
    host, port = origin.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(ws, tmp_path_factory):
    proc, origin, ready = start_cli(["-w", str(ws.root)], tmp_path_factory.mktemp("log") / "serve.log")
    print(f"\nworkbench serve ready in {ready:.1f} s")
    yield origin
    stop_process(proc)


@pytest.fixture(scope="module")
def served_auth(ws, tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth")
    secret = folder / "password"
    secret.write_text(PASSWORD + "\n")
    proc, origin, ready = start_cli(["-w", str(ws.root), "--basic-auth", str(secret)], folder / "serve.log")
    print(f"\nworkbench serve --basic-auth ready in {ready:.1f} s")
    yield origin
    stop_process(proc)


class Session:
    """A page on the app that records (and aborts) every request leaving its own server."""

    def __init__(self, browser, origin: str):
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.outside: list[str] = []
        self.errors: list[str] = []
        own = (f"http://{origin}/", f"ws://{origin}/", "data:", "blob:")

        def route(r):
            if r.request.url.startswith(own):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def tab(self, title: str) -> None:
        self.page.locator(".bk-tab", has_text=title).click()

    def rows(self):
        return self.page.locator(".tabulator-row")

    def count(self) -> str:
        return self.page.get_by_test_id("incident-count").text_content()

    def wait_count(self, n: int) -> None:
        self.page.wait_for_function(
            f"""() => {{ const find = (root) => {{ const el = root.querySelector('[data-testid=incident-count]');
                if (el) return el; for (const x of root.querySelectorAll('*')) if (x.shadowRoot) {{
                  const f = find(x.shadowRoot); if (f) return f; }} return null; }};
                const el = find(document); return el && el.textContent === '{n}'; }}""", timeout=15_000)

    def screenshot(self, name: str, full_page: bool = True) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)

    def check_clean(self) -> None:
        assert self.page.evaluate("typeof window.__pwned") == "undefined"
        assert self.page.evaluate(INJECTED) == []
        assert self.outside == []
        assert self.errors == []


def test_list_filter_report_action_items_and_metrics(browser, served, incidents):
    s = Session(browser, served)
    page = s.page
    try:
        t0 = time.monotonic()
        page.goto(f"http://{served}/")
        page.get_by_test_id("incident-count").wait_for(timeout=30_000)
        assert s.count() == str(len(incidents))
        assert s.rows().count() == len(incidents)
        s.screenshot("app-incidents.png")
        loaded = time.monotonic() - t0

        # filter by a service: only its incidents are listed
        with_payments = [i for i in incidents if "payments" in i.services]
        page.get_by_label("Service").select_option(label="payments")
        s.wait_count(len(with_payments))
        assert 0 < len(with_payments) < len(incidents)
        assert s.rows().count() == len(with_payments)
        listed = s.rows().locator("[tabulator-field=id]").all_text_contents()
        assert sorted(listed) == sorted(i.id for i in with_payments)
        assert all("payments" in t for t in s.rows().locator("[tabulator-field=services]").all_text_contents())
        s.screenshot("app-incidents-filtered.png")

        # a row click opens that incident's report in the Report tab
        t1 = time.monotonic()
        s.rows().filter(has_text="INC-20261102-001").locator("[tabulator-field=title]").click()
        title = page.get_by_test_id("incident-title")
        title.wait_for(timeout=30_000)
        assert title.text_content() == SAMPLE_TITLE
        assert page.locator(".bk-tab.bk-active").text_content() == "Report"
        assert "Deploy payments v2.15.0" in page.get_by_test_id("confirmed-cause").text_content()
        page.wait_for_timeout(800)  # the charts draw after layout
        report = time.monotonic() - t1
        s.screenshot("app-report.png", full_page=False)

        # overdue action items by owner, and all open ones
        s.tab("Action items")
        overdue = page.get_by_test_id("overdue")
        overdue.wait_for(timeout=15_000)
        rows = overdue.locator("tbody tr")
        assert rows.count() >= len(OVERDUE)
        mine = rows.filter(has_text="release-eng").locator("td").all_text_contents()
        assert mine == ["release-eng", "INC-20261102-001", "Freeze payments deploys on Fridays",
                        mine[3], "5", "process", "open"]
        owners = rows.locator("td:first-child").all_text_contents()
        assert owners == sorted(owners)
        assert page.get_by_test_id("open-items").locator("tbody tr").count() >= rows.count()
        s.screenshot("app-action-items.png")

        # the cross-incident metrics
        s.tab("Metrics")
        page.get_by_test_id("ledger").wait_for(timeout=15_000)
        durations = page.get_by_test_id("durations").locator("tbody tr")
        assert durations.count() == 3
        assert durations.first.locator("td").first.text_content() == "time to detect (MTTD)"
        assert page.get_by_test_id("metrics-count").text_content() == str(len(incidents))
        per_service = dict(tuple(r.locator("td").all_text_contents())
                           for r in page.get_by_test_id("per-service").locator("tbody tr").all())
        assert per_service["payments"] == str(len(with_payments))
        assert page.get_by_test_id("ledger").locator("tbody tr").count() >= 2
        s.screenshot("app-metrics.png")
        s.check_clean()
        print(f"list {loaded:.1f} s, report {report:.1f} s")
    finally:
        page.close()


def test_hostile_strings_show_as_text_and_run_nothing(browser, served):
    from test_reports import HOSTILE_INCIDENT, HOSTILE_SERVICES, HOSTILE_SHOWN, HOSTILE_TITLE

    s = Session(browser, served)
    page = s.page
    try:
        page.goto(f"http://{served}/")
        page.get_by_test_id("incident-count").wait_for(timeout=30_000)
        hostile = s.rows().filter(has_text=HOSTILE_INCIDENT)
        assert hostile.locator("[tabulator-field=title]").text_content() == HOSTILE_TITLE
        # the service filter offers the hostile names as text, and filtering by one works
        options = page.get_by_label("Service").locator("option").all_text_contents()
        assert set(HOSTILE_SERVICES) <= set(options)
        page.get_by_label("Service").select_option(label=HOSTILE_SERVICES[0])
        s.wait_count(1)
        assert s.rows().locator("[tabulator-field=id]").all_text_contents() == [HOSTILE_INCIDENT]
        s.screenshot("app-hostile-incidents.png")
        s.check_clean()

        s.rows().first.locator("[tabulator-field=title]").click()
        page.get_by_test_id("incident-title").wait_for(timeout=30_000)
        assert page.get_by_test_id("incident-title").text_content() == HOSTILE_TITLE
        assert page.get_by_test_id("rejection-rationale").text_content() == \
            HOSTILE_SHOWN["rejected rationale"].replace("\r\n", "\n")  # HTML parsing turns CRLF into LF
        text = page.evaluate(ALL_TEXT)
        assert HOSTILE_SHOWN["rationale"] in text and HOSTILE_SHOWN["action item"] in text
        page.wait_for_timeout(500)
        s.screenshot("app-hostile-report.png", full_page=False)
        s.check_clean()

        s.tab("Action items")
        page.get_by_test_id("overdue").wait_for(timeout=15_000)
        row = page.get_by_test_id("overdue").locator("tbody tr").filter(has_text=OVERDUE[1][2])
        assert row.locator("td").all_text_contents()[:3] == [OVERDUE[1][1], HOSTILE_INCIDENT, OVERDUE[1][2]]
        open_titles = page.get_by_test_id("open-items").locator("tbody tr td:nth-child(3)").all_text_contents()
        assert HOSTILE_SHOWN["action item"] in open_titles
        s.screenshot("app-hostile-action-items.png")
        s.check_clean()

        s.tab("Metrics")
        page.get_by_test_id("ledger").wait_for(timeout=15_000)
        services = page.get_by_test_id("per-service").locator("tbody tr td:first-child").all_text_contents()
        assert set(HOSTILE_SERVICES) <= set(services)
        assert HOSTILE_TITLE in page.get_by_test_id("incident-times").text_content()
        s.screenshot("app-hostile-metrics.png")
        s.check_clean()
    finally:
        page.close()


def test_basic_auth_shows_the_login_page_until_signed_in(browser, served_auth, incidents):
    # a plain GET without credentials gets a redirect to the login page, never the app
    status, headers, body = http_get(served_auth, "/")
    assert status == 302 and "login" in headers["Location"]
    assert "INC-" not in body
    status, _, body = http_get(served_auth, "/login")
    assert status == 200 and 'name="password"' in body
    assert not any(i.id in body or i.title in body for i in incidents)
    status, _, _ = http_get(served_auth, "/ws")  # nor the websocket that carries the data
    assert status in (401, 403)
    embed = f"/autoload.js?bokeh-autoload-element=x&bokeh-absolute-url=http://{served_auth}"
    status, _, body = http_get(served_auth, embed)
    assert status in (302, 401, 403) and "INC-" not in body  # nor the embeddable script

    s = Session(browser, served_auth)
    page = s.page
    try:
        page.goto(f"http://{served_auth}/")
        page.get_by_test_id("login-form").wait_for(timeout=15_000)
        assert "/login" in page.url
        s.screenshot("app-login.png", full_page=False)
        page.get_by_placeholder("user name").fill("sre")
        page.get_by_placeholder("password").fill("wrong password, surely")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("login-error").wait_for(timeout=15_000)
        assert "INC-" not in page.content()

        page.get_by_placeholder("user name").fill("sre")
        page.get_by_placeholder("password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_test_id("incident-count").wait_for(timeout=30_000)
        assert s.count() == str(len(incidents))
        assert s.rows().count() == len(incidents)
        s.screenshot("app-after-login.png", full_page=False)
        s.check_clean()
    finally:
        page.close()
