"""The ``files`` source's readers: one CSV, Parquet or JSON-lines file read, windowed and mapped
to the unified columns of its table (the rules are described in :mod:`workbench.telemetry.sources.files`)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...errors import SourceError
from .. import schema
from .base import in_window, read_text
from .manifest import TIME_UNITS, TableEntry, did_you_mean


_OPTIONAL_TEXT = frozenset({"unit", "trace_id", "parent_span_id", "summary"})

_NUMERIC_COLUMNS = frozenset({"value", "duration_ms"})


def read_file(entry: TableEntry, path: Path, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    """Read one file and map it to the unified columns of ``entry.table``, windowed."""
    fmt = entry.format_of(path)
    time_col = schema.TIME_COLUMN[entry.table]
    if fmt == "parquet":
        raw, locate = _read_parquet(entry, path, time_col, start, end)
    elif fmt == "csv":
        raw, locate = _read_csv(entry, path)
    else:
        raw, locate = _read_jsonl(path)
    frame = _map_columns(entry, path, raw, locate)
    if time_col and time_col in frame.columns and len(frame):
        # Validation parses the same way; parsed times replace the raw ones only when every row
        # parsed, so a bad row still shows its original text in the error.
        times, bad = schema.to_utc(frame[time_col], entry.tz)
        if not bad.any():
            frame[time_col] = times
        if start is not None or end is not None:
            times = times.where(~bad)
            frame = frame[in_window(times, start, end).to_numpy()].reset_index(drop=True)
    return frame


def _source_column(entry: TableEntry, unified: str, available: Any) -> str | None:
    if unified in entry.columns:
        return entry.columns[unified]
    if unified not in entry.constants and unified in available:
        return unified
    return None


def _used_columns(entry: TableEntry, available: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(used file columns, declared-but-missing file columns, unmapped file columns)."""
    used: list[str] = []
    for unified in schema.columns(entry.table):
        col = _source_column(entry, unified, available)
        if col is not None and col not in used:
            used.append(col)
    used += [c for c in entry.attributes_from if c not in used]
    missing = [c for c in used if c not in available]
    unmapped = [c for c in available if c not in used]
    return used, missing, unmapped


def _check_columns(entry: TableEntry, path: Path, available: list[str]) -> list[str]:
    used, missing, unmapped = _used_columns(entry, available)
    if missing:
        raise SourceError(f"{path}: column(s) {', '.join(map(repr, missing))} declared in {entry.where} "
                          f"are not in the file{did_you_mean(missing[0], available)}; "
                          f"the file has: {', '.join(map(str, available))}")
    if unmapped:
        raise SourceError(
            f"{path}: column(s) {', '.join(map(repr, unmapped))} are not mapped to the {entry.table} table; "
            f"list them in attributes_from to keep them as attributes, or map them with "
            f"columns: {{<{entry.table} column>: <file column>}} ({entry.table} columns: "
            f"{', '.join(schema.columns(entry.table))})")
    return used


def _read_parquet(entry: TableEntry, path: Path, time_col: str | None, start: pd.Timestamp | None,
                  end: pd.Timestamp | None) -> tuple[pd.DataFrame, Callable[[int], str]]:
    try:
        file_schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from None
    available = list(file_schema.names)
    used = _check_columns(entry, path, available)
    filters = None
    src = _source_column(entry, time_col, available) if time_col else None
    if src is not None and (start is not None or end is not None):
        filters = _parquet_filter(file_schema.field(src), entry, start, end)
    try:
        table = pq.read_table(path, columns=used, filters=filters)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: cannot read the Parquet data ({exc})") from None
    frame = table.to_pandas(types_mapper=None)
    return frame, lambda i: f"row {i + 1}"


