"""The ``prometheus`` source: metrics of a window from any server speaking the Prometheus HTTP API.

``prometheus:http://host:9090`` (Prometheus, Thanos Query), ``prometheus:http://mimir/prometheus``
(Mimir, Cortex: the API sits under a prefix; ``tenant`` sets ``X-Scope-OrgID``),
``prometheus:http://victoria:8428`` (VictoriaMetrics single node) or
``prometheus:http://vmselect:8481/select/0/prometheus`` (its cluster version). Connection, auth and
TLS options are those of :mod:`workbench.sources.remote`.

What is fetched
---------------
1. Discovery: ``/api/v1/series`` for each selector (``match``; default every series,
   ``{__name__=~".+"}``) over the window. More than ``max_series`` series (default 5,000) for one
   selector, or in total, is refused with an error naming the selector: narrow it, or raise the
   limit knowingly.
2. One ``/api/v1/query_range`` per metric name (per selector and chunk), by kind:

   - gauge: ``last_over_time(SEL[<step - 1 ms>])``, so the point at ``t`` is the last sample of
     ``(t - step, t]`` and a gap stays a gap (a plain selector would repeat the last value for
     Prometheus' 5-minute lookback and invent points);
   - counter: ``rate(SEL[W])`` with ``W = max(rate_window, step)`` (``rate_window`` default
     ``5m``): per-second rates, unit ``1/s``; a raw counter's level says nothing about an
     incident, its slope does, and ``rate`` handles counter resets;
   - histogram bucket series (``*_bucket``): ``histogram_quantile(q, rate(SEL[W]))`` for each
     ``q`` of ``quantiles`` (default 0.5, 0.95, 0.99), stored as ``<base>.p50``, ``<base>.p95``,
     ``<base>.p99`` (the names the ``otlp`` source gives histogram quantiles). With
     ``quantiles = []`` the buckets are fetched as counters instead.

   The kind comes from the ``counters``/``gauges`` options (metric names), then the server's
   ``/api/v1/metadata`` (``counter``, ``histogram``, ``summary``, ``gauge``), then the name:
   ``_total``, ``_count``, ``_sum`` and ``_bucket`` are counters, anything else a gauge.
   Backfilled or remote-written data has no metadata, hence the name rule and the options.
3. Long windows: the points ``start, start + step, ...`` (aligned to multiples of ``step`` since
   the epoch, so two fetches of overlapping windows give the same times) are split into chunks
   of at most ``max_points`` (default 11,000, Prometheus' per-series limit); chunks do not
   overlap, and rows are de-duplicated on merge anyway. Points are in ``[start, end)``.
4. Non-finite values (``NaN`` from a quantile of an idle histogram, ``±Inf``) are "no value" in
   the unified schema: they are dropped and counted (``stats["points_not_finite"]``).

Labels to the unified schema (``labels`` option, a mapping)
-----------------------------------------------------------
``service`` is the first label present among ``labels.service`` (default ``service``, ``job``,
``service_name``), else ``default_service`` (``unknown_service``, as OpenTelemetry SDKs name
it); ``environment`` likewise from ``labels.environment`` (default ``environment``, ``env``,
``deployment_environment``), else ``default_environment`` (``unknown``). ``name`` is
``__name__``. Every other label goes into ``attributes`` (``le`` of a quantile excepted), values
as the server sent them: they are data, never evaluated.

Options (``[sources.<name>]`` keys or ``-o key=value``)
------------------------------------------------------
``match`` (list of series selectors), ``step`` (``60s``, ``1m``, ``15s`` ...; default 60 s),
``max_series``, ``max_points``, ``counters``, ``gauges``, ``quantiles``, ``rate_window``,
``labels``, ``default_service``, ``default_environment``, plus the connection options of
:mod:`workbench.sources.remote`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .. import schema
from ... import yamlio
from ...errors import SourceError
from ...formats import text_problem, utc_bound
from . import register, remote
from .base import RawFrame, Source

DEFAULT_STEP = "60s"
DEFAULT_MAX_SERIES = 5_000
#: Prometheus refuses a query_range over more points per series than this (HTTP 400).
MAX_POINTS = 11_000
DEFAULT_QUANTILES = (0.5, 0.95, 0.99)
DEFAULT_RATE_WINDOW = "5m"
EVERY_SERIES = '{__name__=~".+"}'
SERVICE_LABELS = ("service", "job", "service_name")
ENVIRONMENT_LABELS = ("environment", "env", "deployment_environment")
DEFAULT_SERVICE = "unknown_service"
DEFAULT_ENVIRONMENT = "unknown"
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
RATE_UNIT = "1/s"

OPTION_KEYS = ("match", "selectors", "step", "max_series", "max_points", "counters", "gauges", "quantiles",
               "rate_window", "labels", "default_service", "default_environment")

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
                "y": 31_536_000_000}
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass(frozen=True)
class Query:
    """One PromQL expression for one metric name under one selector.

    Attributes
    ----------
    name : str
        The unified ``name`` of the rows it yields.
    kind : str
        ``gauge``, ``counter`` or ``quantile``.
    promql : str
        The expression (its range selectors already sized).
    selector : str
        The user's selector it came from (named in errors).
    """

    name: str
    kind: str
    promql: str
    selector: str


@register("prometheus")
class PrometheusSource(Source):
    """Metrics of a window from a Prometheus-compatible HTTP API (query_range; Thanos, Mimir, VictoriaMetrics).

    Parameters
    ----------
    location : str
        ``http(s)://host[:port][/prefix]``.
    **options
        See the module documentation.

    Attributes
    ----------
    stats : dict
        After :meth:`frames`: ``series``, ``queries``, ``chunks``, ``requests``, ``points``,
        ``points_not_finite``.
    """

    live = True

    def __init__(self, location: str, **options: Any):
        super().__init__(location, **options)
        opts = dict(options)
        self.client = remote.client("prometheus", location, opts, default_port=9090)
        where = self.client.where
        self.location = self.client.base_url
        selectors = opts.pop("match", None)
        more = opts.pop("selectors", None)
        self.selectors = _text_list(selectors, "match", where) + _text_list(more, "selectors", where)
        if not self.selectors:
            self.selectors = [EVERY_SERIES]
        self.step_ms = duration_ms(opts.pop("step", DEFAULT_STEP), "step", where, low=2)
        self.rate_window_ms = duration_ms(opts.pop("rate_window", DEFAULT_RATE_WINDOW), "rate_window", where)
        self.max_series = _int(opts.pop("max_series", DEFAULT_MAX_SERIES), "max_series", where)
        self.max_points = _int(opts.pop("max_points", MAX_POINTS), "max_points", where)
        self.counters = set(_text_list(opts.pop("counters", None), "counters", where))
        self.gauges = set(_text_list(opts.pop("gauges", None), "gauges", where))
        if self.counters & self.gauges:
            raise SourceError(f"{where}: {', '.join(sorted(self.counters & self.gauges))} declared as both "
                              f"counter and gauge")
        self.quantiles = _quantiles(opts.pop("quantiles", DEFAULT_QUANTILES), where)
        (self.service_labels, self.environment_labels, self.default_service,
         self.default_environment) = labelling(opts, where)
        remote.refuse_unknown(opts, OPTION_KEYS + remote.OPTION_KEYS, where)
        self.stats: dict[str, int] = {}
        self._metadata: dict[str, str] | None = None

    @property
    def url(self) -> str:
        return self.client.where

    # ---------------------------------------------------------------- discovery
    def series(self, selector: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> list[dict[str, str]]:
        """Label sets of the series ``selector`` matches in the window (``/api/v1/series``)."""
        params = [("match[]", selector), *_range_params(start, end)]
        return self._data("/api/v1/series", params, list)

    def label_names(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> list[str]:
        """Label names known to the server in the window (``/api/v1/labels``)."""
        return sorted(self._data("/api/v1/labels", _range_params(start, end), list))

    def label_values(self, label: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> list[str]:
        """Values of ``label`` in the window (``/api/v1/label/<name>/values``)."""
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label or ""):
            raise SourceError(f"{self.url}: {label!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        return sorted(self._data(f"/api/v1/label/{label}/values", _range_params(start, end), list))

    def catalogue(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
        """What the selectors find: one row per metric name.

        Returns
        -------
        pandas.DataFrame
            ``name``, ``kind`` (gauge/counter/histogram bucket), ``series``, ``services`` (the
            mapped service values, comma-separated), ``fetched_as`` (the unified names it yields).
        """
        by_name: dict[str, list[dict[str, str]]] = {}
        for (_, name), labelsets in self._discover(start, end, enforce_limit=False).items():
            by_name.setdefault(name, []).extend(labelsets)
        rows = []
        for name, labelsets in sorted(by_name.items()):
            kind = self.kind(name)
            services = sorted({self._service(ls) for ls in labelsets})
            fetched = ([f"{name.removesuffix('_bucket')}.p{_pct(q)}" for q in self.quantiles]
                       if kind == "histogram" else [name])
            unique = {tuple(sorted(ls.items())) for ls in labelsets}
            rows.append({"name": name, "kind": kind, "series": len(unique), "services": ", ".join(services),
                         "fetched_as": ", ".join(fetched)})
        return pd.DataFrame(rows, columns=["name", "kind", "series", "services", "fetched_as"])

    def kind(self, name: str) -> str:
        """``gauge``, ``counter`` or ``histogram`` (a ``_bucket`` series fetched as quantiles)."""
        if name in self.gauges:
            return "gauge"
        if name in self.counters:
            return "counter"
        kind = self._meta_kind(name) or ("counter" if name.endswith(COUNTER_SUFFIXES) else "gauge")
        if kind == "counter" and name.endswith("_bucket") and self.quantiles:
            return "histogram"
        return kind

    def plan(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> list[Query]:
        """The queries :meth:`frames` will run (after discovery and the series limit)."""
        found = self._discover(start, end, enforce_limit=True)
        window_ms = max(self.rate_window_ms, self.step_ms)
        queries = []
        for (selector, name) in found:
            sel = with_name(selector, name)
            kind = self.kind(name)
            if kind == "gauge":
                queries.append(Query(name, "gauge", f"last_over_time({sel}[{self.step_ms - 1}ms])", selector))
            elif kind == "counter":
                queries.append(Query(name, "counter", f"rate({sel}[{window_ms}ms])", selector))
            else:
                base = name.removesuffix("_bucket")
                for q in self.quantiles:
                    queries.append(Query(f"{base}.p{_pct(q)}", "quantile",
                                         f"histogram_quantile({q!r}, rate({sel}[{window_ms}ms]))",
                                         selector))
        return queries

    # ---------------------------------------------------------------- reading
    def frames(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> Iterator[RawFrame]:
        start, end = utc_bound(start), utc_bound(end)
        if start is None or end is None or end <= start:
            raise SourceError(f"{self.url}: a live source needs a window: --start and --end (start before end)")
        queries = self.plan(start, end)
        first, last = aligned_points(start, end, self.step_ms)
        parts: list[dict[str, np.ndarray]] = []
        self.stats.update(queries=len(queries), chunks=0, points=0, points_not_finite=0)
        if last >= first:
            for query in queries:
                for lo, hi in chunks(first, last, self.step_ms, self.max_points):
                    self.stats["chunks"] += 1
                    params = [("query", query.promql), ("start", _seconds(lo)), ("end", _seconds(hi)),
                              ("step", _seconds(self.step_ms))]
                    data = self._data("/api/v1/query_range", params, dict)
                    parts.extend(self._rows(query, data, params))
        self.stats["requests"] = self.client.requests
        frame = self._frame(parts)
        self.stats["points"] = len(frame)
        yield RawFrame("metrics", frame, origin=self.url)

    def _rows(self, query: Query, data: dict, params: list) -> Iterator[dict[str, Any]]:
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise SourceError(f"{self.url}: {remote._describe('/api/v1/query_range', params)}: expected a matrix "
                              f"result, got {str(data.get('resultType'))!r}")
        for item in data["result"]:
            values = item.get("values") or []
            if not values:
                continue
            pairs = np.asarray(values, dtype=object)
            times = np.asarray(pairs[:, 0], dtype="float64")
            numbers = np.asarray(pairs[:, 1].astype(str), dtype="float64")
            finite = np.isfinite(numbers)
            if not finite.all():
                self.stats["points_not_finite"] += int((~finite).sum())
                times, numbers = times[finite], numbers[finite]
            if not len(times):
                continue
            labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
            yield {"labels": labels, "name": query.name, "kind": query.kind,
                   "ms": np.round(times * 1000).astype("int64"), "values": numbers}

    def _frame(self, parts: list[dict[str, Any]]) -> pd.DataFrame:
        if not parts:
            return schema.empty("metrics")
        sizes = np.array([len(p["values"]) for p in parts])
        per_series = {"service": [], "environment": [], "name": [], "unit": [], "attributes": []}
        for p in parts:
            labels = dict(p["labels"])
            labels.pop("__name__", None)
            if p["kind"] == "quantile":
                labels.pop("le", None)
            service_key = next((k for k in self.service_labels if labels.get(k)), None)
            env_key = next((k for k in self.environment_labels if labels.get(k)), None)
            per_series["service"].append(labels[service_key] if service_key else self.default_service)
            per_series["environment"].append(labels[env_key] if env_key else self.default_environment)
            for key in (service_key, env_key):
                if key:
                    labels.pop(key)
            per_series["name"].append(p["name"])
            per_series["unit"].append(RATE_UNIT if p["kind"] == "counter" else "")
            per_series["attributes"].append(json.dumps(labels, sort_keys=True, ensure_ascii=False,
                                                       separators=(",", ":")))
        index = np.repeat(np.arange(len(parts)), sizes)
        ms = np.concatenate([p["ms"] for p in parts])
        frame = pd.DataFrame({
            "timestamp": pd.to_datetime(ms, unit="ms", utc=True).astype("datetime64[ns, UTC]"),
            **{col: np.asarray(vals, dtype=object)[index] for col, vals in per_series.items()
               if col in ("service", "environment", "name")},
            "value": np.concatenate([p["values"] for p in parts]),
            "unit": np.asarray(per_series["unit"], dtype=object)[index],
            "attributes": np.asarray(per_series["attributes"], dtype=object)[index],
        })
        return frame[schema.columns("metrics")]

    # ---------------------------------------------------------------- internals
    def _discover(self, start, end, enforce_limit: bool) -> dict[tuple[str, str], list[dict[str, str]]]:
        """(selector, metric name) -> label sets, in selector order; enforces ``max_series``."""
        found: dict[tuple[str, str], list[dict[str, str]]] = {}
        total = 0
        for selector in self.selectors:
            labelsets = self.series(selector, start, end)
            if enforce_limit and len(labelsets) > self.max_series:
                raise SourceError(f"{self.url}: selector {selector} matches {len(labelsets):,} series in the window, "
                                  f"more than max_series = {self.max_series:,}; narrow the selector (--match) or "
                                  f"raise max_series")
            total += len(labelsets)
            for ls in labelsets:
                name = ls.get("__name__", "")
                if not _METRIC_NAME.fullmatch(name):
                    continue
                found.setdefault((selector, name), []).append(ls)
        if enforce_limit and total > self.max_series:
            raise SourceError(f"{self.url}: the selectors {', '.join(self.selectors)} match {total:,} series in the "
                              f"window, more than max_series = {self.max_series:,}; narrow them or raise max_series")
        self.stats["series"] = total
        return found

    def _service(self, labels: dict[str, str]) -> str:
        return next((labels[k] for k in self.service_labels if labels.get(k)), self.default_service)

    def _meta_kind(self, name: str) -> str | None:
        """``counter``/``gauge`` from ``/api/v1/metadata`` (None when the server does not say)."""
        if self._metadata is None:
            try:
                data = self._data("/api/v1/metadata", [], dict)
            except SourceError:
                data = {}  # servers without the endpoint (older Thanos, some proxies): the name rule decides
            self._metadata = {str(k): str(v[0].get("type", "")) for k, v in data.items()
                              if isinstance(v, list) and v and isinstance(v[0], dict)}
        kind = self._metadata.get(name)
        if kind in ("counter", "gauge"):
            return kind
        if kind == "summary":  # the quantile series carry the family's own name
            return "gauge"
        for suffix in ("_bucket", "_count", "_sum"):
            family = self._metadata.get(name.removesuffix(suffix)) if name.endswith(suffix) else None
            if family in ("histogram", "summary"):
                return "counter"
        return None

    def _data(self, path: str, params: list, expected: type) -> Any:
        answer = self.client.get_json(path, params)
        if not isinstance(answer, dict) or answer.get("status") != "success" or not isinstance(answer.get("data"), expected):
            message = answer.get("error") if isinstance(answer, dict) else None
            raise SourceError(f"{self.url}: {remote._describe(path, params)}: unexpected answer"
                              f"{f': {message}' if message else ' (not a Prometheus API response)'}")
        return answer["data"]


# --------------------------------------------------------------------------- helpers

def with_name(selector: str, name: str) -> str:
    """``selector`` restricted to the metric ``name`` (``{job="x"}`` -> ``{__name__="name", job="x"}``)."""
    text = selector.strip()
    if text.startswith("{"):
        inner = text[1:].lstrip()
        return f'{{__name__="{name}"}}' if inner.startswith("}") else f'{{__name__="{name}", {inner}'
    return text  # starts with a metric name: it already is that name's selector


def aligned_points(start: pd.Timestamp, end: pd.Timestamp, step_ms: int) -> tuple[int, int]:
    """First and last evaluation time (epoch ms, multiples of ``step_ms``) inside ``[start, end)``."""
    lo = int(start.value // 1_000_000)
    hi = int(-(-end.value // 1_000_000)) - 1  # last millisecond before end
    first = -(-lo // step_ms) * step_ms
    last = (hi // step_ms) * step_ms
    return first, last


def chunks(first: int, last: int, step_ms: int, max_points: int) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` epoch-ms ranges of at most ``max_points`` points each, covering first..last once."""
    span = (max_points - 1) * step_ms
    lo = first
    while lo <= last:
        hi = min(lo + span, last)
        yield lo, hi
        lo = hi + step_ms


