"""The unified, OpenTelemetry-aligned telemetry schema and its validation at the edge.

Five tables (DESIGN.md): ``metrics``, ``logs``, ``spans``, ``events``, ``topology``. Every source
hands its frames to :func:`validate` once; past that edge, code trusts the schema.

Conventions of a validated frame
--------------------------------
- Times are ``datetime64[ns, UTC]``. Naive times are refused unless the caller declares the zone
  they were written in (``tz=``); strings must carry an offset (``Z`` or ``+hh:mm``) for the same
  reason.
- ``attributes`` is a JSON object serialised with sorted keys (a ``str``), so frames hash, compare
  and round-trip through Parquet and SQL unchanged. Sources may hand in dicts.
- Text columns are Arrow-backed ``str`` and follow :func:`workbench.formats.text_problem`: no NUL,
  no other C0 control character in names and ids (service, environment, metric and span names,
  ids, attribute keys), tab/LF/CR allowed only in multi-line text (log bodies, event summaries,
  attribute values). Service and environment names (and the topology's caller and callee) hold at
  most :data:`workbench.formats.MAX_NAME_CHARS` characters, like the knowledge base's; a log body
  at most :data:`MAX_BODY_CHARS`.
- Exact duplicate rows are dropped and counted in the :class:`ValidationReport`; two rows with the
  same key but different content (a metric series with two values at one time, a span id used
  twice) are an error, never resolved silently. :func:`merge` applies the same rules when new
  rows meet stored ones.

Validation is vectorised: columns are checked with Arrow and pandas operations, JSON attributes
and mixed-type text once per distinct value; no Python runs per row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..errors import SchemaError, UnknownNameError
from ..formats import MAX_NAME_CHARS
from .columns import distinct, not_utf8, parse_attributes, to_attributes, to_float, to_json, to_text, to_utc

__all__ = ["EVENT_KINDS", "KEYS", "SEVERITIES", "TABLES", "TIME_COLUMN", "ValidationReport", "Validated", "columns",
           "combine", "duplicate_rows", "empty", "merge", "normalize_severity", "parse_attributes", "required_columns",
           "to_attributes", "to_utc", "validate"]

TABLES = ("metrics", "logs", "spans", "events", "topology")

#: ``events.kind`` is a closed vocabulary (DESIGN.md).
EVENT_KINDS = (
    "deploy", "config_change", "feature_flag", "scale", "alert", "page",
    "incident_declared", "mitigation", "resolved", "note",
)
#: OpenTelemetry severity texts (the short names of the severity number ranges).
SEVERITIES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
SPAN_STATUSES = ("ok", "error")

#: A log body longer than this is refused: it is almost always a broken multi-line join or a
#: binary blob, and it would bloat every window query. Raise it with ``max_body_chars=``.
MAX_BODY_CHARS = 65_536
#: Columns that hold a service or environment name: bounded like the knowledge base's names
#: (:data:`workbench.formats.MAX_NAME_CHARS`), so an analysis never proposes a name it would refuse.
NAME_COLUMNS = frozenset({"service", "environment", "caller", "callee"})

_ROWS_SHOWN = 5

# column -> (kind, required, default). kind: time | str (one line, non-empty) | str? (one line, may
# be empty) | text? (multi-line, may be empty) | body (multi-line, non-empty, bounded) | float |
# duration | json | enum:<name>
_COLUMNS: dict[str, dict[str, tuple[str, bool, Any]]] = {
    "metrics": {
        "timestamp": ("time", True, None),
        "service": ("str", True, None),
        "environment": ("str", True, None),
        "name": ("str", True, None),
        "value": ("float", True, None),
        "unit": ("str?", False, ""),
        "attributes": ("json", False, "{}"),
    },
    "logs": {
        "timestamp": ("time", True, None),
        "service": ("str", True, None),
        "environment": ("str", True, None),
        "severity": ("enum:severity", True, None),
        "body": ("body", True, None),
        "trace_id": ("str?", False, ""),
        "attributes": ("json", False, "{}"),
    },
    "spans": {
        "trace_id": ("str", True, None),
        "span_id": ("str", True, None),
        "parent_span_id": ("str?", False, ""),
        "service": ("str", True, None),
        "name": ("str", True, None),
        "start": ("time", True, None),
        "duration_ms": ("duration", True, None),
        "status": ("enum:status", True, None),
        "attributes": ("json", False, "{}"),
    },
    "events": {
        "timestamp": ("time", True, None),
        "service": ("str", True, None),
        "environment": ("str", True, None),
        "kind": ("enum:kind", True, None),
        "summary": ("text?", True, None),
        "attributes": ("json", False, "{}"),
    },
    "topology": {
        "caller": ("str", True, None),
        "callee": ("str", True, None),
    },
}

#: Columns that identify a row: two rows equal on these but different elsewhere conflict.
KEYS: dict[str, tuple[str, ...] | None] = {
    "metrics": ("timestamp", "service", "environment", "name", "attributes"),
    "logs": None,
    "spans": ("trace_id", "span_id"),
    "events": None,
    "topology": ("caller", "callee"),
}

#: Key of :func:`merge` with ``replace=True`` for events (they have no key): an alert is the same
#: alert when its time, service, environment, kind and fingerprint attribute agree.
EVENT_REPLACE_KEY = ("timestamp", "service", "environment", "kind", "fingerprint")
#: Marks a frame :func:`validate` produced (``frame.attrs``): the store does not validate it again.
VALIDATED_ATTR = "workbench.validated"

#: The column each table is ordered and windowed by.
TIME_COLUMN = {"metrics": "timestamp", "logs": "timestamp", "spans": "start", "events": "timestamp", "topology": None}


def columns(table: str) -> list[str]:
    """The columns of ``table`` in schema order."""
    _check_table(table)
    return list(_COLUMNS[table])


def required_columns(table: str) -> list[str]:
    """The columns a source must provide for ``table`` (the others have defaults)."""
    _check_table(table)
    return [c for c, (_, req, _) in _COLUMNS[table].items() if req]


def empty(table: str) -> pd.DataFrame:
    """An empty, valid frame of ``table`` with the right dtypes."""
    _check_table(table)
    data = {}
    for col, (kind, _, _) in _COLUMNS[table].items():
        if kind == "time":
            data[col] = pd.Series([], dtype="datetime64[ns, UTC]")
        elif kind in ("float", "duration"):
            data[col] = pd.Series([], dtype="float64")
        else:
            data[col] = pd.Series([], dtype="str")
    return pd.DataFrame(data)


@dataclass
class ValidationReport:
    """What validation did to one table from one source.

    Attributes
    ----------
    table, source : str
    rows_in : int
        Rows handed in.
    rows_out : int
        Rows in the validated frame.
    duplicates_dropped : int
        Exact duplicate rows removed (all columns equal).
    """

    table: str
    source: str
    rows_in: int = 0
    rows_out: int = 0
    duplicates_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "source": self.source, "rows_in": self.rows_in,
                "rows_out": self.rows_out, "duplicates_dropped": self.duplicates_dropped}


@dataclass
class Validated:
    """A validated frame and its report."""

    frame: pd.DataFrame
    report: ValidationReport = field(repr=False)


def validate(table: str, frame: pd.DataFrame, source: str = "<frame>", tz: str | None = None,
             max_body_chars: int = MAX_BODY_CHARS) -> Validated:
    """Validate ``frame`` as the unified ``table`` and return it normalised.

    Every failure is collected before raising, so one error names every bad column with its
    first offending rows.

    Parameters
    ----------
    table : str
        One of :data:`TABLES`.
    frame : pandas.DataFrame
        The source's rows with the table's columns (extra columns are an error: a mapping that
        forgot one would otherwise lose it silently).
    source : str
        Where the rows came from; named in every error.
    tz : str, optional
        The time zone naive timestamps were written in (e.g. ``"UTC"``, ``"Asia/Shanghai"``).
        Without it naive timestamps are refused.
    max_body_chars : int
        Longest accepted log body.

    Returns
    -------
    Validated
        ``frame`` with columns in schema order, times as ``datetime64[ns, UTC]``, defaults
        filled, attributes as sorted-key JSON, exact duplicates dropped (counted in ``report``).

    Raises
    ------
    SchemaError
        With one entry per failed check: column, what was expected, count, first rows.
    """
    _check_table(table)
    spec = _COLUMNS[table]
    report = ValidationReport(table=table, source=source, rows_in=len(frame))
    failures: list[dict[str, Any]] = []

    missing = [c for c, (_, req, _) in spec.items() if req and c not in frame.columns]
    extra = [c for c in frame.columns if c not in spec]
    if missing:
        failures.append({"column": ", ".join(missing), "check": "a required column, missing", "count": len(frame), "rows": []})
    if extra:
        failures.append({"column": ", ".join(map(str, extra)), "check": f"only the columns of {table} ({', '.join(spec)}); map or drop these", "count": len(frame), "rows": []})
    if failures:
        raise SchemaError(table, source, failures)

    out = {}
    codes: dict[str, np.ndarray] = {}
    for col, (kind, _, default) in spec.items():
        series = frame[col] if col in frame.columns else pd.Series(default, index=frame.index, dtype="str")
        if kind == "time":
            series, bad = to_utc(series, tz)
            if bad is not None and bad.any():
                expected = ("a timezone-aware time (naive times need the source's zone declared)"
                            if tz is None else "a parseable time")
                failures.append(_failure(col, expected, frame, bad))
        elif kind == "json":
            series, bad, control, codes[col] = to_json(series)
            if bad.any():
                failures.append(_failure(col, "a JSON object (dict or JSON text)", frame, bad))
            if control.any():
                failures.append(_failure(col, "attribute keys without control characters and values without "
                                              "NUL or control characters other than tab, LF and CR", frame, control))
        elif kind in ("float", "duration"):
            series, bad = to_float(series, nonnegative=(kind == "duration"))
            if bad.any():
                failures.append(_failure(col, "a finite number" + (" >= 0" if kind == "duration" else ""), frame, bad))
        else:
            multiline = kind in ("body", "text?")
            optional = kind.endswith("?") or kind.startswith("enum")
            series, bad, control, codes[col] = to_text(series, allow_empty=optional,
                                                        fill_missing=default if default is not None else None,
                                                        multiline=multiline, by_value=kind != "body")
            if bad.any():
                failures.append(_failure(col, "a non-empty UTF-8 string" if not kind.endswith("?") else "a UTF-8 string",
                                         frame, bad))
            control &= ~bad
            if control.any():
                failures.append(_failure(col, "text without NUL or control characters other than tab, LF and CR"
                                         if multiline else "one line of text without control characters (no NUL, "
                                                           "tab or line break)", frame, control))
            allowed = _ENUMS.get(kind)
            if allowed is not None:
                outside = ~series.isin(allowed[0]).to_numpy(dtype=bool) & ~bad
                if outside.any():
                    failures.append(_failure(col, allowed[1], frame, outside))
            if col in NAME_COLUMNS:
                long = (series.str.len() > MAX_NAME_CHARS).fillna(False).to_numpy(dtype=bool)
                if long.any():
                    failures.append(_failure(col, f"a name of at most {MAX_NAME_CHARS} characters", frame, long))
            if kind == "body":
                long = _longer(series, max_body_chars)
                if long.any():
                    failures.append(_failure(col, f"a log body of at most {max_body_chars} characters", frame, long))
        out[col] = series.reset_index(drop=True) if isinstance(series, pd.Series) else series
    if failures:
        raise SchemaError(table, source, _merge(failures))

    result = pd.DataFrame(out)
    shown = frame.reset_index(drop=True)
    result, dropped = _dedupe(table, result, source, shown, {c: v for c, v in codes.items() if v is not None})
    report.duplicates_dropped = dropped
    result = _sorted(table, result)
    result.attrs[VALIDATED_ATTR] = table
    report.rows_out = len(result)
    return Validated(result, report)


def merge(table: str, stored: pd.DataFrame, new: pd.DataFrame, source: str = "<store>",
          replace: bool = False) -> tuple[pd.DataFrame, int]:
    """``stored`` and ``new`` rows (both validated) as one frame with the rules of :func:`validate`.

    Exact duplicates of stored rows are dropped; a new row whose key matches a stored row with
    other values is an error (:class:`SchemaError` naming ``source``), unless ``replace`` is
    True: then the new row replaces the stored one (for events: the stored event with the same
    time, service, environment, kind and ``fingerprint`` attribute, see :data:`EVENT_REPLACE_KEY`).

    Returns
    -------
    (pandas.DataFrame, int)
        The merged frame, ordered by time, and how many stored rows were replaced.
    """
    if stored is None or not len(stored):
        return new, 0
    if not len(new):
        return stored, 0
    stored = _conform(table, stored, new)
    both = pd.concat([stored, new], ignore_index=True)
    replaced = 0
    if replace:
        key = list(KEYS[table] or ())
        frame = both
        if table == "events":
            frame = both.assign(fingerprint=both["attributes"].str.extract(r'"fingerprint":"([^"]*)"', expand=False))
            key = list(EVENT_REPLACE_KEY)
        if key:
            later = np.array(frame.duplicated(subset=key, keep="last"), dtype=bool)  # a writable copy
            if table == "events":
                later &= frame["fingerprint"].notna().to_numpy(dtype=bool)
            later[len(stored):] = False  # only stored rows give way
            # An identical stored row is kept (and the new copy dropped below as a duplicate).
            identical = both.duplicated(keep=False).to_numpy(dtype=bool)
            drop = later & ~identical
            replaced = int(drop.sum())
            both = both[~drop].reset_index(drop=True)
    merged, _ = _dedupe(table, both, source, both)
    return _sorted(table, merged), replaced


def combine(table: str, frame: pd.DataFrame, source: str = "<frames>") -> Validated:
    """Validated frames concatenated into ``frame``: cross-frame duplicates dropped (counted), key
    conflicts refused, time order restored; the columns are not checked again."""
    report = ValidationReport(table=table, source=source, rows_in=len(frame))
    merged, dropped = _dedupe(table, frame.reset_index(drop=True), source, frame.reset_index(drop=True))
    merged = _sorted(table, merged)
    merged.attrs[VALIDATED_ATTR] = table
    report.duplicates_dropped, report.rows_out = dropped, len(merged)
    return Validated(merged, report)


def _conform(table: str, frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``like``'s dtypes where they differ (stored rows read back from Parquet take
    the validated rows' dtypes: time unit, string storage)."""
    out = {}
    for col in columns(table):
        series = frame[col]
        if col in like.columns and series.dtype != like[col].dtype:
            series = series.astype(like[col].dtype)
        out[col] = series
    return pd.DataFrame(out)


