"""The notification outbox: one row per notification and webhook target, committed with its cause.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Frozen like 0001: plain SQLAlchemy types only (``DateTime(timezone=True)`` for ``UTCDateTime``).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ID = 128
ENUM = 32


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=ENUM), nullable=False),
        sa.Column("incident_id", sa.String(length=ID), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("target", sa.String(length=ID), nullable=False),
        sa.Column("status", sa.String(length=ENUM), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dedup_key", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name=op.f("fk_outbox_incident_id_incidents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_outbox_delivery_id")),
        sa.UniqueConstraint("dedup_key", "target", name=op.f("uq_outbox_dedup_key_target")),
    )
    op.create_index(op.f("ix_outbox_incident_id"), "outbox", ["incident_id"], unique=False)
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_table("outbox")
