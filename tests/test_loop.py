"""The scheduled recheck on the sample: recurrence found and recorded, criteria judged, executors agree.

Ground truth from data/sample/labels.yaml (only tests read it): INC-20261106-001 is a recurrence
of INC-20261102-001; INC-20261103-001 and INC-20261105-001 are different faults.
"""
from __future__ import annotations

import json
from pathlib import Path
import shutil

import pandas as pd
import pytest
import yaml

import workbench
from workbench.postmortem import chapters as postmortem
from workbench.loop import suggestions
from workbench.analysis.pipeline import analyze, read_signature, signature_path
from workbench.errors import NotFoundError, StoreError
from workbench.loop.rechecks import RECUR_MIN, RecheckError, check_incident, recheck, resolve_until
from workbench.store import KnowledgeBase

from conftest import SAMPLE

ORIGINAL, RECURRENCE = "INC-20261102-001", "INC-20261106-001"
OTHERS = ("INC-20261103-001", "INC-20261105-001")
WEBHOOKS = '\n[webhooks.ops]\nurl = "https://hooks.example.com/workbench"\n'


@pytest.fixture(scope="module")
def labels() -> dict[str, dict]:
    data = yaml.safe_load((SAMPLE / "labels.yaml").read_text(encoding="utf-8"))
    return {item["id"]: item for item in data["incidents"]}


@pytest.fixture(scope="module")
def pristine(sample_copy):
    """The sample ingested, INC-20261102-001 analysed (signature stored) and under watch."""
    ws = sample_copy("loop", extra_settings=WEBHOOKS)
    analyze(ws, ORIGINAL)
    with ws.knowledge_base() as kb:
        inc = kb.get_incident(ORIGINAL)
        kb.update_incident(ORIGINAL, inc.version, "test", status="monitoring")
    return ws


def _copy(ws, tmp_path_factory, name):
    dest = tmp_path_factory.mktemp(name) / "ws"
    shutil.copytree(ws.root, dest)
    return workbench.open_workspace(dest)


@pytest.fixture(scope="module")
def until(labels):
    """The recurrence's resolution: the 6 h window before it covers the whole recurrence."""
    return pd.Timestamp(labels[RECURRENCE]["resolved"])


@pytest.fixture(scope="module")
def first_run(pristine, until, tmp_path_factory):
    """Every incident under watch rechecked once over the recurrence's window, with the notebook."""
    ws = _copy(pristine, tmp_path_factory, "first")
    report = recheck(ws, all=True, until=until, window="6h", executor="serial", report=True)
    return ws, report


def _result(report, incident_id):
    return next(r for r in report.results if r.incident_id == incident_id)


# ------------------------------------------------------------------ recurrence on the sample

def test_the_recurrence_is_found_and_the_incident_marked_recurred(first_run, labels):
    ws, report = first_run
    assert labels[RECURRENCE]["recurrence_of"] == ORIGINAL
    r = _result(report, ORIGINAL)
    assert r.verdict == "recurred" and r.reasons == ["signature"]
    assert r.similarity >= RECUR_MIN
    assert report.recurred == [ORIGINAL]
    with ws.knowledge_base() as kb:
        assert kb.get_incident(ORIGINAL).status == "recurred"
        checks = [c for c in kb.list_checks(ORIGINAL) if c.action_item_id is None]
    assert [c.verdict for c in checks] == ["recurred"]
    check = checks[0]
    assert check.score == pytest.approx(r.similarity)
    assert (pd.Timestamp(check.window_start), pd.Timestamp(check.window_end)) == (until_minus(report, 6), report.until)
    evidence = check.evidence[0]
    assert evidence["kind"] == "recurrence" and evidence["threshold"] == RECUR_MIN
    assert evidence["parts"]["origin"] == 1.0  # the same origin service (payments) moved first again
    assert evidence["current"]["origin"] == "payments"
    assert evidence["follow_up_id"] == r.follow_up_id


def until_minus(report, hours):
    return report.until - pd.Timedelta(hours=hours)


