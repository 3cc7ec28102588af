"""A reviewer's decision on a root-cause hypothesis, by (service, cause) rather than by record id.

What ``workbench review`` calls, for reviewers without JupyterLab (chat-ops, scripts, a terminal);
the notebook's review widget writes the same fields. A decision always names who made it and why
(the knowledge base refuses a confirmed or rejected hypothesis without ``reviewer`` and
``rationale``), is one versioned update with its history, and feeds the accuracy ledger and the
ranking prior of later incidents (:mod:`workbench.analysis.hypotheses`, ``H``).
"""
from __future__ import annotations

import difflib
from typing import Any

from ..errors import ConflictError, NotFoundError, WorkbenchError
from ..formats import clip
from ..store.records import check_name, check_text

__all__ = ["DECISIONS", "ReviewError", "decide", "parse_pair"]

#: Statuses a reviewer sets.
DECISIONS = ("confirmed", "rejected")


class ReviewError(WorkbenchError):
    """A decision that cannot be applied as asked (malformed pair, unknown status)."""


def parse_pair(text: str) -> tuple[str, str]:
    """``"payments/change"`` -> ``("payments", "change")``; the service may itself hold ``/``."""
    service, sep, cause = str(text).strip().rpartition("/")
    if not sep or not service.strip() or not cause.strip():
        raise ReviewError(f"hypothesis {text!r}: expected SERVICE/CAUSE, e.g. payments/change")
    return service.strip(), cause.strip()


def decide(kb: Any, incident_id: str, service: str, cause: str, status: str, *, reviewer: str, rationale: str,
           add: bool = False, version: int | None = None) -> Any:
    """Confirm or reject the incident's ``(service, cause)`` hypothesis; returns the stored record.

    Parameters
    ----------
    kb : KnowledgeBase
    incident_id, service, cause : str
    status : str
        ``confirmed`` or ``rejected``.
    reviewer, rationale : str
        Who decided and why (both required).
    add : bool
        When the engine did not propose that pair, record it (a cause a human found: the ledger
        counts it as "not ranked", never as a miss).
    version : int, optional
        The version of the hypothesis the reviewer saw (the notebook's widgets pass it): a newer
        one in the store raises :class:`~workbench.errors.ConflictError` and writes nothing.

    Raises
    ------
    NotFoundError
        No such incident, or no such hypothesis and not ``add`` (the message lists the proposed pairs).
    ReviewError
        ``status`` is not a decision.
    StoreError
        A missing reviewer or rationale, an unknown cause (the message names the field).
    ConflictError
        ``version`` is not the stored one; or, without ``version``, another reviewer's decision
        (or another decision) is already stored: changing it must name the version read.
    """
    if status not in DECISIONS:
        raise ReviewError(f"decision {status!r}: expected one of {', '.join(DECISIONS)}")
    # Checked here, before the rationale doubles as an added hypothesis' summary: the error names
    # the field the reviewer typed.
    reviewer, rationale = check_name(reviewer, "reviewer"), check_text(rationale, "rationale")
    hypotheses = kb.list_hypotheses(incident_id)
    match = next((h for h in hypotheses if (h.service, h.cause) == (service, cause)), None)
    if match is not None:
        if version is None and match.status in DECISIONS and (match.status, match.reviewer) != (status, reviewer):
            # Someone already decided: changing that decision must be deliberate, never a silent
            # last-writer-wins between two reviewers deciding at the same time.
            raise ConflictError(
                f"incident {incident_id}: {service}/{cause} was already {match.status} by {match.reviewer} "
                f"(version {match.version}, rationale {clip(match.rationale or '', 80)!r}); nothing was written. "
                f"To change that decision, name the version you read (--expect-version {match.version})")
        return kb.update_hypothesis(match.id, match.version if version is None else version, who=reviewer,
                                    status=status, reviewer=reviewer, rationale=rationale)
    if add:
        return kb.add_hypothesis(incident_id, service=service, cause=cause, summary=rationale, score=0.0,
                                 status=status, reviewer=reviewer, rationale=rationale, who=reviewer)
    known = [f"{h.service}/{h.cause}" for h in hypotheses]
    close = difflib.get_close_matches(f"{service}/{cause}", known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise NotFoundError(f"incident {incident_id}: no hypothesis {service}/{cause}{hint}; proposed: "
                        f"{', '.join(known) or 'none (run workbench analyze first)'}; --add records a cause the "
                        f"engine did not propose")
