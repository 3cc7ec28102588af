"""The sections of a review pack: pure functions of :class:`~.records.Records` and a :class:`~.period.Period`.

Each function returns one JSON-safe dict (times ISO 8601 with ``Z``, durations in seconds, ``None``
where a value is unknown); :mod:`.pack` puts them together and hashes them. The definitions, with
the reasons behind each choice, are in ``docs/review-pack.md``; in short:

- **incidents**: started in the period (and listing the service); MTTD/MTTM/MTTR as
  :mod:`workbench.kpis.summary` computes them, unknown times counted as unknown.
- **engine**: the accuracy ledger (:mod:`workbench.evaluation.ledger`) of the period and of the
  previous period; confirmed causes with the engine's rank and stated confidence; the causes a
  person added (no engine rank: the engine missed them); calibration of the stated confidences.
- **fixes**: action items due or done in the period; a fix's time is when a change applied it
  (``applied_at``) else when its status became ``done`` (the history); each item's verification
  verdicts up to ``as_of``, its criterion (expected) and the latest check's finding (observed).
- **recurrences**: recurrence checks that found one in the period, follow-up reviews that started in it.
- **suggestions**: runbook and alert suggestions proposed or decided in the period, and older ones
  nobody decided yet, each with its state (the latest decision) and who decided.
- **ownership**: who led the reviews of the period's incidents (rotation), action items per owner,
  every item overdue at ``as_of``.
- **decisions**: what was decided in the period: suggestion decisions and action items created,
  reopened, re-owned or re-dated (from the history), with who and when.
- **trend**: per month over the previous period and this one: incidents, MTTR, recurrences,
  follow-ups, and the engine's AC@1/AC@3.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, time, timezone
from typing import Any, Iterable, Mapping, Sequence

from ..errors import CriterionError
from ..evaluation import calibration as calib
from ..evaluation.ledger import ACCURACY_KS, AccuracyGroup, ledger_records
from ..kpis.remediation import remediation_time
from ..kpis.summary import OPEN_STATUSES, duration_stats, incident_times
from ..loop.criteria import describe
from ..store.records import Incident, iso
from .period import Period
from .records import Records

#: Verification verdicts counted per action item.
ITEM_VERDICTS = ("holds", "violated", "no_data", "inconclusive")
#: Fewest decided hypotheses with a stated confidence before calibration says anything.
MIN_CALIBRATION = 10
#: Bins of the calibration table (equal width over [0, 1]).
CALIBRATION_BINS = 5
#: Action-item history fields a meeting changes (with ``"*"``: the item was created).
DECISION_FIELDS = ("*", "status", "owner", "due")


# --------------------------------------------------------------------------- selection

def in_period(records: Records, period: Period) -> list[Incident]:
    """Incidents with ``since <= started < until`` that list the period's service, oldest first."""
    selection = period.selection()
    return sorted((i for i in records.incidents if selection.contains(i)), key=lambda i: (i.started, i.id))


def of_service(records: Records, period: Period) -> set[str]:
    """Ids of the incidents of the period's service (every incident without one), any time."""
    return {i.id for i in records.incidents if period.service is None or period.service in i.services}


def fix_times(records: Records, as_of: datetime) -> dict[str, datetime]:
    """action item id -> when its fix took effect: ``applied_at`` (a change applied it) else when
    its status last became ``done`` (:func:`workbench.kpis.remediation.remediation_time`); only
    items that are ``done``, and only times at or before ``as_of``."""
    by_item: dict[str, list[Any]] = defaultdict(list)
    for h in records.history:
        by_item[h.entity_id].append(h)
    out = {}
    for item in records.action_items:
        if item.status != "done":
            continue
        applied = getattr(item, "applied_at", None)  # issue 15's field; None on older records
        if applied is not None:
            if applied <= as_of:
                out[item.id] = applied
            continue
        found = remediation_time([item], by_item.get(item.id, ()), as_of)
        if found is not None:
            out[item.id] = found[0]
    return out


# --------------------------------------------------------------------------- incidents

