"""Panel reports: views of core objects, the standalone HTML export, and escaping of hostile data.

The browser test (tests/test_reports_browser.py) imports the workspace builders defined here.
"""
from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

pn = pytest.importorskip("panel")

from conftest import HOSTILE_STRINGS, SAMPLE  # noqa: E402
import workbench
from workbench.telemetry import schema  # noqa: E402
from workbench.errors import NotFoundError  # noqa: E402
from workbench.postmortem import gather  # noqa: E402
from workbench.postmortem.gather import robust_z_scores  # noqa: E402
from workbench.reports import (ActionItemsView, AnomalyHeatmap, ConclusionsView, HypothesesView, ImpactView,  # noqa: E402
                               IncidentHeader, LinksView, LogsView, MetricsView, Report, TimelineView, build_report,
                               export_report, inline_resources, read_meta)
from workbench.reports import safe  # noqa: E402
from workbench.reports.export import panel_dist  # noqa: E402

SAMPLE_INCIDENT = "INC-20261102-001"
HOSTILE_INCIDENT = "INC-HOSTILE-1"
#: One title holding every hostile string that survives HTML parsing byte-identically (a CR is
#: normalised to LF by any HTML parser, so the CRLF string is tested in log bodies instead).
HOSTILE_TITLE = " | ".join(s for s in HOSTILE_STRINGS if "\r" not in s)
#: Service names of the hostile incident (telemetry and knowledge base).
HOSTILE_SERVICES = [HOSTILE_STRINGS[3], HOSTILE_STRINGS[4], HOSTILE_STRINGS[9], HOSTILE_STRINGS[2]]
HOSTILE_START = pd.Timestamp("2026-11-20T12:00:00Z")
#: Data strings of the hostile incident that the report must show (as text).
HOSTILE_SHOWN = {
    "title": HOSTILE_TITLE,
    "service": HOSTILE_SERVICES[0],
    "rationale": HOSTILE_STRINGS[4],
    "rejected rationale": HOSTILE_STRINGS[6] + " " + HOSTILE_STRINGS[3],
    "action item": HOSTILE_STRINGS[3],
    "log body": HOSTILE_STRINGS[5] + " " + HOSTILE_STRINGS[3],
    "event summary": HOSTILE_STRINGS[4] + " deployed",
    "conclusion": HOSTILE_STRINGS[10],
}


# --------------------------------------------------------------------------- workspace builders

def review_sample_incident(ws: workbench.Workspace, incident_id: str = SAMPLE_INCIDENT) -> None:
    """Give a sample incident a reviewed postmortem: cause, alternatives, lessons, actions, sign-off."""
    kb = ws.knowledge_base()
    try:
        kb.add_hypothesis(incident_id, service="payments", cause="change", score=0.91, rank=1,
                          summary="Deploy payments v2.15.0 broke amount serialisation", status="confirmed",
                          reviewer="alice", rationale="Errors start one minute after the deploy; rollback fixed it",
                          evidence=[{"kind": "change", "service": "payments", "signal": "deploy v2.15.0",
                                     "time": "2026-11-02T14:02:00Z", "magnitude": 1.0,
                                     "explanation": "deployed 1 min before the onset"},
                                    {"kind": "metric", "service": "payments", "signal": "metric error_rate",
                                     "time": "2026-11-02T14:03:00Z", "magnitude": 41.2, "direction": "up",
                                     "explanation": "error_rate 0.16 vs 0.004 baseline"}],
                          similar=[{"incident_id": "INC-20260814-001", "title": "Payments failing after release",
                                    "service": "payments", "cause": "change", "similarity": 0.82}], who="test")
        kb.add_hypothesis(incident_id, service="checkout", cause="resource", score=0.4, rank=2,
                          summary="checkout CPU saturation", status="rejected", reviewer="bob",
                          rationale="checkout CPU stayed below 35 %; its errors follow payments by a minute",
                          who="test")
        kb.add_hypothesis(incident_id, service="frontend", cause="traffic", score=0.1, rank=3,
                          summary="traffic surge at the frontend", who="test")
        for kind, text in [("summary", "A payments release broke checkout for 27 minutes."),
                           ("impact", "About 16 % of payment attempts failed between 14:03 and 14:30 UTC."),
                           ("contributing_factor", "The canary stage checked latency, not error rate."),
                           ("lesson", "Roll back first, investigate second.")]:
            kb.add_conclusion(incident_id, kind=kind, text=text, who="alice")
        item = kb.add_action_item(incident_id, title="Gate payments canary on error rate", owner="payments-team",
                                  kind="prevent", due="2026-12-01", status="in_progress",
                                  verification={"metric": "payments/error_rate", "max": 0.01, "for": "7d"}, who="alice")
        kb.add_action_item(incident_id, title="Alert on PSP serialisation errors", owner="sre", kind="detect",
                           due="2026-11-15", who="alice")
        kb.record_check(incident_id, window_start="2026-11-07T00:00:00Z", window_end="2026-11-08T00:00:00Z",
                        verdict="violated", action_item_id=item.id, at="2026-11-08T00:05:00Z")
        kb.record_check(incident_id, window_start="2026-11-08T00:00:00Z", window_end="2026-11-09T00:00:00Z",
                        verdict="holds", action_item_id=item.id, at="2026-11-09T00:05:00Z")
        kb.add_signoff(incident_id, name="Carol", role="incident commander", who="carol")
    finally:
        kb.close()


