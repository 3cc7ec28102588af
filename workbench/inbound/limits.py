"""What every request body goes through before its content is looked at: size, compression, JSON
depth, acceptable text, and the per-token rate limit.

Each check raises :class:`RequestError` carrying the HTTP status, an error code and the payload
field at fault, which the handlers turn into ``{"error": {"code", "message", "field"}}``.
"""
from __future__ import annotations

import json
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from ..errors import WorkbenchError
from ..formats import text_problem

#: Content-Encoding values a receiver accepts.
ENCODINGS = ("identity", "gzip", "deflate")


class RequestError(WorkbenchError):
    """A request refused before or while its content is applied.

    Attributes
    ----------
    status : int
        HTTP status (400, 401, 403, 404, 409, 413, 415, 429, 503 ...).
    code : str
        Stable machine-readable code (``invalid``, ``too_large``, ``rate_limited`` ...).
    field : str or None
        The payload field at fault (``alerts[0].startsAt``), when one is.
    retry_after : int or None
        Seconds a client should wait (429, 503).
    details : dict or None
        Extra JSON for the answer (the current record of a 409).
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 retry_after: int | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.field = status, code, field
        self.retry_after, self.details = retry_after, details

    def to_dict(self) -> dict[str, Any]:
        """The error answer's body."""
        error: dict[str, Any] = {"code": self.code, "message": str(self), "field": self.field}
        if self.details:
            error.update(self.details)
        return {"error": error}


def invalid(field: str | None, message: str) -> RequestError:
    """A 400 naming the payload field."""
    return RequestError(400, "invalid", f"{field}: {message}" if field else message, field=field)


def request_time(value: Any, where: str) -> datetime:
    """A time a sender gave (RFC 3339 / ISO 8601 with a zone) as an aware UTC datetime, else a 400
    naming ``where``; within the telemetry store's years (1677-2262), microseconds kept."""
    if not isinstance(value, str):
        raise invalid(where, f"expected an RFC 3339 time with a zone, got {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise invalid(where, f"expected an RFC 3339 time with a zone, got {value!r}") from None
    if pd.isna(ts) or ts.tzinfo is None:
        raise invalid(where, f"expected an RFC 3339 time with a zone (Z or +01:00), got {value!r}")
    try:
        ts = ts.tz_convert("UTC").as_unit("ns")  # the telemetry store's resolution: years 1677-2262
    except (OverflowError, ValueError):
        raise invalid(where, f"expected a time between 1677 and 2262, got {value!r}") from None
    return ts.floor("us").to_pydatetime()  # the knowledge base keeps microseconds


def from_store_error(exc: Exception) -> RequestError:
    """What a knowledge-base error means for a sender.

    A refused value (``field '...': expected ...``) is the request's fault: 400, not retried. A
    write that raced another one (:class:`~workbench.errors.ConflictError`) or a database that is
    busy or down is not: 503 with ``Retry-After``, which Alertmanager and the OTLP exporters retry,
    so a page is never lost to a moment of contention.
    """
    from ..errors import ConflictError, NotFoundError

    text = str(exc)
    if isinstance(exc, NotFoundError):
        return RequestError(404, "not_found", text)
    if not isinstance(exc, ConflictError) and "field '" in text:
        name = text.split("field '", 1)[1].split("'", 1)[0]
        return RequestError(400, "invalid", text, field=name)
    return RequestError(503, "retry", f"{text}; retry", retry_after=1)


def decode_body(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """The request body decompressed (``gzip``/``deflate``), refusing more than ``max_bytes``.

    Decompression is bounded: a small gzip bomb is refused once the output passes ``max_bytes``,
    without inflating it further.
    """
    if len(body) > max_bytes:
        raise RequestError(413, "too_large", f"the request body has {len(body)} bytes; the limit is {max_bytes} "
                                             f"(receivers.max_body)")
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ENCODINGS:
        raise RequestError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use "
                                                        f"{', '.join(ENCODINGS)}", field="Content-Encoding")
    # gzip: 16 + MAX_WBITS; deflate as HTTP means it (zlib stream), raw deflate tolerated too.
    for wbits in ((16 + zlib.MAX_WBITS,) if encoding == "gzip" else (zlib.MAX_WBITS, -zlib.MAX_WBITS)):
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, max_bytes + 1)
        except zlib.error:
            continue
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise RequestError(413, "too_large", f"the decompressed body is larger than {max_bytes} bytes "
                                                 f"(receivers.max_body)")
        if not inflater.eof:
            break
        return out
    raise RequestError(400, "undecodable", f"the body is not valid {encoding} data", field="Content-Encoding")


def parse_json(body: bytes, max_depth: int) -> Any:
    """JSON from UTF-8 bytes, nested at most ``max_depth`` deep, every string acceptable text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, "undecodable", f"the body is not UTF-8 (byte offset {exc.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(400, "undecodable", f"the body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                               f"column {exc.colno}") from None
    except RecursionError:
        raise RequestError(400, "too_deep", f"the JSON is nested deeper than {max_depth} levels "
                                            f"(receivers.max_depth)") from None
    check_depth(value, max_depth)
    check_text(value)
    return value


def check_depth(value: Any, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                raise RequestError(400, "too_deep", f"the JSON is nested deeper than {max_depth} levels "
                                                    f"(receivers.max_depth)")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def check_text(value: Any, path: str = "") -> None:
    """Refuse the first string the workbench's text rule refuses (:func:`workbench.formats.text_problem`:
    values as multi-line text, keys as names), naming its JSON path. Everything else (quotes, markup,
    newlines, any script) is data and is stored byte-identically."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item, multiline=True)
            if problem:
                raise invalid(where or "(body)", f"contains {problem}")
        elif isinstance(item, dict):
            for key, child in item.items():
                here = f"{where}.{key}" if where else str(key)
                problem = text_problem(key, multiline=False)
                if problem:
                    raise invalid(here, f"the key contains {problem}")
                stack.append((child, here))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))


# --------------------------------------------------------------------------- rate limit

@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per key (an integration token's id): ``rate`` requests a second sustained,
    ``burst`` at once. Thread-safe; :meth:`take` raises a 429 :class:`RequestError` with the
    seconds until a request would pass."""

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic):
        self.rate, self.burst, self._clock = float(rate), int(burst), clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> None:
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens < cost:
                wait = max(1, int((cost - bucket.tokens) / self.rate + 0.999))
                raise RequestError(429, "rate_limited", f"too many requests for this token (receivers.rate "
                                                        f"{self.rate:g}/s, burst {self.burst}); retry in {wait} s",
                                   retry_after=wait)
            bucket.tokens -= cost
