"""The first schema: incidents and everything around them, plus the append-only history.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Frozen on purpose: it uses plain SQLAlchemy types (``DateTime(timezone=True)`` for the models'
``UTCDateTime``), never the models themselves, so later model changes cannot rewrite history.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ID = 128
ENUM = 32


def _id() -> sa.Column:
    return sa.Column("id", sa.String(length=ID), nullable=False)


def _incident_id() -> sa.Column:
    return sa.Column("incident_id", sa.String(length=ID), nullable=False)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _enum(name: str) -> sa.Column:
    return sa.Column(name, sa.String(length=ENUM), nullable=False)


def _bookkeeping() -> list[sa.Column]:
    return [_time("created"), _time("updated"), sa.Column("version", sa.Integer(), nullable=False)]


def _incident_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name=op.f(f"fk_{table}_incident_id_incidents"))


def _index(table: str, *columns: str, name: str | None = None) -> None:
    op.create_index(name or op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns), unique=False)


def upgrade() -> None:
    op.create_table(
        "incidents",
        _id(),
        sa.Column("title", sa.Text(), nullable=False),
        _enum("severity"),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        _time("started"),
        _time("detected", nullable=True),
        _time("mitigated", nullable=True),
        _time("resolved", nullable=True),
        _enum("status"),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        _time("window_start", nullable=True),
        _time("window_end", nullable=True),
        *_bookkeeping(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    _index("incidents", "started")
    _index("incidents", "status")

    op.create_table(
        "hypotheses",
        _id(),
        _incident_id(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        _enum("cause"),
        sa.Column("summary", sa.Text(), nullable=False),
        _enum("status"),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("similar", sa.JSON(), nullable=False),
        sa.Column("reviewer", sa.Text(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        *_bookkeeping(),
        _incident_fk("hypotheses"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hypotheses")),
    )
    _index("hypotheses", "incident_id")

    op.create_table(
        "conclusions",
        _id(),
        _incident_id(),
        sa.Column("seq", sa.Integer(), nullable=False),
        _enum("kind"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        *_bookkeeping(),
        _incident_fk("conclusions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conclusions")),
    )
    _index("conclusions", "incident_id")

    op.create_table(
        "action_items",
        _id(),
        _incident_id(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("due", sa.Date(), nullable=True),
        _enum("kind"),
        _enum("status"),
        sa.Column("verification", sa.JSON(), nullable=True),
        *_bookkeeping(),
        _incident_fk("action_items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_items")),
    )
    _index("action_items", "incident_id")
    _index("action_items", "owner")
    _index("action_items", "status")

    op.create_table(
        "signoffs",
        _id(),
        _incident_id(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=ID), nullable=False),
        _time("at"),
        _incident_fk("signoffs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signoffs")),
    )
    _index("signoffs", "incident_id")

    op.create_table(
        "runs",
        _id(),
        _incident_id(),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        _time("started"),
        _time("ended", nullable=True),
        _enum("status"),
        sa.Column("error_cell", sa.Integer(), nullable=True),
        sa.Column("output_path", sa.Text(), nullable=True),
        _incident_fk("runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    _index("runs", "incident_id")

    op.create_table(
        "recurrence_checks",
        _id(),
        _incident_id(),
        _time("at"),
        _time("window_start"),
        _time("window_end"),
        sa.Column("score", sa.Float(), nullable=True),
        _enum("verdict"),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("action_item_id", sa.String(length=ID), nullable=True),
        _incident_fk("recurrence_checks"),
        sa.ForeignKeyConstraint(
            ["action_item_id"], ["action_items.id"], name=op.f("fk_recurrence_checks_action_item_id_action_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recurrence_checks")),
    )
    _index("recurrence_checks", "incident_id")
    _index("recurrence_checks", "action_item_id")
    _index("recurrence_checks", "at")

    op.create_table(
        "history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(length=ENUM), nullable=False),
        sa.Column("entity_id", sa.String(length=ID), nullable=False),
        sa.Column("incident_id", sa.String(length=ID), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
        sa.Column("who", sa.Text(), nullable=False),
        _time("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history")),
    )
    _index("history", "entity", "entity_id", name="ix_history_entity_entity_id")
    _index("history", "incident_id")


def downgrade() -> None:
    # Children before parents (foreign keys); indexes go with their tables.
    for table in ("history", "recurrence_checks", "runs", "signoffs", "action_items", "conclusions",
                  "hypotheses", "incidents"):
        op.drop_table(table)