def test_a_follow_up_review_is_opened_and_linked_to_the_original(first_run):
    ws, report = first_run
    r = _result(report, ORIGINAL)
    assert r.follow_up_id == f"{ORIGINAL}-R1" and report.follow_ups == {ORIGINAL: r.follow_up_id}
    with ws.knowledge_base() as kb:
        original = kb.get_incident(ORIGINAL)
        follow = kb.get_incident(r.follow_up_id)
        note = kb.list_conclusions(r.follow_up_id)
        original_conclusions = kb.list_conclusions(ORIGINAL)
        linked = [i.id for i in kb.list_incidents(follow_up_of=ORIGINAL)]
    assert follow.follow_up_of == ORIGINAL and linked == [r.follow_up_id]
    summary = dict(postmortem.recurrence_summary(ws, ORIGINAL).values.tolist())
    assert summary["follow-up reviews"] == r.follow_up_id and summary["status"] == "recurred"
    assert follow.status == "open" and follow.title.startswith(f"Recurrence of {ORIGINAL}")
    assert follow.services == original.services and follow.links == original.links
    assert (follow.window_start, follow.window_end) == (r.window[0].to_pydatetime(), r.window[1].to_pydatetime())
    assert r.window[0] <= pd.Timestamp(follow.started) < r.window[1]
    assert len(note) == 1 and ORIGINAL in note[0].text and note[0].author == "recheck"
    # The reviewed original is not rewritten by a machine (its sign-offs stay valid).
    assert original_conclusions == []


def test_a_recurrence_notification_is_in_the_outbox(first_run):
    ws, report = first_run
    r = _result(report, ORIGINAL)
    with ws.knowledge_base() as kb:
        rows = kb.list_outbox(kind="recurrence")
    assert len(rows) == 1 and r.notified == 1
    row = rows[0]
    assert row.incident_id == ORIGINAL and row.target == "ops" and row.status == "pending"
    assert row.payload["incident"]["status"] == "recurred"  # the snapshot of the same transaction
    assert row.payload["details"]["follow_up_id"] == r.follow_up_id
    assert row.dedup_key == f"recurrence:{r.check_id}"


@pytest.mark.parametrize("incident_id", OTHERS)
def test_different_faults_are_clear(first_run, incident_id):
    ws, report = first_run
    r = _result(report, incident_id)
    assert r.verdict == "clear" and r.similarity < RECUR_MIN
    with ws.knowledge_base() as kb:
        assert kb.get_incident(incident_id).status == "resolved"
        assert [c.verdict for c in kb.list_checks(incident_id)] == ["clear"]
        assert kb.list_outbox(incident_id=incident_id) == []
    # Never analysed: the signature was computed once from the incident's own window and stored.
    assert r.signature_source == "computed" and signature_path(ws, incident_id).is_file()
    assert read_signature(ws, incident_id).origin is not None


def test_an_incident_is_never_its_own_recurrence(first_run):
    ws, report = first_run
    r = _result(report, RECURRENCE)  # resolved at `until`: its own window covers the checked one
    assert r.verdict is None and r.check_id is None
    assert any("own window" in n for n in r.notes)
    with ws.knowledge_base() as kb:
        assert kb.list_checks(RECURRENCE) == []
        assert kb.get_incident(RECURRENCE).status == "resolved"
    # Closed past incidents are not under watch.
    assert {r.incident_id for r in report.results} == {ORIGINAL, RECURRENCE, *OTHERS}


def test_suggestions_are_proposed_in_the_check_evidence_not_accepted(first_run):
    ws, report = first_run
    r = _result(report, ORIGINAL)
    kinds = {s["kind"]: s for s in r.suggestions}
    assert set(kinds) == {"runbook", "alert"}
    assert all(s["status"] == "proposed" for s in r.suggestions)
    book, alert = kinds["runbook"], kinds["alert"]
    assert book["details"]["link"]["url"] == "https://runbooks.example.com/payments"
    d = alert["details"]
    assert d["metric"] == "payments/error_rate" and d["comparator"] == ">"
    # Fires at the onset's level and never in the baseline.
    assert d["baseline"]["max"] < d["threshold"] < d["level_at_onset"]
    assert pd.Timestamp(d["fires_at"]) <= pd.Timestamp(d["onset"]) + pd.Timedelta(minutes=suggestions.ALERT_SUSTAIN)
    with ws.knowledge_base() as kb:
        stored = [e["suggestion"]["key"] for c in kb.list_checks(ORIGINAL) for e in c.evidence
                  if e["kind"] == "suggestion"]
        items = kb.list_action_items(ORIGINAL)
        note = kb.list_conclusions(r.follow_up_id)[0].text
        check_ids = {c.id for c in kb.list_checks(ORIGINAL)}
    assert sorted(stored) == sorted(s["key"] for s in r.suggestions)
    assert items == []  # nothing accepted on a human's behalf
    assert alert["text"] in note
    shown = postmortem.suggestions(ws, ORIGINAL)  # what the recurrence notebook shows the reviewer
    assert sorted(shown["key"]) == sorted(stored) and alert["text"] in set(shown["text"])
    assert shown["proposed"].dt.tz is not None and set(shown["check_id"]) <= check_ids


