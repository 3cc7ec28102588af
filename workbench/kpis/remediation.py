"""Before and after a remediation: the same figures for one service in equal windows on either
side of the time its action items were done (definitions: ``docs/metrics.md``)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from ..errors import MetricsError, NotFoundError
from ..store.records import ActionItem, HistoryEntry, check_text, check_time, iso
from .selection import PHASES, Selection, as_of_time
from .summary import Summary, summarize_records

#: Default longest before/after window.
DEFAULT_WINDOW = timedelta(days=90)


@dataclass(frozen=True)
class BeforeAfter:
    """The same metrics for one service in equal windows before and after a remediation.

    ``difference`` holds after minus before: ``count``, ``recurrence_rate`` and
    ``mttd``/``mttm``/``mttr`` -> ``{"mean_s", "median_s"}`` (``None`` where either side is unknown).
    """

    service: str
    done_at: datetime
    done_from: str  # "history" or "given"
    action_item_ids: tuple[str, ...]
    window: timedelta
    before: Summary
    after: Summary

    @property
    def difference(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.after.count - self.before.count,
                               "recurrence_rate": minus(self.after.recurrence.rate, self.before.recurrence.rate)}
        for m, _ in PHASES:
            a, b = self.after.durations[m], self.before.durations[m]
            out[m] = {"mean_s": minus(a.mean, b.mean), "median_s": minus(a.median, b.median)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "done_at": iso(self.done_at), "done_from": self.done_from,
                "action_item_ids": list(self.action_item_ids), "window_s": self.window.total_seconds(),
                "before": self.before.to_dict(), "after": self.after.to_dict(), "difference": self.difference}


def minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def remediation_time(items: Iterable[ActionItem], history: Iterable[HistoryEntry],
                     as_of: Any = None) -> tuple[datetime, tuple[str, ...]] | None:
    """When the last of ``items`` became ``done`` (and which items are done), from their history.

    Only items whose current status is ``done`` count; for those, an entry counts when it set the
    status to ``done`` (field ``status``) or created the item as done (field ``"*"``), at or before
    ``as_of``. Returns ``None`` when no entry qualifies.
    """
    as_of = as_of_time(as_of)
    done = {i.id for i in items if i.status == "done"}
    times: dict[str, datetime] = {}
    for h in history:
        if h.entity != "action_item" or h.entity_id not in done or h.at > as_of:
            continue
        became_done = (h.field == "status" and h.new == "done") or \
                      (h.field == "*" and isinstance(h.new, Mapping) and h.new.get("status") == "done")
        if became_done and (h.entity_id not in times or h.at > times[h.entity_id]):
            times[h.entity_id] = h.at
    if not times:
        return None
    return max(times.values()), tuple(sorted(times))


def before_after(kb: Any, service: str, *, done_at: Any = None, window: timedelta = DEFAULT_WINDOW,
                 as_of: Any = None, severity: str | None = None,
                 label: Mapping[str, Any] | str | None = None) -> BeforeAfter:
    """Metrics of ``service`` in equal windows before and after its action items were done.

    Parameters
    ----------
    kb : KnowledgeBase
    service : str
    done_at : datetime or ISO string, optional
        The remediation time; default: from the history (see the module docstring).
    window : timedelta
        Longest window on each side; the used length is ``min(window, as_of - done_at)``.
    as_of : datetime, date or ISO string, optional
        Default now.
    severity, label : optional
        Further filters for both windows.

    Raises
    ------
    NotFoundError
        ``done_at`` is not given and no action item of the service's incidents is done.
    MetricsError
        ``window`` is not positive or ``done_at`` is not before ``as_of``.
    """
    service = check_text(service, "service")
    as_of = as_of_time(as_of)
    if not isinstance(window, timedelta) or window <= timedelta(0):
        raise MetricsError(f"window: expected a positive timedelta, got {window!r}")
    incidents = kb.list_incidents(service=service)
    if done_at is None:
        ids = {i.id for i in incidents}
        items = [a for a in kb.list_action_items() if a.incident_id in ids]
        found = remediation_time(items, kb.history(entity="action_item"), as_of)
        if found is None:
            raise NotFoundError(f"service {service!r}: none of the {len(items)} action item(s) of its "
                                f"{len(incidents)} incident(s) is done (as of {iso(as_of)}); pass done_at")
        done, item_ids, source = found[0], found[1], "history"
    else:
        done, item_ids, source = check_time(done_at, "done_at"), (), "given"
    length = min(window, as_of - done)
    if length <= timedelta(0):
        raise MetricsError(f"done_at: expected a time before as_of ({iso(as_of)}), got {iso(done)}")
    items, checks = kb.list_action_items(), kb.list_checks()
    sides = []
    for start, end in ((done - length, done), (done, done + length)):
        selection = Selection.of(start, end, service, severity, label)
        chosen = [i for i in incidents if selection.contains(i)]
        sides.append(summarize_records(chosen, items, checks, as_of=as_of, selection=selection))
    return BeforeAfter(service, done, source, item_ids, length, sides[0], sides[1])
