"""One ``seq`` per incident for hypotheses, conclusions, action items and sign-offs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

``seq`` (creation order) was "the incident's highest plus one" with nothing stopping two
concurrent writers on PostgreSQL from both taking the same number (SQLite's write lock did). A
unique index makes the second writer's insert fail, and the store retries it with the next number.
Duplicates that already exist are renumbered first, per incident in (seq, id) order, so the
index can be built; single-writer databases (every SQLite file) have none and are not rewritten.
A unique index rather than a constraint: SQLite can add one without rebuilding the table.

Frozen like 0001: plain SQLAlchemy types only.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ("hypotheses", "conclusions", "action_items", "signoffs")


def upgrade() -> None:
    bind = op.get_bind()
    for name in TABLES:
        table = sa.table(name, sa.column("id", sa.String), sa.column("incident_id", sa.String),
                         sa.column("seq", sa.Integer))
        duplicated = bind.execute(sa.select(table.c.incident_id).group_by(table.c.incident_id, table.c.seq)
                                  .having(sa.func.count() > 1)).scalars().all()
        for incident_id in sorted(set(duplicated)):
            rows = bind.execute(sa.select(table.c.id).where(table.c.incident_id == incident_id)
                                .order_by(table.c.seq, table.c.id)).scalars().all()
            for seq, row_id in enumerate(rows, start=1):
                bind.execute(table.update().where(table.c.id == row_id).values(seq=seq))
        op.create_index(f"uq_{name}_incident_id_seq", name, ["incident_id", "seq"], unique=True)


def downgrade() -> None:
    for name in TABLES:
        op.drop_index(f"uq_{name}_incident_id_seq", table_name=name)
