"""The ``alertmanager`` source against a real Alertmanager (alerts posted with POST /api/v2/alerts)."""
from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest

from conftest import HOSTILE_STRINGS
from workbench.telemetry import schema, sources
from workbench.errors import SourceError
from workbench.telemetry.ingest import ingest
from workbench.telemetry.sources.alertmanager import alert_events, runbook_links

WINDOW = (pd.Timestamp("2026-11-02T13:00:00Z"), pd.Timestamp("2026-11-02T16:00:00Z"))


def _post(server, run: str, alerts: list[dict]) -> None:
    for alert in alerts:
        alert["labels"]["run"] = run  # the server is shared by the session: each test filters on its run
    server.request("/api/v2/alerts", alerts, method="POST")


@pytest.mark.prometheus
def test_posted_alerts_come_back_as_alert_events(alertmanager, workspace):
    run = uuid.uuid4().hex
    _post(alertmanager, run, [
        {"labels": {"alertname": "HighErrorRate", "service": "payments", "environment": "production", "severity": "page"},
         "annotations": {"summary": "payments error rate 16.1% > 5% for 5m",
                         "runbook_url": "https://runbooks.example.com/payments"},
         "startsAt": "2026-11-02T14:08:48Z", "generatorURL": "http://prometheus:9090/graph?g0.expr=x"},
        {"labels": {"alertname": "HighLatency", "job": "checkout"}, "annotations": {"description": "p99 up"},
         "startsAt": "2026-11-02T14:10:27Z"},
        {"labels": {"alertname": "Before", "service": "payments"}, "startsAt": "2026-11-02T09:00:00Z"},
    ])
    url = f"alertmanager:{alertmanager.url}"
    result = ingest(workspace, url, *WINDOW, filter=f'run="{run}"')
    assert result.rows_added["events"] == 2  # the alert that started before the window is not in it
    assert result.links_offered == [{"title": "Runbook: HighErrorRate", "url": "https://runbooks.example.com/payments"}]
    events = workspace.telemetry().query("events", *WINDOW)
    assert events["kind"].tolist() == ["alert", "alert"]
    first, second = events.iloc[0], events.iloc[1]
    assert first["timestamp"] == pd.Timestamp("2026-11-02T14:08:48Z")
    assert (first["service"], first["environment"]) == ("payments", "production")
    assert first["summary"] == "[FIRING] HighErrorRate payments: payments error rate 16.1% > 5% for 5m"
    attrs = json.loads(first["attributes"])
    assert attrs["state"] == "firing" and attrs["ends_at"] is None and len(attrs["fingerprint"]) == 16
    assert attrs["labels"]["severity"] == "page" and attrs["annotations"]["runbook_url"].startswith("https://")
    assert attrs["generator_url"] == "http://prometheus:9090/graph?g0.expr=x"
    assert (second["service"], second["environment"], second["summary"]) == ("checkout", "unknown",
                                                                              "[FIRING] HighLatency checkout: p99 up")
    # Alertmanager moves a firing alert's provisional endsAt with every fetch; the rows stay the same.
    again = ingest(workspace, url, *WINDOW, filter=f'run="{run}"')
    assert again.rows_added["events"] == 0 and again.rows_read["events"] == 2


@pytest.mark.prometheus
def test_hostile_alert_text_is_data(alertmanager, workspace):
    run = uuid.uuid4().hex
    _post(alertmanager, run, [{"labels": {"alertname": f"A{i}", "service": "frontend"},
                               "annotations": {"summary": text}, "startsAt": f"2026-11-02T14:{i:02d}:00Z"}
                              for i, text in enumerate(HOSTILE_STRINGS)])
    ingest(workspace, f"alertmanager:{alertmanager.url}", *WINDOW, filter=f'run="{run}"')
    events = workspace.telemetry().query("events", *WINDOW)
    got = {json.loads(a)["annotations"]["summary"] for a in events["attributes"]}
    assert got == set(HOSTILE_STRINGS)


@pytest.mark.prometheus
def test_cli_lists_the_alerts(alertmanager, capsys):
    from workbench.cli import main

    run = uuid.uuid4().hex
    _post(alertmanager, run, [{"labels": {"alertname": "DiskFull", "service": "orders"}, "startsAt": "2026-11-02T14:00:00Z"}])
    assert main(["sources", f"alertmanager:{alertmanager.url}", "-o", f'filter=run="{run}"', "--start",
                 "2026-11-02T13:00:00Z", "--end", "2026-11-02T15:00:00Z", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["alertname"], r["service"], r["state"]) for r in rows] == [("DiskFull", "orders", "firing")]


@pytest.mark.prometheus
def test_a_bad_filter_names_the_server_and_its_message(alertmanager, workspace):
    with pytest.raises(SourceError, match=r"HTTP 400") as err:
        ingest(workspace, f"alertmanager:{alertmanager.url}", *WINDOW, filter="not a matcher")
    assert alertmanager.url in str(err.value) and "filter='not a matcher'" in str(err.value)
    assert sum(workspace.telemetry().counts().values()) == 0


def test_resolved_alerts_close_their_interval():
    now = pd.Timestamp("2026-11-02T15:00:00Z")
    webhook = [  # Alertmanager's webhook payload alerts: status text, zero endsAt while firing
        {"status": "resolved", "labels": {"alertname": "HighErrorRate", "service": "payments"},
         "annotations": {"summary": "fixed", "runbook": "https://runbooks.example.com/p"},
         "startsAt": "2026-11-02T14:08:48Z", "endsAt": "2026-11-02T14:31:00Z", "fingerprint": "abc"},
        {"status": "firing", "labels": {"alertname": "Still", "service": "payments"}, "annotations": {},
         "startsAt": "2026-11-02T14:20:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "def"},
        {"status": {"state": "active"}, "labels": {"alertname": "Ended", "service": "cart"}, "annotations": {},
         "startsAt": "2026-11-02T14:00:00Z", "endsAt": "2026-11-02T14:50:00Z", "fingerprint": "ghi"},
    ]
    frame = schema.validate("events", alert_events(webhook, now=now)).frame
    attrs = [json.loads(a) for a in frame["attributes"]]
    by_name = {a["alertname"]: a for a in attrs}
    assert by_name["HighErrorRate"]["state"] == "resolved" and by_name["HighErrorRate"]["ends_at"] == "2026-11-02T14:31:00Z"
    assert by_name["Still"]["state"] == "firing" and by_name["Still"]["ends_at"] is None
    assert by_name["Ended"]["ends_at"] == "2026-11-02T14:50:00Z"  # an endsAt already past at the fetch
    assert frame.loc[frame["summary"].str.startswith("[RESOLVED] HighErrorRate"), "timestamp"].tolist() == [
        pd.Timestamp("2026-11-02T14:08:48Z")]
    assert runbook_links(frame) == [{"title": "Runbook: HighErrorRate", "url": "https://runbooks.example.com/p"}]


def test_runbook_links_are_http_only():
    events = pd.DataFrame({"attributes": [json.dumps({"alertname": "x", "annotations": {"runbook_url": "javascript:alert(1)"}}),
                                          json.dumps({"alertname": "y", "annotations": {"runbook_url": "file:///etc/passwd"}})]})
    assert runbook_links(events) == []


def test_options_are_checked():
    with pytest.raises(SourceError, match="did you mean 'filter'"):
        sources.open_source("alertmanager:http://127.0.0.1:9", filtr="a=b")