def add_hostile_incident(ws: workbench.Workspace) -> str:
    """An incident whose every data string is hostile, with metrics, events and logs."""
    start = HOSTILE_START
    steps = pd.date_range(start - pd.Timedelta(hours=26), start + pd.Timedelta(hours=2), freq="1min")
    rows = []
    for k, service in enumerate(HOSTILE_SERVICES):
        for i, ts in enumerate(steps):
            broken = k == 0 and start <= ts < start + pd.Timedelta(minutes=40)
            rows.append((ts, service, "error_rate", (0.2 if broken else 0.01) + 0.001 * ((i * 7 + k) % 5)))
            rows.append((ts, service, "latency_p99_ms", (900.0 if broken else 300.0) + (i * 13 + k) % 17))
    metrics = pd.DataFrame(rows, columns=["timestamp", "service", "name", "value"]).assign(environment="production")
    events = pd.DataFrame({
        "timestamp": [start - pd.Timedelta(minutes=1), start + pd.Timedelta(minutes=6)],
        "service": [HOSTILE_SERVICES[0], HOSTILE_SERVICES[1]],
        "environment": "production", "kind": ["deploy", "alert"],
        "summary": [HOSTILE_SHOWN["event summary"], HOSTILE_STRINGS[3]],
    })
    bodies = [HOSTILE_SHOWN["log body"], *HOSTILE_STRINGS]
    logs = pd.DataFrame({
        "timestamp": [start + pd.Timedelta(minutes=2 + i) for i in range(len(bodies))],
        "service": HOSTILE_SERVICES[0], "environment": "production", "severity": "ERROR", "body": bodies,
    })
    tables = {name: schema.validate(name, frame, source="hostile").frame
              for name, frame in (("metrics", metrics), ("events", events), ("logs", logs))}
    ws.telemetry().write(tables)
    kb = ws.knowledge_base()
    try:
        kb.create_incident(id=HOSTILE_INCIDENT, title=HOSTILE_TITLE, started=start, services=HOSTILE_SERVICES,
                           detected=start + pd.Timedelta(minutes=7), mitigated=start + pd.Timedelta(minutes=35),
                           resolved=start + pd.Timedelta(minutes=50), severity="SEV1", who=HOSTILE_STRINGS[3],
                           environment=HOSTILE_STRINGS[4],
                           labels={"symptom": HOSTILE_STRINGS[4], "service": HOSTILE_STRINGS[3], "confidence": 0.5},
                           links=[{"title": HOSTILE_STRINGS[3], "url": 'https://example.com/"onmouseover="window.__pwned=1'},
                                  {"title": HOSTILE_STRINGS[5], "url": "mailto:sre@example.com?subject=<script>"}])
        kb.add_hypothesis(HOSTILE_INCIDENT, service=HOSTILE_SERVICES[0], cause="change", score=0.9, rank=1,
                          summary=HOSTILE_STRINGS[8], status="confirmed", reviewer=HOSTILE_STRINGS[1],
                          rationale=HOSTILE_SHOWN["rationale"],
                          evidence=[{"signal": HOSTILE_STRINGS[3], "time": start.isoformat(), "magnitude": 5.0,
                                     "explanation": HOSTILE_STRINGS[10]}, HOSTILE_STRINGS[4]],
                          similar=[{"incident_id": "INC-1", "title": HOSTILE_STRINGS[3], "similarity": 0.5}],
                          who="test")
        kb.add_hypothesis(HOSTILE_INCIDENT, service=HOSTILE_SERVICES[1], cause="resource", score=0.2,
                          summary=HOSTILE_STRINGS[7], status="rejected", reviewer=HOSTILE_STRINGS[9],
                          rationale=HOSTILE_SHOWN["rejected rationale"], who="test")
        for kind in ("summary", "impact", "contributing_factor", "lesson", "conclusion"):
            kb.add_conclusion(HOSTILE_INCIDENT, kind=kind, text=HOSTILE_SHOWN["conclusion"], author=HOSTILE_STRINGS[4],
                              who="test")
        item = kb.add_action_item(HOSTILE_INCIDENT, title=HOSTILE_SHOWN["action item"], owner=HOSTILE_STRINGS[4],
                                  kind="prevent", due="2026-01-01",
                                  verification={"metric": HOSTILE_STRINGS[3], HOSTILE_STRINGS[4]: 1}, who="test")
        kb.record_check(HOSTILE_INCIDENT, window_start=start, window_end=start + pd.Timedelta(days=1),
                        verdict="holds", action_item_id=item.id, evidence=[HOSTILE_STRINGS[3]])
        kb.add_signoff(HOSTILE_INCIDENT, name=HOSTILE_STRINGS[3], role=HOSTILE_STRINGS[9], who="test")
        kb.add_signoff(HOSTILE_INCIDENT, name=HOSTILE_STRINGS[4], role="reviewer", content_hash="sha256:earlier",
                       who="test")
    finally:
        kb.close()
    return HOSTILE_INCIDENT


