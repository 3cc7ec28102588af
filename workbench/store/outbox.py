"""The notification outbox inside the knowledge base: rows written with the change that causes them.

The transactional-outbox pattern: a state change (a recurrence marked, a criterion violated, an
overdue action item) and the notifications about it are committed in ONE transaction, so a crash
can never keep the change and lose the notification, or send a notification about a change that
was rolled back. Sending happens later (:func:`workbench.loop.notify.deliver`) and only reads and marks
these rows.

Row life cycle
--------------
``pending`` (due at ``next_attempt_at``) → ``delivered`` after a 2xx answer, or → ``dead`` after
the last allowed attempt failed. A dead row stays (it is the dead letter) until someone resends it,
which makes it ``pending`` again with the SAME ``delivery_id``.

- ``delivery_id`` (a UUID4) is chosen when the row is enqueued and never changes: every send and
  re-send of a notification carries it, so receivers deduplicate on it.
- ``dedup_key`` makes an enqueue idempotent: a second enqueue with the same key for the same
  target adds nothing (a nudge per action item and day, a violation per check).
- Outbox rows are operational records, not decisions: they write no history rows; the row itself
  keeps ``attempts``, ``last_error`` and ``delivered_at``.

Stored payload
--------------
``{"summary": text, "details": JSON object, "links": [{title, url}], "recipients": [text],
"incident": {id, title, severity, status, services} | null}``. The incident part is a snapshot
taken in the enqueueing transaction (the status the change produced). The wire formats built from
it are documented in :mod:`workbench.loop.notify`. No secret is ever part of a row.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import ConflictError, NotFoundError
from .models import IncidentRow, OutboxRow
from .records import _Record, check_enum, check_id, check_int, check_json, check_links, check_text, check_time, fail

#: What a notification is about.
NOTIFICATION_KINDS = ("recurrence", "criterion_violated", "action_item_overdue", "follow_up_due", "escalation",
                      "review_pack")
#: ``pending`` (waiting for its next attempt), ``delivered`` (a 2xx was received), ``dead`` (gave up).
NOTIFICATION_STATUSES = ("pending", "delivered", "dead")
#: Keys of the ``payload`` argument of an enqueue.
PAYLOAD_KEYS = ("summary", "details", "links", "recipients")
#: Longest error text kept in ``last_error``.
ERROR_LENGTH = 2000
DEDUP_KEY_LENGTH = 255


@dataclass(frozen=True)
class Notification(_Record):
    """One outbox row: a notification of ``kind`` for the webhook named ``target``.

    Attributes
    ----------
    id : int
        Row number (enqueue order).
    delivery_id : str
        UUID fixed at enqueue time; sent as ``X-Workbench-Delivery`` on every attempt.
    kind : str
        One of :data:`NOTIFICATION_KINDS`.
    incident_id : str or None
    payload : dict
        See the module docstring.
    target : str
        Webhook name (``[webhooks.<name>]`` in ``workbench.toml``).
    status : str
        One of :data:`NOTIFICATION_STATUSES`.
    attempts : int
        Sends started so far (a send interrupted by a crash counts).
    next_attempt_at : datetime
        When a pending row is due (aware UTC).
    last_error : str or None
        Why the last attempt failed (HTTP status and body start, or the network error).
    created_at, delivered_at : datetime, datetime or None
    dedup_key : str or None
    """

    id: int
    delivery_id: str
    kind: str
    incident_id: str | None
    payload: dict[str, Any]
    target: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dedup_key: str | None


def to_notification(row: OutboxRow) -> Notification:
    """A frozen record of an outbox row (values are copies)."""
    return Notification(**{name: copy.deepcopy(getattr(row, name)) for name in Notification.__dataclass_fields__})


# --------------------------------------------------------------------------- checks

def check_payload(payload: Any) -> dict[str, Any]:
    """The stored form of an enqueue's ``payload`` (summary required; details, links, recipients optional)."""
    if not isinstance(payload, Mapping):
        raise fail("payload", f"a mapping with keys {', '.join(PAYLOAD_KEYS)}", payload)
    unknown = [k for k in payload if k not in PAYLOAD_KEYS]
    if unknown:
        raise fail(f"payload.{unknown[0]}", f"a payload key ({', '.join(PAYLOAD_KEYS)})", unknown[0])
    details = payload.get("details") or {}
    if not isinstance(details, Mapping):
        raise fail("payload.details", "a mapping (JSON object)", details)
    recipients = payload.get("recipients") or []
    if isinstance(recipients, (str, bytes)) or not isinstance(recipients, (list, tuple)):
        raise fail("payload.recipients", "a list of names", recipients)
    return {
        "summary": check_text(payload.get("summary"), "payload.summary"),
        "details": check_json(dict(details), "payload.details"),
        "links": check_links(payload.get("links"), "payload.links"),
        "recipients": [check_text(r, f"payload.recipients[{i}]") for i, r in enumerate(recipients)],
    }


