"""The report in a real headless Chromium (Debian's, driven by Playwright): the exported file
from file://, and the served app from `panel serve` on 127.0.0.1.

Offline means offline: every request whose URL is not file:, data: or blob: (an in-memory object
the page made itself: es-module-shims turns inlined module code into blob: scripts) is counted and
must be zero; the served app may only talk to its own server. Screenshots go to test-artifacts/
(git-ignored).
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import HOSTILE_STRINGS, REPO, require_browser, stop_process

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
LOCAL_SCHEMES = ("file:", "data:", "blob:")

#: Per canvas: its size and whether any pixel is not fully transparent (Bokeh draws on it).
#: Viewport point of the first timeline event (a glyph whose data has a ``summary`` column),
#: found through BokehJS's own views, after scrolling its canvas into view.
EVENT_POINT = """
() => {
  const seen = new Set(); let found = null;
  const walk = (v) => {
    if (!v || seen.has(v) || found) return; seen.add(v);
    const data = v.model && v.model.data_source && v.model.data_source.data;
    if (data && 'summary' in data && 'service' in data && data.summary.length && v.glyph && v.glyph.sx) {
      v.parent.canvas_view.el.scrollIntoView({block: 'center'});
      const rect = v.parent.canvas_view.el.getBoundingClientRect();
      found = {x: rect.left + v.glyph.sx[0], y: rect.top + v.glyph.sy[0], summary: data.summary[0]};
    }
    if (typeof v.children === 'function') { for (const k of v.children()) walk(k); }
  };
  for (const r of Bokeh.index.roots) walk(r);
  return found;
}
"""
#: Text of every visible Bokeh tooltip (they live in shadow roots).
TOOLTIPS = """() => { const parts = []; const visit = (root) => {
    for (const el of root.querySelectorAll('[class*=tooltip]')) parts.push(el.textContent);
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) visit(el.shadowRoot); };
    visit(document); return parts.join('\\n'); }"""
CANVAS_STATE = """
() => {
  const out = [];
  const visit = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.tagName === 'CANVAS') {
        let painted = false;
        try {
          const ctx = el.getContext('2d');
          if (ctx && el.width > 0 && el.height > 0) {
            const data = ctx.getImageData(0, 0, el.width, el.height).data;
            for (let i = 3; i < data.length; i += 4 * 7) { if (data[i] !== 0) { painted = true; break; } }
          }
        } catch (e) { painted = null; }
        out.push({w: el.width, h: el.height, painted});
      }
      if (el.shadowRoot) visit(el.shadowRoot);
    }
  };
  visit(document);
  return out;
}
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    require_browser("panel")
    from test_reports import build_workspace

    # the sample incident's baseline and analysis window are all its report reads
    return build_workspace(tmp_path_factory.mktemp("browser") / "ws", "2026-11-01T13:00Z", "2026-11-02T15:15Z")


@pytest.fixture(scope="module")
def reports(ws):
    from test_reports import HOSTILE_INCIDENT, SAMPLE_INCIDENT

    from workbench.reports import export_report

    return {"sample": export_report(ws, SAMPLE_INCIDENT), "hostile": export_report(ws, HOSTILE_INCIDENT)}