def build_workspace(root: Path, start: str | None = None, end: str | None = None) -> workbench.Workspace:
    """The sample ingested (all of it, or ``[start, end)``), one sample incident reviewed, and the
    hostile incident."""
    from workbench.telemetry.ingest import ingest

    ws = workbench.init(root)
    ingest(ws, str(SAMPLE), start=None if start is None else pd.Timestamp(start),
           end=None if end is None else pd.Timestamp(end))
    review_sample_incident(ws)
    add_hostile_incident(ws)
    return ws


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> workbench.Workspace:
    return build_workspace(tmp_path_factory.mktemp("reports") / "ws")


@pytest.fixture(scope="module")
def hostile_html(ws) -> str:
    return export_report(ws, HOSTILE_INCIDENT).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- page inspection helpers

def bokeh_documents(page: str) -> list[dict]:
    """The Bokeh document JSON embedded in a saved page (HTML-escaped inside its script tag)."""
    found = re.findall(r'<script type="application/json" id="[^"]+">(.*?)</script>', page, re.S)
    return [json.loads(html.unescape(text)) for text in found]


def html_pane_texts(node) -> list[str]:
    """What each HTML pane puts into innerHTML (Panel escapes pane text once for transport)."""
    out = []
    if isinstance(node, dict):
        if str(node.get("name")).split(".")[-1] == "HTML" and isinstance(node.get("attributes"), dict) and \
                isinstance(node["attributes"].get("text"), str):
            out.append(html.unescape(node["attributes"]["text"]))
        for value in node.values():
            out.extend(html_pane_texts(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(html_pane_texts(value))
    return out


class _Dom(HTMLParser):
    """Collects the tags, attributes and text a browser would build from an HTML fragment."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(fragment: str) -> _Dom:
    dom = _Dom()
    dom.feed(fragment)
    dom.close()
    return dom


def load_urls(page: str) -> list[str]:
    """Every URL the page's own markup and Bokeh document would load (src/href of tags, CSS url(),
    imported stylesheets), checked independently of the exporter's own helper."""
    urls = []
    head_and_body = re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S | re.I)
    for tag, attrs in parse(head_and_body).tags:
        for key in ("src", "href"):
            if attrs.get(key) and tag != "a":
                urls.append(attrs[key])
    urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", head_and_body)
    urls += re.findall(r"@import\s+(?:url\()?['\"]?([^'\")\s;]+)", page)
    for doc in bokeh_documents(page):
        text = json.dumps(doc)
        urls += re.findall(r'"ImportedStyleSheet", "id": "[^"]+", "attributes": \{"url": "([^"]+)"', text)
        urls += re.findall(r'url\(\s*[\'"]?((?:https?:)?//[^\'")]+)', text)
    return urls


