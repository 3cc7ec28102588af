"""Which interventions reduce recurrence: similar incidents before and after each fix, per action-item
kind and per service.

For every *fix* — an action item that is ``done``, whose fix time (:func:`.figures.fix_times`:
``applied_at``, else when it became done) is at or before ``as_of`` — of an incident of the
pack's service:

- its *family* is the fixed incident, the incidents whose signature is similar to it
  (:attr:`.records.Records.similar`, the recheck's threshold), those with the same confirmed
  cause (service and cause), and the follow-up reviews of any of them;
- ``L = min(window, as_of - fix time)`` (90 days by default, like the before/after of
  :mod:`workbench.kpis.remediation`); *before* = family incidents started in
  ``[fix - L, fix)`` (the fixed incident itself included: it is why the fix exists), *after* =
  those started in ``[fix, fix + L)``.

A group (a kind, a service: a fix counts for each service its incident lists) adds up its fixes:
``incidents`` and ``days`` per side, the rate ``incidents / days * 30`` (per 30 days), the MTTR
of the distinct incidents per side (unknowns counted as unknown), and how many fixes were followed
by at least one similar incident. Only fixes with at least :data:`MIN_AFTER_DAYS` after them are
*judged*; with fewer than :data:`MIN_FIXES` judged fixes a group says "too few to say" instead
of a comparison.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

from ..kpis.summary import duration_stats, incident_times
from ..store.records import ACTION_KINDS, Incident, iso
from .figures import fix_times, of_service
from .period import Period
from .records import WINDOW as RECORDS_WINDOW, Records

#: Longest window on each side of a fix (the records hold similar incidents within it).
WINDOW = RECORDS_WINDOW
#: Least time after a fix before it is judged.
MIN_AFTER_DAYS = 7
#: Fewest judged fixes before a group's before/after comparison is stated.
MIN_FIXES = 3


@dataclass(frozen=True)
class Fix:
    """One fix with its family's incidents on each side (ids, oldest first)."""

    action_item_id: str
    incident_id: str
    kind: str
    services: tuple[str, ...]
    fixed_at: datetime
    days: float
    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def judged(self) -> bool:
        return self.days >= MIN_AFTER_DAYS

    def to_dict(self) -> dict[str, Any]:
        return {"action_item_id": self.action_item_id, "incident_id": self.incident_id, "kind": self.kind,
                "services": list(self.services), "fixed_at": iso(self.fixed_at), "days": round(self.days, 3),
                "judged": self.judged, "before": list(self.before), "after": list(self.after)}


def families(records: Records) -> dict[str, set[str]]:
    """incident id -> its family (see the module docstring), for every incident."""
    cause: dict[tuple[str, str], set[str]] = defaultdict(set)
    for iid, hyps in records.confirmed.items():
        for h in hyps:
            cause[(h.service, h.cause)].add(iid)
    follow_ups: dict[str, set[str]] = defaultdict(set)
    for i in records.incidents:
        if i.follow_up_of:
            follow_ups[i.follow_up_of].add(i.id)
    out = {}
    for i in records.incidents:
        family = {i.id} | set(records.similar.get(i.id, ()))
        for h in records.confirmed.get(i.id, ()):
            family |= cause[(h.service, h.cause)]
        if i.follow_up_of:
            family.add(i.follow_up_of)
        for member in list(family):
            family |= _descendants(member, follow_ups)
        out[i.id] = family
    return out


def _descendants(iid: str, follow_ups: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [iid]
    while todo:
        for child in follow_ups.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def fixes(records: Records, period: Period, window: timedelta = WINDOW) -> list[Fix]:
    """Every fix of the period's service up to ``as_of`` with its family on each side."""
    times = fix_times(records, period.as_of)
    scope = of_service(records, period)
    fams = families(records)
    by_id = {i.id: i for i in records.incidents}
    out = []
    for item in records.action_items:
        at = times.get(item.id)
        incident = by_id.get(item.incident_id)
        if at is None or incident is None or item.incident_id not in scope:
            continue
        length = min(window, period.as_of - at)
        members = sorted((by_id[m] for m in fams.get(item.incident_id, ()) if m in by_id),
                         key=lambda i: (i.started, i.id))
        before = tuple(i.id for i in members if at - length <= i.started < at)
        after = tuple(i.id for i in members if at <= i.started < at + length)
        out.append(Fix(item.id, item.incident_id, item.kind, tuple(incident.services), at,
                       length.total_seconds() / 86400, before, after))
    return sorted(out, key=lambda f: (f.fixed_at, f.action_item_id))


def group(fixes_: Sequence[Fix], incidents: dict[str, Incident]) -> dict[str, Any]:
    """The before/after figures of a group of fixes (see the module docstring)."""
    judged = [f for f in fixes_ if f.judged]
    out: dict[str, Any] = {"fixes": len(fixes_), "judged": len(judged)}
    for side in ("before", "after"):
        count = sum(len(getattr(f, side)) for f in judged)
        days = sum(f.days for f in judged)
        distinct = sorted({i for f in judged for i in getattr(f, side)})
        mttr = duration_stats(t.time_to_resolve for t in incident_times(incidents[i] for i in distinct))
        out[side] = {"incidents": count, "days": round(days, 3),
                     "per_30_days": round(count / days * 30, 4) if days else None,
                     "mttr": mttr.to_dict(), "incident_ids": distinct}
    out["recurred_after"] = sum(1 for f in judged if f.after)
    out["verdict"], out["statement"] = _verdict(out)
    return out


def _verdict(g: dict[str, Any]) -> tuple[str, str]:
    if g["judged"] < MIN_FIXES:
        return "too few", (f"too few to say: {g['judged']} fix(es) with at least {MIN_AFTER_DAYS} days after them "
                           f"({MIN_FIXES} needed)")
    b, a = g["before"]["per_30_days"], g["after"]["per_30_days"]
    text = (f"{a:.2f} similar incidents per 30 days after the fixes against {b:.2f} before; recurred after "
            f"{g['recurred_after']} of {g['judged']} fixes")
    if a < b:
        return "fewer", "fewer recurrences after the fix: " + text
    return "not fewer", "no fewer recurrences after the fix: " + text


def interventions_section(records: Records, period: Period, window: timedelta = WINDOW) -> dict[str, Any]:
    """Per action-item kind and per service: recurrence and MTTR of similar incidents before and after fixes."""
    found = fixes(records, period, window)
    incidents = {i.id: i for i in records.incidents}
    by_service: dict[str, list[Fix]] = defaultdict(list)
    for f in found:
        for s in f.services:
            if period.service is None or s == period.service:
                by_service[s].append(f)
    return {"window_days": window.total_seconds() / 86400, "min_after_days": MIN_AFTER_DAYS, "min_fixes": MIN_FIXES,
            "fixes": [f.to_dict() for f in found],
            "by_kind": {k: group([f for f in found if f.kind == k], incidents) for k in ACTION_KINDS},
            "by_service": {s: group(v, incidents) for s, v in sorted(by_service.items())}}