def check_targets(targets: Iterable[str]) -> list[str]:
    if isinstance(targets, (str, bytes)):
        targets = [targets]
    out: list[str] = []
    for i, name in enumerate(targets):
        name = check_id(name, f"targets[{i}]")
        if name not in out:
            out.append(name)
    return out


def check_dedup_key(key: Any) -> str | None:
    if key is None:
        return None
    key = check_text(key, "key")
    if len(key) > DEDUP_KEY_LENGTH:
        raise fail("key", f"at most {DEDUP_KEY_LENGTH} characters", key)
    return key


def snapshot_incident(s: Session, incident_id: str) -> dict[str, Any]:
    row = s.get(IncidentRow, incident_id)
    if row is None:
        raise NotFoundError(f"incident {incident_id!r} not found")
    return {"id": row.id, "title": row.title, "severity": row.severity, "status": row.status,
            "services": list(row.services)}


# --------------------------------------------------------------------------- writes (caller owns the session)

def enqueue_rows(s: Session, kind: str, payload: dict[str, Any], incident_id: str | None, targets: list[str],
            key: str | None, now: datetime) -> list[OutboxRow]:
    """Add one pending row per target (skipping targets that already have a row with ``key``)."""
    kind = check_enum(kind, "kind", NOTIFICATION_KINDS)
    stored = dict(payload)
    stored["incident"] = None if incident_id is None else snapshot_incident(s, check_id(incident_id, "incident_id"))
    taken: set[str] = set()
    if key is not None:
        taken = set(s.scalars(select(OutboxRow.target).where(OutboxRow.dedup_key == key,
                                                             OutboxRow.target.in_(targets))))
    rows = []
    for target in targets:
        if target in taken:
            continue
        row = OutboxRow(delivery_id=str(uuid.uuid4()), kind=kind, incident_id=incident_id, payload=stored,
                        target=target, status="pending", attempts=0, next_attempt_at=now, last_error=None,
                        created_at=now, delivered_at=None, dedup_key=key)
        s.add(row)
        rows.append(row)
    s.flush()  # a racing enqueue with the same key fails here (unique dedup_key, target)
    return rows


def get_row(s: Session, delivery_id: Any) -> OutboxRow:
    if not isinstance(delivery_id, str):
        raise fail("delivery_id", "a delivery id (UUID string)", delivery_id)
    row = s.scalar(select(OutboxRow).where(OutboxRow.delivery_id == delivery_id))
    if row is None:
        raise NotFoundError(f"notification {delivery_id!r} not found in the outbox")
    return row


def select_rows(status: str | None = None, kind: str | None = None, incident_id: str | None = None,
          target: str | None = None, key: str | None = None) -> Any:
    q = select(OutboxRow).order_by(OutboxRow.id)
    if status is not None:
        q = q.where(OutboxRow.status == check_enum(status, "status", NOTIFICATION_STATUSES))
    if kind is not None:
        q = q.where(OutboxRow.kind == check_enum(kind, "kind", NOTIFICATION_KINDS))
    if incident_id is not None:
        q = q.where(OutboxRow.incident_id == incident_id)
    if target is not None:
        q = q.where(OutboxRow.target == target)
    if key is not None:
        q = q.where(OutboxRow.dedup_key == key)
    return q