def _dedupe(table: str, frame: pd.DataFrame, source: str, shown: pd.DataFrame,
            codes: dict[str, np.ndarray] | None = None) -> tuple[pd.DataFrame, int]:
    """Drop exact duplicate rows (keep the first) and refuse key conflicts; ``shown`` names the rows.

    ``codes`` (column -> integer codes of equal values) spares hashing text columns again.
    """
    key = KEYS[table]
    if key:
        # Usually no key repeats: one pass over the key columns, the full-row pass only if needed.
        suspects = _duplicated(frame, list(key), codes, keep=False)
        if not suspects.any():
            return frame, 0
        # Duplicates and conflicts are both among the rows whose key repeats.
        rows = np.flatnonzero(suspects)
        part = frame.iloc[rows]
        copy = part.duplicated(keep="first").to_numpy(dtype=bool)
        clash = part[~copy].duplicated(subset=list(key), keep=False).to_numpy(dtype=bool)
        if clash.any():
            raise SchemaError(table, source, [{
                "column": ", ".join(key),
                "check": "unique key (rows with the same key but different values conflict)",
                "count": int(clash.sum()),
                "rows": _rows(shown.iloc[rows[~copy][clash]]),
            }])
        dup = np.zeros(len(frame), dtype=bool)
        dup[rows] = copy
        if not dup.any():
            return frame, 0
        return frame[~dup].reset_index(drop=True), int(dup.sum())
    dup = _duplicated(frame, list(frame.columns), codes, keep="first")
    if not dup.any():
        return frame, 0
    return frame[~dup].reset_index(drop=True), int(dup.sum())


