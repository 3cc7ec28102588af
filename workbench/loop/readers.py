"""Window values of verification criteria, one reader per signal (see :mod:`workbench.loop.criteria`).

Each reader queries the telemetry store once, narrowly (the criterion's services, and for metrics
its metric name, so the recheck loop's memoised store serves repeated criteria), and returns one
value per aggregation window *that has data*; a window it leaves out has no data. The verdict
rules are not here: :func:`workbench.loop.criteria.evaluate` applies them to every signal alike.

Template matching (:func:`template_matches`) agrees with the templates the workbench shows
(:mod:`workbench.signals.logs`): a line matches when the template occurs in its body, as written or as
the miner masks it (:data:`workbench.signals.logs.DEFAULT_MASKS`, runs of masks collapsed into one). In
the template, ``<*>`` and the mask names (``<NUM>``, ``<IP>``, ``<HEX>`` ...) are variables: each
stands for any non-empty text within one token (text between blanks); blanks match any blanks;
everything else is literal and case-sensitive, so a template without variables is a substring.
Masks are variables too because the miner files a line under its group's most general template:
a line under ``<IP> open through proxy <*> HTTPS`` may hold a host name where ``<IP>`` stands.
Every line of loghub 2k (16 systems) and of the sample matches the template the miner shows for
it; being a substring rule, a short template also matches longer lines that contain it.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..telemetry import schema
from ..signals.logs import DEFAULT_MASKS, WILDCARD, TemplateMiner
from ..signals.spans import annotate

#: What a variable stands for: non-empty text within one token.
_WILD_RE = r"\S+?"
#: The template's variables: Drain's ``<*>`` and the miner's masks (``<NUM>``, ``<IP>`` ...).
_VARIABLES = frozenset([WILDCARD, *(f"<{name}>" for name, _ in DEFAULT_MASKS)])
_MASKER: TemplateMiner | None = None
_SPLIT = re.compile("(" + "|".join(re.escape(v) for v in sorted(_VARIABLES, key=len, reverse=True)) + ")")
_RANK = {name: i for i, name in enumerate(schema.SEVERITIES)}
_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
#: The piece of a log criterion's duration read at once (:func:`log_chunks`).
LOG_CHUNK = pd.Timedelta(hours=6)
#: How long before a span-edge criterion's first window its query starts: a call's parent span
#: (the caller's request, or its client span) started before the call did.
EDGE_LOOKBACK = pd.Timedelta(minutes=5)


def _empty() -> pd.Series:
    return pd.Series([], dtype=float)


def _bins(times: pd.Series, since: pd.Timestamp, step: pd.Timedelta) -> np.ndarray:
    """Window number of each time: ``(time - since) // step``."""
    return ((times - since) // step).astype("int64").to_numpy()


# --------------------------------------------------------------------------- metric

def metric_values(c: Any, store: Any, since: pd.Timestamp, until: pd.Timestamp, step: pd.Timedelta) -> pd.Series:
    """Window number -> ``aggregate`` of the samples of ``metrics.name == metric`` of ``service``.

    Reads ``store.query("metrics", since, until, services=[service], names=[metric])``; columns
    used: ``timestamp``, ``environment``, ``value``. All series of the metric are reduced together;
    non-finite values are dropped. A window with data has at least one sample.
    """
    frame = store.query("metrics", since, until, services=[c.service], names=[c.metric])
    if c.environment is not None:
        frame = frame[frame["environment"] == c.environment]
    frame = frame[np.isfinite(frame["value"].to_numpy(dtype=float))]
    if frame.empty:
        return _empty()
    grouped = frame["value"].astype(float).groupby(_bins(frame["timestamp"], since, step))
    if c.aggregate in _QUANTILES:
        out = grouped.quantile(_QUANTILES[c.aggregate])
    elif c.aggregate == "count":
        out = grouped.size().astype(float)
    else:
        out = getattr(grouped, c.aggregate)()
    return out.sort_index()


# --------------------------------------------------------------------------- log template

def template_values(c: Any, store: Any, since: pd.Timestamp, until: pd.Timestamp, step: pd.Timedelta) -> pd.Series:
    """Window number -> matching lines (``count``) or matching / all lines (``share``).

    Reads ``store.query("logs", lo, hi, services=[service])`` for each :func:`log_chunks` piece of
    the window (memory stays one piece of one service's lines, however long the criterion's
    duration); columns used: ``timestamp``, ``environment``, ``severity``, ``body``. A window has
    data when the service logged any line in it (in ``environment`` when set, whatever the
    severity), so zero matching lines there is a real 0. ``severity`` restricts the matching lines to that severity or a more severe one; the
    share's denominator is every line of the window.
    """
    matched, lines = [], []
    for lo, hi in log_chunks(since, until):
        # The whole chunk is asked for (the same query for every criterion on this service: the
        # recheck loop's memoised store serves them all), then cut to the window.
        frame = store.query("logs", lo, hi, services=[c.service])
        inside = np.array((frame["timestamp"] >= since) & (frame["timestamp"] < until), dtype=bool)
        if c.environment is not None:
            inside &= (frame["environment"] == c.environment).to_numpy(dtype=bool)
        frame = frame[inside]
        if frame.empty:
            continue
        hit = template_matches(c.template, frame["body"])
        if c.severity is not None:
            rank = frame["severity"].map(_RANK).to_numpy(dtype=float)
            hit &= rank >= _RANK[c.severity]
        grouped = pd.Series(hit, dtype=float).groupby(_bins(frame["timestamp"], since, step))
        matched.append(grouped.sum())
        lines.append(grouped.size().astype(float))
    if not lines:
        return _empty()
    # A window may span chunks: its matching lines and all its lines are added up across them.
    hits, total = pd.concat(matched).groupby(level=0).sum(), pd.concat(lines).groupby(level=0).sum()
    out = hits / total if c.aggregate == "share" else hits
    return out.astype(float).sort_index()


def log_chunks(since: pd.Timestamp, until: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The :data:`LOG_CHUNK`-long pieces (aligned to multiples of it since the epoch, UTC) that
    cover ``[since, until)``: a log criterion over days reads one piece at a time."""
    first = since.floor(LOG_CHUNK)
    return [(lo, lo + LOG_CHUNK) for lo in pd.date_range(first, until, freq=LOG_CHUNK, inclusive="left")]


def template_regex(template: str) -> re.Pattern[str]:
    """The regex of ``template`` (module docstring): a variable is text within one token, blanks any blanks."""
    tokens = [[_WILD_RE if piece in _VARIABLES else re.escape(piece) for piece in _SPLIT.split(token) if piece]
              for token in template.split()]
    # In a search a leading (trailing) variable matches iff one non-blank character does.
    if tokens and tokens[0][0] == _WILD_RE:
        tokens[0][0] = r"\S"
    if tokens and tokens[-1][-1] == _WILD_RE:
        tokens[-1][-1] = r"\S"
    return re.compile(r"\s+".join("".join(token) for token in tokens))


def mask(body: Any) -> str:
    """``body`` as the template miner sees it: masked, mask runs collapsed, blanks single spaces."""
    global _MASKER
    if _MASKER is None:  # built on first use
        _MASKER = TemplateMiner()
    # The miner's own masking, so matching agrees with the templates it shows.
    return _MASKER.mask(body)


def template_matches(template: str, bodies: pd.Series) -> np.ndarray:
    """Whether each body matches ``template`` (bool array, same order as ``bodies``).

    Only bodies holding the template's longest literal piece (verbatim text of the line in any
    match, masked or not) are searched, and only those that do not match as written are masked.
    """
    pattern = template_regex(template)
    pieces = [word for piece in _SPLIT.split(template) if piece not in _VARIABLES for word in piece.split()]
    # A piece with < or > or inside a mask name (``UM`` of ``<NUM>``) could match an inserted mask
    # of the masked body rather than text of the line.
    pieces = [p for p in pieces if "<" not in p and ">" not in p and not any(p in v for v in _VARIABLES)]
    text = bodies.astype(str)
    out = np.zeros(len(text), dtype=bool)
    maybe = text.str.contains(max(pieces, key=len), regex=False).to_numpy(dtype=bool) if pieces else ~out
    for i in np.flatnonzero(maybe):
        out[i] = pattern.search(text.iat[i]) is not None or pattern.search(mask(text.iat[i])) is not None
    return out


# --------------------------------------------------------------------------- span edge

def edge_values(c: Any, store: Any, since: pd.Timestamp, until: pd.Timestamp, step: pd.Timedelta) -> pd.Series:
    """Window number -> ``metric`` of the calls ``caller`` -> ``callee``.

    Reads ``store.query("spans", since, until, services=[caller, callee])`` (one query for both);
    columns used: ``span_id``, ``parent_span_id``, ``service``, ``start``, ``duration_ms``,
    ``status``. A call is a span of ``callee`` whose parent span is a span of ``caller``
    (:func:`workbench.signals.spans.annotate`, ``parent_service``); it counts in the window its span
    started in. ``count``: calls; ``error_rate``: share of those spans with status error;
    ``p50_ms``/``p95_ms``/``p99_ms``: percentiles of their ``duration_ms``. A window with data
    has at least one call. The query starts :data:`EDGE_LOOKBACK` before ``since`` so that the
    parent of a call made early in the first window is found; a parent that started longer before
    (a batch job's span) is not, and its calls are not counted.
    """
    frame = store.query("spans", since - EDGE_LOOKBACK, until, services=sorted({c.caller, c.callee}))
    if frame.empty:
        return _empty()
    spans = annotate(frame)
    calls = spans[(spans["service"] == c.callee) & (spans["parent_service"] == c.caller)
                  & (spans["start"] >= since).to_numpy(dtype=bool)]
    if calls.empty:
        return _empty()  # no call at all (an edge that does not exist, or no traffic)
    bins = _bins(calls["start"], since, step)
    if c.metric == "count":
        out = calls.groupby(bins).size().astype(float)
    elif c.metric == "error_rate":
        out = calls["error"].astype(float).groupby(bins).mean()
    else:
        out = calls["duration_ms"].astype(float).groupby(bins).quantile(_QUANTILES[c.metric.removesuffix("_ms")])
    return out.sort_index()


#: signal -> reader of its window values.
READERS = {"metric": metric_values, "log_template": template_values, "span_edge": edge_values}
