"""The enrichment snapshot an analysis attaches to an incident (workbench.analysis.snapshot): what it
names for the sample's bad deploy, that it round-trips through YAML byte-identically, that a
re-analysis of the same telemetry writes nothing, and the recheck's comparison (a version the
incident rolled back that is deployed again)."""
from __future__ import annotations

import pandas as pd
import pytest

import workbench
from workbench.analysis import snapshot
from workbench.analysis.pipeline import analyze
from workbench.loop.checks import check_incident, clear_caches
from workbench.store import KnowledgeBase
from workbench.telemetry import schema
from workbench.telemetry.ingest import ingest

BAD_DEPLOY = "INC-20261102-001"


@pytest.fixture(scope="module")
def analysed(sample_copy):
    ws = sample_copy("snapshot")
    analyze(ws, BAD_DEPLOY)
    with ws.knowledge_base() as kb:
        return ws, kb.get_incident(BAD_DEPLOY)


def test_the_bad_deploy_snapshot_names_versions_changes_alerts_and_neighbours(analysed):
    _, incident = analysed
    snap = incident.snapshot
    assert snap["services"] == ["checkout", "payments"]
    payments = next(v for v in snap["versions"] if v["service"] == "payments")
    # deployed one minute before the incident started, replacing 2.14.4; rolled back at 14:30
    assert (payments["at_started"], payments["previous"], payments["deployed_at"]) == \
        ("2.15.0", "2.14.4", "2026-11-02T14:02:00Z")
    assert payments["after"] == "2.14.4" and payments["rolled_back"] == ["2.15.0"]
    assert [d["version"] for d in payments["deploys"]] == ["2.14.4", "2.15.0", "2.14.4"]
    # catalog is not involved, but its deploy twelve minutes before the start is in the window
    catalog = [c for c in snap["changes"] if c["service"] == "catalog" and c["kind"] == "deploy"]
    assert catalog == [{"time": "2026-11-02T13:51:42Z", "service": "catalog", "kind": "deploy",
                        "summary": "Deployed catalog v5.2.3", "in_window": True, "version": "5.2.3",
                        "previous_version": "5.2.2"}]
    # config and flag history of the involved services reaches back `days` (the sample starts Nov 1)
    assert any(c["kind"] == "feature_flag" and c["service"] == "checkout" and not c["in_window"]
               for c in snap["changes"])
    assert [a["name"] for a in snap["alerts"]] == ["HighErrorRate", "HighErrorRate", "HighLatency"]
    edge = next(e for e in snap["neighbourhood"] if (e["caller"], e["callee"]) == ("checkout", "payments"))
    assert edge["declared"] and edge["calls"] > 20 and edge["error_rate"] > 5 * edge["baseline_error_rate"]
    assert {(e["caller"], e["callee"]) for e in snap["neighbourhood"]} >= {("frontend", "checkout"),
                                                                           ("checkout", "orders")}


def test_the_snapshot_survives_yaml_export_and_import_byte_identically(analysed, tmp_path):
    ws, incident = analysed
    with ws.knowledge_base() as kb:
        text = kb.export_incident(BAD_DEPLOY)
    assert "\nsnapshot:\n" in text and "at_started: 2.15.0" in text
    with KnowledgeBase(tmp_path / "other.sqlite") as other:
        other.import_incident(text, who="test")
        assert other.export_incident(BAD_DEPLOY) == text
        assert other.get_incident(BAD_DEPLOY).snapshot == incident.snapshot
        other.import_incident(text, who="test")  # importing it again changes nothing
        assert other.get_incident(BAD_DEPLOY).version == incident.version


def test_an_incident_without_a_snapshot_exports_no_snapshot_key(analysed):
    ws, _ = analysed
    with ws.knowledge_base() as kb:
        assert kb.get_incident("INC-20261005-001").snapshot is None
        assert "snapshot" not in kb.export_incident("INC-20261005-001")


def test_reanalysing_the_same_telemetry_leaves_the_snapshot_and_version_alone(analysed):
    ws, incident = analysed
    analyze(ws, BAD_DEPLOY)
    with ws.knowledge_base() as kb:
        again = kb.get_incident(BAD_DEPLOY)
        assert again.version == incident.version and again.snapshot == incident.snapshot
        assert [h.field for h in kb.history("incident", BAD_DEPLOY)].count("snapshot") == 1


def test_a_snapshot_of_bare_tables_has_no_made_up_numbers():
    incident = workbench.store.Incident(
        id="X", title="t", severity="SEV3", environment="production", services=("api",),
        started=pd.Timestamp("2026-01-10T10:00Z").to_pydatetime(), detected=None, mitigated=None, resolved=None,
        status="open", labels={}, links=(), window_start=None, window_end=None, follow_up_of=None, snapshot=None,
        created=pd.Timestamp("2026-01-10T10:00Z").to_pydatetime(), updated=pd.Timestamp("2026-01-10T10:00Z"),
        version=1)
    topology = pd.DataFrame({"caller": ["web", "api"], "callee": ["api", "db"]})
    snap = snapshot.take(incident, schema.empty("events"), None, topology)
    assert snap["neighbourhood"] == [{"caller": "api", "callee": "db", "declared": True},
                                     {"caller": "web", "callee": "api", "declared": True}]
    assert snap["versions"] == [] and snap["changes"] == [] and snap["alerts"] == []
    assert snapshot.compare(snap, schema.empty("events"), "2026-01-11T00:00Z", "2026-01-12T00:00Z") is None


