"""OTLP/HTTP requests (``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``) into validated tables.

Bodies are protobuf (``application/x-protobuf``, what the SDK exporters send by default) or
OTLP/JSON (``application/json``). Protobuf is decoded with ``opentelemetry-proto`` and converted
to the OTLP/JSON mapping before the one OTLP reader of the workbench reads it
(:func:`workbench.telemetry.sources.otlp.read_documents`): ``MessageToDict`` alone is NOT that
mapping (it writes trace and span ids as base64 and enums as names), so ids are turned into hex
and enums kept as integers. The rows then pass the same validation as every source
(:func:`workbench.telemetry.schema.validate`).

Answers follow the OTLP/HTTP specification: success is 200 with an empty ``Export*ServiceResponse``
(or one whose ``partial_success`` counts the rejected items and says why), encoded like the
request; an undecodable body is 400 (not retried by exporters); a full ingest queue is 503 with
``Retry-After`` (retried). When a request's rows fail validation, each resource block is
validated on its own: the valid blocks are stored and the others reported in ``partial_success``;
when none is valid the answer is 400 naming the column and rows.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import MissingDependencyError, SchemaError, SourceError
from ..telemetry import schema
from ..telemetry.sources.otlp import read_documents, topology
from .limits import RequestError, check_depth, parse_json

#: signal -> (top-level key of an export request, item list key per scope, rejected-count field)
SIGNALS = {
    "traces": ("resourceSpans", ("scopeSpans", "spans"), "rejectedSpans"),
    "logs": ("resourceLogs", ("scopeLogs", "logRecords"), "rejectedLogRecords"),
    "metrics": ("resourceMetrics", ("scopeMetrics", "metrics"), "rejectedDataPoints"),
}
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
EXTRA = "postmortem-workbench[receivers]"
_ID_KEYS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


@dataclass
class OtlpBatch:
    """One decoded OTLP request.

    Attributes
    ----------
    signal : str
        ``traces``, ``logs`` or ``metrics``.
    tables : dict of DataFrame
        Validated rows per unified table (spans also give ``topology``).
    items : int
        Spans, log records or data points in the request.
    rejected : int
        Items of resource blocks that failed validation (not stored).
    message : str
        Why they were rejected ("" when none was).
    """

    signal: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    items: int = 0
    rejected: int = 0
    message: str = ""

    @property
    def rows(self) -> int:
        return sum(len(f) for t, f in self.tables.items() if t != "topology")


def _proto(signal: str) -> tuple[Any, Any]:
    """(request class, response class) of a signal, from ``opentelemetry-proto``."""
    try:
        if signal == "traces":
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
            return pb.ExportTraceServiceRequest, pb.ExportTraceServiceResponse
        if signal == "logs":
            from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as pb
            return pb.ExportLogsServiceRequest, pb.ExportLogsServiceResponse
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb
        return pb.ExportMetricsServiceRequest, pb.ExportMetricsServiceResponse
    except ImportError:
        raise MissingDependencyError(f"OTLP protobuf needs opentelemetry-proto: pip install '{EXTRA}'") from None


def media_type(content_type: str | None) -> str:
    """``protobuf`` or ``json`` for a Content-Type header (415 for anything else)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in (PROTOBUF, "application/protobuf"):
        return "protobuf"
    if kind == JSON:
        return "json"
    raise RequestError(415, "unsupported_media_type", f"Content-Type {content_type!r}: expected {PROTOBUF} or {JSON}",
                       field="Content-Type")


def decode(signal: str, body: bytes, kind: str, *, max_depth: int, max_items: int) -> dict[str, Any]:
    """The request as an OTLP/JSON object (hex ids, integer enums), whatever its encoding.

    Raises
    ------
    RequestError
        400 for a body that does not decode, 413 when it holds more than ``max_items`` items.
    """
    if signal not in SIGNALS:
        raise RequestError(404, "not_found", f"unknown OTLP signal {signal!r}")
    if kind == "protobuf":
        request_class, _ = _proto(signal)
        try:
            message = request_class.FromString(body)
        except Exception as exc:  # protobuf's DecodeError, or a RecursionError from nesting
            raise RequestError(400, "undecodable", f"the body is not a valid {request_class.__name__} "
                                                   f"({type(exc).__name__}: {exc})") from None
        _limit(signal, _count_proto(signal, message), max_items)
        from google.protobuf import json_format

        doc = json_format.MessageToDict(message, use_integers_for_enums=True)
        _hex_ids(doc)
        # AnyValue nests (arrays, key-value lists): bound it like JSON, plus protobuf's own levels.
        # No text check here: protobuf strings are valid UTF-8 by construction, and what else a
        # string may hold is the telemetry schema's rule, applied to every source alike.
        check_depth(doc, max_depth + 8)
        return doc
    doc = parse_json(body, max_depth + 8)
    if not isinstance(doc, dict):
        raise RequestError(400, "invalid", f"expected an OTLP/JSON object, got {type(doc).__name__}")
    _limit(signal, _count_json(signal, doc), max_items)
    return doc


