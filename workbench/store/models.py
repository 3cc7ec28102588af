"""SQLAlchemy 2 declarative models of the knowledge base.

The tables are portable: only ``String``/``Text``/``Integer``/``Float``/``Date``/``JSON`` and
timezone-aware ``DateTime`` are used, enumerations are plain strings validated in Python (a
PostgreSQL ``ENUM`` type would need its own migrations for every new value), and constraint names
come from one naming convention so later migrations name the same constraint on every backend.

These models are the target of the Alembic migrations in ``workbench/store/migrations``; a test
checks that ``alembic.autogenerate.compare_metadata`` finds no difference between the two.
Callers never see these classes: :mod:`workbench.store.kb` returns frozen dataclasses.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Longest id (incident, hypothesis ...) accepted; ids are ``[A-Za-z0-9._-]`` only.
ID_LENGTH = 128
#: Width of the enumeration columns (statuses, kinds, severities, causes, verdicts).
ENUM_LENGTH = 32

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """A timezone-aware ``DateTime`` stored as UTC and always returned with ``tzinfo=UTC``.

    PostgreSQL keeps the offset (``timestamptz``); SQLite has no zone type and would silently drop
    it, so values are converted to UTC before binding and re-labelled UTC when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # The API validates first; this guards direct ORM use against silent local times.
            raise ValueError(f"naive datetime {value!r} cannot be stored; give a timezone")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _seq_unique(table: str) -> Index:
    """One ``seq`` per incident: two writers adding a child at once cannot both take the next
    number (the loser retries, :func:`workbench.store.writes.create`), so creation order holds."""
    return Index(f"uq_{table}_incident_id_seq", "incident_id", "seq", unique=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _id() -> Mapped[str]:
    return mapped_column(String(ID_LENGTH), primary_key=True)


def _incident_fk() -> Mapped[str]:
    return mapped_column(String(ID_LENGTH), ForeignKey("incidents.id"), nullable=False, index=True)


def _enum() -> Mapped[str]:
    return mapped_column(String(ENUM_LENGTH), nullable=False)


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[str] = _id()
    title: Mapped[str] = mapped_column(Text, nullable=False)
    severity: Mapped[str] = _enum()
    environment: Mapped[str] = mapped_column(Text, nullable=False)
    services: Mapped[list] = mapped_column(JSON, nullable=False)
    started: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    detected: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mitigated: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(ENUM_LENGTH), nullable=False, index=True)
    labels: Mapped[dict] = mapped_column(JSON, nullable=False)
    links: Mapped[list] = mapped_column(JSON, nullable=False)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The incident this one reviews again (a follow-up review opened by the recheck), or None.
    follow_up_of: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("incidents.id"), index=True)
    #: The enrichment snapshot the analysis attached (dependencies, versions, changes, alerts), or None.
    snapshot: Mapped[Any] = mapped_column(JSON, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    # The application sets the next version itself (so an import can keep a document's version);
    # the ORM still adds ``WHERE version = <loaded>`` to every UPDATE and DELETE.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class HypothesisRow(Base):
    __tablename__ = "hypotheses"
    __table_args__ = (_seq_unique("hypotheses"),)

    id: Mapped[str] = _id()
    incident_id: Mapped[str] = _incident_fk()
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    service: Mapped[str] = mapped_column(Text, nullable=False)
    cause: Mapped[str] = _enum()
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = _enum()
    score: Mapped[float] = mapped_column(Float, nullable=False)
    rank: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[list] = mapped_column(JSON, nullable=False)
    similar: Mapped[list] = mapped_column(JSON, nullable=False)
    reviewer: Mapped[str | None] = mapped_column(Text)
    rationale: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class ConclusionRow(Base):
    __tablename__ = "conclusions"
    __table_args__ = (_seq_unique("conclusions"),)

    id: Mapped[str] = _id()
    incident_id: Mapped[str] = _incident_fk()
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = _enum()
    text: Mapped[str] = mapped_column(Text, nullable=False)
    author: Mapped[str] = mapped_column(Text, nullable=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class ActionItemRow(Base):
    __tablename__ = "action_items"
    __table_args__ = (_seq_unique("action_items"),)

    id: Mapped[str] = _id()
    incident_id: Mapped[str] = _incident_fk()
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    owner: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    due: Mapped[date | None] = mapped_column(Date)
    kind: Mapped[str] = _enum()
    status: Mapped[str] = mapped_column(String(ENUM_LENGTH), nullable=False, index=True)
    verification: Mapped[Any] = mapped_column(JSON, nullable=True)
    #: The item's key in the team's ticket tracker (``PM-1242``); a change naming it applies the fix.
    ticket: Mapped[str | None] = mapped_column(Text)
    #: When the fix was applied (the time of the change that named the item) and that change.
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    applied_change: Mapped[Any] = mapped_column(JSON, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class SignOffRow(Base):
    __tablename__ = "signoffs"
    __table_args__ = (_seq_unique("signoffs"),)

    id: Mapped[str] = _id()
    incident_id: Mapped[str] = _incident_fk()
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = _id()
    incident_id: Mapped[str] = _incident_fk()
    template: Mapped[str] = mapped_column(Text, nullable=False)
    parameters: Mapped[dict] = mapped_column(JSON, nullable=False)
    started: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = _enum()
    error_cell: Mapped[int | None] = mapped_column(Integer)
    output_path: Mapped[str | None] = mapped_column(Text)


class CheckRow(Base):
    __tablename__ = "recurrence_checks"

    id: Mapped[str] = _id()
    incident_id: Mapped[str] = _incident_fk()
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    score: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str] = _enum()
    evidence: Mapped[list] = mapped_column(JSON, nullable=False)
    action_item_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("action_items.id"), nullable=True, index=True
    )


class HistoryRow(Base):
    """Append-only audit trail: one row per changed field (or per created/deleted record)."""

    __tablename__ = "history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(ENUM_LENGTH), nullable=False)
    entity_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    incident_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    field: Mapped[str] = mapped_column(String(64), nullable=False)
    old: Mapped[Any] = mapped_column(JSON, nullable=True)
    new: Mapped[Any] = mapped_column(JSON, nullable=True)
    who: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_history_entity_entity_id", "entity", "entity_id"),)


class OutboxRow(Base):
    """One notification for one webhook target (see :mod:`workbench.store.outbox`).

    Written in the same transaction as the change that causes it; ``delivery_id`` is fixed at that
    moment, so every (re-)send of the row carries the same id and receivers can deduplicate.
    ``dedup_key`` (with ``target``) makes an enqueue idempotent, e.g. one nudge per item and day.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    kind: Mapped[str] = _enum()
    incident_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("incidents.id"), index=True)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    target: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    status: Mapped[str] = _enum()
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dedup_key: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        # The delivery loop asks for "pending and due": one index serves it.
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        UniqueConstraint("dedup_key", "target"),
    )


class TokenRow(Base):
    """An integration's API token (see :mod:`workbench.store.tokens`): only a hash of the secret."""

    __tablename__ = "tokens"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    scopes: Mapped[list] = mapped_column(JSON, nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(Text, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobRow(Base):
    """One unit of automatic work on an incident (see :mod:`workbench.store.jobs`).

    ``active_key`` is ``<kind>/<incident>`` while the job is queued or running and NULL once it is
    done or failed: the unique constraint lets at most one active job of a kind exist per incident,
    on every backend (NULLs never collide), so a job queued twice is queued once. Queueing a kind
    whose job is running sets ``rerun`` instead: the job runs once more when it finishes.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = _enum()
    incident_id: Mapped[str] = _incident_fk()
    status: Mapped[str] = _enum()
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    active_key: Mapped[str | None] = mapped_column(String(2 * ID_LENGTH), unique=True)
    rerun: Mapped[bool] = mapped_column(Boolean, nullable=False)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_jobs_status_run_after", "status", "run_after"),)


class AlertGroupRow(Base):
    """Which incident an Alertmanager alert group (and its alerts' fingerprints) opened."""

    __tablename__ = "alert_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: SHA-256 of the group key (group keys are unbounded text; the hash is what is looked up).
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    group_key: Mapped[str] = mapped_column(Text, nullable=False)
    receiver: Mapped[str] = mapped_column(Text, nullable=False)
    incident_id: Mapped[str] = _incident_fk()
    fingerprints: Mapped[list] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = _enum()
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class SuggestionDecisionRow(Base):
    """A person's decision on a runbook or alert suggestion of the recheck loop (append-only: a
    later decision on the same suggestion is a new row; see :mod:`workbench.store.decisions`)."""

    __tablename__ = "suggestion_decisions"

    id: Mapped[str] = _id()
    incident_id: Mapped[str] = _incident_fk()
    key: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = _enum()
    who: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    rationale: Mapped[str | None] = mapped_column(Text)
    #: The action item created when the suggestion was accepted.
    action_item_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("action_items.id"), nullable=True)


class ReviewSignOffRow(Base):
    """A sign-off of a review pack: who approved which content (hash) of which selection (``pack``)."""

    __tablename__ = "review_signoffs"

    id: Mapped[str] = _id()
    pack: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    path: Mapped[str | None] = mapped_column(Text)


#: Entity name (as written in ``history.entity``) -> model.
ENTITY_MODELS: dict[str, type[Base]] = {
    "incident": IncidentRow,
    "hypothesis": HypothesisRow,
    "conclusion": ConclusionRow,
    "action_item": ActionItemRow,
    "signoff": SignOffRow,
    "run": RunRow,
    "check": CheckRow,
}
