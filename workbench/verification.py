"""Verification criteria of action items, checked against telemetry by the recheck loop.

An action item says how its fix will be verified; the criterion is stored as JSON in
``ActionItem.verification`` (``Criterion.to_dict()``) and evaluated by :func:`evaluate`.

Criterion (``signal: metric``)
------------------------------
==========  ==========================================  =========================================
key         value                                       meaning
==========  ==========================================  =========================================
signal      ``metric``                                  what is measured (see below)
service     text                                        ``metrics.service``
metric      text                                        ``metrics.name``
aggregate   mean, max, min, p50, p95, p99, sum, count   how the samples of one window are reduced
comparator  ``<``, ``<=``, ``>``, ``>=``                what every window's value must satisfy
threshold   finite number                               compared with each window's value
duration    ``<n><unit>``, unit s, min, h, d, w         how long it must hold (e.g. ``7d``)
window      same form, default ``5min``                 the aggregation step
environment text, optional                              only ``metrics.environment`` = this
==========  ==========================================  =========================================

"p99 latency of checkout stays below 300 ms for 7 days"::

    {"signal": "metric", "service": "checkout", "metric": "latency_p99_ms", "aggregate": "max",
     "comparator": "<", "threshold": 300, "duration": "7d", "window": "5min"}

``signal: log_template`` (service, template_id, count per window, comparator, threshold) and
``signal: span_edge`` (caller, callee, metric p95_ms or error_rate) are reserved: validation names
them and says they are not yet supported. Unknown keys are refused with the closest known key.

Verdicts
--------
:func:`evaluate` cuts ``[since, until)`` into windows of ``window`` starting at ``since`` (the last
one may be shorter) and reduces every window's samples (all series of the service's metric
together) with ``aggregate``. A window without samples has no data. Then, in this order:

- ``violated``: at least one window with data breaks the comparison (an observed violation is
  reported whatever the coverage);
- ``no_data``: coverage, the share of windows with data, is below :data:`MIN_COVERAGE` (80 %);
  missing telemetry is never reported as holding;
- ``inconclusive``: every window holds but ``[since, until)`` is shorter than ``duration``
  (holding so far, not yet long enough);
- ``holds``: every window with data holds, coverage is enough and the span covers ``duration``.

The verdicts are the knowledge base's check verdicts; :func:`record` stores one as a check of the
action item and queues a ``criterion_violated`` notification in the same transaction.
"""
from __future__ import annotations

import difflib
import math
import operator
import re
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from . import schema
from .errors import CriterionError
from .store.records import iso

SIGNALS = ("metric", "log_template", "span_edge")
SUPPORTED_SIGNALS = ("metric",)
AGGREGATES = ("mean", "max", "min", "p50", "p95", "p99", "sum", "count")
COMPARATORS = ("<", "<=", ">", ">=")
VERDICTS = ("holds", "violated", "no_data", "inconclusive")
#: Below this share of windows with data the verdict is ``no_data`` (unless a violation was seen).
MIN_COVERAGE = 0.8
DEFAULT_WINDOW = "5min"
KEYS = ("signal", "service", "metric", "aggregate", "comparator", "threshold", "duration", "window", "environment")
_REQUIRED = ("signal", "service", "metric", "aggregate", "comparator", "threshold", "duration")
_OPS: dict[str, Callable[[Any, Any], Any]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                              ">=": operator.ge}
_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPAN = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")
_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def _fail(field: str, expected: str, value: Any) -> CriterionError:
    return CriterionError(f"verification field {field!r}: expected {expected}, got {value!r}")


