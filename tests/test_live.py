"""Per incident, on demand: the window from the workspace's live sources (real Prometheus and
Alertmanager from tests/prom.py), fetched once, recorded in the incident's history, refreshed on
request; a source that is down changes nothing; the whole path ranks like the file-ingested sample."""
from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest

import prom
from conftest import SAMPLE
from workbench.cli import main
from workbench.errors import SourceError
from workbench.telemetry.ingest import ingest
from workbench.telemetry.live import fetch_incident, fetch_window

pytestmark = pytest.mark.prometheus

#: The sample's series only (the backfill also holds the source tests' synthetic shop_* series).
SAMPLE_SERIES = '{environment="production", __name__!~"shop_.*"}'
#: The bad deploy, with a window override whose lead-in (from 11:00) is the baseline: all inside
#: the backfilled 6 h.
INCIDENT = {"title": "Checkout failures and slow order placement", "started": "2026-11-02T14:03:00Z",
            "mitigated": "2026-11-02T14:30:00Z", "resolved": "2026-11-02T14:55:00Z",
            "window_start": "2026-11-02T11:00:00Z", "window_end": "2026-11-02T15:10:00Z"}
WINDOW = (pd.Timestamp(INCIDENT["window_start"]), pd.Timestamp(INCIDENT["window_end"]))