# --------------------------------------------------------------------------- views

@pytest.mark.parametrize("incident_id", [p.stem for p in sorted((SAMPLE / "incidents").glob("*.yaml"))])
def test_report_builds_for_every_sample_incident(ws, incident_id):
    report = Report.from_workspace(ws, incident_id)
    view = pn.panel(report)
    root = view.get_root()  # the full Bokeh model: every view rendered
    assert root is not None
    assert report.content_hash.startswith("sha256:")
    if incident_id >= "INC-20261102":  # the evaluation incidents have telemetry
        assert not report.metrics.empty and not report.events.empty
        assert not report.anomaly_scores().empty


def test_each_view_wraps_core_objects_and_renders(ws):
    kb = ws.knowledge_base()
    try:
        incident = kb.get_incident(SAMPLE_INCIDENT)
        hypotheses, conclusions = kb.list_hypotheses(SAMPLE_INCIDENT), kb.list_conclusions(SAMPLE_INCIDENT)
        items, checks = kb.list_action_items(SAMPLE_INCIDENT), kb.list_checks(incident_id=SAMPLE_INCIDENT)
        signoffs, current = kb.list_signoffs(SAMPLE_INCIDENT), kb.content_hash(SAMPLE_INCIDENT)
    finally:
        kb.close()
    store = ws.telemetry()
    events = store.query("events", "2026-11-02T13:00Z", "2026-11-02T15:10Z")
    metrics = store.query("metrics", "2026-11-02T13:00Z", "2026-11-02T15:10Z")
    views = [IncidentHeader(incident, signoffs, current), ImpactView(incident, conclusions),
             TimelineView(incident, events), MetricsView(incident, metrics, events),
             LogsView(incident, gather.log_templates(gather.incident_data(ws, SAMPLE_INCIDENT))),
             AnomalyHeatmap(incident, robust_z_scores(metrics, ("2026-11-02T13:00Z", "2026-11-02T13:40Z"),
                                                      ("2026-11-02T13:40Z", "2026-11-02T15:10Z"))),
             HypothesesView(hypotheses), ConclusionsView(conclusions), ActionItemsView(items, checks),
             LinksView(incident.links)]
    for view in views:
        assert isinstance(pn.panel(view), pn.viewable.Viewable), type(view).__name__
        pn.panel(view).get_root()

    header = IncidentHeader(incident, signoffs, current).markup()
    assert "approves the current content" in header and current in header
    assert "approved an earlier version" in IncidentHeader(incident, signoffs, "sha256:other").markup()
    assert "not signed off" in IncidentHeader(incident, (), current).markup()

    impact = ImpactView(incident, conclusions).markup()
    assert "5 min 48 s" in impact  # detected 14:08:48 - started 14:03:00

    causes = HypothesesView(hypotheses).markup()
    assert "Deploy payments v2.15.0 broke amount serialisation" in causes
    assert "its errors follow payments by a minute" in causes  # the rejected alternative's rationale
    assert "Payments failing after release" in causes  # similar past incident

    rows = ActionItemsView(items, checks).rows()
    assert "holds" in rows[0][-1] and "violated" not in rows[0][-1]  # the latest check wins
    assert "not checked yet" in rows[1][-1]
    assert "overdue" in ActionItemsView(items, checks, today=pd.Timestamp("2026-12-24").date()).rows()[1][2]

    # the core mines the logs (the view only lays the templates out)
    templates = gather.log_templates(gather.incident_data(ws, SAMPLE_INCIDENT))
    assert templates["count"].sum() > 0 and {"payments", "checkout"} <= set(templates["service"])
    assert templates["count"].is_monotonic_decreasing


