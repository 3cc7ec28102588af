"""The write primitives every API call and every import goes through: insert, versioned update,
history. Callers own the session (one transaction or savepoint per API call) and pass ``now``.
"""
from __future__ import annotations

import copy
import re
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ConflictError
from .models import ENTITY_MODELS, HistoryRow, IncidentRow
from .records import LABELS, canonical, check_int, jsonable, to_record

_ID_PREFIX = {"hypothesis": "hyp", "conclusion": "con", "action_item": "act", "signoff": "sig",
              "run": "run", "check": "chk"}
#: Entities with a version column (changed only through a version-checked update).
VERSIONED = ("incident", "hypothesis", "conclusion", "action_item")
#: Values a new record takes for fields the caller left out.
DEFAULTS: dict[str, dict[str, Any]] = {
    "incident": {"severity": "SEV3", "status": "open", "environment": "production", "detected": None,
                 "mitigated": None, "resolved": None, "window_start": None, "window_end": None,
                 "follow_up_of": None, "snapshot": None, "labels": {}, "links": []},
    "hypothesis": {"status": "proposed", "rank": None, "evidence": [], "similar": [], "reviewer": None,
                   "rationale": None},
    "conclusion": {},
    "action_item": {"due": None, "status": "open", "verification": None, "ticket": None, "applied_at": None,
                    "applied_change": None},
    "signoff": {},
}
_INCIDENT_ID = re.compile(r"INC-(\d{8})-(\d+)")
#: Tries at a numbered incident id or child ``seq`` when concurrent writers take the next number first.
ID_ATTEMPTS = 5


def create(s: Session, entity: str, values: dict[str, Any], *, id: str | None, incident_id: str | None,
           version: int | None, who: str, now: datetime) -> Any:
    """Insert one record (defaults filled in, id generated when ``None``) and its ``"*"`` history row."""
    model = ENTITY_MODELS[entity]
    values = copy.deepcopy(DEFAULTS.get(entity, {})) | values
    numbered = id is None and entity == "incident"
    if id is None and not numbered:
        id = f"{_ID_PREFIX[entity]}-{uuid.uuid4().hex[:12]}"
    elif id is not None and s.get(model, id) is not None:
        raise ConflictError(f"{LABELS[entity]} {id!r} already exists")
    extra: dict[str, Any] = {}
    if incident_id is not None:
        extra["incident_id"] = incident_id
    if entity in VERSIONED:
        extra.update(created=now, updated=now, version=version or 1)
    counted = numbered or hasattr(model, "seq")
    for attempt in range(1, ID_ATTEMPTS + 1):
        if numbered:
            id = new_incident_id(s, values["started"])
        if hasattr(model, "seq"):
            last = s.scalar(select(func.max(model.seq)).where(model.incident_id == incident_id))
            extra["seq"] = (last or 0) + 1
        row = model(id=id, **values, **extra)
        try:
            with s.begin_nested():
                s.add(row)
                s.flush()  # a duplicate key surfaces here
        except IntegrityError:
            # A number (incident id of the day, child seq) another writer took after we counted
            # (PostgreSQL lets both count before either commits; SQLite's write lock never does):
            # count again. Any other integrity error fails the same way each time and is raised.
            if not counted or attempt == ID_ATTEMPTS:
                raise
            continue
        break
    log(s, entity, id, incident_id or id, "*", None, snapshot(entity, row), who, now)
    return row


def new_incident_id(s: Session, started: datetime) -> str:
    """``INC-YYYYMMDD-NNN``: the UTC day of ``started`` and one more than that day's highest number."""
    day = started.astimezone(timezone.utc).strftime("%Y%m%d")
    taken = s.scalars(select(IncidentRow.id).where(IncidentRow.id.like(f"INC-{day}-%")))
    numbers = [int(m.group(2)) for i in taken if (m := _INCIDENT_ID.fullmatch(i)) and m.group(1) == day]
    return f"INC-{day}-{max(numbers, default=0) + 1:03d}"


def update(s: Session, entity: str, row: Any, expected_version: Any, values: dict[str, Any], who: str,
           now: datetime) -> bool:
    """Apply ``values`` to a versioned row if it is at ``expected_version``; True if anything changed.

    Raises ``ConflictError`` (before writing anything) when the version differs.
    """
    expected = check_int(expected_version, "expected_version", 1)
    if row.version != expected:
        # Show what the other writer left in the fields this write wanted to change, so the
        # person retrying sees the decision they would have overwritten.
        now_holds = ", ".join(f"{k}={_shown(getattr(row, k))}" for k in values if hasattr(row, k))
        raise ConflictError(f"{LABELS[entity]} {row.id!r} is at version {row.version}, not {expected}: "
                            f"it changed since you read it" + (f" (now {now_holds})" if now_holds else "")
                            + "; nothing was written, reload and retry")
    if not apply(s, entity, row, values, who, now):
        return False
    row.version = row.version + 1
    row.updated = now
    s.flush()  # the UPDATE carries WHERE version = <loaded>: a racing writer fails here
    return True


def apply(s: Session, entity: str, row: Any, values: dict[str, Any], who: str, now: datetime) -> bool:
    """Set the fields that differ (strictly: 1 is not 1.0), one history row each."""
    incident_id = row.id if entity == "incident" else row.incident_id
    changed = False
    for key, new in values.items():
        old = getattr(row, key)
        if canonical(old) == canonical(new):
            continue
        log(s, entity, row.id, incident_id, key, jsonable(old), jsonable(new), who, now)
        setattr(row, key, new)
        changed = True
    if changed and entity not in VERSIONED:
        s.flush()
    return changed


def delete(s: Session, entity: str, row: Any, who: str, now: datetime) -> None:
    """Delete a row, keeping its last state in history (field ``"*"``, ``new`` None)."""
    log(s, entity, row.id, row.incident_id, "*", snapshot(entity, row), None, who, now)
    s.delete(row)


def snapshot(entity: str, row: Any) -> dict[str, Any]:
    return jsonable(to_record(entity, row).to_dict())


def log(s: Session, entity: str, entity_id: str, incident_id: str | None, field: str, old: Any, new: Any,
        who: str, at: datetime) -> None:
    s.add(HistoryRow(entity=entity, entity_id=entity_id, incident_id=incident_id, field=field, old=old,
                     new=new, who=who, at=at))


def _shown(value: Any) -> str:
    text = repr(value.isoformat() if hasattr(value, "isoformat") else value)
    return text if len(text) <= 80 else text[:77] + "..."