def incidents_section(records: Records, period: Period) -> dict[str, Any]:
    """The period's incidents: counts, MTTD/MTTM/MTTR with unknowns counted, one row each."""
    incidents = in_period(records, period)
    times = incident_times(incidents)
    durations = {m: duration_stats(t.duration(m) for t in times).to_dict() for m in ("mttd", "mttm", "mttr")}
    rows = []
    for inc, t in zip(incidents, times):
        cause = _confirmed(records, inc.id)
        rows.append({"incident_id": inc.id, "title": inc.title, "severity": inc.severity, "status": inc.status,
                     "services": list(inc.services), "started": iso(inc.started), "mttd_s": t.time_to_detect,
                     "mttm_s": t.time_to_mitigate, "mttr_s": t.time_to_resolve, "follow_up_of": inc.follow_up_of,
                     "cause": None if cause is None else f"{cause.service}/{cause.cause}"})
    return {"count": len(incidents), "follow_ups": sum(1 for i in incidents if i.follow_up_of),
            "by_severity": dict(sorted(Counter(i.severity for i in incidents).items())),
            "by_status": dict(sorted(Counter(i.status for i in incidents).items())),
            "durations": durations, "rows": rows}


def _confirmed(records: Records, incident_id: str) -> Any:
    found = records.confirmed.get(incident_id) or [h for h in records.hypotheses.get(incident_id, ())
                                                    if h.status == "confirmed"]
    return min(found, key=lambda h: (h.rank is None, h.rank or 0, -h.score, h.id)) if found else None


# --------------------------------------------------------------------------- the engine against the reviewers

def engine_section(records: Records, period: Period) -> dict[str, Any]:
    """Confirmed causes with the engine's rank and stated confidence, AC@k now and before, misses,
    calibration."""
    now, before = in_period(records, period), in_period(records, period.previous)
    ledger = ledger_records(now, _confirmed_of(records, now))
    previous = ledger_records(before, _confirmed_of(records, before))
    hyps = {h.id: h for i in now for h in records.confirmed.get(i.id, ())}
    rows = []
    for e in ledger.entries:
        h = hyps.get(e.hypothesis_id)
        rows.append({"incident_id": e.incident_id, "service": e.service, "cause": e.cause, "rank": e.rank,
                     "confidence": getattr(h, "confidence", None), "reviewer": getattr(h, "reviewer", None),
                     **{f"hit{k}": None if e.rank is None else e.rank <= k for k in ACCURACY_KS}})
    return {"confirmed": rows, "missed": [r for r in rows if r["rank"] is None],
            "accuracy": {"period": _group(ledger.overall), "previous": _group(previous.overall)},
            "calibration": calibration(records, now)}


def _confirmed_of(records: Records, incidents: Iterable[Incident]) -> list[Any]:
    return [h for i in incidents for h in records.confirmed.get(i.id, ())]


def _group(group: AccuracyGroup) -> dict[str, Any]:
    out = group.to_dict()
    out.update({f"hits{k}": sum(1 for r in group.ranks if r <= k) for k in ACCURACY_KS})
    return out


