"""The knowledge base's schema on real SQLite files: a new file gets it, an old one is upgraded, the
models match the migrations, a newer schema is refused."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from workbench.errors import StoreError
from workbench.store import KnowledgeBase, migrations
from workbench.store.models import Base

T0 = datetime(2023, 1, 29, 8, 43, 4, tzinfo=timezone.utc)


@pytest.fixture
def kb(tmp_path):
    store = KnowledgeBase(f"sqlite:///{tmp_path / 'kb.sqlite'}")
    yield store
    store.close()


def _incident(kb, **overrides):
    return kb.create_incident(**{"title": "Checkout latency", "started": T0, "services": ["checkout"], "who": "alice",
                                 **overrides})


def test_new_file_gets_schema_and_reports_version(kb, tmp_path):
    assert kb.schema_version() == migrations.head() == "0007"
    tables = set(inspect(create_engine(f"sqlite:///{tmp_path / 'kb.sqlite'}")).get_table_names())
    assert {"incidents", "hypotheses", "conclusions", "action_items", "signoffs", "runs",
            "recurrence_checks", "history", "alembic_version"} <= tables


def test_models_match_migrations(kb, tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'kb.sqlite'}")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_reopening_an_existing_file_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'kb.sqlite'}"
    with KnowledgeBase(url) as first:
        inc = _incident(first)
    for _ in range(2):
        with KnowledgeBase(url) as again:
            assert again.schema_version() == "0007"
            assert again.get_incident(inc.id) == inc
            assert len(again.history()) == 1


def test_opening_an_old_database_upgrades_it(tmp_path):
    path = tmp_path / "old.sqlite"
    sqlite3.connect(path).close()  # an existing, empty database file
    with KnowledgeBase(f"sqlite:///{path}") as kb:
        assert kb.schema_version() == "0007"
    engine = create_engine(f"sqlite:///{path}")
    migrations.downgrade(engine, "base")
    assert "incidents" not in inspect(engine).get_table_names()
    engine.dispose()
    with KnowledgeBase(str(path)) as kb:  # a plain path means a SQLite file
        assert kb.schema_version() == "0007"
        _incident(kb)


def test_upgrading_links_follow_ups_opened_before_the_column_existed(tmp_path):
    path = tmp_path / "kb.sqlite"
    with KnowledgeBase(str(path)) as kb:
        original = _incident(kb, id="INC-20261102-001")
        _incident(kb, id="INC-20261102-001-R1", title="Recurrence")
        _incident(kb, id="INC-20261102-002-R1", title="R-suffixed id whose original does not exist")
    engine = create_engine(f"sqlite:///{path}")
    migrations.downgrade(engine, "0002")  # the follow-up is linked only by its id, as 0002 kept it
    migrations.upgrade(engine)
    engine.dispose()
    with KnowledgeBase(str(path)) as kb:
        assert [i.id for i in kb.list_incidents(follow_up_of=original.id)] == ["INC-20261102-001-R1"]
        assert kb.get_incident("INC-20261102-002-R1").follow_up_of is None
        assert kb.get_incident(original.id).follow_up_of is None


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "kb.sqlite"
    KnowledgeBase(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="9999.*newer"):
        KnowledgeBase(f"sqlite:///{path}")


def test_bad_urls_raise_store_errors(tmp_path):
    with pytest.raises(StoreError, match="not a database URL"):
        KnowledgeBase("::nonsense::://")
    with pytest.raises(StoreError, match="does not exist"):
        KnowledgeBase(f"sqlite:///{tmp_path / 'missing' / 'kb.sqlite'}")