def open_report(browser, path: Path, screenshot: str):
    """Load ``path`` offline; returns (page, external requests, console errors) after rendering."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    external, errors = [], []
    page.route("**/*", lambda route: (external.append(route.request.url), route.abort())
               if not route.request.url.startswith(LOCAL_SCHEMES) else route.continue_())
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.resolve().as_uri())
    page.get_by_test_id("incident-title").wait_for(timeout=20_000)
    page.wait_for_function("() => document.readyState === 'complete'")
    # Bokeh draws after layout; wait until every canvas has a size and at least one is painted
    page.wait_for_function(f"() => {{ const c = ({CANVAS_STATE})(); "
                           f"return c.length > 0 && c.every(x => x.w > 0 && x.h > 0) && c.some(x => x.painted); }}",
                           timeout=20_000)
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    return page, external, errors


def test_sample_report_renders_offline(browser, reports):
    page, external, errors = open_report(browser, reports["sample"], "report.png")
    try:
        assert external == []
        assert errors == []
        canvases = page.evaluate(CANVAS_STATE)
        # timeline, 6 metric charts, heatmap: each a Bokeh canvas with a size and painted pixels
        assert len(canvases) >= 8
        assert all(c["w"] > 0 and c["h"] > 0 for c in canvases)
        assert sum(bool(c["painted"]) for c in canvases) >= 8
        assert page.get_by_test_id("incident-title").text_content() == "Checkout failures and slow order placement"
        meta = page.evaluate("document.querySelector('meta[name=workbench-content-hash]').content")
        assert meta.startswith("sha256:") and page.get_by_test_id("content-hash").text_content() == meta
        assert page.get_by_test_id("detection-gap").text_content() == "5 min 48 s"
        assert "Deploy payments v2.15.0" in page.get_by_test_id("confirmed-cause").text_content()
        # Panel's table stylesheet arrived inline: the events table is styled, not bare
        assert page.get_by_test_id("events").locator("th").first.evaluate(
            "el => getComputedStyle(el).backgroundColor") != "rgba(0, 0, 0, 0)"
    finally:
        page.close()


def test_hostile_report_shows_data_as_text_and_runs_none_of_it(browser, reports):
    from test_reports import HOSTILE_SHOWN, HOSTILE_TITLE

    page, external, errors = open_report(browser, reports["hostile"], "report-hostile.png")
    try:
        assert external == []
        assert errors == []
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.get_by_test_id("incident-title").text_content() == HOSTILE_TITLE
        assert page.get_by_test_id("action-title").first.text_content() == HOSTILE_SHOWN["action item"]
        assert page.get_by_test_id("rejection-rationale").text_content() == \
            HOSTILE_SHOWN["rejected rationale"].replace("\r\n", "\n")  # HTML parsing turns CRLF into LF
        # all text of all shadow roots: every hostile string shows up literally (CR becomes LF in HTML)
        text = page.evaluate("""() => { const parts = []; const visit = (root) => {
            for (const el of root.querySelectorAll('*')) { if (el.shadowRoot) visit(el.shadowRoot);
              if (!el.children.length) parts.push(el.textContent); } };
            visit(document); return parts.join('\\n'); }""")
        for value in [*HOSTILE_SHOWN.values(), *HOSTILE_STRINGS]:
            assert value.replace("\r\n", "\n") in text
        # nothing from the data became an element or an event handler (the page's own scripts sit in
        # the document; data lives in the panes' shadow roots)
        injected = page.evaluate("""() => { const bad = []; const visit = (root, inShadow) => {
            for (const el of root.querySelectorAll('*')) {
              for (const a of el.attributes) if (a.name.startsWith('on')) bad.push(el.tagName + ' ' + a.name);
              if (['IMG', 'IFRAME', 'OBJECT', 'EMBED'].includes(el.tagName)) bad.push(el.tagName);
              if (inShadow && el.tagName === 'SCRIPT') bad.push('SCRIPT');
              if (el.shadowRoot) visit(el.shadowRoot, true); } };
            visit(document, false); return bad; }""")
        assert injected == []
        # hovering the deploy event shows its hostile service and summary as text in Bokeh's tooltip
        page.evaluate(EVENT_POINT)
        page.wait_for_timeout(200)  # the scroll settles
        point = page.evaluate(EVENT_POINT)
        assert point["summary"] == HOSTILE_SHOWN["event summary"]
        page.mouse.move(point["x"], point["y"])
        page.wait_for_function(f"() => ({TOOLTIPS})().includes('summary')", timeout=5_000)
        tooltip = page.evaluate(TOOLTIPS)
        assert HOSTILE_SHOWN["event summary"] in tooltip and HOSTILE_STRINGS[3] in tooltip
        page.screenshot(path=str(ARTIFACTS / "report-hostile-hover.png"))
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert errors == []
    finally:
        page.close()


@pytest.fixture
def served(ws):
    """``panel serve reports/app.py`` on 127.0.0.1 and a free port, opened on the hostile incident."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", str(REPO / "reports" / "app.py"),
                             "--address", "127.0.0.1", "--port", str(port),
                             "--allow-websocket-origin", f"127.0.0.1:{port}",
                             "--args", str(ws.root), "INC-HOSTILE-1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    origin = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{origin}/static/js/bokeh.min.js", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"panel serve did not start: {proc.stderr.read() if proc.poll() is not None else ''}")
                time.sleep(0.1)
        yield origin
    finally:
        stop_process(proc)


def test_served_app_shows_reports_and_switches_incidents(browser, served):
    from test_reports import HOSTILE_TITLE

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    outside, errors = [], []
    own = (f"http://{served}/", f"ws://{served}/", "data:", "blob:")
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(own) else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"http://{served}/app")
        title = page.get_by_test_id("incident-title")
        title.wait_for(timeout=30_000)
        assert title.text_content() == HOSTILE_TITLE
        labels = page.locator("select option").all_text_contents()
        assert f"INC-HOSTILE-1 · {HOSTILE_TITLE}" in labels  # the picker shows titles as text too
        assert page.evaluate("typeof window.__pwned") == "undefined"
        # picking another incident re-renders the report over the websocket
        page.locator("select").select_option(label=next(l for l in labels if l.startswith("INC-20261102-001")))
        page.get_by_test_id("incident-title").filter(has_text="Checkout failures").wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "app.png"))
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert outside == []
        assert errors == []
    finally:
        page.close()