def duplicate_rows(frame: pd.DataFrame) -> np.ndarray:
    """Mask of the rows that repeat an earlier row of ``frame`` exactly (all columns), as
    :func:`validate` finds them; text columns are hashed only among rows equal elsewhere."""
    return _duplicated(frame, list(frame.columns), None, keep="first")


def _duplicated(frame: pd.DataFrame, cols: list[str], codes: dict[str, np.ndarray] | None, keep: Any) -> np.ndarray:
    """``frame.duplicated(subset=cols, keep=keep)`` as a mask, from per-column integer codes.

    Text columns use ``codes`` when given (computed during validation), other columns are
    factorised here; the codes are combined into one row id per distinct combination. Text
    columns without codes (log bodies) are hashed only among the rows that the other columns
    already pair up: rows that differ there cannot be duplicates.
    """
    if not len(frame):
        return np.zeros(0, dtype=bool)
    later = [c for c in cols if (not codes or codes.get(c) is None) and _is_text(frame[c])]
    first = [c for c in cols if c not in later]
    if later and first:
        ids = _row_ids(frame, first, codes)
        suspects = np.flatnonzero(pd.Series(ids).duplicated(keep=False).to_numpy(dtype=bool))
        out = np.zeros(len(frame), dtype=bool)
        if len(suspects):
            head = pd.factorize(ids[suspects])[0].astype(np.int64)
            tail = pd.factorize(_row_ids(frame.iloc[suspects], later, None))[0].astype(np.int64)
            out[suspects] = pd.Series(head * len(suspects) + tail).duplicated(keep=keep).to_numpy(dtype=bool)
        return out
    return pd.Series(_row_ids(frame, cols, codes)).duplicated(keep=keep).to_numpy(dtype=bool)


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series.dtype) and series.dtype != object


