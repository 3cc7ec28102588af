"""The review widgets in a real JupyterLab, driven by headless Chromium (Debian's, via Playwright).

A JupyterLab server is started on a free local port in a temp folder (its own config, data and
runtime folders, so the user's settings are neither read nor changed). It opens a notebook that was
executed first (nbclient) and holds one single-call cell per widget, runs it in the browser (live
widgets need a live kernel) and checks that:

- the hypothesis review renders, and typing a rationale and clicking Confirm reaches the
  knowledge base (read back through a separate connection);
- the explorer's charts (Panel/Bokeh inside an ``ipywidgets.Output``) draw on a canvas with no
  network, i.e. ``panel.extension(inline=True)`` works inside JupyterLab;
- nothing on the page asked for a non-local URL.

Screenshots go to test-artifacts/ (git-ignored).
"""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from conftest import SAMPLE, jupyter_lab, require_browser
from test_reports_browser import ARTIFACTS, CANVAS_STATE  # one browser set-up for every browser test
import workbench

pytestmark = pytest.mark.browser

SAMPLE_INCIDENT = "INC-20261102-001"
RATIONALE = "Errors start one minute after the deploy; the rollback fixed them"


#: Viewport point of the heatmap cell of ``service`` nearest ``time`` (ms since the epoch, naive
#: UTC axis), found through BokehJS's own views after scrolling its canvas into view.
CELL_POINT = """
([service, time]) => {
  const seen = new Set(); let found = null;
  const walk = (v) => {
    if (!v || seen.has(v) || found) return; seen.add(v);
    const data = v.model && v.model.data_source && v.model.data_source.data;
    if (data && 'service' in data && 'score' in data && v.glyph && v.glyph.sx) {
      let best = -1;
      for (let i = 0; i < data.service.length; i++) {
        const gap = Math.abs(data.time[i] - time);
        if (data.service[i] === service && (best < 0 || gap < Math.abs(data.time[best] - time))) best = i;
      }
      if (best >= 0) {
        v.parent.canvas_view.el.scrollIntoView({block: 'center'});
        const rect = v.parent.canvas_view.el.getBoundingClientRect();
        found = {x: rect.left + v.glyph.sx[best], y: rect.top + v.glyph.sy[best], time: data.time[best]};
      }
    }
    if (typeof v.children === 'function') { for (const k of v.children()) walk(k); }
  };
  for (const r of Bokeh.index.roots) walk(r);
  return found;
}
"""



@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A workspace with the sample's incident window, an executed notebook, and JupyterLab serving it."""
    require_browser("jupyterlab", "panel")
    import nbformat
    from nbclient import NotebookClient
    from workbench.telemetry.ingest import ingest

    root = tmp_path_factory.mktemp("lab")
    ws = workbench.init(root / "ws")
    ingest(ws, str(SAMPLE), start=pd.Timestamp("2026-11-01T13:00:00Z"), end=pd.Timestamp("2026-11-02T15:15:00Z"))
    with ws.knowledge_base() as kb:
        hyps = kb.replace_proposed_hypotheses(SAMPLE_INCIDENT, [
            {"service": "payments", "cause": "change", "score": 0.9, "rank": 1,
             "summary": "Deploy payments v2.15.0 broke amount serialisation",
             "evidence": [{"kind": "change", "service": "payments", "signal": "deploy v2.15.0",
                           "time": "2026-11-02T14:02:00Z", "magnitude": 1.0, "explanation": "1 min before onset"}]},
            {"service": "checkout", "cause": "dependency", "score": 0.5, "rank": 2,
             "summary": "Checkout fails because payments fails"}], who="analysis")

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        f"import workbench.widgets as wbw\nws = {str(ws.root)!r}\nincident_id = {SAMPLE_INCIDENT!r}",
        "wbw.hypothesis_review(ws, incident_id, reviewer='browser-test')",
        "explorer = wbw.telemetry_explorer(ws, incident_id)\nexplorer",
        "wbw.anomaly_heatmap(ws, incident_id)",
    )]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    # the heatmap is an ordinary output: the executed notebook keeps it as a (static) Bokeh chart
    assert any("application/vnd.holoviews_exec.v0+json" in o.get("data", {}) for o in nb.cells[3].outputs)
    executed = sum(len(json.dumps(o)) for c in nb.cells for o in c.get("outputs", []))
    assert executed < 8_000_000, executed  # Panel's inline JavaScript once (~6 MB), not per widget
    nbformat.write(nb, root / "review.ipynb")

    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"), "JUPYTERLAB_SETTINGS_DIR": str(root / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab-workspaces")}
    with jupyter_lab(root, root, env) as (base, token):
        yield {"ws": ws, "base": base, "token": token, "hypotheses": hyps, "root": root}