def test_the_recurrence_notebook_is_executed_for_recurred_incidents(first_run):
    ws, report = first_run
    assert [run["incident_id"] for run in report.runs] == [ORIGINAL]
    run = report.runs[0]
    assert run["status"] == "succeeded", run
    with ws.knowledge_base() as kb:
        assert [r.template for r in kb.list_runs(ORIGINAL)] == ["recurrence"]
    text = Path(run["output_path"]).read_text(encoding="utf-8")
    assert "Suggested updates" in text and "runbook:payments" in text  # the proposals reach the reviewer


def test_report_is_json_and_text(first_run):
    _, report = first_run
    data = json.loads(json.dumps(report.to_dict()))
    assert data["recurred"] == [ORIGINAL] and data["counts"] == {"recurred": 1, "clear": 2, "skipped": 1}
    assert data["until_source"] == "given" and data["threshold"] == RECUR_MIN
    text = report.summary()
    assert f"{ORIGINAL}: recurred" in text and "follow-up" in text


def test_a_rerun_over_overlapping_windows_opens_no_second_follow_up(pristine, until, tmp_path_factory):
    ws = _copy(pristine, tmp_path_factory, "rerun")
    first = recheck(ws, [ORIGINAL], until=until, window="6h", executor="serial")
    second = recheck(ws, [ORIGINAL], until=until + pd.Timedelta(hours=1), window="6h", executor="serial")
    assert _result(first, ORIGINAL).follow_up_id and _result(second, ORIGINAL).verdict == "recurred"
    assert _result(second, ORIGINAL).follow_up_id is None and second.follow_ups == {}
    with ws.knowledge_base() as kb:
        assert [c.verdict for c in kb.list_checks(ORIGINAL)] == ["recurred", "recurred"]
        assert len(kb.list_outbox(kind="recurrence")) == 1
        assert [i.id for i in kb.list_incidents() if i.id.startswith(ORIGINAL + "-R")] == [f"{ORIGINAL}-R1"]
        # A suggestion is proposed once per incident.
        keys = [e["suggestion"]["key"] for c in kb.list_checks(ORIGINAL) for e in c.evidence
                if e["kind"] == "suggestion"]
    assert len(keys) == len(set(keys))


class _FailingOutbox(KnowledgeBase):
    """A real knowledge base whose outbox write fails, as a crash between the writes would."""

    def enqueue_notification(self, *args, **kwargs):
        raise StoreError("outbox unavailable")


def test_status_follow_up_check_and_notification_commit_together(pristine, until, tmp_path_factory):
    from workbench.loop.rechecks import _record

    ws = _copy(pristine, tmp_path_factory, "atomic")
    result = check_incident(ws.root, ORIGINAL, until - pd.Timedelta(hours=6), until)
    assert result.verdict == "recurred"
    kb = _FailingOutbox(ws.database_url)
    try:
        with pytest.raises(StoreError, match="outbox unavailable"):
            _record(kb, result, "test")
        assert kb.get_incident(ORIGINAL).status == "monitoring"
        assert kb.list_checks(ORIGINAL) == []
        assert [i.id for i in kb.list_incidents() if i.id.startswith(ORIGINAL + "-R")] == []
    finally:
        kb.close()


# ------------------------------------------------------------------ verification criteria

def _criterion(service, metric, aggregate, comparator, threshold, duration="1d"):
    return {"signal": "metric", "service": service, "metric": metric, "aggregate": aggregate,
            "comparator": comparator, "threshold": threshold, "duration": duration, "window": "5min"}