def parse_span(value: Any, field: str) -> pd.Timedelta:
    """``"7d"`` -> 7 days: a positive whole number and a unit (s, min, h, d, w)."""
    match = _SPAN.fullmatch(value) if isinstance(value, str) else None
    if match is None or match.group(2) not in _UNITS or int(match.group(1)) <= 0:
        raise _fail(field, "a span such as 5min, 1h, 7d (a positive whole number and a unit s, min, h, d, w)",
                    value)
    return pd.Timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def format_span(span: pd.Timedelta) -> str:
    """The shortest ``<n><unit>`` for a whole number of seconds (``7d``, ``90min``, ``45s``)."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Criterion:
    """A verification criterion (see the module docstring). Build it with :meth:`from_dict`."""

    signal: str
    service: str
    metric: str
    aggregate: str
    comparator: str
    threshold: float
    duration: str
    window: str = DEFAULT_WINDOW
    environment: str | None = None

    def __post_init__(self) -> None:
        # Validation on entry, whichever way the object is built; spans are kept in canonical form.
        checked = _check(self.__dict__)
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_dict(cls, data: Any) -> "Criterion":
        """A criterion from its JSON form (``ActionItem.verification``).

        Raises
        ------
        CriterionError
            Naming the field and the allowed values (an unknown key gets "did you mean").
        """
        if isinstance(data, Criterion):
            return data
        if not isinstance(data, Mapping):
            raise _fail("verification", f"a mapping with keys {', '.join(_REQUIRED)}", data)
        signal = data.get("signal")
        if signal not in SIGNALS:
            raise _fail("signal", f"one of {', '.join(SIGNALS)}", signal)
        if signal not in SUPPORTED_SIGNALS:
            raise CriterionError(f"verification field 'signal': {signal!r} criteria are not yet supported "
                                 f"(supported: {', '.join(SUPPORTED_SIGNALS)}); express the check on a metric")
        for key in data:
            if key not in KEYS:
                close = difflib.get_close_matches(str(key), KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise CriterionError(f"verification field {key!r}: unknown key{hint}; known: {', '.join(KEYS)}")
        for key in _REQUIRED:
            if data.get(key) is None:
                raise CriterionError(f"verification field {key!r}: required")
        return cls(**{k: data[k] for k in KEYS if data.get(k) is not None})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in ``ActionItem.verification`` (``environment`` only when set)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["environment"] is None:
            del out["environment"]
        return out

    @property
    def duration_span(self) -> pd.Timedelta:
        return parse_span(self.duration, "duration")

    @property
    def window_span(self) -> pd.Timedelta:
        return parse_span(self.window, "window")

    def holds_for(self, value: float) -> bool:
        """Does one window's aggregated value satisfy the comparison?"""
        return bool(_OPS[self.comparator](value, self.threshold))


