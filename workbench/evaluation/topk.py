"""Top-k accuracy of root-cause rankings on labelled cases: AS@k, mean rank, AIS@k.

AS@k (service level) is the share of cases whose root-cause service is among the first ``k``
services of a ranking; AIS@k (inner-service level) the share whose first ``k`` hypotheses
include one in the right service that names the right inner cause (:func:`inner_cause_matches`:
the metric of a resource fault, a log template inside the code region of a code fault). The
definitions follow the Nezha paper (FSE 2023), so the numbers compare with its tables.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

#: The k of AS@k reported everywhere.
KS = (1, 3, 5)

#: A source location in a log line or label: ``c.s.ContactsServiceImpl#31``, ``Foo.java:12``.
LOCATION = re.compile(r"(?<![\w.$])((?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$\[\]]*)"
                      r"(#|\.(?:java|py|go|js|ts|rb|cs|c|cc|cpp|scala|kt|rs):)(\d+)(?![\w])")
#: Words of a resource label that name the resource (``CpuUsageRate(%)`` -> cpu).
RESOURCE_WORDS = ("cpu", "memory", "mem", "network", "disk", "io", "thread", "gc", "heap")
#: Words of a latency signal (accepted for network labels: the data sets carry no network-latency
#: column, so a slower call into the service is how a network delay shows).
LATENCY_WORDS = ("latency", "self", "overhead", "duration", "p90", "p95", "p99", "p50", "time")


def rank_of(ranking: Sequence[str], truth: str, size: int | None = None) -> int:
    """1-based position of ``truth`` in ``ranking``; when absent, one past the possible services.

    Parameters
    ----------
    ranking : sequence of str
        Services, most suspicious first (each once).
    truth : str
        The labelled service.
    size : int, optional
        How many services could have been ranked (default ``len(ranking)``): a missing truth
        counts as ``max(size, len(ranking)) + 1``, so an empty ranking is a miss, never rank 1.
    """
    ranking = list(ranking)
    if truth in ranking:
        return ranking.index(truth) + 1
    return (len(ranking) if size is None else max(size, len(ranking))) + 1


def topk_summary(ranks: Iterable[float], ks: Sequence[int] = KS) -> dict[str, Any]:
    """``cases``, ``AS@k`` for each k and ``mean_rank`` of a list of ranks (None when empty)."""
    ranks = [float(r) for r in ranks]
    n = len(ranks)
    if n == 0:
        return {"cases": 0, **{f"AS@{k}": None for k in ks}, "mean_rank": None}
    return {"cases": n, **{f"AS@{k}": round(sum(r <= k for r in ranks) / n, 4) for k in ks},
            "mean_rank": round(sum(ranks) / n, 3)}


def summarize(rows: Sequence[Mapping[str, Any]], *, rank: str = "rank", group: str = "fault_type",
              ks: Sequence[int] = KS) -> dict[str, Any]:
    """:func:`topk_summary` over ``rows`` and per ``group`` value (``by_fault_type``).

    Rows whose ``rank`` is None are left out (a method that could not score the case).
    """
    scored = [r for r in rows if r.get(rank) is not None]
    out = topk_summary((r[rank] for r in scored), ks)
    groups: dict[str, list[float]] = defaultdict(list)
    for r in scored:
        groups[str(r.get(group))].append(r[rank])
    out["by_fault_type"] = {k: topk_summary(v, ks) for k, v in sorted(groups.items())}
    return out


def share(flags: Iterable[bool]) -> float | None:
    """Share of true values (None when there are none)."""
    flags = [bool(f) for f in flags]
    return round(sum(flags) / len(flags), 4) if flags else None


# --------------------------------------------------------------------------- inner-service labels

def inner_cause_matches(label: str, fault_type: str, named: Iterable[str]) -> bool:
    """Whether one of the ``named`` inner causes of a hypothesis matches a fine-grained label.

    Parameters
    ----------
    label : str
        The data set's fine-grained label: a metric column for resource faults
        (``CpuUsageRate(%)``, ``NetworkP90(ms)``), a code region ``A_B`` between two log
        statements for code faults, each end a source location (``c.s.ContactsServiceImpl#31``)
        or the start of a message (``Receive delivery object``).
    fault_type : str
        Only used to tell code regions (anything without a resource word) from metrics.
    named : iterable of str
        What the hypothesis names: metric names (``cpu_usage_rate``), signal texts and log
        template texts of its evidence.

    Returns
    -------
    bool
        A resource label matches a named metric or signal that shares its resource word (a
        ``network`` label also accepts a latency signal: see :data:`LATENCY_WORDS`); a code
        region matches a template whose source location lies between the region's two ends (same
        class, line in range) or equals one of them, or a template that contains an end's text.
    """
    named = [str(n) for n in named if n]
    words = _words(label)
    resource = [w for w in RESOURCE_WORDS if w in words]
    if resource and fault_type not in ("return", "exception"):
        for item in named:
            item_words = _words(item)
            if any(w in item_words for w in resource):
                return True
            if "network" in resource and any(w in item_words for w in LATENCY_WORDS):
                return True
        return False
    ends = [e.strip() for e in _split_region(label)]
    locations = [_location(e) for e in ends]
    for item in named:
        for loc in (m for m in (_location_match(x) for x in LOCATION.finditer(item)) if m):
            if loc in locations:
                return True
            same = [l for l in locations if l and l[0] == loc[0]]
            if len(same) == 2 and min(same[0][1], same[1][1]) <= loc[1] <= max(same[0][1], same[1][1]):
                return True
        low = item.lower()
        if any(e and loc is None and e.lower() in low for e, loc in zip(ends, locations)):
            return True
    return False


def _split_region(label: str) -> list[str]:
    # "A#31_A#34", "Delivery service_Receive delivery object": the ends are split at the "_"
    # that is not inside a location (class names carry none in these labels).
    parts = label.split("_")
    if len(parts) == 2:
        return parts
    return [label]


def _location(text: str) -> tuple[str, int] | None:
    match = LOCATION.fullmatch(text.strip())
    return _location_match(match) if match else None


def _location_match(match: re.Match) -> tuple[str, int] | None:
    return (match.group(1).rsplit(".", 1)[-1] if match.group(2) == "#" else match.group(1), int(match.group(3)))


def _words(text: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(text))
    return set(w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w)
