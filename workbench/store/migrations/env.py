"""Alembic environment of the knowledge base.

Two ways in:

- programmatically (what :class:`workbench.store.KnowledgeBase` does): the caller puts an open
  connection in ``config.attributes["connection"]`` and no ini file is needed;
- from the command line, for developers writing a migration::

      alembic -c workbench/store/alembic.ini -x url=sqlite:///kb.sqlite revision --autogenerate -m "..."

  (``-x url=`` or ``WORKBENCH_DB_URL`` selects the database).
"""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from workbench.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("WORKBENCH_DB_URL")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set WORKBENCH_DB_URL")
    return url


def _configure(**kwargs) -> None:
    # render_as_batch: later migrations that alter columns then work on SQLite too (copy-and-move);
    # on PostgreSQL batch operations are plain ALTERs.
    context.configure(target_metadata=target_metadata, render_as_batch=True, compare_type=True, **kwargs)


def run_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=NullPool)
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