def duration_ms(value: Any, key: str, where: str, low: int = 1) -> int:
    """A duration as whole milliseconds: ``"60s"``, ``"1m30s"``, ``"500ms"``, a pandas alias (``"1min"``) or seconds."""
    ms: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ms = float(value) * 1000
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"(?:\d+(?:ms|s|m|h|d|w|y))+", text):
            ms = float(sum(int(n) * _DURATION_MS[u] for n, u in _DURATION.findall(text)))
        else:
            try:
                ms = float(text) * 1000
            except ValueError:
                try:
                    ms = pd.Timedelta(text).total_seconds() * 1000
                except (ValueError, TypeError):
                    ms = None
    if ms is None or ms != ms or ms < low or ms != int(ms):
        raise SourceError(f"{where}: {key}: expected a duration such as 60s, 1m, 500ms (whole milliseconds), "
                          f"got {value!r}")
    return int(ms)


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


def _range_params(start: pd.Timestamp | None, end: pd.Timestamp | None) -> list[tuple[str, str]]:
    out = []
    if start is not None:
        out.append(("start", _seconds(int(utc_bound(start).value // 1_000_000))))
    if end is not None:
        out.append(("end", _seconds(int(utc_bound(end).value // 1_000_000))))
    return out


def _pct(q: float) -> str:
    text = f"{q * 100:.6f}".rstrip("0").rstrip(".")
    return text


def _text_list(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if key in ("match", "selectors"):
            return [text] if text else []
        if text.startswith("["):
            value = yamlio.load(text, f"{where}: {key}", SourceError)
        else:
            value = [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SourceError(f"{where}: {key}: expected a list of non-empty strings, got {value!r}")
    return [v.strip() for v in value]


def _int(value: Any, key: str, where: str) -> int:
    try:
        number = int(str(value).replace("_", "")) if not isinstance(value, bool) else 0
    except ValueError:
        number = 0
    if number < 1:
        raise SourceError(f"{where}: {key}: expected a whole number >= 1, got {value!r}")
    return number


def _quantiles(value: Any, where: str) -> tuple[float, ...]:
    if isinstance(value, str):
        value = [v for v in value.strip("[] ").split(",") if v.strip()]
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = (float("nan"),)
    if not all(0 < q < 1 for q in out):
        raise SourceError(f"{where}: quantiles: expected numbers in (0, 1), e.g. [0.5, 0.95, 0.99], got {value!r}")
    return tuple(dict.fromkeys(out))


def _label_mapping(value: Any, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if value is None:
        return SERVICE_LABELS, ENVIRONMENT_LABELS
    if isinstance(value, str):
        value = yamlio.load(value, f"{where}: labels", SourceError)
    if not isinstance(value, dict) or set(value) - {"service", "environment"}:
        raise SourceError(f"{where}: labels: expected a mapping with service and/or environment, each a label "
                          f"name or a list of them (first present wins), got {value!r}")
    out = []
    for key, default in (("service", SERVICE_LABELS), ("environment", ENVIRONMENT_LABELS)):
        names = value.get(key, default)
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
            raise SourceError(f"{where}: labels.{key}: expected a label name or a list of them, got {names!r}")
        out.append(tuple(names))
    return out[0], out[1]


def labelling(options: dict[str, Any], where: str) -> tuple[tuple[str, ...], tuple[str, ...], str, str]:
    """The ``labels``, ``default_service`` and ``default_environment`` options of a live source (taken
    out of ``options``): which labels name the service and environment, and the fallbacks."""
    service_labels, environment_labels = _label_mapping(options.pop("labels", None), where)
    return (service_labels, environment_labels,
            _one_line(options.pop("default_service", DEFAULT_SERVICE), "default_service", where),
            _one_line(options.pop("default_environment", DEFAULT_ENVIRONMENT), "default_environment", where))


def _one_line(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or text_problem(value, multiline=False) is not None:
        raise SourceError(f"{where}: {key}: expected one line of text, got {value!r}")
    return value.strip()