def _check(values: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if values["signal"] not in SUPPORTED_SIGNALS:
        if values["signal"] in SIGNALS:
            raise CriterionError(f"verification field 'signal': {values['signal']!r} criteria are not yet "
                                 f"supported (supported: {', '.join(SUPPORTED_SIGNALS)})")
        raise _fail("signal", f"one of {', '.join(SIGNALS)}", values["signal"])
    for key in ("service", "metric"):
        if not isinstance(values[key], str) or not values[key].strip():
            raise _fail(key, "a non-empty name", values[key])
    env = values.get("environment")
    if env is not None and (not isinstance(env, str) or not env.strip()):
        raise _fail("environment", "a non-empty name or nothing", env)
    if values["aggregate"] not in AGGREGATES:
        raise _fail("aggregate", f"one of {', '.join(AGGREGATES)}", values["aggregate"])
    if values["comparator"] not in COMPARATORS:
        raise _fail("comparator", f"one of {', '.join(repr(c) for c in COMPARATORS)}", values["comparator"])
    threshold = values["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise _fail("threshold", "a finite number", threshold)
    out["threshold"] = float(threshold)
    duration, window = parse_span(values["duration"], "duration"), parse_span(values["window"], "window")
    if window > duration:
        raise _fail("window", f"a span no longer than duration ({format_span(duration)})", values["window"])
    out["duration"], out["window"] = format_span(duration), format_span(window)
    return out


def describe(criterion: Criterion | Mapping[str, Any]) -> str:
    """``"max latency_p99_ms of checkout < 300 per 5min for 7d"`` (``in <environment>`` when set)."""
    c = Criterion.from_dict(criterion)
    where = f" in {c.environment}" if c.environment else ""
    return (f"{c.aggregate} {c.metric} of {c.service}{where} {c.comparator} {_number(c.threshold)} "
            f"per {c.window} for {c.duration}")


def _number(value: float) -> str:
    return format(value, ".10g")


# --------------------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class Verdict:
    """The result of one evaluation.

    Attributes
    ----------
    verdict : str
        holds, violated, no_data or inconclusive (see the module docstring).
    criterion : Criterion
    since, until : pandas.Timestamp
        The checked window ``[since, until)``, UTC.
    n_windows : int
        Aggregation windows in it.
    n_with_data : int
        Windows with at least one sample.
    n_violations : int
        Windows whose value breaks the comparison.
    worst : float or None
        The value furthest on the wrong side (the maximum for ``<``/``<=``, the minimum for
        ``>``/``>=``), None without data.
    worst_at : pandas.Timestamp or None
        Start of the window holding ``worst``.
    first_violation_at : pandas.Timestamp or None
        Start of the first violating window.
    coverage : float
        ``n_with_data / n_windows``.
    explanation : str
        One line for people.
    """

    verdict: str
    criterion: Criterion
    since: pd.Timestamp
    until: pd.Timestamp
    n_windows: int
    n_with_data: int
    n_violations: int
    worst: float | None
    worst_at: pd.Timestamp | None
    first_violation_at: pd.Timestamp | None
    coverage: float
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: times as ISO strings with ``Z``, the criterion as its dict."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Criterion):
                value = value.to_dict()
            elif isinstance(value, (pd.Timestamp, datetime)):
                value = iso(pd.Timestamp(value).to_pydatetime())
            out[f.name] = value
        return out


def evaluate(criterion: Criterion | Mapping[str, Any], store: Any, since: Any = None, until: Any = None) -> Verdict:
    """Check ``criterion`` against the metrics in ``store`` over ``[since, until)``.

    Parameters
    ----------
    criterion : Criterion or mapping
        A criterion or its dict (``ActionItem.verification``).
    store : TelemetryStore
        Read with ``store.query("metrics", since, until, services=[service], names=[metric])``;
        columns used: ``timestamp``, ``environment``, ``value``.
    since : time, optional
        Start (aware); default ``until - duration``.
    until : time, optional
        End, exclusive (aware); default now.

    Returns
    -------
    Verdict
    """
    c = Criterion.from_dict(criterion)
    until_ts = _utc(until if until is not None else datetime.now(timezone.utc), "until")
    since_ts = until_ts - c.duration_span if since is None else _utc(since, "since")
    if until_ts <= since_ts:
        raise CriterionError(f"evaluation window: until ({iso(until_ts.to_pydatetime())}) must be after since "
                             f"({iso(since_ts.to_pydatetime())})")
    step = c.window_span
    n_windows = int(math.ceil((until_ts - since_ts) / step))
    frame = store.query("metrics", since_ts, until_ts, services=[c.service], names=[c.metric])
    if c.environment is not None:
        frame = frame[frame["environment"] == c.environment]
    frame = frame[np.isfinite(frame["value"].to_numpy(dtype=float))]
    values = _aggregate(frame, since_ts, step, c.aggregate)
    ok = values.map(c.holds_for) if len(values) else values.astype(bool)
    bad = values[~ok]
    n_with_data = len(values)
    coverage = n_with_data / n_windows
    worst = worst_at = None
    if n_with_data:
        pos = values.idxmax() if c.comparator in ("<", "<=") else values.idxmin()
        worst, worst_at = float(values[pos]), since_ts + pos * step
    first_bad = since_ts + int(bad.index[0]) * step if len(bad) else None
    if len(bad):
        verdict = "violated"
    elif coverage < MIN_COVERAGE:
        verdict = "no_data"
    elif until_ts - since_ts < c.duration_span:
        verdict = "inconclusive"
    else:
        verdict = "holds"
    text = _explain(verdict, c, n_windows, n_with_data, len(bad), coverage, worst, worst_at, since_ts, until_ts)
    return Verdict(verdict, c, since_ts, until_ts, n_windows, n_with_data, len(bad), worst, worst_at, first_bad,
                   coverage, text)


def _aggregate(frame: pd.DataFrame, since: pd.Timestamp, step: pd.Timedelta, aggregate: str) -> pd.Series:
    """Window number -> aggregated value, for windows with samples only."""
    if frame.empty:
        return pd.Series([], dtype=float)
    bins = ((frame["timestamp"] - since) // step).astype("int64")
    grouped = frame["value"].astype(float).groupby(bins.to_numpy())
    if aggregate in _QUANTILES:
        out = grouped.quantile(_QUANTILES[aggregate])
    elif aggregate == "count":
        out = grouped.size().astype(float)
    else:
        out = getattr(grouped, aggregate)()
    return out.sort_index()


def _explain(verdict: str, c: Criterion, n: int, with_data: int, n_bad: int, coverage: float, worst: float | None,
             worst_at: pd.Timestamp | None, since: pd.Timestamp, until: pd.Timestamp) -> str:
    what = f"{c.aggregate} {c.metric} of {c.service}"
    when = "" if worst_at is None else f" at {iso(worst_at.to_pydatetime())}"
    if verdict == "violated":
        return (f"violated: {what} reached {_number(worst)}{when} (required {c.comparator} {_number(c.threshold)}; "
                f"{n_bad} of {with_data} {c.window} windows with data broke it)")
    if verdict == "no_data":
        return (f"no data: only {with_data} of {n} {c.window} windows ({coverage:.0%}) have {c.metric} of "
                f"{c.service}; at least {MIN_COVERAGE:.0%} are needed to judge")
    span = format_span(pd.Timedelta(seconds=int((until - since).total_seconds())))
    tail = f"worst {_number(worst)}{when}, coverage {coverage:.0%}"
    if verdict == "inconclusive":
        return (f"inconclusive: {what} stayed {c.comparator} {_number(c.threshold)} for {span} so far, "
                f"{c.duration} needed ({tail})")
    return f"holds: {what} stayed {c.comparator} {_number(c.threshold)} in every {c.window} window for {span} ({tail})"


def _utc(value: Any, field: str) -> pd.Timestamp:
    return schema.aware_time(value, field, CriterionError)


# --------------------------------------------------------------------------- action items

def criterion_of(item: Any) -> Criterion | None:
    """The criterion of an action item (``item.verification``), None when it has none."""
    data = item.get("verification") if isinstance(item, Mapping) else getattr(item, "verification", None)
    return None if data is None else Criterion.from_dict(data)


def record(kb: Any, item: Any, verdict: Verdict, *, who: str = "workbench",
           targets: Iterable[str] | None = None) -> Any:
    """Store ``verdict`` as a check of action item ``item`` and, on a new violation, notify.

    One transaction: the check (verdict, window, ``score`` = worst value, ``evidence`` =
    ``[verdict.to_dict()]``) and, when the verdict is ``violated`` and the item's previous check
    was not, a ``criterion_violated`` notification to the item's owner (``targets``: default the
    knowledge base's notification targets). A violation that persists is notified once, not on
    every run. Returns the :class:`~workbench.store.Check`.
    """
    with kb.transaction():
        previous = kb.list_checks(action_item_id=item.id)
        check = kb.record_check(item.incident_id, window_start=verdict.since.to_pydatetime(),
                                window_end=verdict.until.to_pydatetime(), verdict=verdict.verdict,
                                score=verdict.worst, evidence=[verdict.to_dict()], action_item_id=item.id, who=who)
        if verdict.verdict == "violated" and (not previous or previous[-1].verdict != "violated"):
            kb.enqueue_notification("criterion_violated", {
                "summary": f"Action item {item.title!r} no longer verifies: {verdict.explanation}",
                "details": {"action_item": {"id": item.id, "title": item.title, "owner": item.owner},
                            "criterion": describe(verdict.criterion), "check_id": check.id,
                            "verdict": verdict.to_dict()},
                "recipients": [item.owner],
            }, incident_id=item.incident_id, targets=targets, key=f"criterion_violated:{check.id}")
    return check
