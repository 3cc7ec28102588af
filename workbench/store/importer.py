"""Applying a validated incident document to the knowledge base (``KnowledgeBase.import_incident``).

The matching and versioning rules are specified in :mod:`workbench.store.documents`; this module
only carries them out, inside the caller's transaction, through the same write primitives as the
API calls (:mod:`workbench.store.writes`), so imports write the same history rows.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import ConflictError, StoreError
from .documents import NATURAL_KEYS, Document, Part
from .models import ENTITY_MODELS, IncidentRow
from .records import LABELS, TIMELINE, canonical, check_review, check_timeline
from .writes import create, update

_LIST_KEYS = {"hypothesis": "hypotheses", "conclusion": "conclusions", "action_item": "action_items",
              "signoff": "signoffs"}


def apply_document(s: Session, doc: Document, who: str, now: datetime) -> IncidentRow:
    """Create or update the incident of ``doc`` and its children; returns the incident row."""
    part = doc.incident
    if part.id is not None:
        row = s.get(IncidentRow, part.id)
    else:
        matches = s.scalars(select(IncidentRow).where(IncidentRow.title == part.fields["title"],
                                                      IncidentRow.started == part.fields["started"])).all()
        if len(matches) > 1:
            raise StoreError(f"{doc.origin}: {len(matches)} incidents have this title and start "
                             f"({', '.join(r.id for r in matches)}); add an id to the document")
        row = matches[0] if matches else None
    target = part.fields.get("follow_up_of")
    if target is not None and (target == (part.id or getattr(row, "id", None)) or s.get(IncidentRow, target) is None):
        raise StoreError(f"{doc.origin}: field 'follow_up_of': expected the id of another incident in the knowledge "
                         f"base (import the original first), got {target!r}")
    if row is None:
        row = create(s, "incident", part.fields, id=part.id, incident_id=None, version=part.version, who=who,
                     now=now)
    else:
        merged = {k: getattr(row, k) for k in TIMELINE} | part.fields
        try:
            check_timeline(merged)
        except StoreError as exc:
            raise StoreError(f"{doc.origin}: {exc}") from None
        _update(s, "incident", row, part, who, doc.origin, now)
    for entity, parts in doc.children.items():
        if parts is not None:
            _sync(s, doc, row.id, entity, parts, who, now)
    return row


def _sync(s: Session, doc: Document, incident_id: str, entity: str, parts: list[Part], who: str,
          now: datetime) -> None:
    model = ENTITY_MODELS[entity]
    matched: list[Any] = [None] * len(parts)
    used = set()
    for i, part in enumerate(parts):  # first by id, so a natural key never steals an id's record
        if part.id is None:
            continue
        row = s.get(model, part.id)
        if row is not None and row.incident_id != incident_id:
            raise StoreError(f"{doc.origin}: field '{_LIST_KEYS[entity]}[{i}].id': {LABELS[entity]} {part.id!r} "
                             f"belongs to incident {row.incident_id!r}, not {incident_id!r}")
        if row is not None:
            matched[i] = row
            used.add(row.id)
    pool: dict[tuple, list[Any]] = defaultdict(list)
    for row in s.scalars(select(model).where(model.incident_id == incident_id).order_by(model.seq)):
        if row.id not in used:
            pool[_key(entity, lambda k: getattr(row, k))].append(row)
    for i, part in enumerate(parts):
        if part.id is None:
            candidates = pool.get(_key(entity, part.fields.__getitem__))
            if candidates:
                matched[i] = candidates.pop(0)
    for part, row in zip(parts, matched):
        if row is None:
            values = dict(part.fields)
            if entity == "conclusion":
                values.setdefault("author", who)
            create(s, entity, values, id=part.id, incident_id=incident_id, version=part.version, who=who, now=now)
        else:
            _update(s, entity, row, part, who, doc.origin, now)


def _key(entity: str, get: Any) -> tuple:
    return tuple(canonical(get(k)) for k in NATURAL_KEYS[entity])


def _update(s: Session, entity: str, row: Any, part: Part, who: str, origin: str, now: datetime) -> None:
    changes = {k: v for k, v in part.fields.items() if canonical(getattr(row, k)) != canonical(v)}
    if not changes:
        return
    label = f"{LABELS[entity]} {row.id!r}"
    if entity == "signoff":
        raise StoreError(f"{origin}: {label} differs from the stored one in {', '.join(changes)}; "
                         f"sign-offs cannot be changed")
    if part.version is not None and part.version != row.version:
        raise ConflictError(f"{origin}: {label} is at version {row.version} in the knowledge base but the "
                            f"document was made from version {part.version}: it changed since the export; "
                            f"nothing was imported. Re-export, redo your edits and import again")
    if entity == "hypothesis":
        try:
            check_review({k: getattr(row, k) for k in ("status", "reviewer", "rationale")} | changes)
        except StoreError as exc:
            raise StoreError(f"{origin}: {exc}") from None
    update(s, entity, row, row.version, changes, who, now)