def test_the_recheck_names_a_rolled_back_version_deployed_again(analysed, tmp_path):
    ws, _ = analysed
    redeploy = tmp_path / "redeploy.csv"
    redeploy.write_text(
        "timestamp,service,environment,kind,summary,attributes\n"
        '2026-11-06T15:10:00Z,payments,production,deploy,Deployed payments v2.15.0,'
        '"{""version"":""2.15.0"",""previous_version"":""2.14.7""}"\n', encoding="utf-8")
    ingest(ws, str(redeploy), table="events", who="test")
    clear_caches()
    try:
        back = check_incident(ws.root, BAD_DEPLOY, "2026-11-06T11:00:00Z", "2026-11-06T17:00:00Z")
        calm = check_incident(ws.root, BAD_DEPLOY, "2026-11-04T06:00:00Z", "2026-11-04T12:00:00Z")
    finally:
        clear_caches()
    assert back.error is None and back.verdict == "recurred"
    assert back.snapshot["redeployed"] == [{"service": "payments", "version": "2.15.0", "time": "2026-11-06T15:10:00Z"}]
    assert "redeployed payments 2.15.0" in back.reasons
    payments = back.snapshot["services"][0]
    assert (payments["incident"], payments["now"]) == ("2.15.0", "2.14.7")  # rolled back again at 15:44
    assert calm.verdict == "clear" and calm.snapshot["redeployed"] == []
    assert calm.snapshot["services"][0]["now"] == "2.14.4"


def test_the_notebook_chapter_and_the_report_section_show_the_snapshot(analysed):
    pytest.importorskip("panel")
    from workbench.reports import notebook as show
    from workbench.reports.context import SnapshotView, snapshot_markup
    from workbench.reports.report import Report

    ws, incident = analysed
    out = show.snapshot(ws, BAD_DEPLOY)
    html = out._repr_html_()
    assert 'data-testid="version-at-started">2.15.0</b>' in html and "rolled back: 2.15.0" in html
    assert "Deployed catalog v5.2.3" in html and "HighLatency" in html and "checkout" in html
    assert "payments: 2.15.0 at the start (replacing 2.14.4)" in repr(out)
    assert "No enrichment snapshot" in show.snapshot(ws, "INC-20261005-001")._repr_html_()
    hostile = {"versions": [{"service": "<script>window.__pwned=1</script>", "at_started": "<b>1</b>",
                             "deploys": [], "rolled_back": ["<img src=x onerror=alert(1)>"]}]}
    markup = snapshot_markup(hostile)
    assert "<script>" not in markup and "&lt;script&gt;" in markup and "<img" not in markup
    views = Report(incident).views()
    assert any(isinstance(v, SnapshotView) and v.snapshot == incident.snapshot for v in views)


def test_the_recheck_names_a_reverted_config_value_set_again(analysed, tmp_path):
    ws, _ = analysed
    pool = "INC-20261103-001"  # db.pool.max_size 50 -> 5 at 10:41, reverted 5 -> 50 at 11:16
    analyze(ws, pool)
    with ws.knowledge_base() as kb:
        snap = kb.get_incident(pool).snapshot
    assert snapshot.reverted(snap) == [{"service": "orders", "kind": "config_change", "key": "db.pool.max_size",
                                        "value": "5"}]
    again = tmp_path / "again.csv"
    again.write_text(
        "timestamp,service,environment,kind,summary,attributes\n"
        '2026-11-04T09:00:00Z,orders,production,config_change,Config orders: db.pool.max_size 50 -> 5,'
        '"{""key"":""db.pool.max_size"",""old"":""50"",""new"":""5""}"\n', encoding="utf-8")
    ingest(ws, str(again), table="events", who="test")
    clear_caches()
    try:
        checked = check_incident(ws.root, pool, "2026-11-04T06:00:00Z", "2026-11-04T12:00:00Z")
    finally:
        clear_caches()
    assert checked.error is None
    assert checked.snapshot["reapplied"] == [{"service": "orders", "kind": "config_change", "key": "db.pool.max_size",
                                              "value": "5", "time": "2026-11-04T09:00:00Z"}]
    # the sample's telemetry has no second pool exhaustion: a note, not a recurrence of its own
    if checked.verdict != "recurred":
        assert any("reapplied orders db.pool.max_size=5" in n for n in checked.notes)
    else:
        assert "reapplied orders db.pool.max_size=5" in checked.reasons
