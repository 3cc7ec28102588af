"""The knowledge base and the outbox on a real PostgreSQL server that this module starts.

The server (``tests/pg.py``) is initialised in a temp folder, listens on a Unix socket only and is
stopped when the module ends, also when tests fail; each test gets a fresh empty database. Without
PostgreSQL binaries every test here is skipped with the reason. Two kinds of tests:

- the backend-independent behaviours of ``test_store.py`` and ``test_outbox.py``, re-run unchanged
  against PostgreSQL (the test functions are imported and called with this module's fixtures);
- what only a server shows: migrations on PostgreSQL, ``timestamptz`` in a non-UTC server zone,
  writers racing on row locks, and ``FOR UPDATE SKIP LOCKED`` between concurrent deliverers.
"""
from __future__ import annotations

import inspect as pyinspect
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

# tests/ is on sys.path (pytest's default "prepend" import mode), so the sibling test modules and the
# server helper import by name; importing a test module does not collect its tests here.
import pg
import test_outbox as outbox_tests
import test_store as store_tests
from workbench.errors import ConflictError, NotFoundError, StoreError
from workbench.loop.notify import deliver
from workbench.store import KnowledgeBase, migrations
from workbench.store.models import Base

pytestmark = pytest.mark.postgres

T0 = store_tests.T0
UTC = timezone.utc

#: Tests of test_store.py that run unchanged on PostgreSQL (they take ``kb`` and maybe ``tmp_path``).
#: Left out: validation-only tests (no database involved) and the SQLite-file ones, which have
#: PostgreSQL counterparts below (schema, migrations, newer schema refused).
STORE_TESTS = [
    "test_a_follow_up_names_an_existing_other_incident",
    "test_incident_ids_are_generated_per_day_and_validated",
    "test_times_come_back_as_aware_utc",
    "test_list_incidents_filters_and_orders_by_start",
    "test_unknown_ids_and_fields",
    "test_stale_write_conflicts_and_changes_nothing",
    "test_history_records_every_change",
    "test_confirming_needs_reviewer_and_rationale",
    "test_replace_proposed_keeps_reviewed_hypotheses",
    "test_failure_inside_a_transaction_leaves_nothing",
    "test_a_failed_call_inside_a_transaction_is_undone_alone",
    "test_a_failing_import_writes_nothing",
    "test_action_items_and_overdue",
    "test_runs_checks_and_signoffs",
    "test_snapshot_decisions_and_review_signoffs",
    "test_hostile_strings_are_stored_exactly",  # exports from PostgreSQL, imports into SQLite
    "test_nul_characters_are_refused_clearly",
    "test_yaml_round_trip_is_byte_identical_and_reimport_is_a_no_op",
    "test_a_follow_up_document_round_trips_and_needs_its_original",
    "test_importing_an_edited_document_updates_with_history",
    "test_documents_without_ids_and_source_shape",
]

#: Tests of test_outbox.py that run unchanged on PostgreSQL, against the same real local HTTP
#: receiver. Left out: the signature test (it reads the SQLite file's bytes), configuration-only
#: tests, and the unique-delivery-id test (sqlite3; PostgreSQL counterpart below).
OUTBOX_TESTS = [
    "test_ticket_format_is_signed_and_shaped_for_trackers",
    "test_retries_after_500s_with_backoff_then_delivered",
    "test_dead_letter_after_n_failures_stays_visible_and_resend_keeps_the_id",
    "test_redirects_and_unreachable_hosts_are_failed_attempts",
    "test_crash_between_commit_and_send_loses_nothing_and_sends_each_id_once",
    "test_a_killed_process_loses_no_committed_notification_and_leaks_no_uncommitted_one",
    "test_a_rolled_back_change_queues_nothing",
    "test_crash_after_send_before_mark_resends_the_same_delivery_id",
    "test_enqueue_targets_keys_and_payload_checks",
]


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def server():
    """One server for the module (skipped with the reason when PostgreSQL is not installed)."""
    with pg.running_server() as running:
        yield running


