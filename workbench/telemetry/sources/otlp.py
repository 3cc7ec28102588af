"""The ``otlp`` source: OpenTelemetry OTLP/JSON as written by the collector's ``file`` exporter.

``otlp:PATH`` reads one file, or every ``*.json``/``*.jsonl`` (optionally ``.gz``) directly in a
folder, in name order. Each line is one JSON object holding ``resourceMetrics``,
``resourceLogs`` and/or ``resourceSpans`` (a file holding one pretty-printed object is read too).
OTLP/JSON encoding is expected: camelCase keys, 64-bit integers as strings, ids as hex (base64
ids, as some protobuf JSON writers emit, are converted to hex).

Mapping to the unified schema
-----------------------------
Resource
    ``service.name`` -> ``service`` (``"unknown_service"`` when absent, as OpenTelemetry SDKs
    name it); ``deployment.environment.name`` or ``deployment.environment`` -> ``environment``
    (``"unknown"`` when absent). Every other resource attribute, the scope name and version
    (``otel.scope.name``, ``otel.scope.version``) and the point/record/span attributes go into
    ``attributes``; on a key clash the innermost wins (point over scope over resource).
Metrics (one row per value; ``timestamp`` = ``timeUnixNano``)
    - gauge and sum points (``asDouble`` or ``asInt``): ``name`` = metric name, ``unit`` = metric
      unit. Sums are taken as reported (a cumulative counter stays cumulative); points flagged
      "no recorded value" are skipped.
    - histogram points: ``<name>.count`` (unit ``""``), ``<name>.sum`` (when present) and, when
      ``explicitBounds`` are present and the count is positive, ``<name>.p50``, ``<name>.p95`` and
      ``<name>.p99`` estimated by linear interpolation inside the bucket holding the rank (as
      Prometheus' ``histogram_quantile``); the lowest bucket starts at ``min`` when reported
      (else at 0 when its upper bound is positive), the overflow bucket ends at ``max`` when
      reported (else the estimate is the highest finite bound), and estimates are clamped to
      ``[min, max]``.
    - exponential histogram points: ``<name>.count`` and ``<name>.sum`` only.
    - summary points: ``<name>.count``, ``<name>.sum`` and one row per quantile, named
      ``<name>.p<100*q>`` (0.5 -> ``p50``, 0.999 -> ``p99.9``).
Logs
    ``timestamp`` = ``timeUnixNano``, or ``observedTimeUnixNano`` when that is 0/absent.
    ``severity`` = ``severityText`` normalised (:func:`workbench.telemetry.schema.normalize_severity`); when
    the text is absent or not a known level, ``severityNumber`` by range (1-4 TRACE, 5-8 DEBUG,
    9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL); UNSPECIFIED (0 or absent) maps to INFO.
    ``body`` = the string value, or compact JSON text of any other value kind; an empty or
    absent body becomes the record's ``eventName`` or else :data:`EMPTY_BODY` (the schema refuses
    empty bodies, and a record carrying everything in attributes is still a record).
    ``trace_id`` = ``traceId`` (hex, ``""`` when absent); ``spanId`` goes into attributes as
    ``span_id``.
Spans
    ``trace_id``, ``span_id``, ``parent_span_id`` (``""`` for roots), ``name``, ``start`` =
    ``startTimeUnixNano``, ``duration_ms`` = (end - start) / 1e6, ``status`` = ``error`` for
    status code 2 / ``STATUS_CODE_ERROR``, else ``ok``. The kind goes into attributes as
    ``span.kind`` (``server``, ``client`` ...), a status message as ``status.message``, and the
    environment (which the spans table has no column for) as ``deployment.environment``. Span
    events and links are not read.
Topology
    One ``caller -> callee`` row per distinct pair of services where a span's parent (found among
    all spans of the file set, regardless of the window) belongs to another service.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from .. import schema
from ...errors import SourceError
from . import register
from .base import RawFrame, Source, in_window, read_text, window

#: Body of a log record that has none (and no ``eventName``).
EMPTY_BODY = "(empty)"
DEFAULT_SERVICE = "unknown_service"
DEFAULT_ENVIRONMENT = "unknown"
#: Quantiles estimated from explicit-bucket histograms.
HISTOGRAM_QUANTILES = (0.5, 0.95, 0.99)

_PATTERNS = ("*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz")
_TOP_KEYS = ("resourceMetrics", "resourceLogs", "resourceSpans")
_SEVERITY_RANGES = ((1, "TRACE"), (5, "DEBUG"), (9, "INFO"), (13, "WARN"), (17, "ERROR"), (21, "FATAL"))
_SPAN_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_NO_RECORDED_VALUE = 1
_HEX = re.compile(r"[0-9a-fA-F]+")


@register("otlp")
class OtlpSource(Source):
    """Read OTLP/JSON files (collector ``file`` exporter output) into metrics, logs, spans, topology.

    Parameters
    ----------
    location : str
        One file, or a folder whose ``*.json``, ``*.jsonl`` (and ``.gz``) files are read in name
        order.

    Attributes
    ----------
    paths : list of Path
        The files that will be read.

    Raises
    ------
    SourceError
        The path does not exist, the folder holds no OTLP files, or an option was given (this
        source takes none).
    """

    def __init__(self, location: str, **options: Any):
        super().__init__(location, **options)
        if options:
            raise SourceError(f"otlp:{location}: unknown option(s) {', '.join(sorted(options))}; "
                              f"the otlp source takes none")
        path = Path(location).expanduser()
        if path.is_dir():
            found = {p for pattern in _PATTERNS for p in path.glob(pattern) if p.is_file()}
            if not found:
                raise SourceError(f"{path}: no OTLP files ({', '.join(_PATTERNS)}) in the folder")
            self.paths = sorted(found)
        elif path.is_file():
            self.paths = [path]
        else:
            raise SourceError(f"{path}: no such file or folder")

    def frames(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> Iterator[RawFrame]:
        """Yield per file its metrics, logs and spans in ``[start, end)``, then one topology frame.

        Yields
        ------
        RawFrame
            Frames with the unified columns (see the module docstring for the mapping); the
            topology frame (``caller``, ``callee``) is derived from all spans, not windowed.
        """
        start, end = window(start, end)
        all_spans: list[pd.DataFrame] = []
        for path in self.paths:
            for table, frame in read_documents(_documents(path), str(path)).items():
                if table == "spans":
                    all_spans.append(frame)
                time_col = schema.TIME_COLUMN[table]
                if start is not None or end is not None:
                    frame = frame[in_window(frame[time_col], start, end).to_numpy()].reset_index(drop=True)
                yield RawFrame(table, frame, origin=str(path))
        if all_spans:
            yield RawFrame("topology", topology(pd.concat(all_spans, ignore_index=True)), origin=self.location)


def read_documents(documents: Iterable[tuple[int, dict[str, Any]]], origin: str) -> dict[str, pd.DataFrame]:
    """Raw frames (``metrics``, ``logs``, ``spans``; only the non-empty ones) of OTLP/JSON objects.

    The mapping of the module docstring, shared by the file source and the OTLP/HTTP receiver
    (:mod:`workbench.inbound.otlp`, which converts protobuf to this JSON mapping first).

    Parameters
    ----------
    documents : iterable of (int, dict)
        (line number, export object with ``resourceMetrics``/``resourceLogs``/``resourceSpans``).
    origin : str
        Named in errors (a file, a request).

    Raises
    ------
    SourceError
        An object that is not valid OTLP/JSON, naming ``origin`` and the line.
    """
    rows: dict[str, list[dict[str, Any]]] = {"metrics": [], "logs": [], "spans": []}
    for number, doc in documents:
        try:
            _metrics(doc.get("resourceMetrics") or [], rows["metrics"])
            _logs(doc.get("resourceLogs") or [], rows["logs"])
            _spans(doc.get("resourceSpans") or [], rows["spans"])
        except MissingField as exc:
            raise SourceError(f"{origin}: line {number}: {exc}") from None
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise SourceError(f"{origin}: line {number}: not valid OTLP/JSON ({type(exc).__name__}: {exc})") from None
    out = {}
    for table, records in rows.items():
        if not records:
            continue
        try:
            out[table] = _frame(table, records)
        except (OverflowError, ValueError, TypeError) as exc:  # e.g. a time past year 2262 in nanoseconds
            raise SourceError(f"{origin}: {table}: a time is not a valid Unix nanosecond value "
                              f"({type(exc).__name__}: {exc})") from None
    return out


def topology(spans: pd.DataFrame) -> pd.DataFrame:
    """Caller -> callee service pairs from parent/child spans of different services.

    Parameters
    ----------
    spans : pandas.DataFrame
        Columns ``trace_id``, ``span_id``, ``parent_span_id``, ``service``.

    Returns
    -------
    pandas.DataFrame
        Columns ``caller`` (the parent span's service), ``callee`` (the child's); unique pairs,
        sorted.
    """
    if spans.empty:
        return schema.empty("topology")
    parents = spans[["trace_id", "span_id", "service"]].drop_duplicates(["trace_id", "span_id"])
    parents = parents.rename(columns={"span_id": "parent_span_id", "service": "caller"})
    children = spans.loc[spans["parent_span_id"] != "", ["trace_id", "parent_span_id", "service"]]
    edges = children.merge(parents, on=["trace_id", "parent_span_id"]).rename(columns={"service": "callee"})
    edges = edges.loc[edges["caller"] != edges["callee"], ["caller", "callee"]]
    return edges.drop_duplicates().sort_values(["caller", "callee"]).reset_index(drop=True)


# --------------------------------------------------------------------------- reading

def _documents(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) for each export line of ``path``."""
    text = read_text(path)
    try:
        # A pretty-printed single export (as in the OTLP examples) spans many lines.
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        yield 1, _check_doc(path, 1, whole)
        return
    # Not splitlines(): U+2028 and friends may sit raw inside a JSON string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}: line {number}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        yield number, _check_doc(path, number, doc)


