"""Review widgets as objects (no browser): set values, click buttons, observe the knowledge base.

One workspace per module with the sample ingested around INC-20261102-001 (its baseline and
window); every test that writes makes its own incident, so the tests do not depend on each other.
The browser test (tests/test_widgets_browser.py) drives the same widgets in JupyterLab.
"""
from __future__ import annotations

import html
import subprocess
import sys
from datetime import date

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

import ipywidgets as w  # noqa: E402

from conftest import HOSTILE_STRINGS, REPO, SAMPLE  # noqa: E402
import workbench
from workbench.store import KnowledgeBase  # noqa: E402
from workbench.widgets import ActionItemsEditor, ConclusionsEditor, HypothesisReview, LabelsEditor, review_tabs

SAMPLE_INCIDENT = "INC-20261102-001"
STARTED = "2026-11-02T14:03:00Z"
EVIDENCE = [{"kind": "change", "service": "payments", "signal": "deploy v2.15.0", "time": "2026-11-02T14:02:00Z",
             "magnitude": 1.0, "direction": None, "explanation": "deployed 1 min before the onset"},
            {"kind": "metric", "service": "payments", "signal": "metric error_rate", "time": STARTED,
             "magnitude": 41.2, "direction": "up", "explanation": "error_rate 0.12 vs 0.004 baseline"}]
