"""Verification criteria of action items, checked against telemetry by the recheck loop.

An action item says how its fix will be verified; the criterion is stored as JSON in
``ActionItem.verification`` (``Criterion.to_dict()``) and evaluated by :func:`evaluate`. Three
signals are measured: a metric, the lines of a log template, the calls of a span edge. Every
criterion has ``signal``, ``comparator``, ``threshold``, ``duration`` and ``window``:

==========  ==========================================  =========================================
key         value                                       meaning
==========  ==========================================  =========================================
signal      ``metric``, ``log_template``, ``span_edge`` what is measured (tables below)
comparator  ``<``, ``<=``, ``>``, ``>=``                what every window's value must satisfy
threshold   finite number                               compared with each window's value
duration    ``<n><unit>``, unit s, min, h, d, w         how long it must hold (e.g. ``7d``)
window      same form, default ``5min``                 the aggregation step (at most ``duration``)
==========  ==========================================  =========================================

``signal: metric``: a window has data when it holds a sample.

==========  ==========================================  =========================================
service     text                                        ``metrics.service``
metric      text                                        ``metrics.name``
aggregate   mean, max, min, p50, p95, p99, sum, count   how the samples of one window are reduced
environment text, optional                              only ``metrics.environment`` = this
==========  ==========================================  =========================================

``signal: log_template``: a window has data when the service logged any line in it (in
``environment`` when set), so zero matching lines there is a real 0.

==========  ==========================================  =========================================
service     text                                        ``logs.service``
template    non-empty text                              the template as the workbench shows it
                                                        (``<*>`` for a variable) or a substring
aggregate   count (default), share                      matching lines per window, or matching /
                                                        all lines of the service in the window
environment text, optional                              only ``logs.environment`` = this
severity    TRACE ... FATAL, optional                   only lines this severe or more can match
==========  ==========================================  =========================================

A line matches when the template occurs in its body, as written or masked as the template
miner masks it; ``<*>`` and the masks (``<NUM>``, ``<IP>`` ...) stand for any non-empty text
within one token, blanks match any blanks, the rest is literal and case-sensitive, so a template
without variables is a substring (:mod:`workbench.loop.readers`).

``signal: span_edge``: a call is a span of ``callee`` whose parent span belongs to ``caller``
(:func:`workbench.signals.spans.annotate`); a window has data when it holds at least one call.

==========  ==========================================  =========================================
caller      text                                        ``spans.service`` of the parent span
callee      text, not the caller                        ``spans.service`` of the called span
metric      error_rate, count, p50_ms, p95_ms, p99_ms   share of calls with status error, calls,
                                                        or a percentile of their ``duration_ms``
==========  ==========================================  =========================================

Spans are sampled: choose a window that holds enough calls for the rate or percentile to mean
something (a 5 % error rate needs tens of calls per window).

Examples::

    # "p99 latency of checkout stays below 300 ms for 7 days"
    {"signal": "metric", "service": "checkout", "metric": "latency_p99_ms", "aggregate": "max",
     "comparator": "<", "threshold": 300, "duration": "7d", "window": "5min"}
    # "no InvalidFormatException in the payments logs for 7 days"
    {"signal": "log_template", "service": "payments", "template": "InvalidFormatException",
     "aggregate": "count", "comparator": "<", "threshold": 1, "duration": "7d", "window": "1h"}
    # "fewer than 5 % of checkout's calls to payments fail, per 6 hours, for 7 days"
    {"signal": "span_edge", "caller": "checkout", "callee": "payments", "metric": "error_rate",
     "comparator": "<", "threshold": 0.05, "duration": "7d", "window": "6h"}

Validation happens on entry (:meth:`Criterion.from_dict` and the constructor alike): a wrong
value names the field and the allowed values; a key of another signal, or an unknown key with
the closest known key ("did you mean"), is refused.

Verdicts
--------
:func:`evaluate` cuts ``[since, until)`` into windows of ``window`` starting at ``since`` (the last
one may be shorter) and computes every window's value (the signal's reader). A window without
data has no value. Then, for every signal alike, in this order:

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

import pandas as pd

from ..telemetry import schema
from .readers import READERS
from ..errors import CriterionError
from ..signals.spans import ARROW
from ..store.records import iso
from ..formats import aware_time

SIGNALS = ("metric", "log_template", "span_edge")
#: Aggregates of ``signal: metric``.
AGGREGATES = ("mean", "max", "min", "p50", "p95", "p99", "sum", "count")
#: Aggregates of ``signal: log_template``.
TEMPLATE_AGGREGATES = ("count", "share")
#: Metrics of ``signal: span_edge``.
EDGE_METRICS = ("error_rate", "count", "p50_ms", "p95_ms", "p99_ms")
COMPARATORS = ("<", "<=", ">", ">=")
VERDICTS = ("holds", "violated", "no_data", "inconclusive")
#: Below this share of windows with data the verdict is ``no_data`` (unless a violation was seen).
MIN_COVERAGE = 0.8
DEFAULT_WINDOW = "5min"
_COMMON = ("comparator", "threshold", "duration", "window")
#: signal -> its keys, in the order of ``to_dict``.
KEYS: dict[str, tuple[str, ...]] = {
    "metric": ("signal", "service", "metric", "aggregate", *_COMMON, "environment"),
    "log_template": ("signal", "service", "template", "aggregate", *_COMMON, "environment", "severity"),
    "span_edge": ("signal", "caller", "callee", "metric", *_COMMON),
}
#: signal -> keys that may be left out (with their default, None: absent from ``to_dict``).
_OPTIONAL: dict[str, dict[str, Any]] = {
    "metric": {"window": DEFAULT_WINDOW, "environment": None},
    "log_template": {"aggregate": "count", "window": DEFAULT_WINDOW, "environment": None, "severity": None},
    "span_edge": {"window": DEFAULT_WINDOW},
}
_OPS: dict[str, Callable[[Any, Any], Any]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                              ">=": operator.ge}
_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPAN = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")


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
    """A verification criterion (see the module docstring). Build it with :meth:`from_dict`.

    Fields another signal uses are None (``template`` of a metric criterion, ``service`` of a
    span-edge criterion ...); ``to_dict`` leaves them out.
    """

    signal: str
    service: str | None = None
    metric: str | None = None
    aggregate: str | None = None
    comparator: str | None = None
    threshold: float | None = None
    duration: str | None = None
    window: str | None = None
    environment: str | None = None
    template: str | None = None
    severity: str | None = None
    caller: str | None = None
    callee: str | None = None

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
            raise _fail("verification", f"a mapping with a 'signal' ({', '.join(SIGNALS)}) and its keys", data)
        keys = _keys_of(data.get("signal"))
        for key, value in data.items():
            if value is not None or not any(key in other for other in KEYS.values()):
                _known(key, data["signal"], keys)  # a null key of another signal is just absent
        return cls(**{k: data[k] for k in keys if data.get(k) is not None})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in ``ActionItem.verification`` (the signal's keys; optional ones when set)."""
        return {k: getattr(self, k) for k in KEYS[self.signal] if getattr(self, k) is not None}

    @property
    def duration_span(self) -> pd.Timedelta:
        return parse_span(self.duration, "duration")

    @property
    def window_span(self) -> pd.Timedelta:
        return parse_span(self.window, "window")

    def holds_for(self, value: float) -> bool:
        """Does one window's value satisfy the comparison?"""
        return bool(_OPS[self.comparator](value, self.threshold))


