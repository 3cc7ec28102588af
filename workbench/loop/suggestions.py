"""Runbook and alert suggestions: concrete updates the recheck loop proposes for a human to accept.

When an incident recurs, or when it was detected long after its signals moved, the same lesson is
usually there to learn: the runbook did not help the responder recognise it, and no alert caught
the first signal. :func:`for_recurrence` and :func:`for_detection_gap` turn an analysis into two
kinds of :class:`Suggestion`:

``runbook``
    Update the runbook the incident links for its origin service (a link whose title or URL names
    the service), saying how the incident shows (the strongest moved metrics and the new log
    template of its signature); or, when no link names the service, link one.
``alert``
    An alert on the metric that moved first, with a threshold that would have fired at the onset
    and never in the baseline. The metric is the origin service's metric evidence with the
    earliest onset (the metric detector's first *sustained* anomalous step, ties by strength).
    With the metric on the analysis step (1 min) and ``k`` = :data:`ALERT_SUSTAIN` steps:

    - ``level`` = the least (for a rise; the largest for a drop) of the first ``k`` values from the
      onset: what a rule "for k steps" must catch;
    - ``edge`` = the baseline's maximum (minimum for a drop): the rule must stay silent there;
    - when ``level`` is beyond ``edge``, the threshold is their midpoint, rounded to 2 significant
      digits while it stays strictly between them (else to more digits);
    - ``fires_at`` = the end of the first run of ``k`` steps beyond the threshold from the onset;
      with the incident's ``detected`` time the text says how many minutes earlier it would have
      paged. A metric still inside its baseline range at the onset gives no alert suggestion (a
      static threshold that catches it would fire on normal days).

Detection gap
-------------
``gap = detected - onset``, the onset being the first sustained metric onset of the incident's
chosen hypothesis' service (the confirmed hypothesis, else the top-ranked proposed one, as
:func:`workbench.analysis.analyze` stored them; the earliest non-change evidence time when it has
no metric evidence). A gap above :data:`DETECTION_GAP_MIN` (3 minutes) asks for suggestions. Why
3: a rule on the first-moving metric sustained for :data:`ALERT_SUSTAIN` (2) one-minute steps
pages within about 2-3 minutes of the onset, so anything slower lost at least a minute to a
threshold set too high or a ``for`` too long. On the sample the stored analyses give gaps of
4.8 min (INC-20261102-001), 4.7 (INC-20261106-001), 3.7 (INC-20261103-001) and 2.3
(INC-20261105-001, no suggestion).

Where they go
-------------
Suggestions are *proposals*: the loop stores them in the evidence of the recurrence check that
produced them (``{"kind": "suggestion", ...}``, status ``proposed``) and repeats them in the
note of a follow-up review. They are never written as conclusions or action items of the
reviewed incident: that would change its signed-off content (and its content hash) without a
human. A person accepts one by creating the action item. Each has a stable ``key``
(``alert:payments/error_rate``, ``runbook:payments``) so the loop proposes it once per incident.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..analysis.pipeline import read_signature
from ..analysis.signature import Signature, parse_signal
from ..telemetry.windows import baseline_window
from ..formats import finite, iso_utc

#: Least detection gap that asks for suggestions (see the module docstring).
DETECTION_GAP_MIN = pd.Timedelta(minutes=3)
#: Consecutive steps beyond the threshold before a suggested alert fires ("for 2min" at 1 min).
ALERT_SUSTAIN = 2
#: Least baseline steps needed to propose a threshold.
MIN_BASELINE_STEPS = 30
KINDS = ("runbook", "alert")
REASONS = ("recurrence", "detection_gap")


@dataclass
class Suggestion:
    """One proposed update, for a human to accept or drop.

    Attributes
    ----------
    kind : str
        ``runbook`` or ``alert``.
    key : str
        Stable identity (``alert:<service>/<metric>``, ``runbook:<service>``): the same
        suggestion is proposed once per incident.
    incident_id : str
    service : str or None
    reason : str
        ``recurrence`` or ``detection_gap``.
    text : str
        One line for people.
    details : dict
        JSON-safe facts behind it: for ``alert`` ``metric``, ``comparator``, ``threshold``,
        ``for`` (a span such as ``2min``), ``onset``, ``level_at_onset``, ``baseline`` (``median``,
        ``max``/``min``, ``steps``), ``fires_at``, ``detected``, ``minutes_earlier``; for
        ``runbook`` ``symptom``, ``link`` (``title``, ``url``) or None, ``signals``.
    status : str
        Always ``proposed``: the loop never accepts its own suggestions.
    """

    kind: str
    key: str
    incident_id: str
    service: str | None
    reason: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "proposed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; the loop stores it as ``{"kind": "suggestion", "suggestion": ...}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Suggestion":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# --------------------------------------------------------------------------- onsets and gaps

def chosen_hypothesis(hypotheses: Sequence[Any]) -> Any | None:
    """The confirmed hypothesis with the highest score, else the top-ranked proposed one."""
    confirmed = [h for h in hypotheses if _get(h, "status") == "confirmed"]
    if confirmed:
        return max(confirmed, key=lambda h: float(_get(h, "score") or 0.0))
    proposed = [h for h in hypotheses if _get(h, "status", "proposed") == "proposed"]
    if not proposed:
        return None
    return min(proposed, key=lambda h: (_get(h, "rank") or 10**6, -float(_get(h, "score") or 0.0)))


def first_metric(evidence: Iterable[Any], service: str) -> dict[str, Any] | None:
    """The metric of ``service`` that moved first: ``{"metric", "direction", "onset", "magnitude"}``.

    ``evidence`` holds :class:`~workbench.analysis.evidence.Evidence` objects or their dicts (a stored
    hypothesis' ``evidence``). Earliest onset first, ties by the larger magnitude, then name.
    """
    found = []
    for ev in evidence:
        kind, svc, name = parse_signal(_get(ev, "kind"), _get(ev, "service") or service, str(_get(ev, "signal") or ""))
        when = _time(_get(ev, "time"))
        if kind != "metric" or svc != service or not name or when is None:
            continue
        magnitude = finite(_get(ev, "magnitude")) or 0.0
        found.append((when, -magnitude, name, _get(ev, "direction") or "up"))
    if not found:
        return None
    when, neg, name, direction = min(found)
    return {"metric": name, "direction": "down" if direction == "down" else "up", "onset": when,
            "magnitude": -neg}


def onset_of(evidence: Iterable[Any], service: str) -> pd.Timestamp | None:
    """The onset of ``service``: its first metric onset, else its earliest non-change evidence time."""
    items = list(evidence)
    metric = first_metric(items, service)
    if metric is not None:
        return metric["onset"]
    times = [_time(_get(ev, "time")) for ev in items
             if (_get(ev, "service") in (None, service)) and _get(ev, "kind") not in ("change", "history")]
    times = [t for t in times if t is not None]
    return min(times) if times else None


def detection_gap(incident: Any, hypotheses: Sequence[Any]) -> tuple[pd.Timedelta | None, dict[str, Any]]:
    """``detected - onset`` of ``incident`` from its stored hypotheses (see the module docstring).

    Returns
    -------
    (gap, facts)
        ``gap`` is None when the incident has no ``detected`` time or no onset; ``facts`` has
        ``service``, ``onset``, ``detected`` and ``metric`` (the first-moving metric or None).
    """
    chosen = chosen_hypothesis(hypotheses)
    detected = _time(_get(incident, "detected"))
    facts: dict[str, Any] = {"service": None, "onset": None, "detected": detected, "metric": None}
    if chosen is None:
        return None, facts
    service = _get(chosen, "service")
    evidence = list(_get(chosen, "evidence") or [])
    facts["service"] = service
    facts["metric"] = first_metric(evidence, service)
    facts["onset"] = onset_of(evidence, service)
    if detected is None or facts["onset"] is None:
        return None, facts
    return detected - facts["onset"], facts


# --------------------------------------------------------------------------- suggestions

def alert_threshold(metrics: pd.DataFrame, service: str, metric: str, direction: str, onset: Any,
                    baseline: tuple[Any, Any], *, step: str = "1min", detected: Any = None,
                    incident_id: str = "", reason: str = "detection_gap") -> Suggestion | None:
    """An alert on ``service``'s ``metric`` that would have fired at ``onset`` (module docstring).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Unified ``metrics`` rows (``timestamp``, ``service``, ``name``, ``value``) covering the
        baseline and at least :data:`ALERT_SUSTAIN` steps from the onset.
    direction : str
        ``up`` or ``down``: how the metric moved.
    baseline : (start, end)
        ``[start, end)`` taken as normal.

    Returns
    -------
    Suggestion or None
        None when the baseline is too short (< :data:`MIN_BASELINE_STEPS` steps) or the metric was
        still within its baseline range at the onset.
    """
    onset_ts = _time(onset)
    if onset_ts is None or metrics is None or metrics.empty:
        return None
    rows = metrics[(metrics["service"] == service) & (metrics["name"] == metric)]
    if rows.empty:
        return None
    freq = pd.tseries.frequencies.to_offset(step)
    series = (pd.to_numeric(rows["value"], errors="coerce")
              .groupby(rows["timestamp"].dt.tz_convert("UTC").dt.floor(freq)).mean().dropna().sort_index())
    b0, b1 = _time(baseline[0]), _time(baseline[1])
    base = series[(series.index >= b0) & (series.index < b1)]
    after = series[series.index >= onset_ts.floor(freq)]
    if len(base) < MIN_BASELINE_STEPS or len(after) < ALERT_SUSTAIN:
        return None
    up = direction != "down"
    first = after.iloc[:ALERT_SUSTAIN]
    level = float(first.min() if up else first.max())
    edge = float(base.max() if up else base.min())
    if (up and level <= edge) or (not up and level >= edge):
        return None
    threshold = _between(edge, level)
    comparator = ">" if up else "<"
    beyond = (after > threshold) if up else (after < threshold)
    fires_at = _first_run_end(beyond, ALERT_SUSTAIN, pd.Timedelta(freq))
    detected_ts = _time(detected)
    span = f"{ALERT_SUSTAIN * int(pd.Timedelta(freq).total_seconds() // 60)}min"
    when = "" if fires_at is None else f"; it would have fired at {_hhmm(fires_at)}"
    earlier = None
    if fires_at is not None and detected_ts is not None:
        earlier = round((detected_ts - fires_at) / pd.Timedelta(minutes=1), 1)
        when += (f", {earlier:g} min before the incident was detected ({_hhmm(detected_ts)})" if earlier > 0
                 else f", not before the incident was detected ({_hhmm(detected_ts)})")
    elif fires_at is not None:
        late = round((fires_at - onset_ts) / pd.Timedelta(minutes=1), 1)
        when += f", {late:g} min after the onset"
    text = (f"Alert on {service} {metric} {comparator} {_num(threshold)} for {span}: at the onset "
            f"({_hhmm(onset_ts)}) it was {_num(level)}, and in the baseline it never went "
            f"{'above' if up else 'below'} {_num(edge)}{when}.")
    details = {
        "metric": f"{service}/{metric}", "comparator": comparator, "threshold": threshold, "for": span,
        "onset": iso_utc(onset_ts), "level_at_onset": _round(level),
        "baseline": {"start": iso_utc(b0), "end": iso_utc(b1), "median": _round(float(base.median())),
                     ("max" if up else "min"): _round(edge), "steps": int(len(base))},
        "fires_at": iso_utc(fires_at), "detected": iso_utc(detected_ts), "minutes_earlier": earlier,
    }
    return Suggestion(kind="alert", key=f"alert:{service}/{metric}", incident_id=incident_id, service=service,
                      reason=reason, text=text, details=details)


def runbook(incident: Any, signature: Signature | None, reason: str, *, service: str | None = None,
            when: str = "") -> Suggestion | None:
    """Update (or link) the runbook of the origin service, saying how the incident shows.

    Parameters
    ----------
    incident : Incident record or dict
        ``id``, ``links`` (``title``, ``url``), ``services``, ``labels`` are used.
    signature : Signature, optional
        Gives the origin service (unless ``service``), the symptom and the signals.
    reason : str
        ``recurrence`` or ``detection_gap``.
    when : str
        Why now, one clause (``"it recurred in [..)"``), put in the text.
    """
    labels = _get(incident, "labels") or {}
    services = list(_get(incident, "services") or [])
    service = service or (signature.origin if signature is not None else None) or labels.get("service") or (
        services[0] if services else None)
    if service is None:
        return None
    symptom = (signature.symptom if signature is not None else None) or labels.get("symptom")
    signals = _signals(signature, service)
    link = _runbook_link(_get(incident, "links") or [], service)
    iid = _get(incident, "id") or ""
    what = f"{service}" + (f" ({symptom})" if symptom else "")
    shows = f": add how it shows ({'; '.join(signals)})" if signals else ""
    why = f" - {when}" if when else ""
    if link is not None:
        text = f"Update the runbook {link['title']!r} ({link['url']}) for {what}{shows}{why}."
    else:
        text = (f"Link a runbook for {what} to {iid}: none of its links names {service}{shows}{why}.")
    return Suggestion(kind="runbook", key=f"runbook:{service}", incident_id=iid, service=service, reason=reason,
                      text=text, details={"symptom": symptom, "link": link, "signals": signals})


def for_recurrence(incident: Any, signature: Signature | None, suspicions: Sequence[Any], metrics: pd.DataFrame,
                   baseline: tuple[Any, Any], *, window: tuple[Any, Any] | None = None,
                   step: str = "1min") -> list[Suggestion]:
    """Suggestions when ``incident`` recurred: runbook, and an alert on what moved first now.

    Parameters
    ----------
    signature : Signature
        The *current* signature (the recurrence), its origin is the service looked at.
    suspicions : list of ServiceSuspicion
        The current analysis (metric evidence with onsets).
    metrics : pandas.DataFrame
        The current window's metrics (baseline included).
    baseline : (start, end)
        The current window's baseline.
    """
    iid = _get(incident, "id") or ""
    where = "" if window is None else f"it recurred in [{iso_utc(_time(window[0]))}, {iso_utc(_time(window[1]))})"
    out = []
    book = runbook(incident, signature, "recurrence", when=where)
    if book is not None:
        out.append(book)
    origin = signature.origin if signature is not None else None
    suspect = next((s for s in suspicions if s.service == origin), None)
    if suspect is not None:
        first = first_metric(suspect.evidence, origin)
        if first is not None:
            alert = alert_threshold(metrics, origin, first["metric"], first["direction"], first["onset"], baseline,
                                    step=step, incident_id=iid, reason="recurrence")
            if alert is not None:
                out.append(alert)
    return out


def for_detection_gap(incident: Any, hypotheses: Sequence[Any], store: Any, *, signature: Signature | None = None,
                      baseline: tuple[Any, Any] | None = None, step: str = "1min",
                      minimum: pd.Timedelta = DETECTION_GAP_MIN) -> tuple[list[Suggestion], dict[str, Any]]:
    """Suggestions when ``incident`` was detected more than ``minimum`` after its onset.

    Parameters
    ----------
    hypotheses : list
        The incident's stored hypotheses (records or dicts with ``status``, ``score``, ``rank``,
        ``service``, ``evidence``).
    store : TelemetryStore
        Where the first-moving metric is read (one service, one metric, baseline to onset).
    baseline : (start, end), optional
        Default: :func:`workbench.telemetry.windows.baseline_window` of the incident.

    Returns
    -------
    (suggestions, facts)
        ``facts``: ``gap_minutes`` (None when unknown), ``service``, ``onset``, ``detected``,
        ``metric``, ``minimum_minutes``.
    """
    gap, facts = detection_gap(incident, hypotheses)
    info = {"gap_minutes": None if gap is None else round(gap / pd.Timedelta(minutes=1), 2),
            "service": facts["service"], "onset": iso_utc(facts["onset"]), "detected": iso_utc(facts["detected"]),
            "metric": None if facts["metric"] is None else facts["metric"]["metric"],
            "minimum_minutes": minimum / pd.Timedelta(minutes=1)}
    if gap is None or gap <= minimum:
        return [], info
    iid = _get(incident, "id") or ""
    why = f"it was detected {info['gap_minutes']:g} min after its onset"
    out = []
    book = runbook(incident, signature, "detection_gap", service=facts["service"], when=why)
    if book is not None:
        out.append(book)
    first = facts["metric"]
    if first is not None:
        base = baseline or baseline_window(incident)
        end = first["onset"] + pd.Timedelta(minutes=30)
        metrics = store.query("metrics", base[0], end, services=[facts["service"]], names=[first["metric"]])
        alert = alert_threshold(metrics, facts["service"], first["metric"], first["direction"], first["onset"], base,
                                step=step, detected=facts["detected"], incident_id=iid, reason="detection_gap")
        if alert is not None:
            out.append(alert)
    return out, info


def suggest(workspace: Any, incident_id: str) -> list[Suggestion]:
    """The detection-gap suggestions of one analysed incident (nothing is stored).

    Reads the incident, its stored hypotheses and signature, and the first-moving metric from the
    workspace's telemetry. Empty when the gap is unknown or not above :data:`DETECTION_GAP_MIN`.
    """
    with workspace.knowledge_base() as kb:
        incident = kb.get_incident(incident_id)
        hypotheses = kb.list_hypotheses(incident_id)
    out, _ = for_detection_gap(incident, hypotheses, workspace.telemetry(),
                               signature=read_signature(workspace, incident_id), step=workspace.settings.step)
    return out


# --------------------------------------------------------------------------- helpers

def _signals(signature: Signature | None, service: str, limit: int = 3) -> list[str]:
    if signature is None:
        return []
    metrics = sorted(signature.metrics.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    own = [kv for kv in metrics if kv[0].split("/", 1)[0] == service] or metrics
    out = [f"{k} {'down' if v < 0 else 'up'}" for k, v in own[:limit]]
    templates = sorted(signature.templates.items(), key=lambda kv: (-kv[1], kv[0]))
    for key, _ in templates:
        svc, _, text = key.partition(": ")
        if svc == service and text:
            out.append(f"log {text[:80]!r}")
            break
    return out


def _runbook_link(links: Iterable[Mapping[str, str]], service: str) -> dict[str, str] | None:
    # The service's name as a whole word: "ts-food-service" is not named by "ts-train-food-service".
    name = re.compile(r"(?<![\w-])" + re.escape(service.lower()) + r"(?![\w-])")
    named = [dict(link) for link in links if name.search(str(link.get("title", "")).lower())
             or name.search(str(link.get("url", "")).lower())]
    if not named:
        return None
    books = [link for link in named if "runbook" in (link["title"] + link["url"]).lower()]
    return (books or named)[0]


def _between(edge: float, level: float) -> float:
    """The midpoint of ``edge`` and ``level``, rounded to few digits while strictly between them."""
    mid = (edge + level) / 2.0
    lo, hi = min(edge, level), max(edge, level)
    for digits in (2, 3, 4, 6):
        value = _sig(mid, digits)
        if lo < value < hi:
            return value
    return mid


def _sig(value: float, digits: int) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _first_run_end(flags: pd.Series, k: int, step: pd.Timedelta) -> pd.Timestamp | None:
    """End of the first ``k`` consecutive True steps (consecutive in time, not just in order)."""
    run, last = 0, None
    for ts, flag in flags.items():
        if flag and last is not None and run and ts - last == step:
            run += 1
        else:
            run = 1 if flag else 0
        last = ts
        if run >= k:
            return ts + step
    return None


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _time(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if pd.isna(ts):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _round(value: float) -> float:
    return float(np.round(value, 6))


def _num(value: float) -> str:
    return format(value, ".4g")


def _hhmm(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC" if ts.second or ts.microsecond else "%Y-%m-%d %H:%M UTC")
