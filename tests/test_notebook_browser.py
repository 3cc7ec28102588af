"""The executed postmortem notebook is the product: opened in a real JupyterLab and as an nbconvert
page, in headless Chromium (Debian's, driven by Playwright).

One workspace (the sample's bad-deploy incident, with hostile strings added to its title, a log
body, an event and a service name), one ``workbench run`` of its postmortem notebook, one
JupyterLab server for the module:

- opened WITHOUT running any cell, and without a kernel: no widget repr anywhere, at least five
  Bokeh charts painted, no request leaves the machine, no console error, the hostile strings shown
  as text and none of them run;
- ``jupyter nbconvert --to html`` of the same notebook: the charts paint offline; the page's only
  outside references are nbconvert's own template scripts (require.js, MathJax), none from the
  notebook;
- with a kernel: run all, confirm a hypothesis in the explorer, and the knowledge base holds the
  decision with its rationale.

Screenshots go to test-artifacts/ (git-ignored).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import HOSTILE_STRINGS, jupyter_lab, require_browser
from test_reports_browser import ARTIFACTS

pytestmark = pytest.mark.browser

INCIDENT = "INC-20261102-001"
HOSTILE_TITLE = "Checkout failures " + " | ".join(s for s in HOSTILE_STRINGS if "\r" not in s)
HOSTILE_SERVICE = HOSTILE_STRINGS[3]  # <script>window.__pwned=1</script>
RATIONALE = "Errors start two minutes after the deploy; the rollback fixed them"
#: Visible text of an ipywidgets repr.
REPRS = ("VBox(children=", "Tab(children=", "HBox(", "HTML(value=")
#: Per chart slot the notebook's outputs made (``.wb-chart``) under ``root`` (default the page):
#: whether a canvas in it has painted pixels.
CHARTS_PAINTED = """
(root) => Array.from((root || document).querySelectorAll('.wb-chart')).map(slot => {
  const canvases = [];
  const visit = (root) => { for (const el of root.querySelectorAll('*')) {
    if (el.tagName === 'CANVAS') canvases.push(el); if (el.shadowRoot) visit(el.shadowRoot); } };
  visit(slot);
  return canvases.some(c => { try { if (!c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4 * 7) { if (d[i] !== 0) return true; } } catch (e) {} return false; });
})
"""
#: Every output's text (``textContent``: JupyterLab skips painting cells out of view, and their
#: ``innerText`` is empty then).
OUTPUT_TEXT = "() => Array.from(document.querySelectorAll('.jp-OutputArea-output')).map(e => e.textContent).join('\\n')"



def _add_hostile_strings(ws) -> None:
    """Hostile strings in the incident's title, a log body, an event summary and a service name."""
    from workbench.telemetry import schema

    start = pd.Timestamp("2026-11-02T14:05:00Z")
    steps = pd.date_range(start - pd.Timedelta(hours=25), start + pd.Timedelta(hours=1), freq="1min")
    metrics = pd.DataFrame({"timestamp": steps, "service": HOSTILE_SERVICE, "environment": "production",
                            "name": "error_rate", "value": [0.01 + 0.001 * (i % 5) for i in range(len(steps))]})
    events = pd.DataFrame({"timestamp": [start], "service": [HOSTILE_SERVICE], "environment": "production",
                           "kind": ["config_change"], "summary": [HOSTILE_STRINGS[4] + " " + HOSTILE_STRINGS[3]]})
    logs = pd.DataFrame({"timestamp": [start + pd.Timedelta(seconds=i) for i in range(3)], "service": "payments",
                         "environment": "production", "severity": "ERROR",
                         "body": [HOSTILE_STRINGS[3], HOSTILE_STRINGS[4], HOSTILE_STRINGS[6]]})
    ws.telemetry().write({name: schema.validate(name, frame, source="hostile").frame
                          for name, frame in (("metrics", metrics), ("events", events), ("logs", logs))})
    with ws.knowledge_base() as kb:
        incident = kb.get_incident(INCIDENT)
        kb.update_incident(INCIDENT, incident.version, who="test", title=HOSTILE_TITLE)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The executed notebook (trusted for this module's Jupyter data folder) and JupyterLab serving it."""
    require_browser("jupyterlab", "nbconvert")
    from workbench.postmortem import outputs, runner
    from workbench.telemetry.ingest import ingest
    from workbench.workspace import init

    from conftest import SAMPLE

    root = tmp_path_factory.mktemp("nblab")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / "jupyter-config"), "JUPYTER_DATA_DIR": str(root / "jupyter-data"),
           "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"), "JUPYTERLAB_SETTINGS_DIR": str(root / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab-workspaces")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_DATA_DIR", env["JUPYTER_DATA_DIR"])  # where the runner's signature goes
        ws = init(root / "ws")
        ingest(ws, str(SAMPLE), start=pd.Timestamp("2026-11-01T13:00:00Z"), end=pd.Timestamp("2026-11-02T15:15:00Z"))
        _add_hostile_strings(ws)
        result = runner.run(ws, INCIDENT)
        path = Path(result.output_path)
        # The same notebook with a kernel nobody has: JupyterLab opens it with "No Kernel".
        import nbformat

        nb = nbformat.read(str(path), as_version=4)
        nb.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "none", "language": "none"}
        nb.metadata.pop("language_info", None)
        nbformat.write(nb, str(path.with_name("no-kernel.ipynb")))
        assert outputs.sign(nb)
    (root / "lab-settings" / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (root / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    with jupyter_lab(ws.root, root, env) as (base, token):
        yield {"ws": ws, "base": base, "token": token, "root": root, "env": env, "path": path,
               "relative": path.relative_to(ws.root).as_posix()}


def _page(browser, base: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.external, page.errors = [], []
    local = (base, "data:", "blob:", "ws://127.0.0.1", "about:")
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(local)
               else (page.external.append(r.request.url), r.abort()))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def _scroll_through(page) -> None:
    """Scroll the notebook top to bottom so every cell's output is attached and drawn."""
    count = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length")
    for i in range(0, count, 3):
        page.evaluate(f"() => window.jupyterapp.shell.currentWidget.content.scrollToItem({i}, 'start')")
        page.wait_for_timeout(120)


def test_opened_without_a_kernel_every_output_renders(lab, browser):
    page = _page(browser, lab["base"])
    relative = lab["relative"].rsplit("/", 1)[0] + "/no-kernel.ipynb"
    try:
        page.goto(f"{lab['base']}/lab/tree/{relative}?reset&token={lab['token']}")
        page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')",
                               timeout=60_000)
        page.locator(".jp-Dialog .jp-Dialog-button", has_text="No Kernel").click(timeout=30_000)
        page.locator(".jp-Dialog").wait_for(state="detached", timeout=10_000)
        _scroll_through(page)
        page.wait_for_function(f"() => {{ const p = ({CHARTS_PAINTED})(); return p.length >= 5 && p.every(x => x); }}",
                               timeout=30_000)
        painted = page.evaluate(CHARTS_PAINTED)
        shown = page.evaluate(OUTPUT_TEXT)
        state = page.evaluate("() => { const w = window.jupyterapp.shell.currentWidget;"
                              " return {trusted: w.content.model.cells.get(5).trusted,"
                              " kernel: w.sessionContext.session ? w.sessionContext.session.kernel : null}; }")
        ARTIFACTS.mkdir(exist_ok=True)
        for text, name in (("Services ordered by onset", "notebook-jupyterlab.png"),
                           ("Hypotheses of", "notebook-jupyterlab-review.png")):
            page.locator(".jp-OutputArea-output", has_text=text).first.scroll_into_view_if_needed()
            page.wait_for_timeout(800)  # JupyterLab paints cells scrolled into view on the next frames
            page.screenshot(path=str(ARTIFACTS / name))
        assert state == {"trusted": True, "kernel": None}
        assert len(painted) >= 5 and all(painted)  # timeline, key metrics, heatmap, hypotheses' series
        assert not [r for r in REPRS if r in shown], shown[:2000]
        assert "Loading widget" not in shown and "Error displaying widget" not in shown
        for text in (HOSTILE_TITLE, HOSTILE_STRINGS[3], HOSTILE_STRINGS[4]):
            assert text in shown  # shown as text ...
        assert page.evaluate("typeof window.__pwned") == "undefined"  # ... and none of it ran
        assert page.external == []
        assert page.errors == []
    finally:
        page.close()


def test_nbconvert_html_draws_the_charts_offline(lab, browser, tmp_path):
    from nbconvert.exporters import HTMLExporter

    done = subprocess.run([str(Path(sys.executable).with_name("jupyter")), "nbconvert", "--to", "html",
                           "--output-dir", str(tmp_path), str(lab["path"])], env=lab["env"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    external = []
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "blob:"))
               else (external.append(r.request.url), r.abort()))
    try:
        page.goto((tmp_path / "postmortem.html").as_uri())
        page.wait_for_function(f"() => {{ const p = ({CHARTS_PAINTED})(); return p.length >= 5 && p.every(x => x); }}",
                               timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "notebook-nbconvert.png"), full_page=True)
        # nbconvert's own template links require.js and MathJax on a CDN for every notebook; nothing else may
        template = {HTMLExporter().require_js_url, HTMLExporter().mathjax_url}
        assert set(external) <= template, external
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert HOSTILE_TITLE in page.inner_text("body")
    finally:
        page.close()