def _parquet_filter(column: pa.Field, entry: TableEntry, start: pd.Timestamp | None,
                    end: pd.Timestamp | None) -> pc.Expression | None:
    """A superset filter for the window on a timestamp or epoch column (exact filtering follows).

    Naive timestamps are widened by a day because their zone offset is applied only after the
    read; aware and epoch columns by one second for unit truncation.
    """
    typ = column.type
    field_ = pc.field(column.name)
    if pa.types.is_timestamp(typ):
        if typ.tz is None and entry.tz is None:
            return None
        margin = pd.Timedelta(days=1) if typ.tz is None else pd.Timedelta(seconds=1)

        def scalar(ts: pd.Timestamp) -> pa.Scalar:
            if typ.tz is None:
                ts = ts.tz_convert(entry.tz).tz_localize(None)
                return pa.scalar(ts.value, type=pa.timestamp("ns")).cast(typ, safe=False)
            return pa.scalar(ts.value, type=pa.timestamp("ns", "UTC")).cast(typ, safe=False)
    elif (pa.types.is_integer(typ) or pa.types.is_floating(typ)) and entry.time_unit:
        margin = pd.Timedelta(seconds=1)
        per = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[entry.time_unit]

        def scalar(ts: pd.Timestamp) -> pa.Scalar:
            return pa.scalar(ts.value // per).cast(typ, safe=False)
    else:
        return None
    expr = None
    if start is not None:
        expr = field_ >= scalar(start - margin)
    if end is not None:
        upper = field_ < scalar(end + margin)
        expr = upper if expr is None else expr & upper
    return expr


def _read_csv(entry: TableEntry, path: Path) -> tuple[pd.DataFrame, Callable[[int], str]]:
    text = read_text(path)
    # The csv module finds malformed rows (wrong field count, bad quoting) with their line;
    # pandas would pad short rows with NaN without a word.
    reader = csv.reader(io.StringIO(text), strict=True)
    header: list[str] | None = None
    lines: list[int] = []
    previous = 0
    try:
        for row in reader:
            first_line = previous + 1
            previous = reader.line_num
            if not row:
                continue
            if header is None:
                header = row
                continue
            if len(row) != len(header):
                raise SourceError(f"{path}: line {first_line}: expected {len(header)} fields "
                                  f"(as in the header), found {len(row)}")
            lines.append(first_line)
    except csv.Error as exc:
        raise SourceError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None
    if header is None:
        raise SourceError(f"{path}: empty CSV file (no header line)")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise SourceError(f"{path}: duplicate column name(s) in the header: {', '.join(dupes)}")
    _check_columns(entry, path, header)
    # CSV carries no types: everything but the numeric and time columns stays text, so ids keep
    # leading zeros and a folded version "1.10" does not become the number 1.1.
    typed = {_source_column(entry, c, header) for c in _NUMERIC_COLUMNS | {schema.TIME_COLUMN[entry.table]}}
    text_cols = [c for c in header if c not in typed]
    try:
        frame = pd.read_csv(io.StringIO(text), dtype={c: str for c in text_cols},
                            keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        raise SourceError(f"{path}: unreadable CSV ({exc})") from None
    if len(frame) != len(lines):
        raise SourceError(f"{path}: read {len(frame)} rows but found {len(lines)} records; "
                          f"check quoting and blank lines")
    return frame, lambda i: f"line {lines[i]}"


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, Callable[[int], str]]:
    text = read_text(path)
    fast = _read_jsonl_arrow(text)
    if fast is not None:
        return fast
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    # Not splitlines(): U+2028 and friends may sit raw inside a JSON string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}: line {number}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise SourceError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
        lines.append(number)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return frame, lambda i: f"line {lines[i]}"


#: Arrow types the JSON-lines fast path accepts: exactly what ``json.loads`` would give per value.
_FLAT_JSON_TYPES = (pa.types.is_string, pa.types.is_int64, pa.types.is_floating, pa.types.is_boolean, pa.types.is_null)


def _read_jsonl_arrow(text: str) -> tuple[pd.DataFrame, Callable[[int], str]] | None:
    """Arrow's multi-threaded JSON reader, when it reads the file exactly as ``json.loads`` would.

    Fields whose first value is text are read as text (Arrow would otherwise turn ISO times into
    timestamps). Anything else (a nested object, a field changing type, a duplicate key, an
    integer beyond float precision, a line that is not an object) returns None, and the line-by-
    line reader reads the file and names the offending line.
    """
    import pyarrow.json as pajson

    head = text.lstrip()
    if not head.startswith("{"):
        return None
    try:
        first = json.loads(head[:head.find("\n")] if "\n" in head else head)
    except json.JSONDecodeError:
        return None
    if not isinstance(first, dict):
        return None
    schema_ = pa.schema([(k, pa.string()) for k, v in first.items() if isinstance(v, str)])
    try:
        table = pajson.read_json(io.BytesIO(text.encode("utf-8")), parse_options=pajson.ParseOptions(
            explicit_schema=schema_, unexpected_field_behavior="infer", newlines_in_values=False))
    except (pa.ArrowException, ValueError):
        return None
    for field_ in table.schema:
        if not any(check(field_.type) for check in _FLAT_JSON_TYPES):
            return None
        if pa.types.is_floating(field_.type):
            biggest = pc.max(pc.abs(table[field_.name])).as_py()
            if biggest is not None and biggest >= 2**53:  # may have been an integer json.loads keeps exact
                return None
    frame = table.to_pandas()

    def locate(i: int) -> str:
        # Only errors need line numbers: count them then (blank lines are not records).
        numbers = [n for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
        return f"line {numbers[i]}"

    return frame, locate

def _map_columns(entry: TableEntry, path: Path, raw: pd.DataFrame, locate: Callable[[int], str]) -> pd.DataFrame:
    """Turn the file's columns into the unified columns of ``entry.table``."""
    available = [str(c) for c in raw.columns]
    raw.columns = available
    _check_columns(entry, path, available)  # also for JSON lines, whose columns are known only now
    table = entry.table
    raw = raw.reset_index(drop=True)
    out = pd.DataFrame(index=raw.index)
    for unified in schema.columns(table):
        col = _source_column(entry, unified, available)
        if col is not None:
            out[unified] = raw[col]
        elif unified in entry.constants:
            out[unified] = pd.Series([entry.constants[unified]] * len(raw), index=raw.index, dtype=object)
    missing = [c for c in schema.required_columns(table) if c not in out.columns]
    if missing:
        raise SourceError(
            f"{path}: the {table} table needs column(s) {', '.join(missing)}, which the file does not have; "
            f"map them with columns: {{{missing[0]}: <file column>}} or set constants: {{{missing[0]}: ...}} "
            f"in {entry.where} (the file has: {', '.join(available) or 'no columns'})")
    time_col = schema.TIME_COLUMN[table]
    if time_col:
        out[time_col] = _epoch(out[time_col], entry, path, _source_column(entry, time_col, available) or time_col, locate)
    for col in _OPTIONAL_TEXT & set(out.columns):
        column = out[col] if pd.api.types.is_string_dtype(out[col].dtype) else out[col].astype(object)
        out[col] = column.where(column.notna(), "")
    if table == "logs":
        out["severity"] = _severity(out["severity"], entry.severity_map)
    if entry.attributes_from:
        out["attributes"] = _fold_attributes(raw, out.get("attributes"), entry, path, locate)
    elif "attributes" in out.columns and out["attributes"].dtype == object:
        out["attributes"] = _per_distinct(out["attributes"], _pairs_to_dict)  # text columns hold no pairs
    return out


def _per_distinct(series: pd.Series, func: Callable[[Any], Any]) -> pd.Series:
    """``series.map(func)``, calling ``func`` once per distinct value (falls back per row for unhashable values)."""
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # lists (Parquet MAP pairs) are unhashable
        return series.map(func)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [func(v) for v in uniques]
    mapped[-1] = series[codes == -1].iloc[0] if (codes == -1).any() else None
    return pd.Series(mapped[codes], index=series.index, dtype=object)


def _epoch(series: pd.Series, entry: TableEntry, path: Path, column: str, locate: Callable[[int], str]) -> pd.Series:
    """Convert epoch numbers to UTC times (with ``time_unit``) or refuse them (without)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return series
    values = series.astype(object)
    if pd.api.types.is_numeric_dtype(dtype):
        is_number = series.notna()
    elif isinstance(dtype, pd.StringDtype):
        is_number = pd.Series(False, index=series.index)
    else:  # object: JSON lines may mix strings and numbers
        is_number = values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v == v)
    if entry.time_unit is None:
        if is_number.any():
            first = int(is_number.to_numpy().argmax())
            raise SourceError(
                f"{path}: column {column!r} holds numbers ({locate(first)}: {values.iloc[first]!r}); "
                f"if they are epoch times, declare time_unit: {'|'.join(TIME_UNITS)} in {entry.where}")
        return series
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.any():
        first = int(bad.to_numpy().argmax())
        raise SourceError(f"{path}: column {column!r} should hold epoch {entry.time_unit} (time_unit), "
                          f"but {locate(first)} has {values.iloc[first]!r}")
    return pd.to_datetime(numbers, unit=entry.time_unit, utc=True).astype("datetime64[ns, UTC]")


def _severity(series: pd.Series, mapping: dict[str, str] | None) -> pd.Series:
    def one(value: Any) -> Any:
        if value is None or (isinstance(value, float) and value != value):
            return value
        text = str(value)
        if mapping is not None:
            text = mapping.get(text, mapping.get(text.strip(), text))
        return schema.normalize_severity(text)

    return _per_distinct(series, one)


def _pairs_to_dict(value: Any) -> Any:
    # Parquet MAP columns arrive as lists of (key, value) pairs.
    if isinstance(value, list) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return dict(value)
    return value


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _fold_attributes(raw: pd.DataFrame, base: pd.Series | None, entry: TableEntry, path: Path,
                     locate: Callable[[int], str]) -> pd.Series:
    """Merge the ``attributes_from`` columns into one dict per row (missing values left out)."""
    cols = list(entry.attributes_from)
    out = []
    records = raw[cols].astype(object).to_numpy()
    bases = base.to_numpy() if base is not None else [None] * len(raw)
    for i, (row, start) in enumerate(zip(records, bases)):
        merged: dict[str, Any] = {}
        start = _pairs_to_dict(start)
        if isinstance(start, str) and start.strip():
            try:
                start = json.loads(start)
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path}: {locate(i)}: column 'attributes' is not JSON ({exc.msg})") from None
        if isinstance(start, dict):
            merged.update(start)
        elif not _missing(start) and start != "":
            raise SourceError(f"{path}: {locate(i)}: column 'attributes' must be a JSON object, got {start!r}")
        for key, value in zip(cols, row):
            if not _missing(value):
                merged[key] = _plain(value)
        out.append(merged)
    return pd.Series(out, index=raw.index, dtype=object)
