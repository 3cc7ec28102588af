"""The review meeting: incidents' enrichment snapshots, suggestion decisions, review-pack sign-offs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

- ``incidents.snapshot`` (JSON, nullable): what the analysis saw around the incident (dependency
  neighbourhood, deployed versions, changes, alerts; :mod:`workbench.analysis.snapshot`). Existing
  rows read as "no snapshot" and SQLite adds the column without rebuilding the table.
- ``suggestion_decisions``: a person accepting or rejecting a runbook or alert suggestion of the
  recheck loop, with who, when, why and the action item an acceptance created (append-only).
- ``review_signoffs``: who approved which content hash of which review pack (the pack's selection).

Frozen like 0001: plain SQLAlchemy types only (``DateTime(timezone=True)`` for ``UTCDateTime``).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ID = 128
ENUM = 32


def upgrade() -> None:
    op.add_column("incidents", sa.Column("snapshot", sa.JSON(), nullable=True))
    op.create_table(
        "suggestion_decisions",
        sa.Column("id", sa.String(length=ID), nullable=False),
        sa.Column("incident_id", sa.String(length=ID), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=ENUM), nullable=False),
        sa.Column("who", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("action_item_id", sa.String(length=ID), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
                                name=op.f("fk_suggestion_decisions_incident_id_incidents")),
        sa.ForeignKeyConstraint(["action_item_id"], ["action_items.id"],
                                name=op.f("fk_suggestion_decisions_action_item_id_action_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion_decisions")),
    )
    op.create_index(op.f("ix_suggestion_decisions_incident_id"), "suggestion_decisions", ["incident_id"],
                    unique=False)
    op.create_table(
        "review_signoffs",
        sa.Column("id", sa.String(length=ID), nullable=False),
        sa.Column("pack", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=ID), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_signoffs")),
    )


def downgrade() -> None:
    op.drop_table("review_signoffs")
    op.drop_index(op.f("ix_suggestion_decisions_incident_id"), table_name="suggestion_decisions")
    op.drop_table("suggestion_decisions")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("snapshot")