def test_with_a_kernel_a_hypothesis_is_confirmed_in_the_explorer(lab, browser):
    page = _page(browser, lab["base"])
    try:
        page.goto(f"{lab['base']}/lab/tree/{lab['relative']}?reset&token={lab['token']}")
        page.wait_for_function("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                               " return w && w.sessionContext && w.sessionContext.session &&"
                               " w.sessionContext.session.kernel &&"
                               " w.sessionContext.session.kernel.connectionStatus === 'connected'; }", timeout=60_000)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        explorer = page.locator(".widget-vbox", has_text="Explore the hypotheses of").last
        explorer.get_by_text("Show").first.wait_for(timeout=120_000)
        # The deploy's hypothesis, whatever its rank (the hostile rows added to this incident move
        # checkout × code within 0.01 of it): the reviewer picks it in the explorer's list.
        with lab["ws"].knowledge_base() as kb:
            deploy = next(h for h in kb.list_hypotheses(INCIDENT) if (h.service, h.cause) == ("payments", "change"))
        explorer.locator("select").first.select_option(label=f"#{deploy.rank} payments × change (proposed)")
        explorer.get_by_role("button", name="Show").click()
        explorer.get_by_text("Showing payments").wait_for(timeout=60_000)
        # its charts: the notebook's own embedded Bokeh charts, drawn live inside the widget
        explorer.locator(".wb-chart").first.scroll_into_view_if_needed(timeout=30_000)
        deadline = time.monotonic() + 30
        while not (len(painted := explorer.evaluate(CHARTS_PAINTED)) >= 2 and all(painted)):
            assert time.monotonic() < deadline, painted
            page.wait_for_timeout(250)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "notebook-explorer-charts.png"))
        explorer.locator(".widget-text input").fill("browser-test")
        explorer.locator(".widget-textarea textarea").fill(RATIONALE)
        explorer.get_by_role("button", name="Confirm").click()
        explorer.get_by_text("Confirmed payments × change").wait_for(timeout=30_000)
        explorer.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "notebook-explorer.png"))
        with lab["ws"].knowledge_base() as kb:
            confirmed = [h for h in kb.list_hypotheses(INCIDENT) if h.status == "confirmed"]
        assert [(h.service, h.cause, h.reviewer, h.rationale) for h in confirmed] == \
            [("payments", "change", "browser-test", RATIONALE)]
        assert page.external == []
    finally:
        page.close()
