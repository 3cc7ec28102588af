"""A review pack: every section of one period, its content hash, and its sign-offs.

:func:`build` is pure (records in, pack out); :func:`review_pack` reads the records of a
workspace first. The content hash covers the period (``as_of`` included) and every section, not
the time the pack was generated nor the paths of the incidents' reports: the same records give the
same hash, and a decision recorded after the pack was written gives another one — so a sign-off
(:func:`sign`) binds exactly the content the signer saw, like an incident's sign-off.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import ConflictError
from ..loop import notify
from ..store.records import iso
from ..workspace import Workspace
from . import figures, interventions
from .period import Period
from .records import Records, read

#: Section name -> the function computing it, in the order the pack shows them.
SECTIONS = {
    "incidents": figures.incidents_section,
    "engine": figures.engine_section,
    "fixes": figures.fixes_section,
    "interventions": interventions.interventions_section,
    "recurrences": figures.recurrences_section,
    "suggestions": figures.suggestions_section,
    "ownership": None,  # needs the fixes: computed in build()
    "decisions": figures.decisions_section,
    "trend": figures.trend_section,
}


@dataclass
class ReviewPack:
    """The figures of one review meeting.

    Attributes
    ----------
    period : Period
    sections : dict
        Section name (:data:`SECTIONS`) -> its JSON-safe figures (:mod:`.figures`, :mod:`.interventions`).
    reports : dict
        incident id -> path of its exported report (where one exists; not part of the hash).
    generated_at : datetime
    signoffs : list of ReviewSignOff
        Sign-offs recorded for this period (not part of the hash; each names the hash it approved).
    """

    period: Period
    sections: dict[str, dict[str, Any]]
    reports: dict[str, str] = field(default_factory=dict)
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    signoffs: list[Any] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        """``sha256:<hex>`` of the period and the sections (canonical JSON)."""
        return content_hash(self.period, self.sections)

    def approved(self) -> bool:
        """Whether a sign-off carries the current content hash."""
        return any(s.content_hash == self.content_hash for s in self.signoffs)

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period.to_dict(), "content_hash": self.content_hash,
                "generated_at": iso(self.generated_at), "sections": self.sections, "reports": dict(self.reports),
                "signoffs": [s.to_dict() for s in self.signoffs]}


def content_hash(period: Period, sections: dict[str, Any]) -> str:
    text = json.dumps({"period": period.to_dict(), "sections": sections}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def build(records: Records, period: Period, *, signoffs: Any = (), now: Any = None) -> ReviewPack:
    """The pack of ``period`` from ``records`` (every section; see :mod:`.figures`)."""
    sections: dict[str, dict[str, Any]] = {}
    for name, compute in SECTIONS.items():
        if name == "ownership":
            sections[name] = figures.ownership_section(records, period, sections["fixes"])
        else:
            sections[name] = compute(records, period)
    scope = {r["incident_id"] for r in sections["incidents"]["rows"]}
    return ReviewPack(period, sections, {k: v for k, v in records.reports.items() if k in scope},
                      now or datetime.now(timezone.utc), list(signoffs))


def review_pack(workspace: Workspace, period: Period) -> ReviewPack:
    """Read ``workspace`` and build the pack of ``period`` (with the sign-offs recorded for it)."""
    with workspace.knowledge_base() as kb:
        records = read(workspace, period, kb=kb)
        signoffs = kb.list_review_signoffs(period.key)
    return build(records, period, signoffs=signoffs)


def sign(workspace: Workspace, period: Period, expected_hash: str, *, name: str, role: str,
         path: str | None = None) -> Any:
    """Record a sign-off of the pack of ``period`` whose content hash is ``expected_hash``.

    The pack is rebuilt from the knowledge base first: when its hash is no longer
    ``expected_hash`` (something changed since the file was written) nothing is recorded.

    Raises
    ------
    ConflictError
        The pack's content changed since it was written (the message names both hashes).
    """
    pack = review_pack(workspace, period)
    if pack.content_hash != expected_hash:
        raise ConflictError(f"review pack {period.key}: its content changed since it was written (file "
                            f"{expected_hash}, now {pack.content_hash}); write it again, review it and sign that")
    with workspace.knowledge_base() as kb:
        return kb.add_review_signoff(period.key, name=name, role=role, content_hash=expected_hash, path=path)


def announce(kb: Any, settings: Any, pack: ReviewPack, path: str) -> int:
    """Queue a ``review_pack`` notification with the written file's location (the scheduled form);
    returns how many webhook targets got one (0 when none is configured to take the kind).

    Idempotent per pack content: the same pack written twice is announced once.
    """
    notify.attach(kb, settings)
    s = pack.sections
    summary = (f"Review pack {pack.period.key}: {s['incidents']['count']} incident(s), {s['fixes']['count']} fix(es) "
               f"due or done, {len(s['ownership']['overdue'])} overdue action item(s)")
    rows = kb.enqueue_notification("review_pack", {
        "summary": summary,
        "details": {"path": str(path), "content_hash": pack.content_hash, "period": pack.period.to_dict(),
                    "incidents": s["incidents"]["count"], "fixes": s["fixes"]["count"],
                    "overdue": len(s["ownership"]["overdue"]), "recurrences": len(s["recurrences"]["checks"])},
    }, key=f"review_pack:{pack.content_hash}")
    return len(rows)