@pytest.fixture
def url(server):
    """A fresh, empty database (dropped after the test)."""
    with server.database() as database_url:
        yield database_url


@pytest.fixture
def kb(url):
    store = KnowledgeBase(url)
    yield store
    store.close()


@pytest.fixture
def receiver():
    r = outbox_tests.Receiver()
    yield r
    r.close()


def _call(test, request):
    """Run an imported test function with the fixtures it names, as built by this module."""
    return test(**{name: request.getfixturevalue(name) for name in pyinspect.signature(test).parameters})


def _sql(server, url):
    """A plain psycopg connection to the test's database (to look under the store)."""
    return server.connect(make_url(url).database)


def _hooks(receiver, *names):
    return [outbox_tests._hook(receiver, name, f"/{name}") for name in names]


# ----------------------------------------------------------------------------- the shared behaviours

@pytest.mark.parametrize("name", STORE_TESTS)
def test_store_behaviour_on_postgresql(name, request):
    _call(getattr(store_tests, name), request)


@pytest.mark.parametrize("name", OUTBOX_TESTS)
def test_outbox_behaviour_on_postgresql(name, request):
    _call(getattr(outbox_tests, name), request)


# ----------------------------------------------------------------------------- schema and migrations

def test_migrations_apply_one_by_one_from_an_empty_database(url):
    revisions = [s.revision for s in ScriptDirectory.from_config(migrations.config()).walk_revisions()][::-1]
    assert revisions[0] == "0001" and revisions[-1] == migrations.head()
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert migrations.current(connection) is None and inspect(connection).get_table_names() == []
        for revision in revisions[:-1]:  # the last step is left to KnowledgeBase
            migrations.upgrade(engine, revision)
            with engine.connect() as connection:
                assert migrations.current(connection) == revision
    finally:
        engine.dispose()
    with KnowledgeBase(url) as kb:
        assert kb.schema_version() == migrations.head()
        inc = store_tests._full_incident(kb)
        assert len(kb.list_hypotheses(inc.id)) == 2


def test_a_new_database_gets_the_schema_of_the_models(kb, url):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                    Base.metadata)
    finally:
        engine.dispose()
    assert {"incidents", "hypotheses", "conclusions", "action_items", "signoffs", "runs", "recurrence_checks",
            "history", "outbox", "alembic_version"} <= tables
    assert diff == []


def test_downgrade_and_upgrade_keep_the_data_and_a_newer_schema_is_refused(server, url):
    with KnowledgeBase(url) as kb:
        inc = store_tests._full_incident(kb)
        before = kb.incident_document(inc.id)
        history = kb.history()
    previous = ScriptDirectory.from_config(migrations.config()).get_revision(migrations.head()).down_revision
    engine = create_engine(url)
    migrations.downgrade(engine, previous)  # the newest revision off and on again, with rows in every table
    engine.dispose()
    with KnowledgeBase(url) as kb:  # opening upgrades
        assert kb.schema_version() == migrations.head()
        assert kb.incident_document(inc.id) == before and kb.history() == history
    engine = create_engine(url)
    migrations.downgrade(engine, "base")
    assert inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()
    with KnowledgeBase(url) as kb:
        assert kb.schema_version() == migrations.head() and kb.list_incidents() == []
    with _sql(server, url) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="9999.*newer"):
        KnowledgeBase(url)


# ----------------------------------------------------------------------------- times

