"""What the receivers (:mod:`workbench.inbound`) need from the knowledge base.

- Which incident an Alertmanager alert group opened: the memory that lets a re-sent group update
  it. The rules (merge window, what a firing or resolved group changes) are
  :mod:`workbench.inbound.alerts`'; this module keeps one row per (group key, incident) and finds
  the candidates: rows with the same group key hash or sharing an alert fingerprint.
- The action items a change names, by id or ticket key (:mod:`workbench.inbound.remediation`).
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import func, select, text

from .models import ActionItemRow, AlertGroupRow
from .records import _Record, check_enum, check_id, check_text, check_time

GROUP_STATUSES = ("firing", "resolved")
#: How many recent group rows a fingerprint match looks at (fingerprints live in a JSON list).
RECENT_GROUPS = 500


@dataclass(frozen=True)
class AlertGroup(_Record):
    id: int
    key_hash: str
    group_key: str
    receiver: str
    incident_id: str
    fingerprints: tuple[str, ...]
    status: str
    first_seen: datetime
    last_seen: datetime


def key_hash(group_key: str) -> str:
    """SHA-256 hex of a group key (group keys are unbounded text)."""
    return hashlib.sha256(group_key.encode("utf-8")).hexdigest()


def to_group(row: AlertGroupRow) -> AlertGroup:
    values = {name: copy.deepcopy(getattr(row, name)) for name in AlertGroup.__dataclass_fields__}
    values["fingerprints"] = tuple(values["fingerprints"])
    return AlertGroup(**values)


class InboundMethods:
    """The receivers' part of :class:`~workbench.store.KnowledgeBase` (one transaction per call)."""

    def find_action_items(self, keys: Iterable[str]) -> list[Any]:
        """Action items whose id or ``ticket`` is one of ``keys`` (tickets compared case-insensitively)."""
        keys = [k for k in dict.fromkeys(keys) if isinstance(k, str) and k]
        if not keys:
            return []
        upper = [k.upper() for k in keys]
        query = (select(ActionItemRow).where(ActionItemRow.id.in_(keys) | func.upper(ActionItemRow.ticket).in_(upper))
                 .order_by(ActionItemRow.incident_id, ActionItemRow.seq))
        return self._rows("action_item", query)

    def lock_alert_group(self, group_key: str) -> None:
        """Serialise writers handling the same group until the surrounding transaction ends.

        Two Alertmanager replicas send the same notification at nearly the same moment: without a
        lock both could open an incident. PostgreSQL takes a transaction-scoped advisory lock on
        the key's hash; SQLite's ``BEGIN IMMEDIATE`` already serialises every writer.
        """
        with self._session(write=True) as s:
            if s.get_bind().dialect.name == "postgresql":
                number = int(key_hash(group_key)[:15], 16)  # fits a signed bigint
                s.execute(text("SELECT pg_advisory_xact_lock(:n)"), {"n": number})

    def find_alert_groups(self, group_key: str, fingerprints: Iterable[str]) -> list[AlertGroup]:
        """Rows with this group key or sharing a fingerprint, most recently seen first."""
        wanted = set(fingerprints)
        digest = key_hash(group_key)
        with self._session(write=False) as s:
            rows = list(s.scalars(select(AlertGroupRow).where(AlertGroupRow.key_hash == digest)))
            if wanted:
                recent = s.scalars(select(AlertGroupRow).order_by(AlertGroupRow.last_seen.desc())
                                   .limit(RECENT_GROUPS))
                seen = {r.id for r in rows}
                rows += [r for r in recent if r.id not in seen and wanted & set(r.fingerprints)]
            rows.sort(key=lambda r: (r.last_seen, r.id), reverse=True)
            return [to_group(r) for r in rows]

    def record_alert_group(self, group_key: str, receiver: str, incident_id: str, fingerprints: Iterable[str],
                           status: str, at: Any = None) -> AlertGroup:
        """Create or refresh the row of (group key, incident): fingerprints are added, never removed."""
        group_key = check_text(group_key, "groupKey")
        receiver = check_text(receiver, "receiver") if receiver else "(none)"
        incident_id = check_id(incident_id, "incident_id")
        status = check_enum(status, "status", GROUP_STATUSES)
        at = self._clock() if at is None else check_time(at, "at")
        digest = key_hash(group_key)
        with self._session(write=True) as s:
            self._get(s, "incident", incident_id)
            row = s.scalar(select(AlertGroupRow).where(AlertGroupRow.key_hash == digest,
                                                       AlertGroupRow.incident_id == incident_id))
            if row is None:
                row = AlertGroupRow(key_hash=digest, group_key=group_key, receiver=receiver, incident_id=incident_id,
                                    fingerprints=[], status=status, first_seen=at, last_seen=at)
                s.add(row)
            known = list(row.fingerprints)
            row.fingerprints = known + [f for f in dict.fromkeys(fingerprints) if f not in known]
            row.status, row.last_seen = status, at
            s.flush()
            return to_group(row)