def read(signal: str, doc: dict[str, Any], origin: str) -> OtlpBatch:
    """Validated tables of one OTLP/JSON request (see the module docstring for partial success)."""
    top = SIGNALS[signal][0]
    blocks = doc.get(top) or []
    if not isinstance(blocks, list):
        raise RequestError(400, "invalid", f"{top}: expected a list", field=top)
    batch = OtlpBatch(signal, items=_count_json(signal, doc))
    try:
        batch.tables = _tables({top: blocks}, origin)
        return batch
    except (SchemaError, SourceError) as exc:
        if len(blocks) <= 1:
            raise RequestError(400, "invalid", str(exc), field=top) from None
        first_error = str(exc)
    parts, errors = [], []
    for i, block in enumerate(blocks):
        try:
            parts.append(_tables({top: [block]}, f"{origin} {top}[{i}]"))
        except (SchemaError, SourceError) as exc:
            batch.rejected += _count_json(signal, {top: [block]})
            errors.append(str(exc))
    if not parts:
        raise RequestError(400, "invalid", first_error, field=top)
    batch.tables = _combine(parts, origin)
    batch.message = f"{len(errors)} of {len(blocks)} resource blocks rejected: " + " | ".join(errors[:3])
    return batch


def response(signal: str, kind: str, batch: OtlpBatch | None) -> tuple[bytes, str]:
    """(body, Content-Type) of a success answer: an empty response, or one with ``partial_success``."""
    rejected_field = SIGNALS[signal][2]
    partial = batch is not None and batch.rejected > 0
    if kind == "json":
        body: dict[str, Any] = {}
        if partial:
            body["partialSuccess"] = {rejected_field: str(batch.rejected), "errorMessage": batch.message}
        return json.dumps(body).encode(), JSON
    _, response_class = _proto(signal)
    message = response_class()
    if partial:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in rejected_field)
        setattr(message.partial_success, snake, batch.rejected)
        message.partial_success.error_message = batch.message
    return message.SerializeToString(), PROTOBUF


def status_body(kind: str, status: int, message: str) -> tuple[bytes, str]:
    """An error answer as OTLP asks: a ``google.rpc.Status`` in the request's encoding.

    The protobuf form is written by hand (field 1 ``code``, field 2 ``message``) so the answer
    needs no googleapis package.
    """
    code = {400: 3, 401: 16, 403: 7, 404: 5, 413: 3, 415: 3, 429: 8, 503: 14}.get(status, 2)
    if kind == "json":
        return json.dumps({"code": code, "message": message}).encode(), JSON
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text, PROTOBUF


# --------------------------------------------------------------------------- internals

def _tables(doc: dict[str, Any], origin: str) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for table, frame in read_documents([(1, doc)], origin).items():
        out[table] = schema.validate(table, frame, source=origin).frame
    if "spans" in out and not out["spans"].empty:
        out["topology"] = schema.validate("topology", topology(out["spans"]), source=origin).frame
    return out


def _combine(parts: list[dict[str, pd.DataFrame]], origin: str) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for table in schema.TABLES:
        frames = [p[table] for p in parts if table in p]
        if frames:
            merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            out[table] = schema.validate(table, merged, source=origin).frame
    return out


def _limit(signal: str, count: int, max_items: int) -> None:
    if count > max_items:
        raise RequestError(413, "too_large", f"the request holds {count} {signal} items; the limit is {max_items} "
                                             f"(receivers.max_items): send smaller batches")


def _count_proto(signal: str, message: Any) -> int:
    if signal == "traces":
        return sum(len(s.spans) for r in message.resource_spans for s in r.scope_spans)
    if signal == "logs":
        return sum(len(s.log_records) for r in message.resource_logs for s in r.scope_logs)
    total = 0
    for r in message.resource_metrics:
        for s in r.scope_metrics:
            for m in s.metrics:
                kind = m.WhichOneof("data")
                total += len(getattr(m, kind).data_points) if kind else 0
    return total


def _count_json(signal: str, doc: dict[str, Any]) -> int:
    top, (scope_key, item_key), _ = SIGNALS[signal]
    total = 0
    for block in _list(doc.get(top)):
        for scope in _list(_dict(block).get(scope_key)):
            items = _list(_dict(scope).get(item_key))
            if signal != "metrics":
                total += len(items)
                continue
            for metric in items:
                for kind in ("gauge", "sum", "histogram", "exponentialHistogram", "summary"):
                    total += len(_list(_dict(_dict(metric).get(kind)).get("dataPoints")))
    return total


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _hex_ids(node: Any) -> None:
    """Trace and span ids in place: protobuf JSON's base64 -> OTLP/JSON's lower-case hex."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _ID_KEYS and isinstance(value, str):
                    try:
                        item[key] = base64.b64decode(value, validate=True).hex()
                    except (binascii.Error, ValueError):
                        pass  # left for the reader, which names what it cannot use
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