CRITERION = {"service": "payments", "metric": "error_rate", "aggregate": "max", "comparator": "<",
             "threshold": "0.02", "duration": "7d", "window": "5min"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> workbench.Workspace:
    from workbench.telemetry.ingest import ingest

    workspace = workbench.init(tmp_path_factory.mktemp("widgets") / "ws")
    # The sample incident's 24 h baseline and its window: what the explorer and the heatmap read.
    ingest(workspace, str(SAMPLE), start=pd.Timestamp("2026-11-01T12:00:00Z"), end=pd.Timestamp("2026-11-02T16:00:00Z"))
    return workspace


@pytest.fixture
def kb(ws):
    """A second, independent connection: "someone else" and the auditor of what the widgets wrote."""
    with ws.knowledge_base() as other:
        yield other


def new_incident(kb: KnowledgeBase, title: str = "Checkout failures", services=("payments", "checkout"),
                 hypotheses: int = 2) -> tuple[str, list]:
    incident = kb.create_incident(title=title, started=STARTED, services=list(services), who="test")
    hyps = [kb.add_hypothesis(incident.id, service="payments", cause="change", score=0.9, rank=1,
                              summary="Deploy payments v2.15.0 broke serialisation", evidence=EVIDENCE, who="analysis"),
            kb.add_hypothesis(incident.id, service="checkout", cause="resource", score=0.4, rank=2,
                              summary="Checkout thread pool saturated", who="analysis")][:hypotheses]
    return incident.id, hyps


def html_values(widget) -> str:
    """Every HTML widget value under ``widget`` (what a browser would parse as markup)."""
    out = []
    if isinstance(widget, (w.HTML, w.HTMLMath)):
        out.append(widget.value)
    for child in getattr(widget, "children", ()):
        out.append(html_values(child))
    return "\n".join(out)


# --------------------------------------------------------------------------- hypothesis review

def test_confirm_and_reject_are_stored_with_history_and_survive_a_restart(ws, kb):
    iid, (h1, h2) = new_incident(kb)
    review = HypothesisReview(ws, iid)
    review.reviewer.value = "alice"
    review.card(h1.id).rationale.value = "Errors start one minute after the deploy; rollback fixed it"
    review.card(h1.id).confirm_button.click()
    assert review.status.kind == "ok", review.status.text
    review.card(h2.id).rationale.value = "Pool usage stayed at baseline"
    review.card(h2.id).reject_button.click()
    assert review.status.kind == "ok", review.status.text

    stored = {h.id: h for h in kb.list_hypotheses(iid)}
    assert (stored[h1.id].status, stored[h1.id].reviewer, stored[h1.id].version) == ("confirmed", "alice", 2)
    assert stored[h1.id].rationale == "Errors start one minute after the deploy; rollback fixed it"
    assert stored[h2.id].status == "rejected"
    changes = [(e.field, e.old, e.new, e.who) for e in kb.history("hypothesis", h1.id) if e.field == "status"]
    assert changes == [("status", "proposed", "confirmed", "alice")]
    review.close()

    # A new kernel: a fresh knowledge base connection and a fresh widget show the decisions.
    with KnowledgeBase(ws.database_url) as fresh:
        again = HypothesisReview(ws, iid, kb=fresh)
        confirmed, rejected = again.card(h1.id), again.card(h2.id)
        assert confirmed.hypothesis.status == "confirmed" and confirmed.confirm_button.disabled
        assert "alice" in confirmed.summary.value and "rollback fixed it" in confirmed.summary.value
        assert "proposed → confirmed" in confirmed.summary.value  # the decision history
        # the rejected one stays on the page, as an alternative, and can be reopened
        assert rejected.hypothesis.status == "rejected" and not rejected.reopen_button.disabled
        assert "Rejected (kept as the alternatives considered)" in html_values(again.widget)


@pytest.mark.parametrize("reviewer, rationale, missing", [
    ("", "a reason", "reviewer name"), ("bob", "", "rationale"), ("bob", "   \n", "rationale"),
    ("  ", "", "reviewer name and rationale")])
def test_a_decision_without_reviewer_or_rationale_writes_nothing(ws, kb, reviewer, rationale, missing):
    iid, (h1, _) = new_incident(kb)
    before = len(kb.history(incident_id=iid))
    review = HypothesisReview(ws, iid, kb=kb)
    review.reviewer.value = reviewer
    card = review.card(h1.id)
    card.rationale.value = rationale
    card.confirm_button.click()
    assert review.status.kind == "error"
    assert f"{missing} {'are' if ' and ' in missing else 'is'} required" in review.status.text
    assert card.status.text == review.status.text  # also shown beside the buttons
    assert kb.list_hypotheses(iid)[0].status == "proposed" and kb.list_hypotheses(iid)[0].version == 1
    assert len(kb.history(incident_id=iid)) == before


def test_a_stale_version_shows_the_conflict_reloads_and_overwrites_nothing(ws, kb):
    iid, (h1, _) = new_incident(kb)
    review = HypothesisReview(ws, iid, reviewer="alice")
    # someone else decides while the page is open
    kb.update_hypothesis(h1.id, 1, who="carol", status="rejected", reviewer="carol", rationale="carol's reason")
    review.card(h1.id).rationale.value = "my reason"
    review.card(h1.id).confirm_button.click()
    assert review.status.kind == "error"
    assert "someone else changed" in review.status.text and "version 2, not 1" in review.status.text
    stored = kb.list_hypotheses(iid)[0]
    assert (stored.status, stored.reviewer, stored.rationale, stored.version) == \
        ("rejected", "carol", "carol's reason", 2)
    # reloaded: the card shows carol's decision, keeps what alice typed, and a new click works
    card = review.card(h1.id)
    assert card.hypothesis.version == 2 and "carol" in card.summary.value
    assert card.rationale.value == "my reason"
    card.confirm_button.click()
    assert review.status.kind == "ok", review.status.text
    assert kb.list_hypotheses(iid)[0].status == "confirmed"
    review.close()


def test_a_hypothesis_removed_by_a_reanalysis_is_reported_not_raised(ws, kb):
    iid, (h1, _) = new_incident(kb)
    review = HypothesisReview(ws, iid, reviewer="alice", kb=kb)
    kb.replace_proposed_hypotheses(iid, [{"service": "cart", "cause": "code", "summary": "new ranking",
                                          "score": 0.5, "rank": 1}], who="analysis")
    review.card(h1.id).rationale.value = "reason"
    review.card(h1.id).confirm_button.click()
    assert review.status.kind == "error" and "no longer exists" in review.status.text
    assert [c.hypothesis.summary for c in review.cards] == ["new ranking"]


# --------------------------------------------------------------------------- action items

def _fill(editor: ActionItemsEditor, **criterion) -> None:
    editor.title.value, editor.owner.value, editor.who.value = "Add a payments canary", "payments-team", "alice"
    editor.due.value, editor.kind.value = date(2026, 12, 1), "prevent"
    for key, value in {**CRITERION, **criterion}.items():
        getattr(editor, key).value = value


@pytest.mark.parametrize("bad, field", [({"comparator": "=>"}, "comparator"), ({"threshold": "abc"}, "threshold"),
                                        ({"duration": "a week"}, "duration"), ({"metric": " "}, "metric"),
                                        ({"window": "2d", "duration": "1d"}, "window")])
def test_an_invalid_criterion_shows_the_reason_and_saves_nothing(ws, kb, bad, field):
    iid, _ = new_incident(kb, hypotheses=0)
    editor = ActionItemsEditor(ws, iid, kb=kb)
    _fill(editor, **bad)
    assert editor.save() is None
    assert editor.status.kind == "error" and f"field {field!r}" in editor.status.text, editor.status.text
    assert kb.list_action_items(iid) == []
    assert not [e for e in kb.history(incident_id=iid) if e.entity == "action_item"]


def test_a_valid_action_item_is_stored_with_its_criterion_then_edited(ws, kb):
    iid, _ = new_incident(kb, hypotheses=0)
    editor = ActionItemsEditor(ws, iid)
    assert "error_rate" in editor.metric.options  # suggestions from the telemetry
    _fill(editor)
    editor.save_button.click()
    assert editor.status.kind == "ok", editor.status.text
    (item,) = kb.list_action_items(iid)
    assert (item.title, item.owner, item.kind, item.due, item.status) == \
        ("Add a payments canary", "payments-team", "prevent", date(2026, 12, 1), "open")
    assert item.verification == {"signal": "metric", "service": "payments", "metric": "error_rate",
                                 "aggregate": "max", "comparator": "<", "threshold": 0.02, "duration": "7d",
                                 "window": "5min"}
    assert editor.select.value == item.id and "max error_rate of payments &lt; 0.02" in editor.list_html.value

    editor.item_status.value = "in_progress"
    editor.verify.value = False
    assert editor.save().version == 2
    item = kb.list_action_items(iid)[0]
    assert (item.status, item.verification) == ("in_progress", None)
    assert {e.field for e in kb.history("action_item", item.id)} == {"*", "status", "verification"}

    # someone else edits; this form is stale: nothing of it is written
    kb.update_action_item(item.id, 2, "bob", owner="sre-team")
    editor.title.value = "Renamed by alice"
    assert editor.save() is None
    assert "someone else changed" in editor.status.text
    item = kb.list_action_items(iid)[0]
    assert (item.title, item.owner) == ("Add a payments canary", "sre-team")
    assert editor.owner.value == "sre-team"  # the form now shows the current version
    editor.close()


def test_editing_an_item_keeps_its_template_criterion(ws, kb):
    iid, _ = new_incident(kb, hypotheses=0)
    template = {"signal": "log_template", "service": "payments", "template": "InvalidFormatException",
                "comparator": "<", "threshold": 1, "duration": "7d", "window": "1h"}
    stored = kb.add_action_item(iid, title="Contract test for amounts", owner="payments-team", kind="prevent",
                                verification=template, who="carol")
    editor = ActionItemsEditor(ws, iid, kb=kb)
    editor.who.value = "alice"
    editor.select.value = stored.id
    assert "log_template criterion" in editor.status.text and "InvalidFormatException" in editor.status.text
    editor.item_status.value = "done"
    assert editor.save() is not None, editor.status.text
    item = kb.list_action_items(iid)[0]
    assert item.status == "done" and item.verification["template"] == "InvalidFormatException"
    assert item.verification["signal"] == "log_template"
    editor.verify.value = False  # a deliberate removal still removes it
    editor.save()
    assert kb.list_action_items(iid)[0].verification is None
    editor.close()


def test_an_action_item_needs_the_editor_name(ws, kb):
    iid, _ = new_incident(kb, hypotheses=0)
    editor = ActionItemsEditor(ws, iid, kb=kb)
    _fill(editor)
    editor.who.value = " "
    assert editor.save() is None and "your name is required" in editor.status.text
    editor.who.value, editor.owner.value = "alice", ""
    assert editor.save() is None and "'owner'" in editor.status.text  # the store's own check, shown
    assert kb.list_action_items(iid) == []


# --------------------------------------------------------------------------- conclusions and labels

def test_labels_are_edited_validated_and_reloaded(ws, kb):
    iid, _ = new_incident(kb, hypotheses=0)
    editor = LabelsEditor(ws, iid, who="alice", kb=kb)
    assert "payments" in editor.service.options
    editor.symptom.value, editor.service.value, editor.environment.value = "errors", "payments", "production"
    editor.confidence.value = "1.5"
    assert editor.save() is None and "between 0 and 1" in editor.status.text
    assert kb.get_incident(iid).labels == {}
    editor.confidence.value = "0.8"
    editor.save_button.click()
    assert editor.status.kind == "ok", editor.status.text
    assert kb.get_incident(iid).labels == {"symptom": "errors", "service": "payments", "environment": "production",
                                           "confidence": 0.8}
    assert LabelsEditor(ws, iid, kb=kb).confidence.value == "0.8"
    editor.environment.value = ""  # an empty field removes the label
    editor.save()
    assert "environment" not in kb.get_incident(iid).labels
    assert [e.field for e in kb.history("incident", iid) if e.field == "labels"] == ["labels", "labels"]
    # someone else relabels meanwhile: this stale form writes nothing and shows their labels
    kb.update_incident(iid, kb.get_incident(iid).version, "bob", labels={"symptom": "latency"})
    editor.symptom.value = "saturation"
    assert editor.save() is None and "someone else changed" in editor.status.text
    assert kb.get_incident(iid).labels == {"symptom": "latency"} and editor.symptom.value == "latency"


def test_conclusions_are_added_and_edited_with_version_checks(ws, kb):
    iid, _ = new_incident(kb, hypotheses=0)
    editor = ConclusionsEditor(ws, iid, who="alice", kb=kb)
    editor.kind.value, editor.text.value = "lesson", "Canary payments deploys"
    first = editor.save()
    assert first is not None and kb.list_conclusions(iid)[0].author == "alice"
    editor.text.value = "Canary every payments deploy for 30 minutes"
    assert editor.save().version == 2
    kb.update_conclusion(first.id, 2, "bob", kind="contributing_factor")
    editor.text.value = "stale edit"
    assert editor.save() is None and "someone else changed" in editor.status.text
    stored = kb.list_conclusions(iid)[0]
    assert (stored.kind, stored.text) == ("contributing_factor", "Canary every payments deploy for 30 minutes")
    editor.text.value = " "
    assert editor.save() is None and "text is empty" in editor.status.text


def test_review_tabs_hold_the_four_editors(ws, kb):
    iid, _ = new_incident(kb)
    tabs = review_tabs(ws, iid, who="alice")
    assert [type(e).__name__ for e in tabs.editors] == ["HypothesisReview", "ConclusionsEditor", "LabelsEditor",
                                                        "ActionItemsEditor"]
    assert tabs.editors[0].reviewer.value == "alice"
    for e in tabs.editors:
        e.close()


# --------------------------------------------------------------------------- shown without a kernel

REPRS = ("VBox(", "Tab(", "HBox(", "HTML(")


def test_every_widget_displays_a_static_view_beside_the_live_one(ws, kb):
    from workbench.widgets import HypothesisExplorer, LazyWidget

    iid, (h1, _) = new_incident(kb)
    kb.add_conclusion(iid, kind="lesson", text="Canary the payments deploys", who="alice")
    built = []
    lazy = LazyWidget(lambda: built.append(1) or w.HTML(value="x"), "Heatmap explorer", "Click a cell.")
    shown = [HypothesisReview(ws, iid), HypothesisExplorer(ws, iid, render=False), ConclusionsEditor(ws, iid),
             LabelsEditor(ws, iid), ActionItemsEditor(ws, iid), review_tabs(ws, iid), lazy]
    for obj in shown:
        bundle = obj._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle  # live in the kernel that made it
        assert bundle["text/html"] and not bundle["text/plain"].startswith(REPRS), type(obj).__name__
        assert "with a kernel" in bundle["text/html"] or "Hypotheses" in bundle["text/html"]
    review_html = shown[0]._repr_mimebundle_()["text/html"]
    assert h1.summary in review_html and ">proposed<" in review_html  # the hypotheses with their review state
    assert "Canary the payments deploys" in shown[5]._repr_mimebundle_()["text/html"]
    assert built == []  # the lazy widget builds nothing until opened
    lazy.open()
    lazy.open()
    assert built == [1] and lazy.button.disabled


def test_the_hypothesis_explorer_shows_a_hypothesis_against_its_surroundings_and_decides_through_the_core(ws, kb):
    from workbench.postmortem import chapters
    from workbench.widgets import HypothesisExplorer

    chapters.analysis(ws, SAMPLE_INCIDENT)  # what the notebook's cells above the explorer did: proposals stored
    explorer = HypothesisExplorer(ws, SAMPLE_INCIDENT, render=False)
    top = explorer.hypothesis()
    assert (top.service, top.cause) == ("payments", "change")
    assert explorer.charts == []  # nothing drawn before it is asked
    assert explorer.show() and explorer.status.kind == "ok"
    assert len(explorer.charts) >= 2  # its evidence series, and its log templates over time
    callers = explorer.neighbours[explorer.neighbours["relation"] == "calls it"]
    assert "checkout" in set(callers["service"])
    lag = callers.set_index("service").loc["checkout", "lag_minutes"]
    assert 0 < lag <= 5  # checkout followed payments
    appeared = explorer.templates[explorer.templates["change"] == "appeared"]
    assert appeared["template"].str.contains("InvalidFormatException").any()
    assert "Similar past incidents" in explorer.facts.value and "Services around payments" in explorer.facts.value
    assert explorer.show(service="checkout", metric="latency_p99_ms") and len(explorer.charts) >= 1
    assert not explorer.show(service="nope") and "nope" in explorer.status.text

    explorer.choice.value = top.id
    assert explorer.decide("confirmed", rationale="", reviewer="carol") is None  # nothing without a rationale
    kb.update_hypothesis(top.id, top.version, who="bob", summary=top.summary + " (edited)")  # someone else
    assert explorer.decide("confirmed", rationale="stale", reviewer="carol") is None
    assert "someone else changed" in explorer.status.text
    stored = explorer.decide("confirmed", rationale="Errors start 2 min after the deploy", reviewer="carol")
    assert stored is not None and explorer.status.kind == "ok"
    again = [h for h in kb.list_hypotheses(SAMPLE_INCIDENT) if h.id == top.id][0]
    assert (again.status, again.reviewer, again.rationale) == ("confirmed", "carol", "Errors start 2 min after the deploy")
    changes = [(e.old, e.new, e.who) for e in kb.history("hypothesis", top.id) if e.field == "status"]
    assert changes[-1] == ("proposed", "confirmed", "carol")


# --------------------------------------------------------------------------- explorer and heatmap

@pytest.fixture(scope="module")
def explorer(ws):
    pytest.importorskip("holoviews")
    from workbench.widgets import TelemetryExplorer

    return TelemetryExplorer(ws, SAMPLE_INCIDENT)


def test_explorer_draws_metrics_scores_and_marks_the_incident(ws, explorer):
    import holoviews as hv

    assert explorer.show(["payments"], ["error_rate"]), explorer.status.text
    assert set(explorer.charts) == {"score", "metric:error_rate", "contribution:error_rate"}
    started = pd.Timestamp(STARTED).tz_convert(None)
    raw = explorer.charts["metric:error_rate"]
    spans = [el for el in raw.traverse(lambda x: x, [hv.VSpan])]
    assert any(pd.Timestamp(s.data[0]) == started for s in spans)  # the incident shaded, naive UTC
    curves = raw.traverse(lambda x: x, [hv.Curve])
    assert curves and all(c.data["time"].dt.tz is None for c in curves)  # naive UTC at the plotting edge
    # the payments deploy just before the start is a dashed change line
    changes = [pd.Timestamp(t) for el in raw.traverse(lambda x: x, [hv.VLines]) for t in el.data["x"]]
    assert any(started - pd.Timedelta(minutes=10) <= t <= started for t in changes)
    # scored beside the raw series: the onset is near the start and marked on every chart
    onset = explorer.detections["payments"].onset
    assert onset is not None and abs(onset - pd.Timestamp(STARTED)) <= pd.Timedelta(minutes=10)
    for key in ("score", "metric:error_rate", "contribution:error_rate"):
        lines = [pd.Timestamp(t) for el in explorer.charts[key].traverse(lambda x: x, [hv.VLines])
                 for t in el.data["x"]]
        assert onset.tz_convert(None) in lines, key
    assert "payments" in explorer.summary.value and "error_rate up" in explorer.summary.value
    figures = {k: hv.render(c, backend="bokeh") for k, c in explorer.charts.items()}  # what the notebook shows
    assert figures["score"].title.text.startswith("anomaly score") and figures["score"].width == 940
    assert figures["metric:error_rate"].title.text == "error_rate"
    assert all(f.xaxis[0].axis_label == "time (UTC)" and f.width >= 470 for f in figures.values())


def test_explorer_refuses_bad_ranges_with_a_message(explorer):
    assert not explorer.show(["payments"], start="yesterday-ish")
    assert explorer.status.kind == "error" and "From" in explorer.status.text
    assert not explorer.show(["payments"], start="2026-11-02 15:00", end="2026-11-02 14:00")
    assert "range is empty" in explorer.status.text
    assert not explorer.show(["no-such-service"])
    explorer.show(["payments"], start="2026-11-02 13:03", end="2026-11-02 15:10")


def test_explorer_charts_log_templates(explorer):
    assert explorer.show(["payments"], mode="log templates"), explorer.status.text
    assert len(explorer.template_table) > 0 and set(explorer.template_table["service"]) == {"payments"}
    assert set(explorer.charts) == {"templates"}
    explorer.show(mode="metrics")


def test_heatmap_click_opens_the_service_in_the_explorer(ws, explorer):
    from workbench.widgets import AnomalyHeatmapExplorer

    heat = AnomalyHeatmapExplorer(ws, SAMPLE_INCIDENT, explorer=explorer)
    assert heat.heat.data["time"].dt.tz is None  # naive UTC, or HoloViews draws an empty heatmap
    assert set(heat.order) >= {"payments", "checkout"} and heat.scores["score"].max() > 5
    import holoviews as hv
    from bokeh.models import TapTool

    figure = hv.render(heat.chart, backend="bokeh")
    assert any(isinstance(t, TapTool) for t in figure.tools) and figure.width == 940
    cells = next(r for r in figure.renderers if type(getattr(r, "glyph", None)).__name__ == "Rect")
    assert cells.nonselection_glyph.fill_alpha == 1.0  # a click does not fade the other cells
    assert heat.on_select("checkout", "2026-11-02 14:05")
    assert explorer.services.value == ("checkout",) and "metric:error_rate" in explorer.charts
    assert explorer.focus == pd.Timestamp("2026-11-02T14:05:00Z")
    # the click itself: a Tap event on the chart (naive UTC x, service y) reaches the same callback
    heat.tap.event(x=pd.Timestamp("2026-11-02 14:07:21").to_datetime64(), y="payments")  # inside the 14:07 cell
    assert heat.selection == ("payments", pd.Timestamp("2026-11-02T14:07:00Z"))
    heat.tap.event(x=pd.Timestamp("2026-11-02 14:07:49").value / 1e6, y="payments")  # Bokeh's ms since the epoch
    assert heat.selection == ("payments", pd.Timestamp("2026-11-02T14:08:00Z"))
    assert explorer.services.value == ("payments",)
    assert not heat.on_select("nowhere", None) and "nowhere" in heat.status.text

    # the template's cell: a button that builds this heatmap (and its explorer) only when pressed
    from workbench.widgets import anomaly_heatmap

    lazy = anomaly_heatmap(ws, SAMPLE_INCIDENT, lazy=True, explorer=explorer)
    assert lazy.built is None
    assert isinstance(lazy.open(), AnomalyHeatmapExplorer) and lazy.built.explorer is explorer


def test_importing_the_widgets_does_not_import_panel():
    code = "import sys, workbench.widgets; print('panel' in sys.modules, 'holoviews' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- hostile strings

def test_hostile_strings_are_shown_escaped_and_stored_exactly(ws, kb):
    title = " | ".join(s for s in HOSTILE_STRINGS if "\r" not in s)
    script, img = HOSTILE_STRINGS[3], HOSTILE_STRINGS[4]
    incident = kb.create_incident(title=title, started=STARTED, services=[script, img], who="test")
    h = kb.add_hypothesis(incident.id, service=script, cause="code", score=0.5, rank=1, summary=img,
                          evidence=[{"kind": "log", "service": img, "signal": script, "time": STARTED,
                                     "magnitude": 2.0, "explanation": HOSTILE_STRINGS[6]}],
                          similar=[{"incident_id": "INC-1", "title": script, "cause": "code", "service": img,
                                    "similarity": 0.5}], who="test")
    kb.add_conclusion(incident.id, kind="lesson", text=script, who=img)
    kb.add_action_item(incident.id, title=script, owner=img, kind="detect", who="test",
                       verification={"signal": "metric", "service": script, "metric": img, "aggregate": "max",
                                     "comparator": "<", "threshold": 1, "duration": "1d"})
    kb.update_incident(incident.id, 1, "test", labels={"symptom": script})

    review = HypothesisReview(ws, incident.id, kb=kb)
    review.reviewer.value = img  # typed by a user: data, stored exactly
    review.card(h.id).rationale.value = script
    review.card(h.id).reject_button.click()
    assert review.status.kind == "ok", review.status.text
    stored = kb.list_hypotheses(incident.id)[0]
    assert (stored.reviewer, stored.rationale) == (img, script)

    from workbench.widgets import TelemetryExplorer

    widgets = [review, ConclusionsEditor(ws, incident.id, kb=kb), LabelsEditor(ws, incident.id, kb=kb),
               ActionItemsEditor(ws, incident.id, kb=kb), TelemetryExplorer(ws, incident.id, kb=kb)]
    widgets[-1].show([script])  # no telemetry for it: the message names it, escaped
    shown = "\n".join(html_values(x.widget) for x in widgets)
    for raw in ("<script>", "<img src=x", 'onerror="'):
        assert raw not in shown
    for text in (html.escape(script), html.escape(img), html.escape(title)):
        assert text in shown