def _keys_of(signal: Any) -> tuple[str, ...]:
    if signal not in SIGNALS:
        raise _fail("signal", f"one of {', '.join(SIGNALS)}", signal)
    return KEYS[signal]


def _known(key: Any, signal: str, keys: tuple[str, ...]) -> None:
    if key in keys:
        return
    if any(key in other for other in KEYS.values()):
        raise CriterionError(f"verification field {key!r}: not a key of {signal} criteria; their keys: "
                             f"{', '.join(keys)}")
    close = difflib.get_close_matches(str(key), keys, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CriterionError(f"verification field {key!r}: unknown key{hint}; known: {', '.join(keys)}")


def _name(values: Mapping[str, Any], key: str) -> str:
    value = values[key]
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "a non-empty name", value)
    return value


def _one_of(values: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    if values[key] not in allowed:
        raise _fail(key, f"one of {', '.join(allowed)}", values[key])
    return values[key]


def _check(values: Mapping[str, Any]) -> dict[str, Any]:
    signal = values["signal"]
    keys = _keys_of(signal)
    out = dict(values)
    optional = _OPTIONAL[signal]
    for key in KEYS["metric"] + KEYS["log_template"] + KEYS["span_edge"]:
        if values.get(key) is None:
            if key in optional:
                out[key] = optional[key]
            elif key in keys:
                raise CriterionError(f"verification field {key!r}: required for {signal} criteria")
        elif key not in keys:
            _known(key, signal, keys)
    if signal == "metric":
        _name(values, "service")
        _name(values, "metric")
        _one_of(values, "aggregate", AGGREGATES)
    elif signal == "log_template":
        _name(values, "service")
        template = values["template"]
        if not isinstance(template, str) or not template.strip():
            raise _fail("template", "the template text as the workbench shows it (e.g. 'charge <*> failed: "
                        "InvalidFormatException') or a plain substring, not empty", template)
        _one_of(out, "aggregate", TEMPLATE_AGGREGATES)
        if out["severity"] is not None:
            severity = schema.normalize_severity(out["severity"]) if isinstance(out["severity"], str) else None
            if severity not in schema.SEVERITIES:
                raise _fail("severity", f"one of {', '.join(schema.SEVERITIES)} (or nothing)", out["severity"])
            out["severity"] = severity
    else:
        caller, callee = _name(values, "caller"), _name(values, "callee")
        if callee == caller:
            raise _fail("callee", f"a service other than the caller ({caller!r})", callee)
        _one_of(values, "metric", EDGE_METRICS)
    env = out.get("environment")
    if env is not None and (not isinstance(env, str) or not env.strip()):
        raise _fail("environment", "a non-empty name or nothing", env)
    if values["comparator"] not in COMPARATORS:
        raise _fail("comparator", f"one of {', '.join(repr(c) for c in COMPARATORS)}", values["comparator"])
    threshold = values["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise _fail("threshold", "a finite number", threshold)
    out["threshold"] = float(threshold)
    duration, window = parse_span(values["duration"], "duration"), parse_span(out["window"], "window")
    if window > duration:
        raise _fail("window", f"a span no longer than duration ({format_span(duration)})", out["window"])
    out["duration"], out["window"] = format_span(duration), format_span(window)
    return out


def describe(criterion: Criterion | Mapping[str, Any]) -> str:
    """One line for people, e.g. ``"max latency_p99_ms of checkout < 300 per 5min for 7d"``,
    ``"count of log lines of payments matching 'InvalidFormatException' < 1 per 1h for 7d"``,
    ``"error_rate of checkout→payments calls < 0.05 per 6h for 7d"``."""
    c = Criterion.from_dict(criterion)
    return f"{_subject(c, where=True)} {c.comparator} {_number(c.threshold)} per {c.window} for {c.duration}"


def _subject(c: Criterion, where: bool) -> str:
    """What is compared: ``max latency_p99_ms of checkout`` (``in <environment>`` with ``where``)."""
    env = f" in {c.environment}" if where and c.environment else ""
    if c.signal == "metric":
        return f"{c.aggregate} {c.metric} of {c.service}{env}"
    if c.signal == "log_template":
        severe = f"{c.severity}+ " if c.severity else ""
        return f"{c.aggregate} of {severe}log lines of {c.service}{env} matching {c.template!r}"
    return f"{c.metric} of {c.caller}{ARROW}{c.callee} calls"


def _data(c: Criterion) -> str:
    """What a window with data holds: ``latency_p99_ms of checkout``, ``log lines of payments`` ..."""
    if c.signal == "metric":
        return f"{c.metric} of {c.service}"
    if c.signal == "log_template":
        return f"log lines of {c.service}" + (f" in {c.environment}" if c.environment else "")
    return f"{c.caller}{ARROW}{c.callee} calls"


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
        Windows with data (a sample, a log line of the service, a call: module docstring).
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
    """Check ``criterion`` against the telemetry in ``store`` over ``[since, until)``.

    Parameters
    ----------
    criterion : Criterion or mapping
        A criterion or its dict (``ActionItem.verification``).
    store : TelemetryStore
        Anything with ``query(table, start, end, services=None, names=None)`` returning the unified
        tables (the recheck loop passes a memoised one). Queries narrowed to the criterion's
        services: one of ``metrics`` (``timestamp``, ``environment``, ``value``; ``names=[metric]``),
        ``logs`` (``timestamp``, ``environment``, ``severity``, ``body``; one query per 6 h piece of
        the window, :func:`workbench.loop.readers.log_chunks`) or one of ``spans`` of caller and
        callee together (``span_id``, ``parent_span_id``, ``service``, ``start``, ``duration_ms``,
        ``status``). See :mod:`workbench.loop.readers`. Frames are not modified.
    since : time, optional
        Start (aware); default ``until - duration``.
    until : time, optional
        End, exclusive (aware); default now.

    Returns
    -------
    Verdict
    """
    c = Criterion.from_dict(criterion)
    until_ts = aware_time(until if until is not None else datetime.now(timezone.utc), "until", CriterionError)
    since_ts = until_ts - c.duration_span if since is None else aware_time(since, "since", CriterionError)
    if until_ts <= since_ts:
        raise CriterionError(f"evaluation window: until ({iso(until_ts.to_pydatetime())}) must be after since "
                             f"({iso(since_ts.to_pydatetime())})")
    step = c.window_span
    values = READERS[c.signal](c, store, since_ts, until_ts, step)
    return _judge(c, values, since_ts, until_ts, step)


def _judge(c: Criterion, values: pd.Series, since: pd.Timestamp, until: pd.Timestamp, step: pd.Timedelta) -> Verdict:
    """The verdict from the values of the windows with data (window number -> value): the same
    rules for every signal (module docstring)."""
    n_windows = int(math.ceil((until - since) / step))
    ok = values.map(c.holds_for) if len(values) else values.astype(bool)
    bad = values[~ok]
    n_with_data = len(values)
    coverage = n_with_data / n_windows
    worst = worst_at = None
    if n_with_data:
        pos = values.idxmax() if c.comparator in ("<", "<=") else values.idxmin()
        worst, worst_at = float(values[pos]), since + int(pos) * step
    first_bad = since + int(bad.index[0]) * step if len(bad) else None
    if len(bad):
        verdict = "violated"
    elif coverage < MIN_COVERAGE:
        verdict = "no_data"
    elif until - since < c.duration_span:
        verdict = "inconclusive"
    else:
        verdict = "holds"
    text = _explain(verdict, c, n_windows, n_with_data, len(bad), coverage, worst, worst_at, since, until)
    return Verdict(verdict, c, since, until, n_windows, n_with_data, len(bad), worst, worst_at, first_bad,
                   coverage, text)


def _explain(verdict: str, c: Criterion, n: int, with_data: int, n_bad: int, coverage: float, worst: float | None,
             worst_at: pd.Timestamp | None, since: pd.Timestamp, until: pd.Timestamp) -> str:
    what = _subject(c, where=False)
    when = "" if worst_at is None else f" at {iso(worst_at.to_pydatetime())}"
    if verdict == "violated":
        return (f"violated: {what} reached {_number(worst)}{when} (required {c.comparator} {_number(c.threshold)}; "
                f"{n_bad} of {with_data} {c.window} windows with data broke it)")
    if verdict == "no_data":
        return (f"no data: only {with_data} of {n} {c.window} windows ({coverage:.0%}) have {_data(c)}; "
                f"at least {MIN_COVERAGE:.0%} are needed to judge")
    span = format_span(pd.Timedelta(seconds=int((until - since).total_seconds())))
    tail = f"worst {_number(worst)}{when}, coverage {coverage:.0%}"
    if verdict == "inconclusive":
        return (f"inconclusive: {what} stayed {c.comparator} {_number(c.threshold)} for {span} so far, "
                f"{c.duration} needed ({tail})")
    return f"holds: {what} stayed {c.comparator} {_number(c.threshold)} in every {c.window} window for {span} ({tail})"


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