def test_report_from_records_alone(ws):
    kb = ws.knowledge_base()
    try:
        incident = kb.get_incident(SAMPLE_INCIDENT)
    finally:
        kb.close()
    report = Report(incident)  # no telemetry, no decisions: every section says so
    pn.panel(report).get_root()
    assert report.anomaly_scores().empty


def test_build_report_returns_a_viewable(ws):
    assert isinstance(build_report(ws, SAMPLE_INCIDENT), pn.viewable.Viewable)
    assert isinstance(build_report(str(ws.root), SAMPLE_INCIDENT), pn.viewable.Viewable)
    with pytest.raises(NotFoundError, match="INC-NOPE"):
        build_report(ws, "INC-NOPE")


def test_the_heatmap_shows_the_engines_scores_marks_the_broken_service_and_is_pluggable(ws):
    from workbench.postmortem.gather import ROBUST_Z, SCALES
    from workbench.reports.charts import service_order

    report = Report.from_workspace(ws, SAMPLE_INCIDENT)
    scores, method, (floor, clip, onset) = report.anomaly()
    assert method.startswith("knn detector") and (floor, clip, onset) == SCALES["engine"]
    assert set(scores.columns) == {"timestamp", "service", "score"}
    during = scores[(scores["timestamp"] >= "2026-11-02T14:05Z") & (scores["timestamp"] < "2026-11-02T14:25Z")]
    before = scores[scores["timestamp"] < "2026-11-02T13:50Z"]
    payments_during = during[during["service"] == "payments"]["score"].median()
    # far beyond the detector's own cut-off (1) while payments is broken, below it before
    assert payments_during > 10 and before[before["service"] == "payments"]["score"].median() < 1
    assert during[during["service"] == "shipping"]["score"].median() < onset
    assert service_order(scores, onset)[0] == "payments"  # the origin reaches a sustained onset first
    heat = [v for v in report.views() if isinstance(v, AnomalyHeatmap)][0]
    assert heat.method == method and heat.onset == onset

    # a baseline too short for the detector falls back to robust z, and says so
    window = ("2026-11-02T13:40Z", "2026-11-02T15:10Z")
    metrics = report.metrics[report.metrics["timestamp"] >= pd.Timestamp("2026-11-02T13:35Z")]
    short = gather.IncidentData(report.incident, tuple(pd.Timestamp(t) for t in window),
                                (pd.Timestamp("2026-11-02T13:35Z"), pd.Timestamp("2026-11-02T13:40Z")), metrics=metrics,
                                detector="knn")
    fallback = gather.anomaly(short)
    assert fallback.method == ROBUST_Z and (fallback.floor, fallback.clip, fallback.onset) == SCALES["robust z"]
    assert not fallback.scores.empty

    mine = scores.assign(score=1.0)
    plugged = Report.from_workspace(ws, SAMPLE_INCIDENT, scores=mine, score_method="engine score")
    assert plugged.anomaly_scores() is mine
    heat = [v for v in plugged.views() if isinstance(v, AnomalyHeatmap)][0]
    assert heat.method == "engine score" and heat.scores is mine