def _row_ids(frame: pd.DataFrame, cols: list[str], codes: dict[str, np.ndarray] | None) -> np.ndarray:
    """One int64 id per distinct combination of ``cols`` (codes from ``codes`` or hashed here)."""
    ids = np.zeros(len(frame), dtype=np.int64)
    size = 1
    for col in cols:
        c = codes.get(col) if codes else None
        if c is None and _is_text(frame[col]):
            c = distinct(frame[col])[0]  # Arrow's hash: faster than pandas' on Arrow strings
        if c is None:
            c, uniques = pd.factorize(frame[col], use_na_sentinel=True)
            n = len(uniques) + 1
        else:
            n = int(c.max()) + 2 if len(c) else 1
        c = c.astype(np.int64) + 1  # -1 (missing) becomes 0
        if size * n >= 2**62:  # re-number the combinations so far before they overflow
            ids, uniques = pd.factorize(ids)
            size = len(uniques)
        ids = ids * n + c
        size *= n
    return ids


def _sorted(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    time_col = TIME_COLUMN[table]
    if time_col and not frame[time_col].is_monotonic_increasing:
        order = np.argsort(frame[time_col].to_numpy(dtype="datetime64[ns]").view("int64"), kind="stable")
        frame = frame.take(order).reset_index(drop=True)
    return frame


def _longer(text: pd.Series, limit: int) -> np.ndarray:
    """Which texts hold more than ``limit`` characters; only texts of more than ``limit`` bytes are counted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        size = np.asarray(pc.fill_null(pc.binary_length(pa.array(text, type=pa.large_string(), from_pandas=True)), 0),
                          dtype=np.int64)
    except (pa.ArrowException, UnicodeEncodeError, TypeError):  # lone surrogates: refused elsewhere
        return (text.str.len() > limit).fillna(False).to_numpy(dtype=bool)
    out = np.zeros(len(text), dtype=bool)
    rest = np.flatnonzero(size > limit)  # a character takes one to four bytes
    if len(rest):
        out[rest] = (text.iloc[rest].str.len() > limit).fillna(False).to_numpy(dtype=bool)
    return out


def normalize_severity(value: Any) -> str:
    """Map common level spellings to the OpenTelemetry severity text.

    ``WARNING`` → ``WARN``, ``CRITICAL``/``EMERG``/``ALERT``/``PANIC`` → ``FATAL``, ``ERR``/``SEVERE``
    → ``ERROR``, ``FINE``/``VERBOSE`` → ``DEBUG``, ``NOTICE`` → ``INFO``; numbered texts (``INFO2``)
    keep their range. Unknown values are returned upper-cased so validation names them.
    """
    text = str(value).strip().upper() if value is not None else ""
    text = re.sub(r"[0-9]+$", "", text)
    return _SEVERITY_ALIASES.get(text, text)


_SEVERITY_ALIASES = {
    "WARNING": "WARN", "CRITICAL": "FATAL", "CRIT": "FATAL", "EMERG": "FATAL", "EMERGENCY": "FATAL",
    "ALERT": "FATAL", "PANIC": "FATAL", "ERR": "ERROR", "SEVERE": "ERROR", "FINE": "DEBUG",
    "FINER": "TRACE", "FINEST": "TRACE", "VERBOSE": "DEBUG", "NOTICE": "INFO", "INFORMATION": "INFO",
    "D": "DEBUG", "I": "INFO", "W": "WARN", "E": "ERROR", "F": "FATAL", "V": "TRACE",
}


def _check_table(table: str) -> None:
    if table not in _COLUMNS:
        raise UnknownNameError("table", table, list(TABLES))


_ENUMS = {
    "enum:kind": (EVENT_KINDS, f"one of {', '.join(EVENT_KINDS)}"),
    "enum:severity": (SEVERITIES, f"an OpenTelemetry severity text ({', '.join(SEVERITIES)})"),
    "enum:status": (SPAN_STATUSES, "ok or error"),
}


def _failure(col: str, expected: str, frame: pd.DataFrame, bad: Any) -> dict[str, Any]:
    mask = np.asarray(bad, dtype=bool)
    return {"column": col, "check": expected, "count": int(mask.sum()), "rows": _rows(frame[mask])}


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for idx, row in frame.head(_ROWS_SHOWN).to_dict("index").items():
        rec = {"row": idx}
        for k, v in row.items():
            if isinstance(v, str):
                if not_utf8(v):  # show undecodable bytes as escapes, never crash printing them
                    try:  # bytes a reader kept with surrogateescape: \xff
                        v = v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                    except UnicodeEncodeError:  # any other lone surrogate: \ud800
                        v = v.encode("utf-8", "backslashreplace").decode("utf-8")
                if len(v) > 80:
                    v = v[:77] + "..."
            rec[str(k)] = v
        rows.append(rec)
    return rows


def _merge(failures: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for f in failures:
        seen.setdefault((f["column"], f["check"]), f)
    return list(seen.values())
