"""The review pack as the team sees it: `workbench review-pack` writes one offline HTML file that
opens in a real headless Chromium with zero external requests, no console errors, every chart
painted and hostile strings shown as text (never run); review-signoff binds its hash; the served
app's Review tab builds the same pack with sortable tables."""
from __future__ import annotations

import json

import pytest

import workbench
from conftest import HOSTILE_STRINGS, SAMPLE, require_browser
from workbench.cli import main
from workbench.store import KnowledgeBase

HOSTILE = " | ".join(s for s in HOSTILE_STRINGS if "\r" not in s)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    require_browser("panel")
    ws = workbench.init(tmp_path_factory.mktemp("pack-browser") / "ws")
    with KnowledgeBase(ws.database_url) as kb:
        for path in sorted((SAMPLE / "incidents").glob("*.yaml")):
            kb.import_incident(path, who="test")
        kb.create_incident(id="INC-HOSTILE-9", title=HOSTILE, started="2026-11-10T10:00:00Z",
                           detected="2026-11-10T10:06:00Z", resolved="2026-11-10T11:00:00Z",
                           services=[HOSTILE_STRINGS[3], "payments"], who=HOSTILE_STRINGS[4])
        kb.add_hypothesis("INC-HOSTILE-9", service=HOSTILE_STRINGS[4], cause="code", summary=HOSTILE, score=0.9,
                          rank=2, status="confirmed", reviewer=HOSTILE_STRINGS[3], rationale=HOSTILE, who="test")
        item = kb.add_action_item("INC-HOSTILE-9", title=HOSTILE_STRINGS[3], owner=HOSTILE_STRINGS[4], kind="prevent",
                                  due="2026-11-12", who="test")
        for day, verdict in (("2026-11-13", "holds"), ("2026-11-14", "violated"), ("2026-11-15", "no_data")):
            kb.record_check("INC-HOSTILE-9", window_start=f"{day}T00:00:00Z", window_end=f"{day}T06:00:00Z",
                            verdict=verdict, score=0.1, action_item_id=item.id, at=f"{day}T06:00:00Z",
                            evidence=[{"explanation": HOSTILE_STRINGS[5]}])
        kb.record_check("INC-HOSTILE-9", window_start="2026-11-16T00:00:00Z", window_end="2026-11-16T06:00:00Z",
                        verdict="recurred", score=0.8, at="2026-11-16T06:00:00Z", evidence=[
                            {"kind": "recurrence", "reasons": [HOSTILE_STRINGS[4]]},
                            {"kind": "suggestion", "suggestion": {"kind": "runbook", "key": HOSTILE_STRINGS[8],
                                                                  "text": HOSTILE_STRINGS[3], "reason": "recurrence"}}])
    return ws