def test_app_picks_an_incident(ws, tmp_path):
    from workbench.reports.app import app

    view = app(ws, HOSTILE_INCIDENT)
    picker = view[0]
    assert picker.value == HOSTILE_INCIDENT and f"{HOSTILE_INCIDENT} · {HOSTILE_TITLE}" in picker.options
    view.get_root()
    with pytest.raises(NotFoundError, match="INC-NOPE"):
        app(ws, "INC-NOPE")
    assert "No incidents" in app(workbench.init(tmp_path / "empty")).object


# --------------------------------------------------------------------------- safe

def test_safe_escapes_data_and_refuses_plain_strings():
    assert safe.escape("<b x=\"1\">'&") == "&lt;b x=&quot;1&quot;&gt;&#x27;&amp;"
    built = safe.fmt("<p>{0}</p>", "<script>x</script>")
    assert built == "<p>&lt;script&gt;x&lt;/script&gt;</p>" and isinstance(built, safe.Markup)
    assert safe.Markup("<i>") + "<b>" == "<i>&lt;b&gt;"
    assert safe.fmt("{0}", built) == built  # Markup is not escaped twice
    assert "<a" not in safe.link("x", "javascript:window.__pwned=1")
    assert 'href="https://example.com/?a=1&amp;b=&quot;2&quot;"' in safe.link("x", 'https://example.com/?a=1&b="2"')
    with pytest.raises(TypeError, match="Markup"):
        safe.pane("<b>data</b>")
    frame_pane = safe.frame(pd.DataFrame({"x": ["<script>"]}))
    assert frame_pane.escape is True


# --------------------------------------------------------------------------- export

def test_export_is_one_standalone_file_with_the_content_hash(ws):
    path = export_report(ws, SAMPLE_INCIDENT)
    assert path == ws.root / "incidents" / SAMPLE_INCIDENT / "report.html"
    page = path.read_text(encoding="utf-8")
    assert 1_000_000 < path.stat().st_size < 8_000_000
    assert "cdn.holoviz.org" not in page
    external = [u for u in load_urls(page) if re.match(r"(?i)(https?:)?//", u)]
    assert external == []
    kb = ws.knowledge_base()
    try:
        current = kb.content_hash(SAMPLE_INCIDENT)
    finally:
        kb.close()
    assert read_meta(path) == {"workbench-incident": SAMPLE_INCIDENT, "workbench-content-hash": current}
    shown = "".join(html_pane_texts(bokeh_documents(page)))
    assert f'data-testid="content-hash">{current}<' in shown


def test_export_default_and_explicit_paths(ws, tmp_path):
    out = export_report(ws, SAMPLE_INCIDENT, out=tmp_path / "sub" / "pm.html")
    assert out == tmp_path / "sub" / "pm.html" and out.is_file()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_inline_resources_replaces_cdn_stylesheets_and_icons():
    url = "https://cdn.holoviz.org/panel/9.9.9/dist/css/loading.css?v=9.9.9"
    doc = {"roots": [{"type": "object", "name": "ImportedStyleSheet", "id": "p1", "attributes": {"url": url}}]}
    page = ('<html><head><link rel="icon" href="https://cdn.holoviz.org/panel/9.9.9/dist/images/favicon.ico">'
            '<link rel="stylesheet" href="https://cdn.holoviz.org/panel/9.9.9/dist/css/dataframe.css"></head><body>'
            f'<script type="application/json" id="x">{html.escape(json.dumps(doc), quote=False)}</script></body></html>')
    out = inline_resources(page)
    assert "cdn.holoviz.org" not in out
    assert 'href="data:' in out
    assert (panel_dist() / "css" / "dataframe.css").read_text()[:40] in out
    (inlined,) = bokeh_documents(out)
    sheet = inlined["roots"][0]
    assert sheet["name"] == "InlineStyleSheet" and sheet["id"] == "p1"
    original = (panel_dist() / "css" / "loading.css").read_text()
    css = sheet["attributes"]["css"]
    assert css[:200] == original[:200]
    # the spinner image the stylesheet points at (relative to its folder) travels as a data: URL
    assert re.findall(r"url\(([^)]*)\)", original) and all(
        u.strip("'\"").startswith("data:") for u in re.findall(r"url\(([^)]*)\)", css))