def _configure(ws, **tables: dict) -> None:
    lines = []
    for name, table in tables.items():
        lines.append(f"\n[sources.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    with open(ws.root / "workbench.toml", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _reopen(ws):
    import workbench

    return workbench.open_workspace(ws.root)


def _incident(ws, **overrides) -> str:
    kb = ws.knowledge_base()
    try:
        fields = {**INCIDENT, **overrides}
        return kb.create_incident(services=["payments", "checkout"], severity="SEV2", who="test", **fields).id
    finally:
        kb.close()


def _state(ws, incident_id):
    kb = ws.knowledge_base()
    try:
        return kb.get_incident(incident_id).to_dict(), len(kb.history(incident_id=incident_id))
    finally:
        kb.close()


def _evidence(ws, incident_id):
    kb = ws.knowledge_base()
    try:
        return [h.new for h in kb.history(entity="incident", entity_id=incident_id) if h.field == "evidence"]
    finally:
        kb.close()


def test_the_window_is_fetched_once_recorded_and_refreshed_on_request(prometheus, workspace):
    _configure(workspace, shop={"url": f"prometheus:{prometheus.url}", "selectors": ['{service="payments"}']})
    ws = _reopen(workspace)
    iid = _incident(ws)
    first = fetch_incident(ws, iid)
    (part,) = first.sources
    assert not part.cached and (part.start, part.end) == WINDOW == fetch_window(INCIDENT)
    stored = ws.telemetry().counts()["metrics"]
    assert first.rows_added["metrics"] == stored == part.rows_read["metrics"] > 0
    (record,) = _evidence(ws, iid)
    assert record["source"] == "shop" and record["url"] == f"prometheus:{prometheus.url}"
    assert (record["start"], record["end"]) == ("2026-11-02T11:00:00Z", "2026-11-02T15:10:00Z")
    assert record["rows"] == {"metrics": stored}

    again = fetch_incident(ws, iid)
    assert again.sources[0].cached and not again.rows_added and len(_evidence(ws, iid)) == 1
    refreshed = fetch_incident(ws, iid, refresh=True)
    assert not refreshed.sources[0].cached and len(_evidence(ws, iid)) == 2
    assert ws.telemetry().counts()["metrics"] == stored  # replaced, not duplicated


def test_a_source_that_is_down_changes_nothing(workspace, capsys):
    server = prom.start_prometheus()
    url = server.url
    server.stop()
    _configure(workspace, shop={"url": f"prometheus:{url}", "retries": 0})
    ws = _reopen(workspace)
    iid = _incident(ws)
    before = _state(ws, iid)
    with pytest.raises(SourceError, match=f"prometheus:{url}.*cannot connect"):
        fetch_incident(ws, iid)
    assert _state(ws, iid) == before and sum(ws.telemetry().counts().values()) == 0
    assert main(["analyze", iid, "-w", str(ws.root)]) == 2
    err = capsys.readouterr().err
    assert url in err and "--offline" in err and "nothing was changed" in err
    assert _state(ws, iid) == before
    # What the store holds can still be analysed, with a visible warning.
    assert main(["analyze", iid, "-w", str(ws.root), "--offline", "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning: not asking the live sources (shop)" in captured.err
    assert json.loads(captured.out)["incident"]["id"] == iid


def test_alerts_come_as_events_and_runbooks_as_incident_links(prometheus, alertmanager, workspace):
    run = uuid.uuid4().hex
    alertmanager.request("/api/v2/alerts", [{
        "labels": {"alertname": "HighErrorRate", "service": "payments", "environment": "production", "run": run},
        "annotations": {"summary": "payments error rate 16%", "runbook_url": f"https://runbooks.example.com/{run}"},
        "startsAt": "2026-11-02T14:08:48Z"}], method="POST")
    _configure(workspace, shop={"url": f"prometheus:{prometheus.url}", "selectors": ['{service="payments"}']},
               alerts={"url": f"alertmanager:{alertmanager.url}", "filter": [f'run="{run}"']})
    ws = _reopen(workspace)
    iid = _incident(ws)
    report = fetch_incident(ws, iid)
    assert [s.name for s in report.fetched] == ["shop", "alerts"]
    assert report.links_added == [{"title": "Runbook: HighErrorRate", "url": f"https://runbooks.example.com/{run}"}]
    events = ws.telemetry().query("events", *WINDOW)
    assert events["summary"].tolist() == ["[FIRING] HighErrorRate payments: payments error rate 16%"]
    kb = ws.knowledge_base()
    try:
        assert {"title": "Runbook: HighErrorRate", "url": f"https://runbooks.example.com/{run}"} in kb.get_incident(iid).links
        assert any(h.field == "links" for h in kb.history(entity="incident", entity_id=iid))
    finally:
        kb.close()


def test_whole_path_analyze_pulls_the_window_and_ranks_like_the_file_ingested_sample(prometheus, alertmanager,
                                                                                    sample_copy, tmp_path, capsys):
    """A fresh workspace names its Prometheus and Alertmanager; `workbench analyze` pulls the
    incident's window (no file export of metrics in between) and ranks the same top hypothesis as
    the workspace that ingested the sample's files for that incident."""
    import workbench

    alertmanager.request("/api/v2/alerts", [{
        "labels": {"alertname": "HighErrorRate", "service": "payments", "environment": "production",
                   "run": "whole-path"},
        "annotations": {"summary": "error_rate 16.1% > 5% for 5m"}, "startsAt": "2026-11-02T14:08:48Z"}],
        method="POST")
    live = workbench.init(tmp_path / "live")
    _configure(live, shop={"url": f"prometheus:{prometheus.url}", "selectors": [SAMPLE_SERIES]},
               alerts={"url": f"alertmanager:{alertmanager.url}", "filter": ['run="whole-path"']})
    live = _reopen(live)
    # Changes (the deploy) come from the team's change feed; here the sample's events file.
    ingest(live, f"files:{SAMPLE / 'events.csv'}", *WINDOW, table="events")
    base = ["-w", str(live.root)]
    assert main(["incident", "new", "--title", INCIDENT["title"], "--started", INCIDENT["started"],
                 "--services", "payments,checkout", "--severity", "SEV2", "--json", *base]) == 0
    iid = json.loads(capsys.readouterr().out)["id"]
    kb = live.knowledge_base()
    try:
        inc = kb.get_incident(iid)
        kb.update_incident(iid, inc.version, "test", mitigated=INCIDENT["mitigated"], resolved=INCIDENT["resolved"],
                           window_start=INCIDENT["window_start"], window_end=INCIDENT["window_end"])
    finally:
        kb.close()
    assert sum(live.telemetry().counts().values()) == live.telemetry().counts()["events"]  # no metrics yet
    assert main(["analyze", iid, "--json", *base]) == 0
    captured = capsys.readouterr()
    ranked = json.loads(captured.out)["hypotheses"]
    assert f"{iid}: shop: fetched 2026-11-02T11:00:00Z .. 2026-11-02T15:10:00Z" in captured.err
    assert live.telemetry().counts()["metrics"] == 61 * 250  # 61 series x 250 minutes, pulled live
    assert len(_evidence(live, iid)) == 2

    files = sample_copy("files")  # the sample's files, ingested once per test run (conftest)
    other = _incident(files)
    assert main(["analyze", other, "--json", "-w", str(files.root)]) == 0
    from_files = json.loads(capsys.readouterr().out)["hypotheses"]
    assert (ranked[0]["service"], ranked[0]["cause"]) == (from_files[0]["service"], from_files[0]["cause"]) \
        == ("payments", "change")
    # The next analysis asks nothing: the window is cached in the store.
    assert all(part.cached for part in fetch_incident(live, iid).sources) and len(_evidence(live, iid)) == 2


def test_recheck_fetches_the_checked_window(prometheus, workspace, capsys):
    _configure(workspace, shop={"url": f"prometheus:{prometheus.url}", "selectors": ['{service="payments"}']})
    ws = _reopen(workspace)
    iid = _incident(ws, window_start=None, window_end=None, started="2026-11-02T10:30:00Z",
                    mitigated="2026-11-02T10:40:00Z", resolved="2026-11-02T10:45:00Z")
    assert main(["recheck", iid, "--until", "2026-11-02T16:00:00Z", "--window", "1h", "--executor", "serial",
                 "-w", str(ws.root), "--json"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    (record,) = _evidence(ws, iid)
    # the checked hour and its 24 h baseline (the backfill starts at 10:00)
    assert (record["start"], record["end"]) == ("2026-11-01T15:00:00Z", "2026-11-02T16:00:00Z")
    assert any("shop: fetched" in note for note in report["notes"])


def test_the_notebook_chapters_fetch_or_warn(prometheus, workspace):
    from workbench.postmortem import chapters

    _configure(workspace, shop={"url": f"prometheus:{prometheus.url}", "selectors": ['{service="payments"}']})
    ws = _reopen(workspace)
    iid = _incident(ws)
    notes = chapters.analysis_notes(ws, iid)["text"].tolist()
    assert any(n.startswith("shop: fetched 2026-11-02T11:00:00Z") for n in notes)
    assert ws.telemetry().counts()["metrics"] > 0

    server = prom.start_prometheus()
    down = server.url
    server.stop()
    other = _reopen(workspace)
    with open(other.root / "workbench.toml", "a", encoding="utf-8") as f:
        f.write(f'\n[sources.down]\nurl = "prometheus:{down}"\nretries = 0\n')
    other = _reopen(workspace)
    second = _incident(other)
    notes = chapters.analysis_notes(other, second)["text"].tolist()
    assert any(n.startswith("warning: the live sources could not be asked") and down in n for n in notes)
