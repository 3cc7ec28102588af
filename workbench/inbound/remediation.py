"""A change that names an action item (or its ticket) applies that item's fix: the trace from
postmortem to change to outcome.

Rules
-----
- **References**: every ``refs`` entry of the change as given, and every key-like word
  (``letters-…digits…``: ``act-0123456789ab``, ``PM-1242``, ``AI-3``) in its refs, title and commit
  message. An action item matches when its id or its ``ticket`` (case-insensitive) is one of them.
- **Applied**: the item's ``applied_at`` becomes the change's time and ``applied_change`` the change
  (service, version, commit, url, author, source); an open or in-progress item becomes ``done``.
  One versioned update per item, so history records which change, who (the change's author, else
  the integration's token) and when. A change older than the fix already recorded does not move
  it back; the same change sent twice changes nothing.
- **Verification**: the recheck evaluates the item's criterion from ``applied_at`` on
  (:func:`workbench.loop.checks.check_incident`), never over telemetry from before the fix.
  :func:`fix_status` says where a fix stands: "fix applied at …, criterion holding since …".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from ..errors import ConflictError
from ..formats import iso_utc
from .changes import Change

#: A key-like word: a letter, then letters/digits/_, a dash, then at least one digit somewhere.
KEY = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z][A-Za-z0-9_]*-[A-Za-z0-9_.-]*[0-9][A-Za-z0-9_-]*)")
#: Statuses a fix moves to ``done``.
TO_DONE = ("open", "in_progress")
#: Tries when a human edits the item at the same moment (a stale version is re-read).
ATTEMPTS = 3


@dataclass
class Applied:
    """What :func:`apply_change` did to one action item."""

    action_item_id: str
    incident_id: str
    title: str
    ticket: str | None
    status: str
    applied_at: datetime | None
    changed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"action_item_id": self.action_item_id, "incident_id": self.incident_id, "title": self.title,
                "ticket": self.ticket, "status": self.status, "applied_at": iso_utc(self.applied_at),
                "changed": self.changed, "note": self.note}


def references(change: Change) -> list[str]:
    """The keys a change names (see the module docstring), in order of appearance."""
    found: list[str] = [r.strip() for r in change.refs if r.strip()]
    for text in [*change.refs, change.title, change.commit_message or ""]:
        found += [m.group(1).rstrip(".-") for m in KEY.finditer(text)]
    return list(dict.fromkeys(found))


def apply_change(kb: Any, change: Change, *, who: str) -> list[Applied]:
    """Mark the fix of every action item ``change`` names as applied (see the module docstring).

    ``who`` names the integration; the change's author, when it has one, is recorded instead.
    """
    keys = references(change)
    if not keys:
        return []
    author = change.author or who
    recorded = change.to_dict() | {"received_by": who}
    out: list[Applied] = []
    for item in kb.find_action_items(keys):
        for attempt in range(ATTEMPTS):
            try:
                out.append(_apply(kb, item, change, recorded, author))
                break
            except ConflictError:
                if attempt == ATTEMPTS - 1:
                    raise
                item = next(a for a in kb.list_action_items(item.incident_id) if a.id == item.id)
    return out


def _apply(kb: Any, item: Any, change: Change, recorded: dict[str, Any], author: str) -> Applied:
    def result(record: Any, changed: bool, note: str = "") -> Applied:
        return Applied(record.id, record.incident_id, record.title, record.ticket, record.status,
                       record.applied_at, changed, note)

    if item.applied_at is not None and item.applied_at >= change.timestamp:
        same = item.applied_at == change.timestamp
        return result(item, False, "already applied by this change" if same else
                      f"a later fix is already recorded ({iso_utc(item.applied_at)})")
    changes: dict[str, Any] = {"applied_at": change.timestamp, "applied_change": recorded}
    if item.status in TO_DONE:
        changes["status"] = "done"
    updated = kb.update_action_item(item.id, item.version, who=author, **changes)
    return result(updated, True)


def fix_status(item: Any, checks: Iterable[Any] = ()) -> str | None:
    """"fix applied at …, criterion holding since …" for an item whose fix was applied, else None.

    ``checks`` are the item's verification checks (``kb.list_checks(action_item_id=…)``). "Holding
    since" is the start of the first of the latest unbroken run of ``holds`` verdicts checked
    after the fix; without one the latest verdict is named ("violated at …", "not checked yet").
    """
    if getattr(item, "applied_at", None) is None:
        return None
    text = f"fix applied at {iso_utc(item.applied_at)}"
    change = item.applied_change or {}
    what = " ".join(str(change[k]) for k in ("service", "version") if change.get(k))
    if what:
        text += f" ({what})"
    after = sorted((c for c in checks if c.window_end > item.applied_at), key=lambda c: (c.at, c.id))
    if item.verification is None:
        return text + ", no verification criterion"
    if not after:
        return text + ", criterion not checked yet"
    since = None
    for check in reversed(after):
        if check.verdict != "holds":
            break
        since = check
    if since is not None:
        return text + f", criterion holding since {iso_utc(max(since.window_start, item.applied_at))}"
    last = after[-1]
    return text + f", criterion {last.verdict} at {iso_utc(last.at)}"