def _check_doc(path: Path, number: int, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise SourceError(f"{path}: line {number}: expected a JSON object, got {type(doc).__name__}")
    if doc and not any(k in doc for k in _TOP_KEYS):
        raise SourceError(f"{path}: line {number}: not an OTLP export line (expected "
                          f"{', '.join(_TOP_KEYS)}; found keys {', '.join(list(doc)[:5])})")
    return doc


def _frame(table: str, records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=schema.columns(table))
    time_col = schema.TIME_COLUMN[table]
    # Straight from the Python ints: a float64 detour would round nanoseconds (2**53 < 1.7e18).
    nanos = pd.array([r[time_col] for r in records], dtype="Int64")
    frame[time_col] = pd.to_datetime(nanos, unit="ns", utc=True)
    return frame


# --------------------------------------------------------------------------- values

def any_value(value: Any) -> Any:
    """Decode an OTLP/JSON ``AnyValue`` (``{"stringValue": ...}`` ...) into a Python value."""
    if not isinstance(value, dict) or not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values") or [])
    if "bytesValue" in value:
        return value["bytesValue"]  # base64 text: JSON-safe as it is
    return None


def attributes(items: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    """Decode an OTLP/JSON attribute list ``[{key, value}]`` into a dict."""
    return {item["key"]: any_value(item.get("value")) for item in items or []}


def _nanos(value: Any) -> int | None:
    if value in (None, "", 0, "0"):
        return None
    return int(value)


class MissingField(ValueError):
    """An OTLP record without a field the schema cannot do without (named for the user)."""


def _required_nanos(value: Any, what: str, field: str, fallback: Any = None, fallback_field: str = "") -> int:
    nanos = _nanos(value)
    if nanos is None and fallback_field:
        nanos = _nanos(fallback)
    if nanos is None:
        also = f" (and {fallback_field})" if fallback_field else ""
        raise MissingField(f"{what}: missing {field}{also}, expected Unix nanoseconds")
    return nanos


def _hex_id(value: Any, size: int) -> str:
    """Lower-case hex of a trace (16 bytes) or span (8 bytes) id; ``""`` for absent or all-zero."""
    if not value:
        return ""
    text = str(value)
    if len(text) != 2 * size or not _HEX.fullmatch(text):
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == size:
            text = raw.hex()
    text = text.lower()
    return "" if set(text) == {"0"} else text


def _resource(block: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    attrs = attributes((block.get("resource") or {}).get("attributes"))
    service = attrs.pop("service.name", None) or DEFAULT_SERVICE
    env_new = attrs.pop("deployment.environment.name", None)
    env_old = attrs.pop("deployment.environment", None)
    return str(service), str(env_new or env_old or DEFAULT_ENVIRONMENT), attrs


def _scopes(block: dict[str, Any], key: str, old_key: str, items: str) -> Iterator[tuple[dict[str, Any], list]]:
    """(scope attributes, items) per scope block; ``instrumentationLibrary*`` is the pre-1.0 name."""
    for scope_block in block.get(key) or block.get(old_key) or []:
        scope = scope_block.get("scope") or scope_block.get("instrumentationLibrary") or {}
        extra = {}
        if scope.get("name"):
            extra["otel.scope.name"] = scope["name"]
        if scope.get("version"):
            extra["otel.scope.version"] = scope["version"]
        extra.update(attributes(scope.get("attributes")))
        yield extra, scope_block.get(items) or []


# --------------------------------------------------------------------------- metrics

def _metrics(blocks: list[dict[str, Any]], out: list[dict[str, Any]]) -> None:
    for block in blocks:
        service, env, res_attrs = _resource(block)
        for scope_attrs, metrics in _scopes(block, "scopeMetrics", "instrumentationLibraryMetrics", "metrics"):
            base = {**res_attrs, **scope_attrs}
            for metric in metrics:
                name, unit = metric["name"], metric.get("unit") or ""

                def row(ts: Any, suffix: str, value: Any, point: dict[str, Any], row_unit: str = unit) -> None:
                    when = _required_nanos(ts, f"metric {name!r} of service {service!r}: a data point", "timeUnixNano")
                    out.append({"timestamp": when, "service": service, "environment": env,
                                "name": name + suffix, "value": float(value), "unit": row_unit,
                                "attributes": {**base, **attributes(point.get("attributes"))}})

                for kind in ("gauge", "sum"):
                    for point in (metric.get(kind) or {}).get("dataPoints") or []:
                        if int(point.get("flags") or 0) & _NO_RECORDED_VALUE:
                            continue
                        value = point.get("asDouble", point.get("asInt"))
                        if value is None:
                            continue
                        row(point.get("timeUnixNano"), "", value, point)
                for kind in ("histogram", "exponentialHistogram"):
                    for point in (metric.get(kind) or {}).get("dataPoints") or []:
                        if int(point.get("flags") or 0) & _NO_RECORDED_VALUE:
                            continue
                        ts, count = point.get("timeUnixNano"), int(point.get("count") or 0)
                        row(ts, ".count", count, point, "")
                        if point.get("sum") is not None:
                            row(ts, ".sum", point["sum"], point)
                        bounds = [float(b) for b in point.get("explicitBounds") or []]
                        counts = [int(c) for c in point.get("bucketCounts") or []]
                        if kind == "histogram" and bounds and count > 0 and len(counts) == len(bounds) + 1:
                            for q in HISTOGRAM_QUANTILES:
                                est = histogram_quantile(q, bounds, counts, point.get("min"), point.get("max"))
                                row(ts, "." + _quantile_name(q), est, point)
                for point in (metric.get("summary") or {}).get("dataPoints") or []:
                    if int(point.get("flags") or 0) & _NO_RECORDED_VALUE:
                        continue
                    ts = point.get("timeUnixNano")
                    row(ts, ".count", int(point.get("count") or 0), point, "")
                    if point.get("sum") is not None:
                        row(ts, ".sum", point["sum"], point)
                    for qv in point.get("quantileValues") or []:
                        row(ts, "." + _quantile_name(float(qv.get("quantile") or 0.0)), qv.get("value") or 0.0, point)


def _quantile_name(q: float) -> str:
    return f"p{round(q * 100, 6):g}"


def histogram_quantile(q: float, bounds: list[float], counts: list[int], lo: Any = None, hi: Any = None) -> float:
    """Estimate quantile ``q`` of an explicit-bucket histogram by linear interpolation.

    Parameters
    ----------
    q : float
        In [0, 1].
    bounds : list of float
        The ``n`` explicit upper bounds; bucket ``i`` holds values in ``(bounds[i-1], bounds[i]]``,
        bucket ``n`` the overflow above ``bounds[-1]``.
    counts : list of int
        ``n + 1`` bucket counts (positive total).
    lo, hi : float, optional
        The reported minimum and maximum, used as the outer edges and to clamp the estimate.
    """
    total = sum(counts)
    rank = q * total
    cumulative = 0
    for i, c in enumerate(counts):
        if c > 0 and cumulative + c >= rank:
            break
        cumulative += c
    if i == len(bounds):  # overflow bucket: only the reported max says where it ends
        lower, upper = bounds[-1], float(hi) if hi is not None else bounds[-1]
    else:
        upper = bounds[i]
        if i > 0:
            lower = bounds[i - 1]
        elif lo is not None:
            lower = float(lo)
        else:
            lower = 0.0 if upper > 0 else upper
    est = lower + (upper - lower) * (rank - cumulative) / c if c else upper
    if lo is not None:
        est = max(est, float(lo))
    if hi is not None:
        est = min(est, float(hi))
    return est


# --------------------------------------------------------------------------- logs

def severity(text: Any, number: Any) -> str:
    """OpenTelemetry severity text from ``severityText`` or, failing that, ``severityNumber``.

    UNSPECIFIED (number 0 or absent, with no usable text) maps to ``INFO``.
    """
    if text:
        normalized = schema.normalize_severity(text)
        if normalized in schema.SEVERITIES:
            return normalized
    if isinstance(number, str) and not number.lstrip("-").isdigit():
        # protobuf JSON may spell the enum: "SEVERITY_NUMBER_WARN2"
        name = schema.normalize_severity(number.removeprefix("SEVERITY_NUMBER_"))
        return name if name in schema.SEVERITIES else "INFO"
    value = int(number or 0)
    result = "INFO"
    if 1 <= value <= 24:
        for first, name in _SEVERITY_RANGES:
            if value >= first:
                result = name
    return result


def _body(record: dict[str, Any]) -> str:
    value = any_value(record.get("body"))
    if value is None or value == "":
        return record.get("eventName") or EMPTY_BODY
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _logs(blocks: list[dict[str, Any]], out: list[dict[str, Any]]) -> None:
    for block in blocks:
        service, env, res_attrs = _resource(block)
        for scope_attrs, records in _scopes(block, "scopeLogs", "instrumentationLibraryLogs", "logRecords"):
            base = {**res_attrs, **scope_attrs}
            for number, rec in enumerate(records):
                when = _required_nanos(rec.get("timeUnixNano"), f"log record {number} of service {service!r}",
                                       "timeUnixNano", rec.get("observedTimeUnixNano"), "observedTimeUnixNano")
                attrs = {**base, **attributes(rec.get("attributes"))}
                span_id = _hex_id(rec.get("spanId"), 8)
                if span_id:
                    attrs["span_id"] = span_id
                out.append({
                    "timestamp": when,
                    "service": service, "environment": env,
                    "severity": severity(rec.get("severityText"), rec.get("severityNumber")),
                    "body": _body(rec), "trace_id": _hex_id(rec.get("traceId"), 16), "attributes": attrs,
                })


# --------------------------------------------------------------------------- spans

def _span_kind(kind: Any) -> str:
    if isinstance(kind, str) and not kind.isdigit():
        return kind.removeprefix("SPAN_KIND_").lower()
    return _SPAN_KINDS.get(int(kind or 0), str(kind))


def _is_error(status: dict[str, Any] | None) -> bool:
    code = (status or {}).get("code")
    return code in (2, "2", "STATUS_CODE_ERROR")


def _spans(blocks: list[dict[str, Any]], out: list[dict[str, Any]]) -> None:
    for block in blocks:
        service, env, res_attrs = _resource(block)
        # Spans have no environment column; keep it where the other tables have it.
        res_attrs = {**res_attrs, "deployment.environment": env}
        for scope_attrs, spans in _scopes(block, "scopeSpans", "instrumentationLibrarySpans", "spans"):
            base = {**res_attrs, **scope_attrs}
            for span in spans:
                what = f"span {span.get('name') or ''!r} of service {service!r}"
                start = _required_nanos(span.get("startTimeUnixNano"), what, "startTimeUnixNano")
                end = _required_nanos(span.get("endTimeUnixNano"), what, "endTimeUnixNano")
                attrs = {**base, **attributes(span.get("attributes")), "span.kind": _span_kind(span.get("kind"))}
                status = span.get("status") or {}
                if status.get("message"):
                    attrs["status.message"] = status["message"]
                out.append({
                    "trace_id": _hex_id(span.get("traceId"), 16), "span_id": _hex_id(span.get("spanId"), 8),
                    "parent_span_id": _hex_id(span.get("parentSpanId"), 8), "service": service,
                    "name": span.get("name") or "", "start": start,
                    "duration_ms": (end - start) / 1e6,
                    "status": "error" if _is_error(status) else "ok", "attributes": attrs,
                })
