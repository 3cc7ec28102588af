"""The knowledge base on real SQLite files: versions, transactions, history, documents (migrations:
tests/test_store_migrations.py)."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
import yaml

from workbench.errors import ConflictError, NotFoundError, StoreError
from workbench.store import KnowledgeBase, documents

T0 = datetime(2023, 1, 29, 8, 43, 4, tzinfo=timezone.utc)

HOSTILE = [
    "it's \"quoted\" \\ back\\slash",
    "'; DROP TABLE incidents; --",
    "<script>alert(1)</script>",
    "line one\nline two\n\n  indented\ttab\r\nwindows",
    "trailing spaces   \n  ",
    "emoji 🔥🚒 and ümlauts",
    "RTL \u202eevil\u202c and עברית العربية \u200f",
    "yes", "null", "~", "0x1F", "1e3", "2023-01-29", "- dash", ": colon", "#hash", "&anchor *alias",
    "\u2028line sep\u2029para sep\x85next line",
    "\ufeffbom and \x7f delete",  # DEL is not a C0 control character (workbench.formats.text_problem)
]


@pytest.fixture
def kb(tmp_path):
    store = KnowledgeBase(f"sqlite:///{tmp_path / 'kb.sqlite'}")
    yield store
    store.close()


def _incident(kb, **overrides):
    values = dict(title="Checkout latency", started=T0, services=["checkout", "payments"], who="alice")
    values.update(overrides)
    return kb.create_incident(**values)


def _full_incident(kb, text="plain"):
    """An incident with every kind of child, ``text`` in every free-text field (one transaction)."""
    with kb.transaction():
        return _build_full_incident(kb, text)


def _one_line(text):
    """Names (services, environment, people) are one line: tab and line breaks become spaces."""
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _build_full_incident(kb, text):
    name = _one_line(text)
    inc = kb.create_incident(
        title=f"title {text}", started=T0, services=["svc-a", f"svc {name}"], severity="SEV2",
        environment=f"env {name}", detected=T0 + timedelta(minutes=2), mitigated=T0 + timedelta(minutes=30),
        labels={"symptom": text, "confidence": 0.75}, links=[{"title": text, "url": "https://x.test/?q=<a>"}],
        window_start=T0 - timedelta(hours=1), window_end=T0 + timedelta(hours=1), who="alice")
    kb.add_hypothesis(inc.id, service="svc-a", cause="change", summary=f"deploy {text}", score=0.912345678901,
                      rank=1, evidence=[{"signal": text, "at": "2023-01-29T08:44:00Z", "strength": 3.5,
                                         "nested": {"k": [1, 2.0, True, None, text]}}],
                      similar=[{"incident_id": "INC-20220101-001", "score": 0.5}], who="engine")
    kb.add_hypothesis(inc.id, service="svc-b", cause="resource", summary=text, score=0.1, rank=2,
                      status="rejected", reviewer=f"bob {name}", rationale=text, who="bob")
    kb.add_conclusion(inc.id, kind="summary", text=text, author=f"carol {name}", who="carol")
    kb.add_conclusion(inc.id, kind="lesson", text="multi\nline\nlesson", who="carol")
    kb.add_action_item(inc.id, title=f"fix {text}", owner="dave", kind="prevent", due=date(2023, 3, 1),
                       verification={"metric": text, "max": 0.5}, who="dave")
    kb.add_signoff(inc.id, name=f"erin {name}", role="incident commander", at=T0 + timedelta(days=2), who="erin")
    return kb.get_incident(inc.id)


# ----------------------------------------------------------------------------- incidents & ids

def test_a_follow_up_names_an_existing_other_incident(kb):
    original = _incident(kb)
    follow = _incident(kb, title="Recurrence", follow_up_of=original.id)
    assert follow.follow_up_of == original.id
    assert [i.id for i in kb.list_incidents(follow_up_of=original.id)] == [follow.id]
    with pytest.raises(NotFoundError, match="follow_up_of.*INC-20990101-001"):
        _incident(kb, follow_up_of="INC-20990101-001")
    with pytest.raises(StoreError, match="follow_up_of"):
        kb.update_incident(original.id, original.version, "alice", follow_up_of=original.id)
    assert len(kb.list_incidents()) == 2  # the refused ones left nothing behind


def test_incident_ids_are_generated_per_day_and_validated(kb):
    a, b = _incident(kb), _incident(kb, title="other")
    c = _incident(kb, started=datetime(2023, 1, 30, 23, 59, tzinfo=timezone(timedelta(hours=-3))))
    assert (a.id, b.id, c.id) == ("INC-20230129-001", "INC-20230129-002", "INC-20230131-001")  # UTC date
    _incident(kb, id="INC-20230129-041")
    assert _incident(kb).id == "INC-20230129-042"
    assert _incident(kb, id="nezha-20230129-0843").id == "nezha-20230129-0843"
    with pytest.raises(ConflictError, match="already exists"):
        _incident(kb, id="nezha-20230129-0843")
    for bad in ("has space", "a/b", "", "x" * 129, "ünicode"):
        with pytest.raises(StoreError, match="field 'id'"):
            _incident(kb, id=bad)


def test_times_come_back_as_aware_utc(kb):
    plus2 = timezone(timedelta(hours=2))
    inc = _incident(kb, started=datetime(2023, 1, 29, 10, 43, 4, 123456, tzinfo=plus2),
                    detected="2023-01-29T08:50:00+00:00", resolved="2023-01-29T09:00:00Z")
    got = kb.get_incident(inc.id)
    assert got.started == datetime(2023, 1, 29, 8, 43, 4, 123456, tzinfo=timezone.utc)
    for value in (got.started, got.detected, got.resolved, got.created, got.updated):
        assert value.tzinfo is timezone.utc
    with pytest.raises(StoreError, match="field 'started'.*timezone"):
        _incident(kb, started=datetime(2023, 1, 29, 8, 43))
    with pytest.raises(StoreError, match="field 'resolved'.*after started"):
        _incident(kb, resolved=T0 - timedelta(minutes=1))


def test_list_incidents_filters_and_orders_by_start(kb):
    late = _incident(kb, started=T0 + timedelta(days=2), severity="SEV1", labels={"symptom": "latency"})
    early = _incident(kb, services=["search"], status="resolved")
    assert [i.id for i in kb.list_incidents()] == [early.id, late.id]
    assert [i.id for i in kb.list_incidents(severity="SEV1")] == [late.id]
    assert [i.id for i in kb.list_incidents(status="resolved")] == [early.id]
    assert [i.id for i in kb.list_incidents(service="search")] == [early.id]
    assert [i.id for i in kb.list_incidents(since=T0 + timedelta(days=1))] == [late.id]
    assert [i.id for i in kb.list_incidents(label="symptom=latency")] == [late.id]
    assert [i.id for i in kb.list_incidents(label={"symptom": "errors"})] == []


@pytest.mark.parametrize("call, field, value", [
    (lambda kb: _incident(kb, severity="SEV9"), "severity", "SEV9"),
    (lambda kb: _incident(kb, status="done"), "status", "done"),
    (lambda kb: kb.add_hypothesis(_incident(kb).id, service="a", cause="dns", summary="s", score=1, who="x"),
     "cause", "dns"),
    (lambda kb: kb.add_conclusion(_incident(kb).id, kind="rant", text="t", who="x"), "kind", "rant"),
    (lambda kb: kb.add_action_item(_incident(kb).id, title="t", owner="o", kind="pray", who="x"), "kind", "pray"),
    (lambda kb: kb.add_action_item(_incident(kb).id, title="t", owner="o", kind="detect", status="later",
                                   who="x"), "status", "later"),
])
def test_enumeration_errors_name_field_allowed_values_and_value(kb, call, field, value):
    with pytest.raises(StoreError) as err:
        call(kb)
    message = str(err.value)
    assert f"field {field!r}" in message and repr(value) in message and "one of" in message


def test_unknown_ids_and_fields(kb):
    with pytest.raises(NotFoundError, match="incident 'nope' not found"):
        kb.get_incident("nope")
    with pytest.raises(NotFoundError, match="action item 'act-x' not found"):
        kb.update_action_item("act-x", 1, who="x", status="done")
    with pytest.raises(NotFoundError, match="incident 'nope'"):
        kb.add_hypothesis("nope", service="a", cause="code", summary="s", score=1, who="x")
    inc = _incident(kb)
    with pytest.raises(StoreError, match="did you mean 'severity'"):
        kb.update_incident(inc.id, 1, who="x", severrity="SEV1")
    with pytest.raises(StoreError, match="field 'who'"):
        kb.update_incident(inc.id, 1, who=" ", title="anonymous edit")
    assert kb.get_incident(inc.id) == inc


# ----------------------------------------------------------------------------- versions & history

def test_stale_write_conflicts_and_changes_nothing(kb):
    inc = _incident(kb)
    updated = kb.update_incident(inc.id, expected_version=1, who="bob", title="New", severity="SEV1")
    assert updated.version == 2
    before = kb.history()
    with pytest.raises(ConflictError, match="version 2, not 1"):
        kb.update_incident(inc.id, expected_version=1, who="mallory", title="Overwrite", status="closed")
    assert kb.get_incident(inc.id) == updated
    assert kb.history() == before


def test_history_records_every_change(kb):
    inc = _incident(kb)
    kb.update_incident(inc.id, 1, "bob", title="Renamed", resolved=T0 + timedelta(hours=1), services=["x"])
    kb.update_incident(inc.id, 2, "carol", title="Renamed")  # no change: no version, no history
    assert kb.get_incident(inc.id).version == 2
    rows = kb.history("incident", inc.id)
    assert rows[0].field == "*" and rows[0].old is None and rows[0].new["title"] == "Checkout latency"
    assert rows[0].who == "alice"
    changes = {r.field: (r.old, r.new, r.who) for r in rows[1:]}
    assert changes == {"title": ("Checkout latency", "Renamed", "bob"),
                       "resolved": (None, "2023-01-29T09:43:04Z", "bob"),
                       "services": (["checkout", "payments"], ["x"], "bob")}
    assert all(r.at.tzinfo is timezone.utc for r in rows)
    h = kb.add_hypothesis(inc.id, service="x", cause="code", summary="s", score=0.4, who="engine")
    kb.update_hypothesis(h.id, 1, "dan", status="confirmed", reviewer="dan", rationale="matches the deploy")
    fields = [(r.field, r.new) for r in kb.history("hypothesis", h.id)[1:]]
    assert fields == [("status", "confirmed"), ("reviewer", "dan"), ("rationale", "matches the deploy")]
    assert {r.entity for r in kb.history(incident_id=inc.id)} == {"incident", "hypothesis"}


def test_confirming_needs_reviewer_and_rationale(kb):
    inc = _incident(kb)
    h = kb.add_hypothesis(inc.id, service="x", cause="code", summary="s", score=0.4, who="engine")
    with pytest.raises(StoreError, match="field 'rationale'"):
        kb.update_hypothesis(h.id, 1, "dan", status="confirmed", reviewer="dan")
    with pytest.raises(StoreError, match="field 'reviewer'"):
        kb.add_hypothesis(inc.id, service="y", cause="code", summary="s", score=0.1, status="rejected", who="x")
    assert kb.get_incident(inc.id).version == 1 and kb.list_hypotheses(inc.id)[0].version == 1


def test_replace_proposed_keeps_reviewed_hypotheses(kb):
    inc = _incident(kb)
    old = kb.add_hypothesis(inc.id, service="a", cause="change", summary="old", score=0.9, rank=1, who="engine")
    kept = kb.add_hypothesis(inc.id, service="b", cause="resource", summary="cpu", score=0.5, rank=2, who="engine")
    kb.update_hypothesis(kept.id, 1, "rev", status="confirmed", reviewer="rev", rationale="cpu graph")
    result = kb.replace_proposed_hypotheses(inc.id, [
        {"service": "c", "cause": "dependency", "summary": "db", "score": 0.8, "rank": 1},
        {"service": "b", "cause": "resource", "summary": "cpu again", "score": 0.7, "rank": 2},  # decided
        {"service": "a", "cause": "traffic", "summary": "spike", "score": 0.2},
    ], who="engine")
    assert [(h.service, h.cause, h.status) for h in result] == [
        ("c", "dependency", "proposed"), ("b", "resource", "confirmed"), ("a", "traffic", "proposed")]
    deleted = [r for r in kb.history("hypothesis", old.id) if r.new is None]
    assert len(deleted) == 1 and deleted[0].old["summary"] == "old"
    with pytest.raises(StoreError, match=r"hypotheses\[0\].status"):
        kb.replace_proposed_hypotheses(inc.id, [{"service": "z", "cause": "code", "summary": "s", "score": 1,
                                                 "status": "confirmed"}], who="engine")
    assert len(kb.list_hypotheses(inc.id)) == 3


def test_a_reanalysis_keeps_what_it_ranks_again_and_changes_no_content_hash(kb):
    inc = _incident(kb)
    ranking = [{"service": "a", "cause": "change", "summary": "deploy", "score": 0.9, "rank": 1},
               {"service": "b", "cause": "code", "summary": "errors", "score": 0.4, "rank": 2},
               {"service": "c", "cause": "traffic", "summary": "spike", "score": 0.1, "rank": 3}]
    first = kb.replace_proposed_hypotheses(inc.id, ranking, who="engine")
    signed = kb.add_signoff(inc.id, name="Carol", role="incident commander", who="carol")
    again = kb.replace_proposed_hypotheses(inc.id, ranking, who="engine")
    assert [(h.id, h.version) for h in again] == [(h.id, 1) for h in first]
    assert kb.content_hash(inc.id) == signed.content_hash  # the sign-off still holds
    moved = kb.replace_proposed_hypotheses(inc.id, [dict(ranking[1], score=0.95, rank=1),
                                                    dict(ranking[0], rank=2)], who="engine")
    ids = {h.service: h.id for h in first}
    assert [(h.id, h.version, h.rank) for h in moved] == [(ids["b"], 2, 1), (ids["a"], 2, 2)]
    changes = {(r.field, r.old, r.new) for r in kb.history("hypothesis", ids["b"]) if r.field != "*"}
    assert changes == {("score", 0.4, 0.95), ("rank", 2, 1)}
    assert [r.new for r in kb.history("hypothesis", ids["c"])][-1] is None  # dropped: deleted
    assert kb.content_hash(inc.id) != signed.content_hash


# ----------------------------------------------------------------------------- transactions

def test_failure_inside_a_transaction_leaves_nothing(kb):
    inc = _incident(kb)
    history = kb.history()
    with pytest.raises(RuntimeError):
        with kb.transaction():
            kb.add_hypothesis(inc.id, service="a", cause="code", summary="one", score=0.5, who="x")
            kb.add_hypothesis(inc.id, service="b", cause="code", summary="two", score=0.4, who="x")
            kb.update_incident(inc.id, 1, "x", status="mitigated")
            assert len(kb.list_hypotheses(inc.id)) == 2  # visible inside the transaction
            raise RuntimeError("crash between writes")
    assert kb.list_hypotheses(inc.id) == []
    assert kb.get_incident(inc.id) == inc
    assert kb.history() == history


def test_a_failed_call_inside_a_transaction_is_undone_alone(kb):
    inc = _incident(kb)
    with kb.transaction():
        kb.add_conclusion(inc.id, kind="summary", text="first", who="x")
        with pytest.raises(ConflictError):
            kb.update_incident(inc.id, 7, "x", title="stale")
        with pytest.raises(StoreError):
            kb.add_hypothesis(inc.id, service="a", cause="nope", summary="s", score=1, who="x")
        kb.add_conclusion(inc.id, kind="impact", text="second", who="x")
    assert [c.text for c in kb.list_conclusions(inc.id)] == ["first", "second"]
    assert kb.get_incident(inc.id).title == inc.title


def test_a_failing_import_writes_nothing(kb):
    """The import creates the incident and a hypothesis before it meets the bad child: all undone."""
    doc = {"id": "imp-1", "title": "t", "started": "2023-01-29T08:43:04Z", "services": ["a"],
           "hypotheses": [{"service": "a", "cause": "code", "summary": "s", "score": 1},
                          {"id": "hyp-x", "service": "b", "cause": "code", "summary": "s", "score": 1}],
           "conclusions": [{"id": "hyp-x", "kind": "summary", "text": "t"}]}
    kb.import_incident({**doc, "id": "other", "hypotheses": [doc["hypotheses"][1]], "conclusions": []}, who="x")
    before = kb.history()
    with pytest.raises(StoreError, match="belongs to incident 'other'"):
        kb.import_incident(doc, who="x")
    with pytest.raises(NotFoundError):
        kb.get_incident("imp-1")
    assert kb.history() == before
    with kb.transaction():  # inside a transaction the failed import is undone, the rest commits
        kept = kb.add_conclusion("other", kind="summary", text="kept", who="x")
        with pytest.raises(StoreError, match="belongs to incident"):
            kb.import_incident(doc, who="x")
    assert kb.list_conclusions("other") == [kept]
    with pytest.raises(NotFoundError):
        kb.get_incident("imp-1")
    assert len(kb.history()) == len(before) + 1


def test_in_memory_database_works_for_scratch_use():
    with KnowledgeBase("sqlite://") as scratch:
        inc = _full_incident(scratch)
        assert len(scratch.list_hypotheses(inc.id)) == 2


# ----------------------------------------------------------------------------- other records

def test_action_items_and_overdue(kb):
    inc = _incident(kb)
    late = kb.add_action_item(inc.id, title="alert on p99", owner="ops", kind="detect", due="2023-02-01",
                              verification={"metric": "latency_p99", "max": 0.5}, who="x")
    kb.add_action_item(inc.id, title="runbook", owner="ops", kind="process", due=date(2023, 3, 1), who="x")
    kb.add_action_item(inc.id, title="no due date", owner="dev", kind="mitigate", who="x")
    assert [a.title for a in kb.list_action_items(overdue_on=date(2023, 2, 15))] == ["alert on p99"]
    kb.update_action_item(late.id, 1, "ops", status="done")
    assert kb.list_action_items(overdue_on=date(2023, 2, 15)) == []
    assert [a.title for a in kb.list_action_items(owner="dev")] == ["no due date"]
    assert kb.list_action_items(inc.id, status="done")[0].verification == {"metric": "latency_p99", "max": 0.5}
    with pytest.raises(StoreError, match="field 'due'"):
        kb.add_action_item(inc.id, title="t", owner="o", kind="detect", due=T0, who="x")


def test_runs_checks_and_signoffs(kb):
    inc = _incident(kb)
    run = kb.start_run(inc.id, template="postmortem.ipynb", parameters={"incident_id": inc.id, "k": 3})
    assert run.status == "running" and run.ended is None
    done = kb.finish_run(run.id, "failed", error_cell=4, output_path="out/run.ipynb")
    assert (done.status, done.error_cell) == ("failed", 4) and done.ended >= done.started
    with pytest.raises(ConflictError, match="already finished"):
        kb.finish_run(run.id, "succeeded")
    assert kb.list_runs(inc.id) == [done]
    item = kb.add_action_item(inc.id, title="t", owner="o", kind="detect", who="x")
    check = kb.record_check(inc.id, window_start=T0, window_end=T0 + timedelta(hours=1), verdict="holds",
                            score=0.1, evidence=[{"metric": "m"}], action_item_id=item.id)
    assert kb.list_checks(action_item_id=item.id) == [check]
    with pytest.raises(StoreError, match="field 'verdict'"):
        kb.record_check(inc.id, window_start=T0, window_end=T0 + timedelta(hours=1), verdict="maybe")
    other = _incident(kb, title="other")
    with pytest.raises(StoreError, match="field 'action_item_id'"):
        kb.record_check(other.id, window_start=T0, window_end=T0 + timedelta(hours=1), verdict="clear",
                        action_item_id=item.id)
    sign = kb.add_signoff(inc.id, name="erin", role="ic", who="erin")
    assert sign.content_hash == kb.content_hash(inc.id)
    kb.add_conclusion(inc.id, kind="summary", text="edited after sign-off", who="x")
    assert kb.content_hash(inc.id) != sign.content_hash
    assert kb.list_signoffs(inc.id) == [sign]


# ----------------------------------------------------------------------------- hostile strings & NUL

def test_hostile_strings_are_stored_exactly(kb, tmp_path):
    """Quotes, SQL, HTML, line breaks of every kind, emoji, RTL marks: through the API and YAML."""
    fresh = KnowledgeBase(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    for text in HOSTILE:
        inc = _full_incident(kb, text)
        assert kb.get_incident(inc.id).title == f"title {text}", text
        assert kb.list_hypotheses(inc.id)[0].evidence[0]["nested"]["k"][-1] == text
        assert kb.list_conclusions(inc.id)[0].author == f"carol {_one_line(text)}"
        exported = kb.export_incident(inc.id)
        assert yaml.safe_load(exported)["title"] == f"title {text}", text
        imported = fresh.import_incident(exported, who="importer")
        same = ("title", "environment", "services", "labels", "links", "started", "version")
        assert [getattr(imported, f) for f in same] == [getattr(inc, f) for f in same], text
        assert fresh.export_incident(inc.id) == exported, text
        assert fresh.list_action_items(inc.id)[0].verification == {"metric": text, "max": 0.5}
    fresh.close()
    assert len(kb.list_incidents()) == len(HOSTILE)  # and the incidents table is still there


def test_names_are_one_line_text(kb):
    """A service, environment or person's name takes no tab or line break (the telemetry edge's rule
    for names); titles, summaries and rationales may span lines."""
    for field, values in (("services[0]", {"services": ["pay\nments"]}), ("environment", {"environment": "prod\tx"})):
        with pytest.raises(StoreError, match=rf"field '{re.escape(field)}': contains a control character"):
            _incident(kb, **values)
    assert _incident(kb, title="two\nlines").title == "two\nlines"


def test_nul_characters_are_refused_clearly(kb):
    with pytest.raises(StoreError, match=r"field 'title': contains a NUL"):
        _incident(kb, title="a\x00b")
    inc = _incident(kb)
    with pytest.raises(StoreError, match=r"field 'evidence\[0\].x': contains a NUL"):
        kb.add_hypothesis(inc.id, service="a", cause="code", summary="s", score=1, evidence=[{"x": "\x00"}], who="x")
    with pytest.raises(StoreError, match="lone surrogate"):
        kb.add_conclusion(inc.id, kind="summary", text="\ud800", who="x")
    # The same text rule as the telemetry edge: C0 controls other than tab, LF and CR are refused.
    with pytest.raises(StoreError, match=r"field 'title': contains a control character \('\\x07'\)"):
        _incident(kb, title="bell \x07")


# ----------------------------------------------------------------------------- documents

def test_yaml_round_trip_is_byte_identical_and_reimport_is_a_no_op(kb, tmp_path):
    inc = _full_incident(kb, "round trip")
    kb.update_incident(inc.id, inc.version, "bob", status="in_review")
    exported = kb.export_incident(inc.id)
    path = documents.write_document(tmp_path / "incidents" / f"{inc.id}.yaml", yaml.safe_load(exported))
    assert path.read_text(encoding="utf-8") == exported
    with KnowledgeBase(f"sqlite:///{tmp_path / 'empty.sqlite'}") as empty:
        empty.import_incident(path, who="importer")
        assert empty.export_incident(inc.id) == exported
        history = empty.history()
        empty.import_incident(path, who="importer")
        assert empty.history() == history
    history = kb.history()
    assert kb.import_incident(exported, who="again").version == kb.get_incident(inc.id).version
    assert kb.history() == history and kb.export_incident(inc.id) == exported


def test_a_follow_up_document_round_trips_and_needs_its_original(kb, tmp_path):
    original = _incident(kb, id="INC-20261102-001")
    follow = _incident(kb, id="INC-20261102-001-R1", title="Recurrence", follow_up_of=original.id)
    exported = kb.export_incident(follow.id)
    assert yaml.safe_load(exported)["follow_up_of"] == original.id
    assert "follow_up_of" not in yaml.safe_load(kb.export_incident(original.id))
    with KnowledgeBase(f"sqlite:///{tmp_path / 'other.sqlite'}") as other:
        with pytest.raises(StoreError, match="follow_up_of.*import the original first.*INC-20261102-001"):
            other.import_incident(exported, who="importer")
        assert other.list_incidents() == []
        other.import_incident(kb.export_incident(original.id), who="importer")
        other.import_incident(exported, who="importer")
        assert other.export_incident(follow.id) == exported


def test_a_hypothesis_confidence_is_stored_exported_only_when_set_and_checked(kb, tmp_path):
    inc = _incident(kb)
    engine = kb.add_hypothesis(inc.id, service="payments", cause="change", summary="deploy", score=0.8, rank=1,
                               confidence=0.87, who="workbench-analysis")
    human = kb.add_hypothesis(inc.id, service="db", cause="resource", summary="pool", score=0.1, who="carol")
    assert engine.confidence == 0.87 and human.confidence is None
    doc = yaml.safe_load(kb.export_incident(inc.id))
    by_service = {h["service"]: h for h in doc["hypotheses"]}
    # a document written before the field existed has no key, and one without a confidence keeps none
    assert by_service["payments"]["confidence"] == 0.87 and "confidence" not in by_service["db"]
    with KnowledgeBase(f"sqlite:///{tmp_path / 'copy.sqlite'}") as other:
        other.import_incident(kb.export_incident(inc.id), who="importer")
        assert other.export_incident(inc.id) == kb.export_incident(inc.id)
        assert {h.service: h.confidence for h in other.list_hypotheses(inc.id)} == {"payments": 0.87, "db": None}
    with pytest.raises(StoreError, match="confidence"):
        kb.add_hypothesis(inc.id, service="x", cause="code", summary="x", score=0.1, confidence=1.5, who="engine")


def test_importing_an_edited_document_updates_with_history(kb):
    inc = _full_incident(kb)
    doc = yaml.safe_load(kb.export_incident(inc.id))
    doc["title"] = "edited title"
    doc["hypotheses"][0].update(status="confirmed", reviewer="rev", rationale="deploy at 08:40")
    doc["action_items"].append({"title": "new item", "owner": "ops", "kind": "detect"})
    kb.import_incident(yaml.safe_dump(doc), who="editor")
    got = kb.get_incident(inc.id)
    assert (got.title, got.version) == ("edited title", inc.version + 1)
    top = kb.list_hypotheses(inc.id)[0]
    assert (top.status, top.reviewer, top.version) == ("confirmed", "rev", 2)
    assert [a.title for a in kb.list_action_items(inc.id)] == ["fix plain", "new item"]
    edits = [(r.entity, r.field, r.who) for r in kb.history(incident_id=inc.id) if r.who == "editor"]
    assert ("incident", "title", "editor") in edits and ("hypothesis", "status", "editor") in edits
    # The same document again (now stale: made from version 1) conflicts only where it would change.
    doc["title"] = "older edit"
    with pytest.raises(ConflictError, match="version 2 .* from version 1"):
        kb.import_incident(doc, who="late")
    assert kb.get_incident(inc.id).title == "edited title"


def test_documents_without_ids_and_source_shape(kb):
    nezha = {"id": "nezha-20230129-0843", "title": "ts-basic-service fault", "started": T0,
             "services": ["ts-basic-service", "ts-travel-service"], "environment": "trainticket",
             "window": {"start": T0 - timedelta(minutes=10), "end": T0 + timedelta(minutes=3)}}
    inc = kb.import_incident(nezha, who="source")
    assert (inc.window_start, inc.severity, inc.status) == (T0 - timedelta(minutes=10), "SEV3", "open")
    past = {"title": "Cache stampede", "started": "2022-05-01T10:00:00Z", "services": ["cache"], "severity": "SEV2",
            "hypotheses": [{"service": "cache", "cause": "traffic", "summary": "cold cache", "score": 0.9,
                            "status": "confirmed", "reviewer": "team", "rationale": "postmortem"}],
            "conclusions": [{"kind": "lesson", "text": "warm caches"}]}
    first = kb.import_incident(past, who="seed")
    assert first.id == "INC-20220501-001"
    assert kb.list_conclusions(first.id)[0].author == "seed"
    history = kb.history()
    assert kb.import_incident(past, who="seed").id == first.id  # matched by title+started, children by key
    assert kb.history() == history and len(kb.list_hypotheses(first.id)) == 1


@pytest.mark.parametrize("doc, message", [
    ({"title": "t", "started": "2023-01-01T00:00:00Z"}, "field 'services': required"),
    ({"title": "t", "started": "2023-01-01T00:00:00", "services": []}, "field 'started'.*timezone"),
    ({"title": "t", "started": "2023-01-01T00:00:00Z", "services": [], "servics": []}, "did you mean 'services'"),
    ({"title": "t", "started": "2023-01-01T00:00:00Z", "services": [],
      "hypotheses": [{"service": "a", "cause": "code", "summary": "s", "score": 1},
                     {"service": "a", "cause": "gremlins", "summary": "s", "score": 1}]},
     r"field 'hypotheses\[1\].cause': expected one of change"),
    ({"title": "t", "started": "2023-01-01T00:00:00Z", "services": "api"}, "field 'services'.*list"),
    ({"title": "t", "started": "2023-01-01T00:00:00Z", "services": [],
      "links": [{"title": "x", "url": "javascript:alert(1)"}]}, r"links\[0\].url"),
])
def test_validate_document_names_file_and_field(doc, message):
    with pytest.raises(StoreError, match=f"^incidents/x.yaml: .*{message}"):
        documents.validate_document(doc, "incidents/x.yaml")


def test_load_document_rejects_non_mappings_and_bad_yaml():
    with pytest.raises(StoreError, match="a.yaml: expected a mapping"):
        documents.load_document("- just\n- a list\n", "a.yaml")
    with pytest.raises(StoreError, match="b.yaml: malformed YAML at line "):
        documents.load_document("title: [unclosed\n", "b.yaml")
    with pytest.raises(StoreError, match="c.yaml: malformed YAML"):  # safe constructors only
        documents.load_document("!!python/object/apply:os.system ['true']", "c.yaml")


@pytest.mark.parametrize("bad", [".", "..", "a/b", "", "-rf", "--help"])
def test_ids_that_would_escape_the_incident_folder_are_refused(tmp_path, bad):
    from workbench.errors import StoreError
    from workbench.store import KnowledgeBase

    kb = KnowledgeBase(f"sqlite:///{tmp_path / 'kb.sqlite'}")
    try:
        with pytest.raises(StoreError, match="id"):
            kb.create_incident(id=bad, title="t", started="2026-11-01T00:00:00Z", services=[], who="t")
    finally:
        kb.close()


def test_confirmed_hypotheses_of_every_incident_in_one_call(kb):
    first, second = _incident(kb), _incident(kb, title="Orders slow")
    kb.add_hypothesis(first.id, service="payments", cause="change", summary="deploy", score=0.9, rank=1,
                      status="confirmed", reviewer="bob", rationale="rollback fixed it", who="bob")
    kb.add_hypothesis(first.id, service="checkout", cause="dependency", summary="callee", score=0.5, rank=2, who="x")
    kb.add_hypothesis(second.id, service="orders", cause="resource", summary="pool", score=0.4, rank=3,
                      status="confirmed", reviewer="bob", rationale="pool pinned", who="bob")
    kb.add_hypothesis(second.id, service="orders", cause="change", summary="config", score=0.7, rank=1,
                      status="confirmed", reviewer="bob", rationale="and the config", who="bob")
    got = kb.confirmed_hypotheses()
    assert set(got) == {first.id, second.id}
    for incident_id, hypotheses in got.items():
        assert hypotheses == kb.list_hypotheses(incident_id, status="confirmed")


# ----------------------------------------------------------------------------- snapshot, meeting records

def test_snapshot_decisions_and_review_signoffs(kb):
    inc = _incident(kb)
    assert inc.snapshot is None and "snapshot" not in kb.export_incident(inc.id)
    snap = {"taken_for": {"started": "2023-01-29T08:43:04Z", "days": 7}, "services": ["b", "a"],
            "versions": [{"service": "b", "at_started": "2.0", "rolled_back": ["2.0"], "rate": 0.0125}]}
    updated = kb.update_incident(inc.id, inc.version, "analysis", snapshot=snap)
    assert updated.snapshot == snap and updated.version == inc.version + 1
    text = kb.export_incident(inc.id)
    block = text[text.index("\nsnapshot:"):text.index("\nversion:")]  # after links, before version, in given order
    assert block.index("taken_for:") < block.index("  services:\n  - b\n  - a") < block.index("versions:")
    kb.import_incident(text, who="test")  # re-import changes nothing
    assert kb.get_incident(inc.id).version == updated.version and kb.export_incident(inc.id) == text
    with pytest.raises(StoreError, match="snapshot"):
        kb.update_incident(inc.id, updated.version, "x", snapshot=["not", "a", "mapping"])
    item = kb.add_action_item(inc.id, title="t", owner="o", kind="detect", who="w")
    other = _incident(kb, title="other")
    decided = kb.record_suggestion_decision(inc.id, "alert:b/x", "accepted", who="carol", action_item_id=item.id,
                                            at=T0)
    kb.record_suggestion_decision(inc.id, "alert:b/x", "rejected", who="erin", rationale="no", at=T0 + timedelta(1))
    assert [(d.status, d.who) for d in kb.list_suggestion_decisions(inc.id)] == [("accepted", "carol"),
                                                                                 ("rejected", "erin")]
    assert decided.action_item_id == item.id and kb.list_suggestion_decisions(other.id) == []
    with pytest.raises(StoreError, match="action_item_id"):
        kb.record_suggestion_decision(other.id, "k", "accepted", who="x", action_item_id=item.id)
    with pytest.raises(StoreError, match="status"):
        kb.record_suggestion_decision(inc.id, "k", "maybe", who="x")
    signed = kb.add_review_signoff("2023-01-01T00:00:00Z..2023-02-01T00:00:00Z", name="carol", role="lead",
                                   content_hash="sha256:abc", at=T0)
    assert kb.list_review_signoffs(signed.pack) == [signed] and kb.list_review_signoffs("nope") == []


def test_names_and_titles_are_bounded_naming_the_field(kb):
    """issue 13, item 10: a 100,000-character title or service made the report 1.7 million pixels wide."""
    from workbench.formats import MAX_NAME_CHARS, MAX_TITLE_CHARS

    inc = _incident(kb, title="t" * MAX_TITLE_CHARS, services=["s" * MAX_NAME_CHARS])
    assert len(inc.title) == MAX_TITLE_CHARS
    before = len(kb.list_incidents())
    with pytest.raises(StoreError, match=rf"field 'title': expected at most {MAX_TITLE_CHARS:,} characters, got 100,000"):
        _incident(kb, title="t" * 100_000)
    with pytest.raises(StoreError, match=r"field 'services\[0\]': expected at most"):
        _incident(kb, services=["s" * (MAX_NAME_CHARS + 1)])
    assert len(kb.list_incidents()) == before