def claim_rows(s: Session, now: datetime, targets: list[str], lease: timedelta, limit: int) -> list[OutboxRow]:
    """Pending rows of ``targets`` due at ``now``, oldest first, leased for one send each.

    Claiming counts the attempt and moves ``next_attempt_at`` to ``now + lease``, so a second
    delivery process started meanwhile does not pick the same row, and a process that crashes
    mid-send leaves a row that becomes due again when the lease runs out (re-sent, same id).
    """
    limit = check_int(limit, "limit", 1)
    rows = list(s.scalars(select(OutboxRow).where(OutboxRow.status == "pending", OutboxRow.next_attempt_at <= now,
                                                  OutboxRow.target.in_(targets))
                          .order_by(OutboxRow.next_attempt_at, OutboxRow.id).limit(limit)
                          # PostgreSQL: concurrent deliverers skip each other's rows instead of
                          # both sending them; SQLite has no row locks (BEGIN IMMEDIATE serialises).
                          .with_for_update(skip_locked=True)))
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = now + lease
    s.flush()
    return rows


def mark_delivered_row(s: Session, delivery_id: str, at: datetime) -> OutboxRow:
    row = get_row(s, delivery_id)
    if row.status != "delivered":
        row.status, row.delivered_at = "delivered", at
        s.flush()
    return row


def mark_failed_row(s: Session, delivery_id: str, error: str, retry_at: datetime | None) -> OutboxRow:
    """Record a failed attempt: pending again at ``retry_at``, or dead when ``retry_at`` is None.

    A row some other process marked delivered meanwhile stays delivered.
    """
    row = get_row(s, delivery_id)
    row.last_error = str(error)[:ERROR_LENGTH]
    if row.status == "pending":
        if retry_at is None:
            row.status = "dead"
        else:
            row.next_attempt_at = retry_at
    s.flush()
    return row


def resend_rows(s: Session, delivery_ids: list[str] | None, now: datetime) -> list[OutboxRow]:
    """Put dead rows back to pending (attempts reset, due ``now``, same delivery id).

    ``None`` resends every dead row. Pending rows are left as they are; a delivered row raises
    :class:`ConflictError` (it arrived once; sending it again is not a resend of a dead letter).
    """
    if delivery_ids is None:
        rows = list(s.scalars(select_rows(status="dead")))
    else:
        rows = [get_row(s, d) for d in delivery_ids]
        delivered = [r.delivery_id for r in rows if r.status == "delivered"]
        if delivered:
            raise ConflictError(f"notification(s) {', '.join(delivered)} were already delivered; only dead "
                                f"(or pending) notifications can be resent; nothing was changed")
    for row in rows:
        if row.status == "dead":
            row.status, row.attempts, row.next_attempt_at = "pending", 0, now
    s.flush()
    return rows


# --------------------------------------------------------------------------- the KnowledgeBase API

