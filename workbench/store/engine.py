"""Engines for the knowledge base: one URL in, a configured SQLAlchemy engine out."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ..errors import MissingDependencyError, StoreError


def connect(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    Raises
    ------
    StoreError
        The URL is not a database URL, or a SQLite file's folder does not exist.
    MissingDependencyError
        The PostgreSQL driver is missing (the ``postgres`` extra).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r} (expected sqlite:///path/kb.sqlite or "
                         f"postgresql+psycopg://user@host/db)") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise StoreError(f"cannot open knowledge base {url}: folder {folder} does not exist")
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError) as exc:
        if parsed.get_backend_name() == "postgresql":
            raise MissingDependencyError(f"{exc}; install the PostgreSQL driver with "
                                         f"pip install 'postmortem-workbench[postgres]'") from None
        raise StoreError(f"unsupported database URL {parsed.render_as_string(hide_password=True)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_like_a_server(engine)
    elif engine.dialect.name == "postgresql":
        _nul_lookups_match_nothing(engine)
    return engine


def _nul_lookups_match_nothing(engine: Engine) -> None:
    """A NUL in a looked-up value finds nothing on PostgreSQL, as on SQLite.

    PostgreSQL's text cannot hold NUL, so psycopg refuses such a parameter outright ("text fields
    cannot contain NUL"), which would turn ``get_incident("x\\0")`` into a database error naming no
    field. No stored text holds NUL (every write refuses it, naming the field), so a read whose
    parameter holds one cannot match anything: the parameter is sent as NULL, which equals nothing.
    Only reads are touched; a write never gets here with a NUL.
    """

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _no_nul(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> Any:
        if executemany or not statement.lstrip().upper().startswith("SELECT"):
            return statement, parameters
        if isinstance(parameters, dict):
            parameters = {k: (None if isinstance(v, str) and "\x00" in v else v) for k, v in parameters.items()}
        elif isinstance(parameters, (list, tuple)):
            parameters = type(parameters)(None if isinstance(v, str) and "\x00" in v else v for v in parameters)
        return statement, parameters


def _sqlite_like_a_server(engine: Engine) -> None:
    """Make SQLite behave like the server databases the code is also written for.

    pysqlite's own transaction handling starts transactions late and breaks SAVEPOINT; the
    documented SQLAlchemy recipe hands BEGIN to SQLAlchemy. ``BEGIN IMMEDIATE`` takes the write lock
    up front, so a read-check-write (version check, id counter) is never interleaved with another
    writer; foreign keys are off by default in SQLite.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
