"""What a review meeting decides and signs, kept as immutable rows: suggestion decisions and
review-pack sign-offs.

- A *suggestion decision* records a person accepting or rejecting one of the recheck loop's
  runbook or alert suggestions (:mod:`workbench.loop.suggestions`, identified by the incident and
  the suggestion's stable ``key``), with who, when, why and, for an acceptance, the action item it
  created. Rows are never changed: a later decision on the same suggestion is a new row and the
  newest one is the suggestion's state, so every earlier decision stays auditable.
- A *review sign-off* records who approved which content (``content_hash``) of which review pack
  (``pack``: the pack's selection, e.g. ``2026-10-01T00:00:00Z..2026-11-01T00:00:00Z``), like an
  incident's sign-off binds its content hash. The rules for packs are
  :mod:`workbench.review_pack`'s; this module keeps the rows.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from .models import ReviewSignOffRow, SuggestionDecisionRow
from .records import _Record, check_enum, check_hash, check_id, check_text, check_time, check_who, fail, optional

#: States a person can give a suggestion (``proposed`` is the state without any decision).
DECISIONS = ("accepted", "rejected")


@dataclass(frozen=True)
class SuggestionDecision(_Record):
    """One decision on a suggestion (see the module docstring)."""

    id: str
    incident_id: str
    key: str
    status: str
    who: str
    at: datetime
    rationale: str | None
    action_item_id: str | None


@dataclass(frozen=True)
class ReviewSignOff(_Record):
    """A sign-off of the review pack ``pack`` at ``content_hash`` (``path``: the file signed, if any)."""

    id: str
    pack: str
    name: str
    role: str
    content_hash: str
    at: datetime
    path: str | None


def _record(cls: type, row: Any) -> Any:
    return cls(**{name: copy.deepcopy(getattr(row, name)) for name in cls.__dataclass_fields__})


class DecisionMethods:
    """The review-meeting part of :class:`~workbench.store.KnowledgeBase` (one transaction per call)."""

    def record_suggestion_decision(self, incident_id: str, key: str, status: str, *, who: str,
                                   rationale: str | None = None, action_item_id: str | None = None,
                                   at: Any = None) -> SuggestionDecision:
        """Record that ``who`` accepted or rejected the suggestion ``key`` of ``incident_id``.

        Raises ``StoreError`` naming a bad field, ``NotFoundError`` for an unknown incident or
        action item (which must belong to the incident).
        """
        values = dict(key=check_text(key, "key"), status=check_enum(status, "status", DECISIONS), who=check_who(who),
                      rationale=optional(check_text)(rationale, "rationale"),
                      action_item_id=optional(check_id)(action_item_id, "action_item_id"),
                      at=self._clock() if at is None else check_time(at, "at"))
        with self._session(write=True) as s:
            self._get(s, "incident", incident_id)
            if values["action_item_id"] is not None and \
                    self._get(s, "action_item", values["action_item_id"]).incident_id != incident_id:
                raise fail("action_item_id", f"an action item of incident {incident_id!r}", values["action_item_id"])
            row = SuggestionDecisionRow(id=f"sdc-{uuid.uuid4().hex[:12]}", incident_id=incident_id, **values)
            s.add(row)
            s.flush()
            return _record(SuggestionDecision, row)

    def list_suggestion_decisions(self, incident_id: str | None = None) -> list[SuggestionDecision]:
        """Decisions in the order they were taken (of one incident, or all)."""
        query = select(SuggestionDecisionRow).order_by(SuggestionDecisionRow.at, SuggestionDecisionRow.id)
        if incident_id is not None:
            query = query.where(SuggestionDecisionRow.incident_id == incident_id)
        with self._session(write=False) as s:
            return [_record(SuggestionDecision, r) for r in s.scalars(query)]

    def add_review_signoff(self, pack: str, *, name: str, role: str, content_hash: str, path: str | None = None,
                           at: Any = None) -> ReviewSignOff:
        """Record that ``name`` (in ``role``) approved the review pack ``pack`` at ``content_hash``."""
        values = dict(pack=check_text(pack, "pack"), name=check_text(name, "name"), role=check_text(role, "role"),
                      content_hash=check_hash(content_hash, "content_hash"),
                      path=optional(check_text)(path, "path"), at=self._clock() if at is None else check_time(at, "at"))
        with self._session(write=True) as s:
            row = ReviewSignOffRow(id=f"rso-{uuid.uuid4().hex[:12]}", **values)
            s.add(row)
            s.flush()
            return _record(ReviewSignOff, row)

    def list_review_signoffs(self, pack: str | None = None) -> list[ReviewSignOff]:
        """Review-pack sign-offs, oldest first (of one pack, or all)."""
        query = select(ReviewSignOffRow).order_by(ReviewSignOffRow.at, ReviewSignOffRow.id)
        if pack is not None:
            query = query.where(ReviewSignOffRow.pack == pack)
        with self._session(write=False) as s:
            return [_record(ReviewSignOff, r) for r in s.scalars(query)]