def test_criteria_hold_are_violated_or_have_no_data(pristine, tmp_path_factory):
    ws = _copy(pristine, tmp_path_factory, "criteria")
    iid = "INC-20261103-001"
    with ws.knowledge_base() as kb:
        holds = kb.add_action_item(iid, title="payments errors stay low", owner="alice", kind="prevent",
                                   status="done", verification=_criterion("payments", "error_rate", "max", "<", 0.5),
                                   who="test")
        violated = kb.add_action_item(iid, title="checkout p99 below 1 ms", owner="bob", kind="detect",
                                      status="done",
                                      verification=_criterion("checkout", "latency_p99_ms", "max", "<", 1), who="test")
        not_landed = kb.add_action_item(iid, title="checkout p99 below 2 ms", owner="erin", kind="prevent",
                                        verification=_criterion("checkout", "latency_p99_ms", "max", "<", 2),
                                        who="test")
        missing = kb.add_action_item(iid, title="a metric nobody emits", owner="carol", kind="detect",
                                     verification=_criterion("payments", "no_such_metric", "max", "<", 1), who="test")
        dropped = kb.add_action_item(iid, title="not doing it", owner="dan", kind="process", status="wont_do",
                                     verification=_criterion("payments", "error_rate", "max", "<", 0), who="test")
    calm_day_end = pd.Timestamp("2026-11-05T00:00:00Z")  # 2026-11-04 has no incident
    report = recheck(ws, [iid], until=calm_day_end, window="6h", executor="serial")
    r = _result(report, iid)
    verdicts = {c.action_item_id: c.verdict.verdict for c in r.criteria}
    assert verdicts == {holds.id: "holds", violated.id: "violated", missing.id: "no_data",
                        not_landed.id: "violated"}
    assert dropped.id not in verdicts
    # Every violated criterion is a recurrence; the reason says whether the item's fix had landed.
    assert r.verdict == "recurred" and r.follow_up_id
    assert r.reasons == [f"criterion {violated.id} (done)", f"criterion {not_landed.id} (open)"]
    with ws.knowledge_base() as kb:
        by_item = {c.action_item_id: c.verdict for c in kb.list_checks(iid) if c.action_item_id}
        assert by_item == verdicts
        window = next(c for c in kb.list_checks(iid) if c.action_item_id == holds.id)
        assert pd.Timestamp(window.window_start) == calm_day_end - pd.Timedelta(days=1)
        violations = kb.list_outbox(kind="criterion_violated")
        assert sorted(n.payload["details"]["action_item"]["id"] for n in violations) == sorted(
            [violated.id, not_landed.id])
        assert kb.get_incident(iid).status == "recurred"


# ------------------------------------------------------------------ executors

def test_the_local_pool_and_a_dask_cluster_give_the_same_results(pristine, until, first_run, tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    ids = [ORIGINAL, "INC-20261103-001"]
    ws_pool = _copy(pristine, tmp_path_factory, "pool")
    ws_dask = _copy(pristine, tmp_path_factory, "dask")
    pooled = recheck(ws_pool, ids, until=until, window="6h", executor="local", workers=2)
    assert pooled.workers == 2
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dasked = recheck(ws_dask, ids, until=until, window="6h", executor=client)
    _, serial = first_run

    def outcome(report):
        return {r.incident_id: (r.verdict, r.similarity, r.parts, r.current) for r in report.results
                if r.incident_id in ids}

    assert outcome(pooled) == outcome(dasked) == outcome(serial)
    assert not pooled.errors and not dasked.errors


# ------------------------------------------------------------------ arguments and windows

def test_until_defaults_to_now_capped_at_the_end_of_the_telemetry(pristine):
    end = pd.Timestamp("2026-11-08T00:00:00Z")  # last sample 23:59 + one step
    until, source, notes = resolve_until(pristine, now=pd.Timestamp("2027-01-01T00:00:00Z"))
    assert (until, source) == (end, "telemetry end") and "before now" in notes[0]
    until, source, notes = resolve_until(pristine, now=pd.Timestamp("2026-11-07T12:00:00Z"))
    assert (until, source, notes) == (pd.Timestamp("2026-11-07T12:00:00Z"), "now", [])
    assert resolve_until(pristine, "2026-11-06T16:05:00Z")[1] == "given"


@pytest.mark.parametrize("kwargs, match", [
    ({}, "name the incidents"),
    ({"incident_ids": [ORIGINAL], "window": "soon"}, "window"),
    ({"incident_ids": [ORIGINAL], "window": pd.Timedelta(0)}, "positive"),
    ({"incident_ids": [ORIGINAL], "until": "2026-11-06T16:05:00"}, "time zone"),
    ({"incident_ids": [ORIGINAL], "until": "2026-11-06T16:05:00Z", "since": "2026-11-07T00:00:00Z"}, "before"),
    ({"incident_ids": [ORIGINAL], "until": "2026-11-06T16:05:00Z", "executor": "kubernetes"}, "executor"),
    ({"incident_ids": [ORIGINAL], "threshold": 1.5}, "threshold"),
    ({"incident_ids": [ORIGINAL], "workers": 0}, "workers"),
])
def test_bad_arguments_are_refused_before_anything_is_recorded(pristine, tmp_path_factory, kwargs, match):
    ws = _copy(pristine, tmp_path_factory, "bad")
    with pytest.raises(RecheckError, match=match):
        recheck(ws, **kwargs)
    with ws.knowledge_base() as kb:
        assert kb.list_checks() == []


def test_an_unknown_incident_stops_the_run_before_it_starts(pristine, tmp_path_factory):
    ws = _copy(pristine, tmp_path_factory, "unknown")
    with pytest.raises(NotFoundError, match="INC-19990101-001"):
        recheck(ws, [ORIGINAL, "INC-19990101-001"], until="2026-11-06T16:05:00Z")
    with ws.knowledge_base() as kb:
        assert kb.list_checks() == []
