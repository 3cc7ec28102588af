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
- Exact duplicate rows are dropped and counted in the :class:`ValidationReport`; two rows with the
  same key but different content (a metric series with two values at one time, a span id used
  twice) are an error, never resolved silently.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pandera.pandas as pa

from ..errors import SchemaError, UnknownNameError

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

_ROWS_SHOWN = 5

# column -> (kind, required, default). kind: time | str | float | json | enum:<name>
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
        "summary": ("str?", True, None),
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
            data[col] = pd.Series([], dtype=object)
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

    Every failure is collected before raising (pandera's ``lazy=True``), so one error names every
    bad column with its first offending rows.

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

    out = pd.DataFrame(index=frame.index)
    for col, (kind, _, default) in spec.items():
        series = frame[col] if col in frame.columns else pd.Series(default, index=frame.index, dtype=object)
        if kind == "time":
            series, bad = to_utc(series, tz)
            if bad is not None and bad.any():
                expected = ("a timezone-aware time (naive times need the source's zone declared)"
                            if tz is None else "a parseable time")
                failures.append(_failure(col, expected, frame, bad))
        elif kind == "json":
            series, bad = _to_json(series)
            if bad.any():
                failures.append(_failure(col, "a JSON object (dict or JSON text)", frame, bad))
        elif kind in ("float", "duration"):
            series, bad = _to_float(series, nonnegative=(kind == "duration"))
            if bad.any():
                failures.append(_failure(col, "a finite number" + (" >= 0" if kind == "duration" else ""), frame, bad))
        else:
            series, bad = _to_text(series, allow_empty=kind.endswith("?") or kind.startswith("enum"),
                                   fill_missing=default if default is not None else None)
            if bad.any():
                failures.append(_failure(col, "a non-empty UTF-8 string" if not kind.endswith("?") else "a UTF-8 string", frame, bad))
        out[col] = series

    checks = _pandera_schema(table, max_body_chars)
    try:
        checks.validate(out, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures.extend(_from_pandera(exc.failure_cases, frame))
    if failures:
        raise SchemaError(table, source, _merge(failures))

    out = out.reset_index(drop=True)
    dup = out.duplicated(keep="first")
    report.duplicates_dropped = int(dup.sum())
    out = out[~dup]
    key = KEYS[table]
    if key:
        clash = out.duplicated(subset=list(key), keep=False)
        if clash.any():
            rows = frame.reset_index(drop=True)[~dup][clash.to_numpy()]
            raise SchemaError(table, source, [{
                "column": ", ".join(key),
                "check": "unique key (rows with the same key but different values conflict)",
                "count": int(clash.sum()),
                "rows": _rows(rows),
            }])
    time_col = TIME_COLUMN[table]
    if time_col:
        out = out.sort_values(time_col, kind="stable")
    out = out.reset_index(drop=True)
    report.rows_out = len(out)
    return Validated(out, report)


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


def to_attributes(value: Any) -> str:
    """Serialise a dict (or JSON text of an object, or None) as sorted-key JSON text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "{}"
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, dict):
        raise ValueError("attributes must be a JSON object")
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def parse_attributes(text: str | None) -> dict[str, Any]:
    """Inverse of :func:`to_attributes`."""
    return json.loads(text) if text else {}


# --------------------------------------------------------------------------- helpers

def _check_table(table: str) -> None:
    if table not in _COLUMNS:
        raise UnknownNameError("table", table, list(TABLES))


_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT)$", re.IGNORECASE)


def to_utc(series: pd.Series, tz: str | None = None) -> tuple[pd.Series, pd.Series | None]:
    """Parse ``series`` as times and convert to UTC; return (UTC series, mask of bad rows).

    The one time parser of the workbench: tz-aware values are converted, naive ones are refused
    (marked bad) unless ``tz`` names the zone they were written in, strings need an offset.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"), series.isna()
    if pd.api.types.is_datetime64_dtype(series.dtype):
        if tz is None:
            return pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]"), pd.Series(True, index=series.index)
        loc = series.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        return loc.astype("datetime64[ns, UTC]"), loc.isna()
    # object: strings, Timestamps, datetimes, or a mix
    values = series.astype(object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        naive = ~values.str.strip().str.contains(_OFFSET.pattern, case=False, regex=True).astype(bool)
        bad = pd.Series(False, index=series.index)
    else:
        naive = values.map(_is_naive).astype(bool)
        bad = values.isna() | values.map(lambda v: isinstance(v, (bytes, bool)))
    if tz is None:
        bad |= naive
    parsed = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
    aware_mask = ~naive & ~bad
    if aware_mask.any():
        parsed[aware_mask] = pd.to_datetime(values[aware_mask].map(_as_text), utc=True, errors="coerce", format="ISO8601")
    if tz is not None and (naive & ~bad).any():
        local = pd.to_datetime(values[naive & ~bad].map(_as_text), errors="coerce", format="ISO8601")
        parsed[naive & ~bad] = local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    bad |= parsed.isna()
    return parsed.astype("datetime64[ns, UTC]"), bad


def _as_text(v: Any) -> Any:
    if isinstance(v, pd.Timestamp) or hasattr(v, "isoformat"):
        return pd.Timestamp(v).isoformat()
    return v


def _is_naive(v: Any) -> bool:
    if isinstance(v, pd.Timestamp):
        return v.tzinfo is None
    if hasattr(v, "tzinfo") and hasattr(v, "isoformat"):
        return v.tzinfo is None
    if isinstance(v, str):
        return not _OFFSET.search(v.strip())
    return False


def _to_json(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    values = series.astype(object)
    if pd.api.types.infer_dtype(values, skipna=True) == "string" and not values.isna().any():
        # Attributes repeat a lot (pods, versions): convert each distinct text once.
        table = {}
        for v in pd.unique(values):
            try:
                table[v] = (to_attributes(v), False)
            except (ValueError, TypeError):
                table[v] = ("{}", True)
        pairs = values.map(table)
    else:
        def convert(v: Any) -> tuple[str, bool]:
            try:
                return to_attributes(v), False
            except (ValueError, TypeError):
                return "{}", True
        pairs = values.map(convert)
    out = pairs.map(lambda p: p[0]).astype(object)
    bad = pairs.map(lambda p: p[1]).astype(bool)
    return out, bad


def _to_float(series: pd.Series, nonnegative: bool) -> tuple[pd.Series, pd.Series]:
    if series.dtype == bool:
        values = pd.Series(np.nan, index=series.index)
    else:
        values = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = ~np.isfinite(values.to_numpy(dtype="float64", na_value=np.nan))
    if nonnegative:
        bad |= values.to_numpy(dtype="float64", na_value=np.nan) < 0
    return values, pd.Series(bad, index=series.index)


def _to_text(series: pd.Series, allow_empty: bool, fill_missing: Any) -> tuple[pd.Series, pd.Series]:
    values = series.astype(object)
    missing = values.isna()
    if fill_missing is not None:
        values = values.where(~missing, fill_missing)
        missing = pd.Series(False, index=series.index)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        # Fast path (the common case): every value is a str; check each distinct value once.
        text = values
        uniq = pd.Series(pd.unique(values), dtype=object)
        bad_uniq = uniq.map(_not_utf8).astype(bool)
        if not allow_empty:
            bad_uniq |= uniq.str.strip().eq("")
        bad = values.isin(set(uniq[bad_uniq])) if bad_uniq.any() else pd.Series(False, index=series.index)
        return text, bad
    else:
        bad = missing | values.map(lambda v: not isinstance(v, (str, int, np.integer)) or isinstance(v, bool))
        text = values.map(lambda v: str(v) if isinstance(v, (str, int, np.integer)) else "")
        bad |= text.map(_not_utf8).astype(bool)
    if not allow_empty:
        bad |= text.str.strip().eq("")
    return text.astype(object), bad


def _not_utf8(text: str) -> bool:
    # Lone surrogates are how undecodable bytes survive ``errors="surrogateescape"``.
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _pandera_schema(table: str, max_body_chars: int) -> pa.DataFrameSchema:
    cols: dict[str, pa.Column] = {}
    for col, (kind, _, _) in _COLUMNS[table].items():
        if kind == "enum:kind":
            cols[col] = pa.Column(object, pa.Check.isin(EVENT_KINDS, error=f"one of {', '.join(EVENT_KINDS)}"))
        elif kind == "enum:severity":
            cols[col] = pa.Column(object, pa.Check.isin(SEVERITIES, error=f"an OpenTelemetry severity text ({', '.join(SEVERITIES)})"))
        elif kind == "enum:status":
            cols[col] = pa.Column(object, pa.Check.isin(SPAN_STATUSES, error="ok or error"))
        elif kind == "body":
            cols[col] = pa.Column(object, pa.Check(lambda s: s.str.len() <= max_body_chars, error=f"a log body of at most {max_body_chars} characters"))
    return pa.DataFrameSchema(cols, strict=False)


def _from_pandera(cases: pd.DataFrame, frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        idx = [i for i in group["index"].tolist() if i is not None]
        mask = frame.index.isin(idx)
        out.append({"column": column, "check": check, "count": len(group), "rows": _rows(frame[mask])})
    return out


def _failure(col: str, expected: str, frame: pd.DataFrame, bad: pd.Series) -> dict[str, Any]:
    return {"column": col, "check": expected, "count": int(bad.sum()), "rows": _rows(frame[bad.to_numpy()])}


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for idx, row in frame.head(_ROWS_SHOWN).to_dict("index").items():
        rec = {"row": idx}
        for k, v in row.items():
            if isinstance(v, str):
                if _not_utf8(v):  # show undecodable bytes as escapes, never crash printing them
                    v = v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
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
