"""Alembic migrations of the knowledge base, run programmatically.

Users never need ``alembic.ini``: :func:`upgrade` builds the Alembic configuration from this
package's path. Developers add a revision with the ini file beside ``workbench/store``::

    alembic -c workbench/store/alembic.ini -x url=sqlite:///kb.sqlite revision --autogenerate \\
        -m "what changed" --rev-id 0002
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

#: Folder holding ``env.py`` and ``versions/``.
LOCATION = Path(__file__).resolve().parent


def config() -> Config:
    """An Alembic configuration pointing at this package (no ini file)."""
    cfg = Config()
    # ConfigParser interpolation would read a '%' in the path as a reference.
    cfg.set_main_option("script_location", str(LOCATION).replace("%", "%%"))
    return cfg


def head() -> str:
    """The newest revision this workbench knows."""
    heads = ScriptDirectory.from_config(config()).get_heads()
    return heads[0]


def known_revisions() -> set[str]:
    """Every revision id shipped with this workbench."""
    return {s.revision for s in ScriptDirectory.from_config(config()).walk_revisions()}


def current(connection: Connection) -> str | None:
    """The revision the database is at (``None`` for a database without the schema)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` in one transaction."""
    with engine.begin() as connection:
        cfg = config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the database behind ``engine`` to ``revision`` (``"base"`` drops everything)."""
    with engine.begin() as connection:
        cfg = config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)