def calibration(records: Records, incidents: Sequence[Incident], bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Stated confidence against how often the engine was right.

    A case is an engine hypothesis (it has a rank) with a stated ``confidence`` whose outcome is
    known: confirmed (right), rejected (wrong), or still proposed in an incident whose cause was
    confirmed elsewhere (wrong). Returns ``cases``, ``right``, ``brier`` (mean squared difference,
    None without cases), ``bins`` (``bin``, ``cases``, ``predicted`` = mean stated confidence,
    ``observed`` = share right; None for an empty bin) and ``enough`` (at least
    :data:`MIN_CALIBRATION` cases).
    """
    pairs = []
    for inc in incidents:
        hyps = records.hypotheses.get(inc.id, ())
        decided = any(h.status == "confirmed" for h in hyps)
        for h in hyps:
            p = getattr(h, "confidence", None)
            if p is None or h.rank is None or (h.status == "proposed" and not decided):
                continue
            pairs.append((float(p), h.status == "confirmed"))
    stated, right = [p for p, _ in pairs], [y for _, y in pairs]
    # The accuracy benchmark's own Brier score and reliability bins (one definition of each).
    return {"cases": len(pairs), "right": sum(right), "brier": calib.brier(stated, right),
            "bins": calib.reliability(stated, right, bins),
            "enough": len(pairs) >= MIN_CALIBRATION, "min_cases": MIN_CALIBRATION}


# --------------------------------------------------------------------------- fixes

def fixes_section(records: Records, period: Period) -> dict[str, Any]:
    """Action items due or done in the period: owner, kind, applied when and by which change,
    verification verdicts over time, expected (criterion) against observed (latest check)."""
    fixed = fix_times(records, period.as_of)
    scope = of_service(records, period)
    checks: dict[str, list[Any]] = defaultdict(list)
    for c in records.checks:
        if c.action_item_id is not None and c.at <= period.as_of:
            checks[c.action_item_id].append(c)
    rows = []
    for item in records.action_items:
        due = None if item.due is None else datetime.combine(item.due, time(), tzinfo=timezone.utc)
        if item.incident_id not in scope or not (period.contains(due) or period.contains(fixed.get(item.id))):
            continue
        own = sorted(checks.get(item.id, ()), key=lambda c: (c.at, c.id))
        rows.append(_fix_row(item, fixed.get(item.id), own, period.as_of))
    rows.sort(key=lambda r: (r["due"] or "9999", r["incident_id"], r["action_item_id"]))
    counts = Counter(r["latest"] or "not checked" for r in rows)
    return {"count": len(rows), "done": sum(1 for r in rows if r["status"] == "done"),
            "overdue": sum(1 for r in rows if r["overdue"]), "latest_verdicts": dict(sorted(counts.items())),
            "rows": rows}


def _fix_row(item: Any, fixed: datetime | None, checks: Sequence[Any], as_of: datetime) -> dict[str, Any]:
    overdue = item.status in OPEN_STATUSES and item.due is not None and item.due < as_of.date()
    change = getattr(item, "applied_change", None) or None
    latest = checks[-1] if checks else None
    evidence = next((e for e in (latest.evidence if latest else ()) if isinstance(e, Mapping)), {})
    return {
        "action_item_id": item.id, "incident_id": item.incident_id, "title": item.title, "owner": item.owner,
        "kind": item.kind, "status": item.status, "due": None if item.due is None else item.due.isoformat(),
        "overdue": overdue, "days_overdue": (as_of.date() - item.due).days if overdue else None,
        "fixed_at": None if fixed is None else iso(fixed),
        "applied_at": None if getattr(item, "applied_at", None) is None else iso(item.applied_at),
        "applied_by": None if not isinstance(change, Mapping) else
        {k: change[k] for k in ("service", "version", "commit", "url", "author", "title") if change.get(k)},
        "verdicts": [{"at": iso(c.at), "window_start": iso(c.window_start), "window_end": iso(c.window_end),
                      "verdict": c.verdict, "worst": c.score} for c in checks],
        "counts": {v: sum(1 for c in checks if c.verdict == v) for v in ITEM_VERDICTS},
        "latest": None if latest is None else latest.verdict,
        "expected": _expected(item.verification),
        "observed": None if latest is None else (evidence.get("explanation") or latest.verdict),
    }


def _expected(verification: Any) -> str | None:
    if verification is None:
        return None
    try:
        return describe(verification)
    except CriterionError:  # stored by an older version: shown as it is
        return str(verification)


# --------------------------------------------------------------------------- recurrences and suggestions

def recurrences_section(records: Records, period: Period) -> dict[str, Any]:
    """Recurrence checks that found one in the period, and the follow-up reviews started in it."""
    scope = of_service(records, period)
    found = []
    for c in sorted(records.checks, key=lambda c: (c.at, c.id)):
        if c.action_item_id is None and c.verdict == "recurred" and c.incident_id in scope and period.contains(c.at):
            facts = next((e for e in c.evidence if isinstance(e, Mapping) and e.get("kind") == "recurrence"), {})
            found.append({"check_id": c.id, "incident_id": c.incident_id, "at": iso(c.at),
                          "window_start": iso(c.window_start), "window_end": iso(c.window_end),
                          "similarity": c.score, "reasons": list(facts.get("reasons") or ()),
                          "follow_up_id": facts.get("follow_up_id")})
    follow_ups = [{"incident_id": i.id, "follow_up_of": i.follow_up_of, "title": i.title, "status": i.status,
                   "started": iso(i.started)} for i in in_period(records, period) if i.follow_up_of]
    return {"checks": found, "follow_ups": follow_ups}


def suggestions_section(records: Records, period: Period) -> dict[str, Any]:
    """Runbook and alert suggestions with their state (proposed / accepted / rejected) and who decided."""
    scope = of_service(records, period)
    proposed = proposals(c for c in records.checks if c.incident_id in scope and c.at <= period.as_of)
    latest = {}
    for d in sorted(records.decisions, key=lambda d: (d.at, d.id)):
        if d.at <= period.as_of:
            latest[(d.incident_id, d.key)] = d
    rows = []
    for (iid, key), (at, s) in sorted(proposed.items(), key=lambda kv: (kv[1][0], kv[0])):
        d = latest.get((iid, key))
        if not (period.contains(at) or (d is not None and period.contains(d.at)) or d is None):
            continue
        rows.append({"incident_id": iid, "key": key, "kind": s.get("kind"), "service": s.get("service"),
                     "text": s.get("text"), "reason": s.get("reason"), "proposed_at": iso(at),
                     "status": "proposed" if d is None else d.status, "decided_by": None if d is None else d.who,
                     "decided_at": None if d is None else iso(d.at), "rationale": None if d is None else d.rationale,
                     "action_item_id": None if d is None else d.action_item_id})
    counts = Counter(r["status"] for r in rows)
    return {"counts": {s: counts.get(s, 0) for s in ("proposed", "accepted", "rejected")}, "rows": rows}


def proposals(checks: Iterable[Any]) -> dict[tuple[str, str], tuple[datetime, dict[str, Any]]]:
    """(incident id, suggestion key) -> (when first proposed, the suggestion's dict), from the
    ``{"kind": "suggestion", "suggestion": ...}`` evidence the recheck stores on its checks."""
    out: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}
    for c in sorted(checks, key=lambda c: (c.at, c.id)):
        for e in c.evidence:
            s = e.get("suggestion") if isinstance(e, Mapping) and e.get("kind") == "suggestion" else None
            if isinstance(s, Mapping) and s.get("key"):
                out.setdefault((c.incident_id, str(s["key"])), (c.at, dict(s)))
    return out


# --------------------------------------------------------------------------- ownership and decisions

def review_lead(records: Records, incident_id: str) -> str | None:
    """Who led an incident's review: the reviewer who confirmed its cause (the earliest
    confirmation), else None (no confirmed cause yet)."""
    found = sorted(records.confirmed.get(incident_id, ()), key=lambda h: (h.updated, h.id))
    return found[0].reviewer if found else None


def ownership_section(records: Records, period: Period, fixes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Review leads (rotation), action items per owner, items overdue at ``as_of`` by owner."""
    incidents = in_period(records, period)
    led: dict[str, list[str]] = defaultdict(list)
    unassigned = []
    for inc in incidents:
        lead = review_lead(records, inc.id)
        (led[lead].append(inc.id) if lead else unassigned.append(inc.id))
    reviews = sum(len(v) for v in led.values())
    leads = [{"owner": o, "reviews": len(ids), "share": len(ids) / reviews, "incidents": ids}
             for o, ids in sorted(led.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    fixes = fixes if fixes is not None else fixes_section(records, period)
    ids = {i.id for i in incidents}
    chosen = {r["action_item_id"] for r in fixes["rows"]}
    items = [a for a in records.action_items if a.incident_id in ids or a.id in chosen]
    scope = of_service(records, period)
    today = period.as_of.date()
    late = sorted((a for a in records.action_items if a.incident_id in scope and a.status in OPEN_STATUSES
                   and a.due is not None and a.due < today), key=lambda a: (a.owner, a.due, a.id))
    owners = defaultdict(lambda: Counter())
    for a in items:
        o = owners[a.owner]
        o["items"] += 1
        o["done"] += a.status == "done"
        o["open"] += a.status in OPEN_STATUSES
        o["no_due"] += a.due is None
    for a in late:
        owners[a.owner]["overdue"] += 1
    return {
        "review_leads": leads, "unassigned": unassigned, "rotation": _rotation(leads, reviews),
        "action_owners": [{"owner": o, **{k: c.get(k, 0) for k in ("items", "done", "open", "overdue", "no_due")}}
                          for o, c in sorted(owners.items())],
        "overdue": [{"owner": a.owner, "action_item_id": a.id, "incident_id": a.incident_id, "title": a.title,
                     "kind": a.kind, "due": a.due.isoformat(), "days_overdue": (today - a.due).days} for a in late],
    }


def _rotation(leads: list[dict[str, Any]], reviews: int) -> dict[str, Any]:
    if not reviews:
        return {"reviews": 0, "people": 0, "top": None, "top_share": None, "concentrated": False,
                "statement": "no review has a confirmed cause yet, so nobody is recorded as leading one"}
    top = leads[0]
    concentrated = reviews >= 3 and top["share"] > 0.5
    text = (f"{reviews} review(s) led by {len(leads)} person(s); {top['owner']} led the most: {top['reviews']} "
            f"({100 * top['share']:.0f} %)")
    if concentrated:
        text += ": more than half, consider rotating the postmortem owner"
    return {"reviews": reviews, "people": len(leads), "top": top["owner"], "top_share": top["share"],
            "concentrated": concentrated, "statement": text}


def decisions_section(records: Records, period: Period) -> dict[str, Any]:
    """What was decided in the period, with who and when: suggestion decisions, and action items
    created, reopened or closed, re-owned or re-dated."""
    scope = of_service(records, period)
    suggestions = [{"at": iso(d.at), "who": d.who, "incident_id": d.incident_id, "key": d.key, "status": d.status,
                    "rationale": d.rationale, "action_item_id": d.action_item_id}
                   for d in sorted(records.decisions, key=lambda d: (d.at, d.id))
                   if d.incident_id in scope and period.contains(d.at)]
    changes = []
    for h in records.history:
        if h.field in DECISION_FIELDS and h.incident_id in scope and period.contains(h.at):
            new = h.new
            if h.field == "*":
                if not isinstance(new, Mapping):  # a deletion: not a meeting decision
                    continue
                new = {k: new.get(k) for k in ("title", "owner", "kind", "status", "due")}
            changes.append({"at": iso(h.at), "who": h.who, "incident_id": h.incident_id, "action_item_id": h.entity_id,
                            "field": "created" if h.field == "*" else h.field,
                            "old": h.old if h.field != "*" else None, "new": new})
    return {"suggestions": suggestions, "action_items": changes}


# --------------------------------------------------------------------------- trend

def trend_section(records: Records, period: Period) -> dict[str, Any]:
    """Per UTC month from the previous period's start to this one's end: incidents, MTTR (mean of
    the known, with known/unknown counts), recurrences found, follow-ups started, AC@1/AC@3."""
    span = Period(period.previous.since, period.until, period.as_of, period.service)
    incidents = in_period(records, span)
    scope = of_service(records, period)
    months = _months(span.since, span.until)
    by_month: dict[str, list[Incident]] = defaultdict(list)
    for i in incidents:
        by_month[_month(i.started)].append(i)
    recurred = Counter(_month(c.at) for c in records.checks if c.action_item_id is None and c.verdict == "recurred"
                       and c.incident_id in scope and span.contains(c.at))
    ledger = ledger_records(incidents, _confirmed_of(records, incidents))
    rows = []
    for m in months:
        stats = duration_stats(t.time_to_resolve for t in incident_times(by_month.get(m, [])))
        acc = ledger.by_month.get(m)
        rows.append({"month": m, "incidents": len(by_month.get(m, [])), "mttr_s": stats.mean,
                     "mttr_known": stats.n_known, "mttr_unknown": stats.n_unknown, "recurrences": recurred.get(m, 0),
                     "follow_ups": sum(1 for i in by_month.get(m, []) if i.follow_up_of),
                     "ranked": 0 if acc is None else acc.n_ranked,
                     **{f"ac{k}": None if acc is None else acc.ac(k) for k in ACCURACY_KS}})
    return {"months": rows}


def _month(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m")


def _months(start: datetime, end: datetime) -> list[str]:
    y, m = start.year, start.month
    out = []
    while (y, m) <= (end.year, end.month) and datetime(y, m, 1, tzinfo=timezone.utc) < end:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


__all__ = ["ITEM_VERDICTS", "MIN_CALIBRATION", "calibration", "decisions_section", "engine_section",
           "fix_times", "fixes_section", "in_period", "incidents_section", "of_service", "ownership_section", "proposals",
           "recurrences_section", "review_lead", "suggestions_section", "trend_section"]