def test_timestamptz_keeps_the_instant_whatever_the_zones_and_times_come_back_utc(kb, server, url):
    with _sql(server, url) as con:
        # The server runs in a +12:45/+13:45 zone (tests/pg.py): timestamptz comes back in it.
        assert con.execute("SHOW TimeZone").fetchone()[0] == "Pacific/Chatham"
        types = con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = 'public' AND data_type LIKE 'timestamp%'").fetchall()
    assert len(types) >= 20 and {t[2] for t in types} == {"timestamp with time zone"}, types

    new_york = ZoneInfo("America/New_York")
    started = datetime(2023, 3, 12, 1, 59, 30, 123456, tzinfo=new_york)  # 30.5 s before the DST jump
    detected = datetime(2023, 3, 12, 3, 0, 1, tzinfo=new_york)            # after it: 30.9 s later in UTC
    inc = kb.create_incident(title="dst", started=started, detected=detected, services=["a"], who="x",
                             window_start=datetime(2023, 3, 12, 19, 0, tzinfo=ZoneInfo("Pacific/Chatham")),
                             window_end=datetime(2023, 3, 12, 7, 0, tzinfo=UTC))
    got = kb.get_incident(inc.id)
    assert got.started == datetime(2023, 3, 12, 6, 59, 30, 123456, tzinfo=UTC)
    assert got.detected - got.started == timedelta(seconds=30, microseconds=876544)
    assert got.window_start == datetime(2023, 3, 12, 5, 15, tzinfo=UTC)  # Chatham is +13:45 in March
    for value in (got.started, got.detected, got.window_start, got.window_end, got.created, got.updated):
        assert value.tzinfo is UTC
    assert inc.id == "INC-20230312-001"  # the id's day is the UTC day, not New York's or the server's
    with _sql(server, url) as con:
        utc_wall, raw = con.execute("SELECT started AT TIME ZONE 'UTC', started FROM incidents").fetchone()
    assert utc_wall == datetime(2023, 3, 12, 6, 59, 30, 123456) and raw == got.started  # same instant

    kolkata = ZoneInfo("Asia/Kolkata")
    assert kb.list_incidents(since=datetime(2023, 3, 12, 12, 29, tzinfo=kolkata)) == [got]  # 06:59 UTC
    assert kb.list_incidents(since=datetime(2023, 3, 12, 12, 30, tzinfo=kolkata)) == []
    check = kb.record_check(inc.id, window_start=got.started, window_end=got.window_end, verdict="clear",
                            at=datetime(2023, 3, 13, 1, 0, tzinfo=ZoneInfo("Pacific/Chatham")))
    assert check.at == datetime(2023, 3, 12, 11, 15, tzinfo=UTC)
    assert kb.list_checks(since=datetime(2023, 3, 12, 11, 15, tzinfo=UTC)) == [check]
    assert all(h.at.tzinfo is UTC for h in kb.history())


# ----------------------------------------------------------------------------- racing writers

def _while_holding(kb, first, other, second, server, url):
    """Run ``first(kb)`` in an open transaction, then ``second(other)`` in a thread until it either
    finishes or waits on a row lock, then commit ``first``. Returns ``second``'s result or error."""
    outcome: dict[str, object] = {}

    def run():
        try:
            outcome["value"] = second(other)
        except Exception as exc:  # noqa: BLE001 (the caller asserts on it)
            outcome["value"] = exc

    thread = threading.Thread(target=run, daemon=True)
    with kb.transaction():
        first(kb)
        thread.start()
        deadline = time.monotonic() + 10
        with _sql(server, url) as con:
            while thread.is_alive() and time.monotonic() < deadline:
                waiting = con.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'").fetchone()[0]
                if waiting:
                    break
                time.sleep(0.01)
    thread.join(10)
    assert not thread.is_alive(), "the second writer never finished"
    return outcome["value"]


def test_racing_versioned_writes_one_wins_the_other_conflicts(kb, server, url):
    """Both writers read version 1; the loser's UPDATE waits for the winner's row lock, then finds
    the version moved (``WHERE version = 1`` matches nothing): ConflictError, nothing written."""
    inc = store_tests._incident(kb)
    with KnowledgeBase(url) as other:
        lost = _while_holding(kb, lambda k: k.update_incident(inc.id, 1, "winner", title="Winner"),
                              other, lambda k: k.update_incident(inc.id, 1, "loser", title="Loser", severity="SEV1"),
                              server, url)
    assert isinstance(lost, ConflictError), lost
    got = kb.get_incident(inc.id)
    assert (got.title, got.severity, got.version) == ("Winner", "SEV3", 2)
    assert [(h.field, h.who) for h in kb.history("incident", inc.id)] == [("*", "alice"), ("title", "winner")]


