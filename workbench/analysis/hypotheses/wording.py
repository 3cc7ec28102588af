"""What a hypothesis says: its one-line summary, its evidence list, the similar past incidents.

Kept apart from the scoring (:mod:`.scoring`): a change of words never changes a rank.
"""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from .. import correlate
from ..evidence import Evidence
from ..signature import SIMILAR_MIN, PastIncident, Signature, parse_signal, similarity, template_text
from ...formats import clip
from .model import _ERROR_TEXT, _NEW_TEXT, MAX_EVIDENCE, SIMILAR_LIMIT, _Service

def _summary(cause: str, svc: _Service) -> str:
    name = svc.suspicion.service
    at = _hhmm(svc.onset)
    if cause == "change" and svc.change:
        lag = svc.change["lag_minutes"]
        when = f"{lag:.0f} min before {name} went anomalous at {at}" if lag >= 0.5 else f"the minute {name} went anomalous"
        return f"{svc.change['summary']} ({svc.change['kind']}) at {_hhmm(svc.change['timestamp'])}, {when}"
    if cause == "resource":
        names = _metric_names(e for e in svc.resource if e.kind == "metric")
        return f"{name} ran out of a resource: {', '.join(names[:3])} rose from {at}"
    if cause == "code":
        top = svc.code[0] if svc.code else None
        text = clip(template_text(top), 90) if top is not None else "its logs"
        erroring = top is not None and bool(_ERROR_TEXT.search(f"{text} {top.explanation}")) and top.direction != "down"
        new = top is not None and bool(_NEW_TEXT.search(f"{top.signal} {top.explanation}"))
        if erroring:
            what = f"{name} logs {'new' if new else 'more'} errors from {at}"
        else:
            what = f"{name}'s code path changed from {at} (log templates or calls appeared or vanished)"
        after = " with no change before them" if svc.C == 0 else f", after {svc.change['summary']}" if svc.change else ""
        return f"{what}{after}: {text}"
    if cause == "traffic" and svc.traffic:
        t = svc.traffic
        return (f"Traffic surge at {name}: {t['metric']} {t['ratio']:.1f}x the hour before from {_hhmm(t['at'])}, "
                f"with no change before it")
    if cause == "dependency" and svc.first_callee is not None:
        return f"{name} degraded from {at} through a service it calls: {svc.blame_reason}"
    if cause == "dependency":
        return (f"{name} degraded from {at} with no change, resource or new error of its own: "
                f"something it depends on that is not observed (a database, an outside API) is the likely cause")
    return f"{name}: {cause}"


def _evidence(cause: str, svc: _Service, services: dict[str, _Service], topology: correlate.Topology,
              sims: list[tuple[PastIncident, float]]) -> list[Evidence]:
    name = svc.suspicion.service
    out: list[Evidence] = []
    if cause == "change" and svc.change:
        c = svc.change
        attrs = c["attributes"] if isinstance(c["attributes"], dict) else {}
        detail = ", ".join(f"{k} {attrs[k]}" for k in ("previous_version", "version", "key", "old", "new") if k in attrs)
        out.append(Evidence("change", name, f"{c['kind']} {c['summary']}", c["timestamp"], round(svc.C, 4), None,
                            f"{c['summary']} at {_hhmm(c['timestamp'])}, {c['lag_minutes']:.1f} min before the onset"
                            + (f" ({detail})" if detail else "")))
    elif cause == "resource":
        out.extend(svc.resource[:3])
    elif cause == "code":
        out.extend(svc.code[:3])
    elif cause == "traffic" and svc.traffic:
        t = svc.traffic
        out.append(Evidence("traffic", name, f"metric {t['metric']}", t["at"], round(t["ratio"], 4), "up",
                            f"{t['metric']} median {t['after']:.4g} in the 15 min from {_hhmm(t['at'])} vs "
                            f"{t['before']:.4g} in the hour before ({t['ratio']:.1f}x); no change of {name} before it"))
    for ev in svc.suspicion.evidence:
        if len(out) >= 5:
            break
        if ev not in out:
            out.append(ev)
    followers = [other for other in topology.callers(name, transitive=True)
                 if other in services and services[other].has_onset and svc.has_onset
                 and services[other].onset > svc.onset]
    if followers:
        lags = [(services[f].onset - svc.onset).total_seconds() / 60 for f in followers]
        out.append(Evidence("topology", name, "callers moved later", svc.onset, float(len(followers)), None,
                            f"{', '.join(sorted(followers))} call {name} and moved {min(lags):.0f}-{max(lags):.0f} min after it"))
    if svc.first_callee is not None:
        callee = svc.first_callee[0]
        out.append(Evidence("topology", name, f"callee {callee} is the likelier origin", services[callee].onset,
                            round(svc.first_callee[1], 4), None,
                            f"{svc.blame_reason}: {callee} is more likely the origin"))
    history = _history_evidence(name, cause, sims)
    if history is not None:
        out.append(history)
    return out


def _history_evidence(name: str, cause: str, sims: list[tuple[PastIncident, float]]) -> Evidence | None:
    for past, sim in sorted(sims, key=lambda item: -item[1]):
        if (name, cause) in past.confirmed and sim >= SIMILAR_MIN:
            return Evidence("history", name, f"incident {past.incident_id}", None, round(sim, 4), None,
                            f"similar past incident {past.incident_id} ({past.title}) was confirmed as {cause} in {name}")
    return None


def restate_similar(hypotheses: Iterable[Any], signature: Signature, history: Iterable[PastIncident]) -> None:
    """Word each hypothesis' similar past incidents with the similarities to ``signature``, the final one.

    The ranking compares a preliminary signature (it cannot use its own result); the incident's
    stored signature, its "similar incidents" and the recheck use the final one. One similarity per
    pair of incidents is shown everywhere (issue 13, item 9: 0.60 on a hypothesis line, 0.67 under
    "similar incidents"), so the shown words are redone here; scores and ranks are untouched.
    """
    sims = [(past, similarity(signature, past.signature)) for past in history]
    for hyp in hypotheses:
        hyp.similar = _similar_for(hyp.service, hyp.cause, sims)
        kept = [e for e in hyp.evidence if e.kind != "history"]
        history = _history_evidence(hyp.service, hyp.cause, sims)
        if history is not None and len(kept) < MAX_EVIDENCE:
            kept.append(history)
        hyp.evidence = kept


def _similar_for(service: str, cause: str, sims: list[tuple[PastIncident, float]]) -> list[dict[str, Any]]:
    # Only past incidents that bear on this hypothesis: same service or same cause, exact first.
    entries = []
    for past, sim in sims:
        if sim < SIMILAR_MIN:
            continue
        for svc, c in past.confirmed:
            if svc == service or c == cause:
                entries.append(((svc, c) == (service, cause), sim, past, svc, c))
    entries.sort(key=lambda e: (not e[0], -e[1], e[2].incident_id))
    return [{"incident_id": past.incident_id, "title": past.title, "cause": c, "service": svc,
             "similarity": round(sim, 4)} for _, sim, past, svc, c in entries[:SIMILAR_LIMIT]]


def _metric_names(evidence: Iterable[Evidence]) -> list[str]:
    out = []
    for ev in evidence:
        _, _, name = parse_signal("metric", ev.service, ev.signal)
        if name not in out:
            out.append(name)
    return out


def _hhmm(ts: Any) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%H:%M")