class OutboxMethods:
    """The outbox part of :class:`~workbench.store.KnowledgeBase` (kept here to keep ``kb.py`` small).

    Uses the knowledge base's ``_session``, ``_clock`` and ``_get``: each call is one transaction,
    or a savepoint inside ``kb.transaction()``, exactly like the other API calls.
    """

    notification_targets: dict[str, tuple[str, ...] | None]

    def set_notification_targets(self, targets: Mapping[str, Iterable[str] | None] | Iterable[str]) -> None:
        """Set :attr:`notification_targets`: a mapping webhook name -> kinds it takes (``None``: every
        kind), or an iterable of names taking every kind. ``workbench.loop.notify.attach`` sets it from
        ``workbench.toml``."""
        items = targets.items() if isinstance(targets, Mapping) else ((name, None) for name in targets)
        out: dict[str, tuple[str, ...] | None] = {}
        for name, kinds in items:
            name = check_targets([name])[0]
            out[name] = None if kinds is None else tuple(
                check_enum(k, f"notification_targets.{name}", NOTIFICATION_KINDS) for k in kinds)
        self.notification_targets = out

    def enqueue_notification(self, kind: str, payload: Mapping[str, Any], incident_id: str | None = None,
                             targets: Iterable[str] | None = None, *, key: str | None = None) -> list[Notification]:
        """Queue a notification: one ``pending`` outbox row per webhook target, each with its own
        delivery id fixed now.

        Call it inside ``with kb.transaction():`` next to the change it reports, so both commit or
        neither does.

        Parameters
        ----------
        kind : str
            recurrence, criterion_violated, action_item_overdue, follow_up_due or escalation.
        payload : mapping
            ``summary`` (text, required), ``details`` (JSON object), ``links`` (list of
            ``{title, url}``), ``recipients`` (list of people the notification is for).
        incident_id : str, optional
            The incident it is about; a snapshot (id, title, severity, status, services) is stored.
        targets : iterable of str, optional
            Webhook names; default: the :attr:`notification_targets` taking ``kind``. With no
            target at all nothing is queued (nobody to notify) and ``[]`` is returned.
        key : str, optional
            Idempotency key: a target that already has a row with this key gets no new one.

        Returns
        -------
        list of Notification
            The rows added (targets skipped because of ``key`` are not in it).
        """
        kind = check_enum(kind, "kind", NOTIFICATION_KINDS)
        stored = check_payload(payload)
        key = check_dedup_key(key)
        if targets is None:
            names = [n for n, kinds in self.notification_targets.items() if kinds is None or kind in kinds]
        else:
            names = check_targets(targets)
        if not names:
            return []
        with self._session(write=True) as s:
            if incident_id is not None:
                self._get(s, "incident", incident_id)
            rows = enqueue_rows(s, kind, stored, incident_id, names, key, self._clock())
            return [to_notification(r) for r in rows]

    def list_outbox(self, status: str | None = None, kind: str | None = None, incident_id: str | None = None,
                    target: str | None = None, key: str | None = None) -> list[Notification]:
        """Outbox rows in enqueue order; ``status`` is pending, delivered or dead (the dead letters)."""
        query = select_rows(status=status, kind=kind, incident_id=incident_id, target=target, key=key)
        with self._session(write=False) as s:
            return [to_notification(r) for r in s.scalars(query)]

    def get_notification(self, delivery_id: str) -> Notification:
        with self._session(write=False) as s:
            return to_notification(get_row(s, delivery_id))

    def claim_notifications(self, targets: Iterable[str], *, now: Any = None, lease: timedelta = timedelta(minutes=5),
                            limit: int = 100) -> list[Notification]:
        """Lease the due pending rows of ``targets`` for sending (oldest first, at most ``limit``).

        Each claimed row counts one attempt and is not due again before ``now + lease``: a
        concurrent deliverer skips it, and a send interrupted by a crash is retried, with the same
        delivery id, once the lease has run out.
        """
        now = self._clock() if now is None else check_time(now, "now")
        names = check_targets(targets)
        if not names:
            return []
        with self._session(write=True) as s:
            return [to_notification(r) for r in claim_rows(s, now, names, lease, limit)]

    def mark_delivered(self, delivery_id: str, at: Any = None) -> Notification:
        """Record that a 2xx answer was received for ``delivery_id`` (idempotent)."""
        at = self._clock() if at is None else check_time(at, "at")
        with self._session(write=True) as s:
            return to_notification(mark_delivered_row(s, delivery_id, at))

    def mark_failed(self, delivery_id: str, error: str, retry_at: Any = None) -> Notification:
        """Record a failed attempt: due again at ``retry_at``, or dead when it is ``None``."""
        retry_at = None if retry_at is None else check_time(retry_at, "retry_at")
        with self._session(write=True) as s:
            return to_notification(mark_failed_row(s, delivery_id, error, retry_at))

    def resend_notifications(self, delivery_ids: Iterable[str] | None = None, at: Any = None) -> list[Notification]:
        """Put dead notifications back to pending, due ``at`` (default now), keeping their delivery ids.

        ``None`` resends every dead notification. All or nothing: an unknown id raises
        :class:`~workbench.errors.NotFoundError`, a delivered one
        :class:`~workbench.errors.ConflictError`, and nothing changes.
        """
        at = self._clock() if at is None else check_time(at, "at")
        ids = None if delivery_ids is None else [delivery_ids] if isinstance(delivery_ids, str) else list(delivery_ids)
        with self._session(write=True) as s:
            return [to_notification(r) for r in resend_rows(s, ids, at)]
