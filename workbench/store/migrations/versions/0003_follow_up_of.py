"""Follow-up reviews linked to the incident they review again: ``incidents.follow_up_of``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

Until now a follow-up review opened by the recheck was linked to its original only by its id
(``<original id>-R<n>``); the column makes the link structural (a foreign key, indexed, so
"the follow-ups of X" is one query on any backend). Nullable with no default, so adding it to
an existing SQLite table is a plain ``ADD COLUMN ... REFERENCES`` (SQLite allows a foreign key
on an added column only when its default is NULL) and existing rows need no rewrite.
Follow-ups opened before this revision are linked by their id prefix here, once.

Frozen like 0001: plain SQLAlchemy types only.
"""
from __future__ import annotations

import re
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ID = 128
_FOLLOW_UP = re.compile(r"^(?P<original>.+)-R[1-9][0-9]*$")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite has no ALTER TABLE ADD CONSTRAINT; an inline REFERENCES on the new column is allowed.
        op.execute(f"ALTER TABLE incidents ADD COLUMN follow_up_of VARCHAR({ID}) "
                   f"CONSTRAINT fk_incidents_follow_up_of_incidents REFERENCES incidents (id)")
    else:
        op.add_column("incidents", sa.Column("follow_up_of", sa.String(length=ID), nullable=True))
        op.create_foreign_key(op.f("fk_incidents_follow_up_of_incidents"), "incidents", "incidents",
                              ["follow_up_of"], ["id"])
    op.create_index(op.f("ix_incidents_follow_up_of"), "incidents", ["follow_up_of"], unique=False)
    incidents = sa.table("incidents", sa.column("id", sa.String), sa.column("follow_up_of", sa.String))
    ids = set(bind.execute(sa.select(incidents.c.id)).scalars())
    for iid in sorted(ids):
        match = _FOLLOW_UP.match(iid)
        if match and match["original"] in ids:
            bind.execute(incidents.update().where(incidents.c.id == iid).values(follow_up_of=match["original"]))


def downgrade() -> None:
    op.drop_index(op.f("ix_incidents_follow_up_of"), table_name="incidents")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("incidents") as batch:
            batch.drop_column("follow_up_of")
    else:
        op.drop_constraint(op.f("fk_incidents_follow_up_of_incidents"), "incidents", type_="foreignkey")
        op.drop_column("incidents", "follow_up_of")
