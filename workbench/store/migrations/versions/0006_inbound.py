"""What arrives by itself: integration tokens, the job queue, Alertmanager groups, applied fixes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

- ``tokens``: one row per integration token; only the SHA-256 of the secret is kept.
- ``jobs``: the durable job queue (analysis → notebook → report per incident); ``active_key`` is
  unique so a job of a kind is queued or running at most once per incident.
- ``alert_groups``: the incident each Alertmanager group (key hash, fingerprints) opened.
- ``action_items`` gains ``ticket`` (the tracker key a change may name), ``applied_at`` and
  ``applied_change`` (when and by which change the fix was applied). Nullable columns: SQLite adds
  them without rebuilding the table and existing rows read as "not applied".

Frozen like 0001: plain SQLAlchemy types only (``DateTime(timezone=True)`` for ``UTCDateTime``).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ID = 128
ENUM = 32


def upgrade() -> None:
    op.add_column("action_items", sa.Column("ticket", sa.Text(), nullable=True))
    op.add_column("action_items", sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("action_items", sa.Column("applied_change", sa.JSON(), nullable=True))
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(length=ID), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_tokens_secret_hash")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=ENUM), nullable=False),
        sa.Column("incident_id", sa.String(length=ID), nullable=False),
        sa.Column("status", sa.String(length=ENUM), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_key", sa.String(length=2 * ID), nullable=True),
        sa.Column("rerun", sa.Boolean(), nullable=False),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name=op.f("fk_jobs_incident_id_incidents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("active_key", name=op.f("uq_jobs_active_key")),
    )
    op.create_index(op.f("ix_jobs_incident_id"), "jobs", ["incident_id"], unique=False)
    op.create_index("ix_jobs_status_run_after", "jobs", ["status", "run_after"], unique=False)
    op.create_table(
        "alert_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("receiver", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.String(length=ID), nullable=False),
        sa.Column("fingerprints", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=ENUM), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
                                name=op.f("fk_alert_groups_incident_id_incidents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_groups")),
    )
    op.create_index(op.f("ix_alert_groups_key_hash"), "alert_groups", ["key_hash"], unique=False)
    op.create_index(op.f("ix_alert_groups_incident_id"), "alert_groups", ["incident_id"], unique=False)


def downgrade() -> None:
    op.drop_table("alert_groups")
    op.drop_table("jobs")
    op.drop_table("tokens")
    with op.batch_alter_table("action_items") as batch:
        batch.drop_column("applied_change")
        batch.drop_column("applied_at")
        batch.drop_column("ticket")
