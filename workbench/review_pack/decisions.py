"""The decisions a review meeting takes, recorded with who and when through the core.

- **Accept a suggestion** (:func:`accept_suggestion`): the recheck loop's runbook or alert
  suggestion becomes an action item (owner, due date, kind: ``detect`` for an alert, ``mitigate``
  for a runbook unless given) and the decision is recorded with it, in ONE transaction.
- **Reject a suggestion** (:func:`reject_suggestion`): recorded with the reason (required: the
  next meeting reads it).
- **Reopen an action item, change its owner or due date**: ``KnowledgeBase.update_action_item``
  with the version the person read (``workbench action update ID --expect-version N --status open
  --owner X --as WHO``); its history row is the record. Nothing else is needed here.

Every decision shows in the next pack's "Decisions" section (:func:`.figures.decisions_section`).
"""
from __future__ import annotations

from typing import Any

from ..errors import ConflictError, NotFoundError
from ..formats import clip
from .figures import proposals

#: Action-item kind an accepted suggestion gets, by suggestion kind.
ITEM_KINDS = {"alert": "detect", "runbook": "mitigate"}
#: Longest action-item title taken from a suggestion's text.
TITLE_LENGTH = 200


def suggestions(kb: Any, incident_id: str | None = None) -> list[dict[str, Any]]:
    """Every suggestion the recheck proposed (of one incident, or all) with its state.

    Each: ``incident_id``, ``key``, ``kind``, ``service``, ``text``, ``reason``, ``proposed_at``
    (datetime), ``status`` (proposed / accepted / rejected: the latest decision), ``decided_by``,
    ``decided_at``, ``rationale``, ``action_item_id``.
    """
    found = proposals(kb.list_checks(incident_id=incident_id))
    latest = {(d.incident_id, d.key): d for d in kb.list_suggestion_decisions(incident_id)}
    out = []
    for (iid, key), (at, s) in sorted(found.items(), key=lambda kv: (kv[1][0], kv[0])):
        d = latest.get((iid, key))
        out.append({"incident_id": iid, "key": key, "kind": s.get("kind"), "service": s.get("service"),
                    "text": s.get("text"), "reason": s.get("reason"), "proposed_at": at,
                    "status": "proposed" if d is None else d.status, "decided_by": None if d is None else d.who,
                    "decided_at": None if d is None else d.at, "rationale": None if d is None else d.rationale,
                    "action_item_id": None if d is None else d.action_item_id})
    return out


def find(kb: Any, incident_id: str, key: str) -> dict[str, Any]:
    """The suggestion ``key`` of ``incident_id`` with its state.

    Raises
    ------
    NotFoundError
        No such suggestion (the message lists the incident's suggestion keys).
    """
    rows = suggestions(kb, incident_id)
    for row in rows:
        if row["key"] == key:
            return row
    known = ", ".join(r["key"] for r in rows) or "none"
    raise NotFoundError(f"incident {incident_id!r} has no suggestion {key!r} (its suggestions: {known})")


def accept_suggestion(kb: Any, incident_id: str, key: str, *, who: str, owner: str, due: Any = None,
                      kind: str | None = None, title: str | None = None, rationale: str | None = None) -> tuple[Any, Any]:
    """Turn a suggestion into an action item and record the acceptance; returns (decision, action item).

    Raises
    ------
    NotFoundError
        No such suggestion.
    ConflictError
        It is already accepted (its action item exists).
    """
    with kb.transaction():
        row = find(kb, incident_id, key)
        if row["status"] == "accepted":
            raise ConflictError(f"suggestion {key!r} of {incident_id} was already accepted by {row['decided_by']} "
                                f"(action item {row['action_item_id']})")
        item = kb.add_action_item(incident_id, title=title or clip(row["text"] or key, TITLE_LENGTH), owner=owner,
                                  kind=kind or ITEM_KINDS.get(row["kind"], "process"), due=due, who=who)
        decision = kb.record_suggestion_decision(incident_id, key, "accepted", who=who, rationale=rationale,
                                                 action_item_id=item.id)
    return decision, item


def reject_suggestion(kb: Any, incident_id: str, key: str, *, who: str, rationale: str) -> Any:
    """Record that ``who`` rejected a suggestion, and why; returns the decision.

    A suggestion accepted earlier keeps its action item (close it with ``action update`` if the
    meeting drops it); the rejection becomes its state.
    """
    with kb.transaction():
        find(kb, incident_id, key)
        return kb.record_suggestion_decision(incident_id, key, "rejected", who=who, rationale=rationale)
