"""Which weeks a review pack covers: the period, the one before it, and the time figures are taken at.

A pack covers the incidents that started in ``[since, until)`` (of one service when given). The
*previous period* is the same length right before it (AC@k is compared across the two). Figures
that depend on "now" (overdue items, the windows after a fix) are taken at ``as_of`` =
``min(until, now)``; a pack's period, ``as_of`` included, is fixed when it is built, so the same
records always give the same pack and the same content hash (what a sign-off binds).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import MetricsError
from ..kpis.selection import Selection
from ..store.records import check_text, check_time, iso


@dataclass(frozen=True)
class Period:
    """The selection of a review pack.

    Attributes
    ----------
    since, until : datetime
        Aware UTC; incidents with ``since <= started < until``.
    as_of : datetime
        When the figures are taken (``min(until, now)`` unless given).
    service : str or None
        Only incidents that list this service (and their action items).
    """

    since: datetime
    until: datetime
    as_of: datetime
    service: str | None = None

    @classmethod
    def of(cls, since: Any, until: Any = None, service: str | None = None, *, as_of: Any = None,
           now: Any = None) -> "Period":
        """Check and normalise a period (``until`` default ``now``; ``as_of`` default ``min(until, now)``).

        Raises
        ------
        MetricsError
            ``until`` is not after ``since``, or ``as_of`` is before ``since``.
        """
        now = datetime.now(timezone.utc).replace(microsecond=0) if now is None else check_time(now, "now")
        since = check_time(since, "since")
        until = now if until is None else check_time(until, "until")
        if until <= since:
            raise MetricsError(f"until: expected a time after since ({iso(since)}), got {iso(until)}")
        as_of = min(until, now) if as_of is None else check_time(as_of, "as_of")
        if as_of < since:
            raise MetricsError(f"as_of: expected a time at or after since ({iso(since)}), got {iso(as_of)}")
        return cls(since, until, as_of, None if service is None else check_text(service, "service"))

    @classmethod
    def last(cls, days: int, service: str | None = None, *, now: Any = None) -> "Period":
        """The ``days`` up to now, to the second (the scheduled form: ``--last 30``)."""
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise MetricsError(f"last: expected a whole number of days >= 1, got {days!r}")
        now = (datetime.now(timezone.utc) if now is None else check_time(now, "now")).replace(microsecond=0)
        return cls.of(now - timedelta(days=days), now, service, now=now)

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    @property
    def previous(self) -> "Period":
        """The period of the same length right before this one (figures taken at its end)."""
        return Period(self.since - self.length, self.since, self.since, self.service)

    @property
    def key(self) -> str:
        """``<since>..<until>`` (``/<service>``): what a sign-off of the pack names."""
        return f"{iso(self.since)}..{iso(self.until)}" + (f"/{self.service}" if self.service else "")

    def selection(self) -> Selection:
        """The :class:`~workbench.kpis.selection.Selection` of the period's incidents."""
        return Selection.of(self.since, self.until, self.service)

    def contains(self, when: datetime | None) -> bool:
        """Whether a time falls in ``[since, until)``."""
        return when is not None and self.since <= when < self.until

    def to_dict(self) -> dict[str, Any]:
        p = self.previous
        return {"since": iso(self.since), "until": iso(self.until), "as_of": iso(self.as_of), "service": self.service,
                "previous": {"since": iso(p.since), "until": iso(p.until)}, "key": self.key}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Period":
        """The period of :meth:`to_dict` (a pack's metadata), as it was built."""
        return cls(check_time(data["since"], "since"), check_time(data["until"], "until"),
                   check_time(data["as_of"], "as_of"), data.get("service"))
