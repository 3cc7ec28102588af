"""Nudges for overdue action items and follow-up reviews, and escalation when nudges are not enough.

An action item is overdue on day ``D`` when it is still open or in progress and its due date is
before ``D``. :func:`nudge` queues, per overdue item and day, one ``action_item_overdue``
notification for its owner; once the item is more than ``grace_days`` late it also queues an
``escalation`` for the person who approves the owner's work.

A follow-up review (an incident whose ``follow_up_of`` names the incident it reviews again, opened
by the recheck when a recurrence starts) is due on day ``D`` when it is still ``open`` or
``in_review`` more than ``follow_up_days`` days after it was opened: :func:`nudge` queues one
``follow_up_due`` per review and day for the people of the original postmortem (its sign-offs and
its action items' owners, sorted).

Every notification goes to every configured webhook that takes its kind (``[webhooks.<name>]
kinds``); the people are named in the payload's ``recipients``, for the receiving chat or ticket
system to route.

Configuration (``workbench.toml``)
----------------------------------
::

    [nudge]
    grace_days = 3          # days late before escalating (default 3): due 2026-03-01 -> nudges
                            # from 03-02, escalations from 03-05
    follow_up_days = 2      # days a follow-up review may stay open (default 2): opened 03-01 ->
                            # reminders from 03-04

    [roles]                 # person -> role (the team or function the person works for)
    alice = "checkout-lead"

    [approvers]             # role -> the person escalations for people in that role go to
    checkout-lead = "bob"

An owner without a role, a role without an approver, or an owner who is their own approver is not
escalated; the report says why.

Idempotence
-----------
Every notification carries the key ``<kind>:<action item or review id>:<YYYY-MM-DD>`` and the outbox keeps
one row per key and webhook, so running :func:`nudge` twice on one day queues nothing the second
time, while the next day nudges again. All notifications of one run commit in one transaction.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Mapping

from ..errors import ConfigError
from .notify import targets_for
from ..store.records import fail

DEFAULT_GRACE_DAYS = 3
DEFAULT_FOLLOW_UP_DAYS = 2
NUDGE_KEYS = ("grace_days", "follow_up_days")
#: Statuses of a follow-up review that is not finished yet.
REVIEW_PENDING = ("open", "in_review")


@dataclass(frozen=True)
class NudgeConfig:
    """``[nudge]``, ``[roles]`` and ``[approvers]`` of ``workbench.toml``."""

    grace_days: int = DEFAULT_GRACE_DAYS
    follow_up_days: int = DEFAULT_FOLLOW_UP_DAYS
    roles: dict[str, str] = field(default_factory=dict)
    approvers: dict[str, str] = field(default_factory=dict)

    def approver(self, owner: str) -> tuple[str | None, str | None]:
        """(approver, None) or (None, why there is none) for ``owner``."""
        role = self.roles.get(owner)
        if role is None:
            return None, f"owner {owner!r} has no role in [roles]"
        person = self.approvers.get(role)
        if person is None:
            return None, f"role {role!r} (of {owner!r}) has no approver in [approvers]"
        if person == owner:
            return None, f"{owner!r} approves their own role {role!r}"
        return person, None


def load_config(settings: Any) -> NudgeConfig:
    """Read the nudge configuration; ``settings`` is a Settings or its ``extra`` mapping.

    Raises
    ------
    ConfigError
        Naming the key (``nudge.grace_days``, ``roles.alice``) and what was expected.
    """
    extra = (settings.extra if hasattr(settings, "extra") else settings) or {}
    section = _table(extra, "nudge")
    for key in section:
        if key not in NUDGE_KEYS:
            raise ConfigError(f"nudge.{key}: unknown key; known: {', '.join(NUDGE_KEYS)}")
    days = {}
    for key, default in (("grace_days", DEFAULT_GRACE_DAYS), ("follow_up_days", DEFAULT_FOLLOW_UP_DAYS)):
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"nudge.{key}: expected a whole number of days >= 0, got {value!r}")
        days[key] = value
    return NudgeConfig(**days, roles=_names(extra, "roles"), approvers=_names(extra, "approvers"))


def _table(extra: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = extra.get(name, {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"{name}: expected a table [{name}], got {section!r}")
    return section


def _names(extra: Mapping[str, Any], name: str) -> dict[str, str]:
    out = {}
    for key, value in _table(extra, name).items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{name}.{key}: expected a name (a non-empty string), got {value!r}")
        out[str(key)] = value
    return out


def overdue(kb: Any, as_of: Any) -> dict[str, list[Any]]:
    """Overdue action items by owner (owners sorted; each owner's items by due date).

    ``as_of`` is a date, an aware datetime (its UTC date) or an ISO string; items due before it
    and still open or in progress are overdue.
    """
    day = as_of_day(as_of)
    out: dict[str, list[Any]] = {}
    for item in kb.list_action_items(overdue_on=day):
        out.setdefault(item.owner, []).append(item)
    return {owner: sorted(out[owner], key=lambda i: (i.due, i.id)) for owner in sorted(out)}


def as_of_day(value: Any) -> date:
    """The day of ``value``: a date, an aware datetime (its UTC date) or an ISO date/time string.

    Raises ``StoreError`` naming ``as_of`` (like the knowledge base's own date checks).
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                raise fail("as_of", "a date such as 2026-03-01 or an aware ISO time", value) from None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise fail("as_of", "a date or a timezone-aware time", value)
        return value.astimezone(timezone.utc).date()
    if isinstance(value, date):
        return value
    raise fail("as_of", "a date or a timezone-aware time", value)


@dataclass(frozen=True)
class Nudge:
    """One notification :func:`nudge` decided on.

    ``status``: ``queued`` (new outbox rows: ``delivery_ids``), ``already_queued`` (today's was
    queued before), ``no_target`` (no webhook takes the kind) or ``not_escalated`` (``reason``).
    """

    kind: str
    action_item_id: str | None  # None for follow_up_due (``incident_id`` is the review)
    incident_id: str
    owner: str | None  # None for follow_up_due
    recipient: str | None  # follow_up_due: the recipients joined by ", "
    days_overdue: int
    status: str
    delivery_ids: tuple[str, ...] = ()
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["delivery_ids"] = list(self.delivery_ids)
        return out


@dataclass
class NudgeReport:
    """What :func:`nudge` did on ``as_of``: overdue item ids by owner and every nudge decision."""

    as_of: date
    grace_days: int
    overdue: dict[str, list[str]] = field(default_factory=dict)
    nudges: list[Nudge] = field(default_factory=list)

    def count(self, kind: str, status: str = "queued") -> int:
        return sum(n.kind == kind and n.status == status for n in self.nudges)

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "grace_days": self.grace_days, "overdue": dict(self.overdue),
                "nudges": [n.to_dict() for n in self.nudges]}

    def summary(self) -> str:
        items = sum(len(v) for v in self.overdue.values())
        return (f"{self.as_of.isoformat()}: {items} overdue action item(s) of {len(self.overdue)} owner(s); "
                f"{self.count('action_item_overdue')} nudge(s) and {self.count('escalation')} escalation(s) queued, "
                f"{self.count('follow_up_due')} follow-up review reminder(s) queued, "
                f"{sum(n.status == 'already_queued' for n in self.nudges)} already queued today, "
                f"{sum(n.status == 'not_escalated' for n in self.nudges)} not escalated, "
                f"{sum(n.status == 'no_target' for n in self.nudges)} without a webhook")


def nudge(kb: Any, settings: Any, as_of: Any) -> NudgeReport:
    """Queue today's nudges and escalations for overdue action items (idempotent per day).

    Parameters
    ----------
    kb : KnowledgeBase
    settings : Settings
        For ``[nudge]``, ``[roles]``, ``[approvers]`` and the webhooks (names and kinds only: no
        secret is needed to queue).
    as_of : date, aware datetime or ISO string
        The day of the run.

    Returns
    -------
    NudgeReport
    """
    config = load_config(settings)
    day = as_of_day(as_of)
    to_owner = targets_for(settings, "action_item_overdue")
    to_approver = targets_for(settings, "escalation")
    by_owner = overdue(kb, day)
    report = NudgeReport(as_of=day, grace_days=config.grace_days,
                         overdue={owner: [i.id for i in items] for owner, items in by_owner.items()})
    with kb.transaction():
        for owner, items in by_owner.items():
            for item in items:
                late = (day - item.due).days
                report.nudges.append(_queue(kb, "action_item_overdue", item, owner, late, day, to_owner))
                if late <= config.grace_days:
                    continue
                approver, reason = config.approver(owner)
                if approver is None:
                    report.nudges.append(Nudge("escalation", item.id, item.incident_id, owner, None, late,
                                               "not_escalated", reason=reason))
                    continue
                report.nudges.append(_queue(kb, "escalation", item, approver, late, day, to_approver,
                                            role=config.roles.get(owner), grace=config.grace_days))
        to_reviewers = targets_for(settings, "follow_up_due")
        for review, original in due_reviews(kb, day, config.follow_up_days):
            report.nudges.append(_queue_review(kb, review, original, day, config.follow_up_days, to_reviewers))
    return report


def due_reviews(kb: Any, as_of: Any, follow_up_days: int = DEFAULT_FOLLOW_UP_DAYS) -> list[tuple[Any, Any]]:
    """``(review, original)`` for every follow-up review still pending (:data:`REVIEW_PENDING`)
    more than ``follow_up_days`` days after it was opened, oldest first."""
    day = as_of_day(as_of)
    out = []
    for status in REVIEW_PENDING:
        for review in kb.list_incidents(status=status):
            if review.follow_up_of is None:
                continue
            if (day - review.created.astimezone(timezone.utc).date()).days > follow_up_days:
                out.append((review, kb.get_incident(review.follow_up_of)))
    return sorted(out, key=lambda pair: (pair[0].created, pair[0].id))


def _queue_review(kb: Any, review: Any, original: Any, day: date, follow_up_days: int, targets: list[str]) -> Nudge:
    opened = review.created.astimezone(timezone.utc).date()
    late = (day - opened).days - follow_up_days
    people = sorted({s.name for s in kb.list_signoffs(original.id)}
                    | {i.owner for i in kb.list_action_items(original.id)})
    recipient = ", ".join(people) or None
    if not targets:
        return Nudge("follow_up_due", None, review.id, None, recipient, late, "no_target",
                     reason="no webhook takes follow_up_due notifications")
    summary = (f"Follow-up review {review.id} of {original.id} ({original.title}) is still {review.status}, "
               f"opened {opened.isoformat()} ({(day - opened).days} day(s) ago)")
    details = {"review": {"id": review.id, "title": review.title, "status": review.status,
                          "opened": opened.isoformat()},
               "original": {"id": original.id, "title": original.title, "status": original.status},
               "days_open": (day - opened).days, "follow_up_days": follow_up_days, "as_of": day.isoformat()}
    rows = kb.enqueue_notification("follow_up_due", {"summary": summary, "details": details, "recipients": people},
                                   incident_id=review.id, targets=targets,
                                   key=f"follow_up_due:{review.id}:{day.isoformat()}")
    return Nudge("follow_up_due", None, review.id, None, recipient, late, "queued" if rows else "already_queued",
                 tuple(r.delivery_id for r in rows))


def _queue(kb: Any, kind: str, item: Any, recipient: str, late: int, day: date, targets: list[str],
           role: str | None = None, grace: int | None = None) -> Nudge:
    if not targets:
        return Nudge(kind, item.id, item.incident_id, item.owner, recipient, late, "no_target",
                     reason=f"no webhook takes {kind} notifications")
    details: dict[str, Any] = {
        "action_item": {"id": item.id, "title": item.title, "owner": item.owner, "kind": item.kind,
                        "status": item.status, "due": item.due.isoformat()},
        "days_overdue": late, "as_of": day.isoformat(),
    }
    if kind == "escalation":
        summary = (f"Escalation: action item {item.title!r} of {item.owner} is {late} day(s) overdue "
                   f"(due {item.due.isoformat()}, grace {grace} day(s))")
        details |= {"owner_role": role, "approver": recipient, "grace_days": grace}
    else:
        summary = f"Action item {item.title!r} is {late} day(s) overdue (due {item.due.isoformat()})"
    rows = kb.enqueue_notification(kind, {"summary": summary, "details": details, "recipients": [recipient]},
                                   incident_id=item.incident_id, targets=targets,
                                   key=f"{kind}:{item.id}:{day.isoformat()}")
    status = "queued" if rows else "already_queued"
    return Nudge(kind, item.id, item.incident_id, item.owner, recipient, late, status,
                 tuple(r.delivery_id for r in rows))