# --------------------------------------------------------------------------- hostile data

def test_hostile_strings_are_escaped_in_the_exported_file(hostile_html):
    page = hostile_html
    # Outside the Bokeh JSON nothing from the data appears as markup ...
    for raw in ("<script>window.__pwned", "<img src=x onerror", 'onmouseover="window.__pwned'):
        assert raw not in page
    # ... the page title is escaped ...
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert html.unescape(title) == f"Postmortem {HOSTILE_INCIDENT}: {HOSTILE_TITLE}"
    # ... and what the HTML panes put into innerHTML holds data only as text.
    fragments = html_pane_texts(bokeh_documents(page))
    dom = parse("".join(fragments))
    tags = {tag for tag, _ in dom.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed", "svg"}
    for tag, attrs in dom.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if tag == "a":
            assert re.match(r"(https?|mailto):", attrs["href"])
    text = "".join(dom.text)
    for what, value in HOSTILE_SHOWN.items():
        assert value in text, what
    for value in HOSTILE_STRINGS:  # every log body, CRLF included, is shown as text
        assert value in text


def test_hostile_service_names_reach_charts_as_data(ws):
    report = Report.from_workspace(ws, HOSTILE_INCIDENT)
    scores = report.anomaly_scores()
    assert set(scores["service"]) == set(HOSTILE_SERVICES)
    metrics = next(v for v in report.views() if type(v).__name__ == "MetricsView")
    assert metrics.chosen_services() == HOSTILE_SERVICES
    pn.panel(report).get_root()


def test_recurrence_checks_view_lists_the_recheck_history_newest_first_and_escapes(tmp_path):
    from workbench.reports import RecurrenceChecksView
    from workbench.store import KnowledgeBase

    hostile = "<img src=x onerror=window.__pwned=1>"
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        inc = kb.create_incident(title="Payments failing", started="2026-11-02T14:03:00Z", services=["payments"],
                                 who="t")
        item = kb.add_action_item(inc.id, title="Canary", owner="erin", kind="prevent", who="t")
        kb.record_check(inc.id, window_start="2026-11-06T04:00Z", window_end="2026-11-06T10:00Z", verdict="clear",
                        score=0.12, evidence=[{"kind": "recurrence", "reasons": []}], at="2026-11-06T10:07Z")
        kb.record_check(inc.id, window_start="2026-11-06T10:07Z", window_end="2026-11-06T16:07Z", verdict="recurred",
                        score=0.7943, evidence=[{"kind": "recurrence", "reasons": ["signature", hostile],
                                                 "follow_up_id": f"{inc.id}-R1"}], at="2026-11-06T16:07Z")
        kb.record_check(inc.id, window_start="2026-11-05T16:07Z", window_end="2026-11-06T16:07Z", verdict="holds",
                        action_item_id=item.id, at="2026-11-06T16:07Z")
        checks = kb.list_checks(incident_id=inc.id)
    view = RecurrenceChecksView(checks)
    rows = view.rows()
    assert len(rows) == 2  # the action item's own check is not a recurrence check
    newest = rows[0]
    assert "recurred" in str(newest[2]) and newest[3] == "0.79" and f"{inc.id}-R1" in str(newest[5])
    assert "clear" in str(rows[1][2]) and rows[1][4] == "—"
    html = pn.panel(view).object
    assert "2 recurrence check(s)" in html and hostile not in html and "&lt;img" in html
    assert "not rechecked yet" in pn.panel(RecurrenceChecksView(())).object
