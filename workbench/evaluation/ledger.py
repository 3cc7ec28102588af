"""The accuracy ledger: where the engine ranked each cause a reviewer confirmed.

For every selected incident with a confirmed hypothesis, the engine's rank of the confirmed cause
is the ``rank`` of the confirmed hypothesis (the lowest when several are confirmed). A confirmed
hypothesis without a rank was added by a human: the incident is counted as *not ranked* and left
out of AC@k and the mean rank. ``AC@k`` = share of the ranked incidents whose rank is ``<= k``
(k = 1, 3); mean rank = mean of the ranks; both ``None`` when nothing is ranked. Reported overall,
per UTC month of ``started`` and per cause type.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from ..formats import clip
from ..kpis.selection import Selection, select
from ..kpis.tables import percent, selection_text
from ..store.records import CAUSES, Hypothesis, Incident, iso

ACCURACY_KS = (1, 3)


@dataclass(frozen=True)
class LedgerEntry:
    """One incident with a confirmed cause: the engine's rank of it (``None`` = not ranked)."""

    incident_id: str
    started: datetime
    hypothesis_id: str
    service: str
    cause: str
    rank: int | None
    confirmed: int  # how many hypotheses of the incident are confirmed

    @property
    def month(self) -> str:
        return self.started.astimezone(timezone.utc).strftime("%Y-%m")

    def to_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "started": iso(self.started), "month": self.month,
                "hypothesis_id": self.hypothesis_id, "service": self.service, "cause": self.cause,
                "rank": self.rank, "confirmed": self.confirmed}


@dataclass(frozen=True)
class AccuracyGroup:
    """AC@1, AC@3 and mean rank over the ranked entries of a group; not-ranked ones counted apart."""

    n_incidents: int
    ranks: tuple[int, ...]

    @property
    def n_ranked(self) -> int:
        return len(self.ranks)

    @property
    def n_not_ranked(self) -> int:
        return self.n_incidents - len(self.ranks)

    def ac(self, k: int) -> float | None:
        """Share of ranked incidents whose confirmed cause was ranked ``<= k``."""
        return sum(1 for r in self.ranks if r <= k) / len(self.ranks) if self.ranks else None

    @property
    def mean_rank(self) -> float | None:
        return sum(self.ranks) / len(self.ranks) if self.ranks else None

    def to_dict(self) -> dict[str, Any]:
        return {"n_incidents": self.n_incidents, "n_ranked": self.n_ranked, "n_not_ranked": self.n_not_ranked,
                **{f"ac{k}": self.ac(k) for k in ACCURACY_KS}, "mean_rank": self.mean_rank}


def _group(entries: Sequence[LedgerEntry]) -> AccuracyGroup:
    return AccuracyGroup(len(entries), tuple(e.rank for e in entries if e.rank is not None))


@dataclass(frozen=True)
class AccuracyLedger:
    """How the engine ranked the causes humans confirmed: overall, per month, per cause type."""

    selection: Selection
    entries: list[LedgerEntry]
    overall: AccuracyGroup
    by_month: dict[str, AccuracyGroup]
    by_cause: dict[str, AccuracyGroup]

    def to_dict(self) -> dict[str, Any]:
        return {"selection": self.selection.to_dict(), "overall": self.overall.to_dict(),
                "by_month": {k: v.to_dict() for k, v in self.by_month.items()},
                "by_cause": {k: v.to_dict() for k, v in self.by_cause.items()},
                "entries": [e.to_dict() for e in self.entries]}


def ledger_records(incidents: Sequence[Incident], hypotheses: Iterable[Hypothesis], *,
                   selection: Selection | None = None) -> AccuracyLedger:
    """The accuracy ledger of ``incidents`` from their hypotheses (others' hypotheses are ignored)."""
    started = {i.id: i.started for i in incidents}
    confirmed: dict[str, list[Hypothesis]] = defaultdict(list)
    for h in hypotheses:
        if h.status == "confirmed" and h.incident_id in started:
            confirmed[h.incident_id].append(h)
    entries = []
    for inc_id, hyps in confirmed.items():
        # The best-ranked confirmed cause; unranked ones only when none has a rank.
        best = min(hyps, key=lambda h: (h.rank is None, h.rank or 0, -h.score, h.id))
        entries.append(LedgerEntry(inc_id, started[inc_id], best.id, best.service, best.cause, best.rank, len(hyps)))
    entries.sort(key=lambda e: (e.started, e.incident_id))
    months: dict[str, list[LedgerEntry]] = defaultdict(list)
    causes: dict[str, list[LedgerEntry]] = defaultdict(list)
    for e in entries:
        months[e.month].append(e)
        causes[e.cause].append(e)
    return AccuracyLedger(selection or Selection(), entries, _group(entries),
                          {m: _group(months[m]) for m in sorted(months)},
                          {c: _group(causes[c]) for c in CAUSES if c in causes})


def accuracy(kb: Any, *, since: Any = None, until: Any = None, service: str | None = None,
             severity: str | None = None, label: Mapping[str, Any] | str | None = None) -> AccuracyLedger:
    """The accuracy ledger (AC@1, AC@3, mean rank) of the selected incidents with a confirmed cause."""
    selection = Selection.of(since, until, service, severity, label)
    incidents = select(kb, selection)
    confirmed = kb.confirmed_hypotheses()
    hypotheses = [h for i in incidents for h in confirmed.get(i.id, [])]
    return ledger_records(incidents, hypotheses, selection=selection)


def ledger_table(led: AccuracyLedger, *, max_rows: int = 50) -> str:
    """The ledger as text (at most ``max_rows`` incident rows)."""
    return "\n".join(_ledger_lines(led, max_rows))


def _ledger_lines(led: AccuracyLedger, max_rows: int) -> list[str]:
    o = led.overall
    lines = [f"accuracy ledger{selection_text(led.selection)}: {o.n_incidents} incident(s) with a confirmed cause, "
             f"{o.n_ranked} ranked by the engine, {o.n_not_ranked} not ranked (the confirmed cause has no engine "
             f"rank: added by a human)", "",
             f"{'group':<18} {'incidents':>9} {'ranked':>7} {'not ranked':>10} {'AC@1':>7} {'AC@3':>7} "
             f"{'mean rank':>9}"]

    def row(name: str, g: AccuracyGroup) -> str:
        mean = "—" if g.mean_rank is None else f"{g.mean_rank:.2f}"
        return (f"{clip(name, 18):<18} {g.n_incidents:>9} {g.n_ranked:>7} {g.n_not_ranked:>10} {percent(g.ac(1)):>7} "
                f"{percent(g.ac(3)):>7} {mean:>9}")

    lines.append(row("all", o))
    lines += [row(m, g) for m, g in led.by_month.items()]
    lines += [row(f"cause {c}", g) for c, g in led.by_cause.items()]
    if led.entries:
        lines += ["", f"{'incident':<24} {'started (UTC)':<17} {'service':<16} {'cause':<10} {'rank':>10}"]
        for e in led.entries[:max_rows]:
            rank = "not ranked" if e.rank is None else str(e.rank)
            lines.append(f"{clip(e.incident_id, 24):<24} {e.started:%Y-%m-%d %H:%M} {clip(e.service, 16):<16} "
                         f"{e.cause:<10} {rank:>10}")
        if len(led.entries) > max_rows:
            lines.append(f"... {len(led.entries) - max_rows} more (use --json for all)")
    return lines