@pytest.fixture(scope="module")
def page(lab, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    external = []
    local = (lab["base"], "data:", "blob:", "ws://127.0.0.1", "about:")

    def route(r):
        if r.request.url.startswith(local):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.external = external
    page.goto(f"{lab['base']}/lab/tree/review.ipynb?token={lab['token']}")
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')", timeout=60_000)
    # Live widgets need a live kernel: run the notebook in the browser, as a reviewer would.
    page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget;"
                           " return w && w.sessionContext && w.sessionContext.session &&"
                           " w.sessionContext.session.kernel &&"
                           " w.sessionContext.session.kernel.connectionStatus === 'connected'; }",
                           timeout=60_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widgets-jupyterlab.png"), full_page=True)
    page.close()


def test_a_confirm_click_in_jupyterlab_reaches_the_store(lab, page):
    confirm = page.locator(".widget-button", has_text="Confirm").first
    confirm.wait_for(timeout=60_000)
    assert page.get_by_text("Deploy payments v2.15.0 broke amount serialisation").count() >= 1
    page.locator(".widget-textarea textarea").first.fill(RATIONALE)
    confirm.click()
    page.get_by_text("Confirmed payments × change").first.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".jp-OutputArea-output", has_text="Hypotheses of INC-20261102-001").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "widgets-review.png"))

    with lab["ws"].knowledge_base() as kb:
        stored = {h.service: h for h in kb.list_hypotheses(SAMPLE_INCIDENT)}
        history = [e for e in kb.history("hypothesis", stored["payments"].id) if e.field == "status"]
    assert (stored["payments"].status, stored["payments"].reviewer, stored["payments"].rationale) == \
        ("confirmed", "browser-test", RATIONALE)
    assert [(e.old, e.new, e.who) for e in history] == [("proposed", "confirmed", "browser-test")]
    assert stored["checkout"].status == "proposed"


def test_the_explorer_draws_its_charts_offline(lab, page):
    show = page.locator(".widget-button", has_text="Show").first
    show.wait_for(timeout=60_000)
    show.click()
    page.wait_for_function(f"() => {{ const c = ({CANVAS_STATE})(); "
                           "return c.length >= 3 && c.every(x => x.w > 0 && x.h > 0) && c.some(x => x.painted); }",
                           timeout=60_000)
    canvases = page.evaluate(CANVAS_STATE)
    assert sum(bool(c["painted"]) for c in canvases) >= 3  # the score chart and a raw/contribution pair at least
    assert page.external == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_text("Telemetry of INC-20261102-001").first.scroll_into_view_if_needed()
    page.mouse.wheel(0, 350)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "widgets-explorer.png"))


def test_a_click_on_a_heatmap_cell_opens_that_service_in_the_explorer(lab, page):
    page.get_by_text("Anomaly heatmap of").first.wait_for(timeout=60_000)
    target = pd.Timestamp("2026-11-02 14:10").value // 10**6
    page.wait_for_function(f"() => ({CELL_POINT})({json.dumps(['inventory', target])}) !== null", timeout=60_000)
    page.wait_for_timeout(500)  # let the scroll settle before reading the point again
    point = page.evaluate(CELL_POINT, ["inventory", target])
    page.mouse.click(point["x"], point["y"])
    page.get_by_text("Opened inventory at 2026-11-02 14:10 UTC").first.wait_for(timeout=30_000)
    # the heatmap's explorer (the last one on the page) now shows inventory's metrics
    page.get_by_text("inventory: ").last.wait_for(timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widgets-heatmap.png"))