def test_a_server_side_conflict_inside_a_transaction_undoes_only_that_call(kb, server, url):
    """A racing enqueue with the same key fails in PostgreSQL itself (unique key, after waiting for
    the first writer's commit); the savepoint keeps the rest of the transaction usable."""
    inc = store_tests._incident(kb)

    def first(k):
        k.enqueue_notification("escalation", {"summary": "first"}, incident_id=inc.id, targets=["ops"], key="esc:1")

    def second(k):
        error = None
        with k.transaction():
            k.add_conclusion(inc.id, kind="summary", text="before", who="x")
            try:
                k.enqueue_notification("escalation", {"summary": "late"}, incident_id=inc.id, targets=["ops"],
                                       key="esc:1")
            except ConflictError as exc:
                error = exc
            k.add_conclusion(inc.id, kind="impact", text="after", who="x")  # not "transaction is aborted"
        return error

    with KnowledgeBase(url) as other:
        error = _while_holding(kb, first, other, second, server, url)
    assert isinstance(error, ConflictError) and "uq_outbox_dedup_key_target" in str(error), error
    assert [n.payload["summary"] for n in kb.list_outbox()] == ["first"]
    assert [c.text for c in kb.list_conclusions(inc.id)] == ["before", "after"]


def test_two_writers_creating_incidents_for_the_same_day_both_succeed(kb, server, url):
    with KnowledgeBase(url) as other:
        second = _while_holding(kb, store_tests._incident, other, store_tests._incident, server, url)
    assert not isinstance(second, Exception), second
    assert len(kb.list_incidents()) == 2


def test_two_writers_adding_to_one_incident_keep_distinct_creation_order(kb, server, url):
    inc = store_tests._incident(kb)
    with KnowledgeBase(url) as other:
        second = _while_holding(kb, lambda k: k.add_conclusion(inc.id, kind="lesson", text="first", author="a", who="a"),
                                other, lambda k: k.add_conclusion(inc.id, kind="lesson", text="second", author="b",
                                                                  who="b"), server, url)
    assert not isinstance(second, Exception), second
    assert [c.text for c in kb.list_conclusions(inc.id)] == ["first", "second"]


def test_migrating_renumbers_duplicate_creation_order_before_making_it_unique(kb, server, url):
    inc = store_tests._incident(kb)
    for text in ("a", "b", "c"):
        kb.add_conclusion(inc.id, kind="lesson", text=text, author="x", who="x")
    engine = create_engine(url)
    migrations.downgrade(engine, "0003")
    with engine.begin() as con:  # what two racing writers could leave behind before 0004
        con.exec_driver_sql("UPDATE conclusions SET seq = 1")
    migrations.upgrade(engine)
    engine.dispose()
    with KnowledgeBase(url) as again:
        assert sorted(c.text for c in again.list_conclusions(inc.id)) == ["a", "b", "c"]
        again.add_conclusion(inc.id, kind="lesson", text="d", author="x", who="x")
        assert again.list_conclusions(inc.id)[-1].text == "d"


# ----------------------------------------------------------------------------- NUL

def test_nul_is_refused_naming_the_field_before_postgresql_sees_it(kb):
    inc = store_tests._incident(kb)
    history = kb.history()
    calls = [
        (lambda: kb.update_incident(inc.id, 1, "x", labels={"symptom": "lat\x00ency"}), "labels.symptom"),
        (lambda: kb.add_action_item(inc.id, title="t", owner="o\x00", kind="detect", who="x"), "owner"),
        (lambda: kb.enqueue_notification("recurrence", {"summary": "a\x00"}, incident_id=inc.id, targets=["ops"]),
         "payload.summary"),
        (lambda: kb.enqueue_notification("recurrence", {"summary": "s", "details": {"k": ["\x00"]}},
                                         targets=["ops"]), "payload.details.k[0]"),
        (lambda: kb.import_incident({"title": "t", "started": "2023-01-29T08:43:04Z", "services": ["a\x00"]},
                                    who="x"), "services[0]"),
    ]
    for call, field in calls:
        with pytest.raises(StoreError, match=rf"field '{re.escape(field)}': contains a NUL"):
            call()
    assert kb.history() == history and kb.list_outbox() == []


