"""The engine's calibrated confidence of a hypothesis: ``hypotheses.confidence``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

A probability in [0, 1] that the hypothesis is the root cause (Platt scaling of the ranking's
score margin, fitted under cross-validation: ``benchmarks/nezha.py --cv``). Nullable without a
default: hypotheses stored before it, and those a human added, have none, and adding the column
rewrites no row.

Frozen like 0001: plain SQLAlchemy types only.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("hypotheses", sa.Column("confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hypotheses") as batch:
        batch.drop_column("confidence")