@pytest.fixture(scope="module")
def written(ws, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack-out") / "pack.html"
    args = ["review-pack", "--since", "2026-10-01", "--until", "2026-12-01", "--out", str(out), "-w", str(ws.root),
            "--json"]
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(args) == 0
    return out, json.loads(buffer.getvalue())


def test_the_pack_renders_offline_with_charts_and_hostile_strings_as_text(browser, written):
    from test_reports_browser import CANVAS_STATE

    path, data = written
    assert data["sections"]["incidents"]["count"] == 7 and data["sections"]["fixes"]["count"] == 1
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    external, errors = [], []
    page.route("**/*", lambda route: (external.append(route.request.url), route.abort())
               if not route.request.url.startswith(("file:", "data:", "blob:")) else route.continue_())
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(path.resolve().as_uri())
        page.get_by_test_id("pack-title").wait_for(timeout=20_000)
        page.wait_for_function(f"() => {{ const c = ({CANVAS_STATE})(); "
                               f"return c.length >= 4 && c.every(x => x.w > 0 && x.h > 0) && "
                               f"c.filter(x => x.painted).length >= 4; }}", timeout=20_000)
        assert external == [] and errors == []
        assert page.get_by_test_id("content-hash").text_content() == data["content_hash"]
        assert page.evaluate("document.querySelector('meta[name=workbench-content-hash]').content") == data["content_hash"]
        assert page.get_by_test_id("pack-incident-count").text_content() == "7"
        assert page.get_by_test_id("fix-title").text_content() == HOSTILE_STRINGS[3]
        body = page.evaluate("""() => { const parts = []; const visit = (root) => {
            for (const el of root.querySelectorAll('*')) { if (el.shadowRoot) visit(el.shadowRoot); }
            parts.push(root.textContent || ''); }; visit(document); return parts.join('\\n'); }""")
        for value in (HOSTILE, HOSTILE_STRINGS[4], HOSTILE_STRINGS[8], HOSTILE_STRINGS[5]):
            assert value in body
        assert page.evaluate("window.__pwned") is None
    finally:
        page.close()


def test_review_signoff_binds_the_written_hash(ws, written, tmp_path, capsys):
    path, data = written
    assert main(["review-signoff", str(path), "--as", "carol", "--role", "review lead", "-w", str(ws.root)]) == 0
    assert data["content_hash"] in capsys.readouterr().out
    with ws.knowledge_base() as kb:
        [signed] = kb.list_review_signoffs(data["period"]["key"])
        assert signed.content_hash == data["content_hash"] and signed.name == "carol"
        item = kb.list_action_items("INC-HOSTILE-9")[0]
        kb.update_action_item(item.id, item.version, "erin", status="open", owner="erin")  # reopened, re-owned
    assert main(["review-signoff", str(path), "--as", "erin", "--role", "sre", "-w", str(ws.root)]) == 2
    assert "changed since it was written" in capsys.readouterr().err


def test_suggestions_are_accepted_and_rejected_from_the_command_line(ws, capsys):
    key = HOSTILE_STRINGS[8]
    assert main(["suggestion", "list", "-w", str(ws.root), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["key"], row["status"]) == (key, "proposed")
    assert main(["suggestion", "accept", "INC-HOSTILE-9", key, "--owner", "erin", "--as", "carol", "--due",
                 "2026-12-20", "-w", str(ws.root)]) == 0
    assert main(["suggestion", "accept", "INC-HOSTILE-9", key, "--owner", "x", "--as", "y", "-w", str(ws.root)]) == 2
    assert "already accepted" in capsys.readouterr().err
    with ws.knowledge_base() as kb:
        decided = kb.list_suggestion_decisions("INC-HOSTILE-9")
        assert [(d.status, d.who) for d in decided] == [("accepted", "carol")]
        item = kb.get_action_item(decided[0].action_item_id)
        assert (item.title, item.kind, item.owner) == (HOSTILE_STRINGS[3], "mitigate", "erin")


def test_the_cron_form_queues_a_notification_with_the_file(ws, tmp_path, capsys):
    with open(ws.root / "workbench.toml", "a", encoding="utf-8") as fh:
        fh.write('\n[webhooks.ops]\nurl = "https://hooks.example.com/x"\nkinds = ["review_pack"]\n')
    out = tmp_path / "last.html"
    assert main(["review-pack", "--last", "30", "--notify", "--out", str(out), "-w", str(ws.root)]) == 0
    assert "queued 1 review_pack notification" in capsys.readouterr().out
    with ws.knowledge_base() as kb:
        [note] = kb.list_outbox(kind="review_pack")
    assert note.payload["details"]["path"] == str(out.resolve()) and note.target == "ops"
    fixed = ["review-pack", "--since", "2026-10-01", "--until", "2026-12-01", "--notify", "--out", str(out),
             "-w", str(ws.root)]
    assert main(fixed) == 0 and main(fixed) == 0  # the same pack written twice is announced once
    with ws.knowledge_base() as kb:
        assert len(kb.list_outbox(kind="review_pack")) == 2
    assert main(["review-pack", "--since", "2026-10-01", "--last", "3", "-w", str(ws.root)]) == 2


def test_the_served_apps_review_tab_has_sortable_tables(ws):
    import panel as pn

    from workbench.reports.app import TABS, WorkbenchApp
    from workbench.reports.review import ReviewTab

    assert TABS[-1] == "Review"
    tab = ReviewTab(ws, ["payments"])
    view = tab.view(365, "")
    tables = [o for o in view.select(pn.widgets.Tabulator)]
    assert tables and any(HOSTILE in set(t.value.iloc[:, 1]) for t in tables if "title" in t.value.columns)
    with ws.knowledge_base() as kb:
        session = WorkbenchApp(ws, kb.list_incidents())
    assert session._review() is not None


def test_the_review_tab_of_workbench_serve_in_chromium(browser, ws, tmp_path):
    from conftest import stop_process
    from test_app_browser import Session, start_cli

    proc, origin, _ = start_cli(["-w", str(ws.root)], tmp_path / "serve.log")
    s = Session(browser, origin)
    try:
        s.page.goto(f"http://{origin}/")
        s.page.get_by_test_id("incident-count").wait_for(timeout=30_000)
        s.tab("Review")
        s.page.get_by_test_id("pack-title").wait_for(timeout=30_000)
        titles = s.page.locator(".tabulator-row [tabulator-field=title]").all_text_contents()
        assert HOSTILE in titles  # sortable tables, cells as text
        s.page.locator(".tabulator-col", has_text="MTTR").first.click()  # sorting runs in the page
        s.page.wait_for_timeout(300)
        s.screenshot("app-review.png")
        s.check_clean()
    finally:
        s.page.close()
        stop_process(proc)