def test_a_nul_in_a_lookup_is_not_found_as_on_sqlite(kb):
    inc = store_tests._incident(kb)
    item = kb.add_action_item(inc.id, title="t", owner="alice", kind="detect", who="x")
    kb.enqueue_notification("recurrence", {"summary": "s"}, incident_id=inc.id, targets=["ops"])
    with pytest.raises(NotFoundError):
        kb.get_incident(inc.id + "\x00")
    with pytest.raises(NotFoundError):
        kb.get_notification("\x00")
    assert kb.history(entity_id=inc.id + "\x00") == [] and kb.history(entity_id=inc.id)
    assert kb.list_action_items(owner="alice\x00") == [] and kb.list_action_items(owner="alice") == [item]
    assert kb.list_outbox(target="ops\x00") == [] and len(kb.list_outbox(target="ops")) == 1


# ----------------------------------------------------------------------------- outbox on a server

def test_postgresql_enforces_unique_delivery_ids_and_rows_survive_reopen(kb, server, url):
    import psycopg

    rows = kb.enqueue_notification("follow_up_due", {"summary": "review"}, targets=["a", "b"])
    with _sql(server, url) as con:
        with pytest.raises(psycopg.errors.UniqueViolation):
            con.execute("UPDATE outbox SET delivery_id = %s WHERE target = 'b'", (rows[0].delivery_id,))
    kb.close()
    with KnowledgeBase(url) as again:
        assert [r.delivery_id for r in again.list_outbox(status="pending")] == [r.delivery_id for r in rows]


def test_a_deliverer_skips_rows_another_has_claimed_instead_of_waiting(kb, url):
    for i in range(6):
        kb.enqueue_notification("follow_up_due", {"summary": f"n{i}"}, targets=["ops"])
    t = outbox_tests._later()
    theirs: list = []
    with KnowledgeBase(url) as other:
        with kb.transaction():  # the first deliverer's claim is uncommitted: its rows are locked
            mine = kb.claim_notifications(["ops"], now=t, limit=4)
            thread = threading.Thread(target=lambda: theirs.extend(other.claim_notifications(["ops"], now=t)),
                                      daemon=True)
            thread.start()
            thread.join(10)
            blocked = thread.is_alive()
        thread.join(10)
        assert not blocked, "the second deliverer waited for the first one's row locks"
        assert len(mine) == 4 and len(theirs) == 2
        assert not {n.delivery_id for n in mine} & {n.delivery_id for n in theirs}
        assert other.claim_notifications(["ops"], now=t) == []  # both claims hold their lease
    assert {n.attempts for n in kb.list_outbox()} == {1}


def test_concurrent_deliverers_never_send_a_delivery_id_twice(kb, url, receiver):
    """Four deliverers, each its own process-like KnowledgeBase and thread, drain one outbox."""
    rows = []
    with kb.transaction():
        for i in range(60):
            rows += kb.enqueue_notification("follow_up_due", {"summary": f"n{i}"}, targets=["a", "b"])
    hooks, t = _hooks(receiver, "a", "b"), outbox_tests._later()
    stores = [KnowledgeBase(url) for _ in range(4)]
    start, reports, errors = threading.Barrier(len(stores)), [None] * len(stores), []

    def run(i):
        try:
            start.wait(10)
            reports[i] = deliver(stores[i], hooks, now=t, batch=3)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert not errors, errors
    sent = receiver.ids()
    assert len(sent) == len(set(sent)) == len(rows) == 120  # every id exactly once
    assert set(sent) == {r.delivery_id for r in rows}
    assert sorted(receiver.ids("/a")) == sorted(r.delivery_id for r in rows if r.target == "a")
    assert sum(r.delivered for r in reports) == 120
    assert sum(1 for r in reports if r.delivered) >= 2  # the deliverers really overlapped
    assert {(n.status, n.attempts) for n in kb.list_outbox()} == {("delivered", 1)}
    assert all(r["verified"] for r in receiver.requests)
