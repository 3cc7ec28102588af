"""The ``files`` source: a team's own CSV, Parquet or JSON-lines exports, mapped without code.

Two ways in:

``files:DIR`` (or ``files:DIR/manifest.yaml``)
    A folder with a ``manifest.yaml`` that declares, per unified table, which files to read and
    how their columns map to the schema::

        name: online-shop sample
        tables:
          metrics:
            path: metrics.parquet              # relative to the manifest; globs allowed (sorted)
          logs: {path: "logs/*.jsonl.gz"}
          events:                              # one entry or a list of entries
            path: changes.csv
            format: csv                        # optional; inferred from the extension
            tz: UTC                            # zone of naive timestamps (else they are refused)
            time_unit: s                       # epoch numbers in the time column: s|ms|us|ns
            columns: {timestamp: when, service: svc, summary: text}   # unified -> file column
            constants: {environment: production}                      # unified -> fixed value
            attributes_from: [version, previous_version]              # folded into attributes
            severity_map: {"3": ERROR}         # logs only; raw severity -> OTel severity text
        incidents: incidents/                  # a folder of *.yaml documents, or a list of files

``files:FILE`` with ``table=...``
    One file; the keys of a manifest entry (``format``, ``tz``, ``time_unit``, ``columns``,
    ``constants``, ``attributes_from``, ``severity_map``) are given as options, e.g.
    ``open_source("files:x.csv", table="metrics", tz="UTC")``. Dict and list options may also be
    given as YAML text (``columns="{timestamp: when}"``), as they arrive from a URL query string.

Mapping rules
-------------
- A file column named like a unified column is taken as-is unless ``columns`` or ``constants``
  supplies that unified column.
- Every other file column must be mapped (``columns``) or folded into ``attributes``
  (``attributes_from``); anything left over is an error naming the file and the columns, so a
  mapping that forgot a column never loses it silently. Missing values are left out of the
  folded attributes; a file ``attributes`` column (JSON object text, or a dict) is merged with
  them, the folded columns winning. CSV cells stay text (CSV carries no types: a version
  ``1.10`` must not become the number 1.1); JSON lines and Parquet keep their types.
- Epoch numbers in a time column need ``time_unit`` and are read as UTC; numbers without it
  are refused (seconds and milliseconds are easy to confuse and the mistake is silent).
- ``logs.severity`` goes through ``severity_map`` (keys compared as text) and then
  :func:`workbench.telemetry.schema.normalize_severity`, so ``warning``/``WARNING``/``warn`` all become ``WARN``.
- Empty cells of the optional text columns (``unit``, ``trace_id``, ``parent_span_id``,
  ``summary``) become ``""``.

Reading
-------
Files are decoded as strict UTF-8 (a leading BOM is allowed): undecodable bytes are an error that
names the file, the byte offset and the line, never replacement characters. A CSV row with the
wrong number of fields is an error naming its line (pandas would pad or drop it silently). The
window ``[start, end)`` is applied to each table's time column (``spans``: ``start``;
``topology`` is not windowed); for Parquet a coarse filter is pushed into the read (row groups
outside the window are not decoded), then every format is filtered exactly after parsing.
Rows whose time cannot be parsed are kept, so validation names them.
"""
from __future__ import annotations

import csv
import difflib
import glob
import gzip
import io
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from .. import schema
from ...errors import SourceError, UnknownNameError
from . import register
from .base import RawFrame, Source
from ...formats import utc_bound

MANIFEST = "manifest.yaml"
MANIFEST_KEYS = ("name", "tables", "incidents")
ENTRY_KEYS = ("path", "format", "tz", "time_unit", "columns", "constants", "attributes_from", "severity_map")
FORMATS = ("csv", "parquet", "jsonl")
TIME_UNITS = ("s", "ms", "us", "ns")

_MINIMAL_MANIFEST = """\
tables:
  metrics:
    path: metrics.csv
    tz: UTC"""

# Unified text columns where an empty cell means "no value" rather than a missing field.
_OPTIONAL_TEXT = frozenset({"unit", "trace_id", "parent_span_id", "summary"})
_NUMERIC_COLUMNS = frozenset({"value", "duration_ms"})
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_FORMAT_ALIASES = {"ndjson": "jsonl", "jsonlines": "jsonl", "json-lines": "jsonl"}


# --------------------------------------------------------------------------- shared helpers

def read_text(path: str | Path) -> str:
    """Read a text file (``.gz`` decompressed) as strict UTF-8.

    Parameters
    ----------
    path : str or Path
        The file; a name ending in ``.gz`` is gunzipped first.

    Returns
    -------
    str
        The decoded text, without a leading byte-order mark.

    Raises
    ------
    SourceError
        The file is missing or unreadable, is not valid gzip, or holds bytes that are not UTF-8
        (the message names the byte offset and line, counted in the decompressed bytes).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{path}: not a readable gzip file ({exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start
        line = data.count(b"\n", 0, offset) + 1
        where = " (after decompression)" if path.name.lower().endswith(".gz") else ""
        raise SourceError(
            f"{path}: bytes that are not UTF-8 at byte offset {offset}{where}, line {line} "
            f"(byte {data[offset:offset + 1]!r}); re-export the file as UTF-8"
        ) from None


def window(start: Any, end: Any) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Normalise window bounds to UTC timestamps; naive bounds are refused (ValueError)."""
    return utc_bound(start), utc_bound(end)


def in_window(times: pd.Series, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.Series:
    """Mask of rows in ``[start, end)``; rows without a time (NaT) are kept for validation to name."""
    keep = pd.Series(True, index=times.index)
    if start is not None:
        keep &= times >= start
    if end is not None:
        keep &= times < end
    return keep | times.isna()


# --------------------------------------------------------------------------- declarations

@dataclass(frozen=True)
class TableEntry:
    """One declared file (or glob) feeding one unified table.

    Attributes
    ----------
    table : str
        The unified table.
    path : str
        The file or glob, as declared.
    base : Path
        The folder a relative ``path`` is resolved against.
    where : str
        Where the entry was declared (for error messages).
    format, tz, time_unit : str or None
    columns : dict
        Unified column -> file column.
    constants : dict
        Unified column -> fixed value.
    attributes_from : tuple of str
        File columns folded into ``attributes``.
    severity_map : dict or None
        Raw severity text -> severity text (logs only).
    """

    table: str
    path: str
    base: Path
    where: str
    format: str | None = None
    tz: str | None = None
    time_unit: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    attributes_from: tuple[str, ...] = ()
    severity_map: dict[str, str] | None = None

    def files(self) -> list[Path]:
        """The files the entry names: a glob's sorted matches, or the one path (which must exist)."""
        full = self.path if Path(self.path).is_absolute() else str(self.base / self.path)
        if glob.has_magic(self.path):
            found = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
            if not found:
                raise SourceError(f"{self.where}: no file matches {self.path!r} (looked in {self.base})")
            return found
        path = Path(full)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "file not found"
            raise SourceError(f"{self.where}: {path}: {what}")
        return [path]

    def format_of(self, path: Path) -> str:
        """The declared format, or the one the file's extension implies."""
        if self.format:
            return self.format
        name = path.name.lower()
        suffixes = [s for s in Path(name[:-3] if name.endswith(".gz") else name).suffixes]
        fmt = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
        if fmt is None:
            raise SourceError(f"{path}: cannot tell the format from the extension; set format: "
                              f"{'|'.join(FORMATS)} ({self.where})")
        return fmt


def parse_entry(table: str, spec: Any, base: Path, where: str) -> TableEntry:
    """Check one manifest entry (or the options of a single file) and return it.

    Raises
    ------
    SourceError
        Unknown keys, a missing ``path``, or a value of the wrong kind, naming ``where``.
    """
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, dict):
        raise SourceError(f"{where}: expected a mapping with at least 'path', got {type(spec).__name__}")
    unknown = [k for k in spec if k not in ENTRY_KEYS]
    if unknown:
        raise SourceError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}"
                          f"{_did_you_mean(unknown[0], ENTRY_KEYS)}; known keys: {', '.join(ENTRY_KEYS)}")
    path = spec.get("path")
    if not isinstance(path, str) or not path.strip():
        raise SourceError(f"{where}: 'path' is required (a file or glob relative to the manifest)")
    unified = schema.columns(table)
    fmt = spec.get("format")
    if fmt is not None:
        fmt = _FORMAT_ALIASES.get(str(fmt).lower(), str(fmt).lower())
        if fmt not in FORMATS:
            raise SourceError(f"{where}: format {spec['format']!r} is not one of {', '.join(FORMATS)}")
    tz = spec.get("tz")
    if tz is not None:
        try:
            pd.Timestamp("2000-01-01").tz_localize(str(tz))
        except Exception:
            raise SourceError(f"{where}: tz {tz!r} is not a time zone name (e.g. UTC, Europe/Berlin)") from None
        tz = str(tz)
    unit = spec.get("time_unit")
    if unit is not None and unit not in TIME_UNITS:
        raise SourceError(f"{where}: time_unit {unit!r} is not one of {'|'.join(TIME_UNITS)}")
    columns = _mapping(spec.get("columns"), where, "columns")
    constants = _mapping(spec.get("constants"), where, "constants", text_values=False)
    for key, what in ((columns, "columns"), (constants, "constants")):
        bad = [c for c in key if c not in unified]
        if bad:
            raise SourceError(f"{where}: {what} names {bad[0]!r}, not a column of {table}"
                              f"{_did_you_mean(bad[0], unified)} ({', '.join(unified)})")
    both = sorted(set(columns) & set(constants))
    if both:
        raise SourceError(f"{where}: {', '.join(both)} given in both columns and constants; keep one")
    attrs = spec.get("attributes_from") or []
    if isinstance(attrs, str):
        attrs = yaml.safe_load(attrs) if attrs.lstrip().startswith("[") else [attrs]
    if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
        raise SourceError(f"{where}: attributes_from must be a list of file column names")
    sev = spec.get("severity_map")
    if sev is not None:
        if table != "logs":
            raise SourceError(f"{where}: severity_map applies to logs only, not {table}")
        sev = {str(k): str(v) for k, v in _mapping(sev, where, "severity_map", text_values=False).items()}
    return TableEntry(table=table, path=path, base=base, where=where, format=fmt, tz=tz, time_unit=unit,
                      columns=columns, constants=constants, attributes_from=tuple(attrs), severity_map=sev)


def _mapping(value: Any, where: str, key: str, text_values: bool = True) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        # Options from a URL query string arrive as text.
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise SourceError(f"{where}: {key} must be a mapping, got unparseable text {value!r}") from None
    if not isinstance(value, dict):
        raise SourceError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
    if text_values and not all(isinstance(v, str) for v in value.values()):
        raise SourceError(f"{where}: {key} values must be file column names (text)")
    return {str(k): v for k, v in value.items()}


def _did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=2, cutoff=0.5)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


# --------------------------------------------------------------------------- the source

@register("files")
class FilesSource(Source):
    """Read CSV (``.csv``/``.csv.gz``), Parquet and JSON lines (``.jsonl``/``.ndjson``, ``.gz``).

    Parameters
    ----------
    location : str
        A folder holding ``manifest.yaml``, the manifest itself, or one file (then ``table`` is
        required).
    table : str, optional
        The unified table of a single file.
    **options
        For a single file, the keys of a manifest entry (``format``, ``tz``, ``time_unit``,
        ``columns``, ``constants``, ``attributes_from``, ``severity_map``).

    Attributes
    ----------
    entries : list of TableEntry
        What will be read, in declaration order.
    manifest : dict or None
        The parsed manifest (None for a single file).

    Raises
    ------
    SourceError
        Missing path, a folder without a manifest, malformed manifest, unknown keys.
    UnknownNameError
        A table name that is not a unified table (with "did you mean").
    """

    def __init__(self, location: str, **options: Any):
        super().__init__(location, **options)
        path = Path(location).expanduser()
        self.manifest: dict[str, Any] | None = None
        self._incidents_spec: Any = None
        if path.is_dir() and not (path / MANIFEST).is_file():
            raise SourceError(
                f"{path}: a folder needs a {MANIFEST} that says which files feed which table; "
                f"minimal example:\n{_MINIMAL_MANIFEST}\n(or open one file with table=..., "
                f"e.g. open_source('files:{path}/metrics.csv', table='metrics'))")
        if path.is_dir() or path.name == MANIFEST:
            manifest_path = path / MANIFEST if path.is_dir() else path
            if options:
                raise SourceError(f"{manifest_path}: options {', '.join(sorted(options))} apply to a single "
                                  f"file; declare them per table in the manifest")
            self._manifest_dir = manifest_path.parent
            self.entries = self._read_manifest(manifest_path)
        elif path.is_file():
            self.entries = [self._single(path, dict(options))]
        else:
            raise SourceError(f"{path}: no such file or folder")
        # Resolve globs now so a bad path fails when the source is opened, not mid-ingest.
        for entry in self.entries:
            entry.files()

    # ------------------------------------------------------------------ construction

    def _single(self, path: Path, options: dict[str, Any]) -> TableEntry:
        table = options.pop("table", None)
        if table is None:
            raise SourceError(f"{path}: a single file needs table=... (one of {', '.join(schema.TABLES)}), "
                              f"e.g. open_source('files:{path}', table='metrics')")
        _check_table(str(table), str(path))
        if "path" in options:
            raise SourceError(f"{path}: 'path' is the location itself; drop the path option")
        spec = {"path": path.name, **options}
        return parse_entry(str(table), spec, path.parent, where=str(path))

    def _read_manifest(self, path: Path) -> list[TableEntry]:
        doc = _load_yaml(path)
        if not isinstance(doc, dict):
            raise SourceError(f"{path}: expected a mapping with 'tables', got {type(doc).__name__}")
        unknown = [k for k in doc if k not in MANIFEST_KEYS]
        if unknown:
            raise SourceError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}"
                              f"{_did_you_mean(str(unknown[0]), MANIFEST_KEYS)}; known keys: {', '.join(MANIFEST_KEYS)}")
        tables = doc.get("tables") or {}
        if not isinstance(tables, dict):
            raise SourceError(f"{path}: 'tables' must map table names to entries")
        self.manifest = doc
        self._incidents_spec = doc.get("incidents")
        entries = []
        for table, spec in tables.items():
            _check_table(str(table), str(path))
            specs = spec if isinstance(spec, list) else [spec]
            for i, one in enumerate(specs):
                where = f"{path}: tables.{table}" + (f"[{i}]" if isinstance(spec, list) else "")
                entries.append(parse_entry(str(table), one, path.parent, where))
        return entries

    # ------------------------------------------------------------------ reading

    def frames(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> Iterator[RawFrame]:
        """Yield one raw frame per file, restricted to ``[start, end)`` (topology unrestricted).

        Yields
        ------
        RawFrame
            ``frame`` has the unified columns of ``table`` (see :mod:`workbench.telemetry.schema`);
            ``origin`` is the file path; ``tz`` the entry's declared zone.
        """
        start, end = window(start, end)
        for entry in self.entries:
            for path in entry.files():
                frame = _read_file(entry, path, start, end)
                yield RawFrame(entry.table, frame, origin=str(path), tz=entry.tz)

    def incidents(self) -> list[dict[str, Any]]:
        """The manifest's incident documents (YAML), parsed but not interpreted.

        Returns
        -------
        list of dict
            One dict per document, in file-name order (a file may also hold a list of them).
        """
        spec = self._incidents_spec
        if not spec:
            return []
        base = self._manifest_dir
        if isinstance(spec, str):
            folder = base / spec
            if folder.is_dir():
                files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
            elif folder.is_file():
                files = [folder]
            else:
                raise SourceError(f"{base / MANIFEST}: incidents: {folder} not found")
        elif isinstance(spec, list):
            files = [base / str(p) for p in spec]
        else:
            raise SourceError(f"{base / MANIFEST}: incidents must be a folder or a list of files")
        docs: list[dict[str, Any]] = []
        for path in files:
            doc = _load_yaml(path)
            items = doc if isinstance(doc, list) else [doc]
            for item in items:
                if not isinstance(item, dict):
                    raise SourceError(f"{path}: an incident document must be a mapping, got {type(item).__name__}")
                docs.append(item)
        return docs


def _check_table(table: str, where: str) -> None:
    if table not in schema.TABLES:
        raise UnknownNameError("table", table, list(schema.TABLES), where=where)


def _load_yaml(path: Path) -> Any:
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SourceError(f"{path}: malformed YAML{line}: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SourceError(f"{path}: malformed YAML: {exc}") from None


# --------------------------------------------------------------------------- one file

def _read_file(entry: TableEntry, path: Path, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
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
                          f"are not in the file{_did_you_mean(missing[0], available)}; "
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


# --------------------------------------------------------------------------- mapping

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
        out[col] = out[col].astype(object).where(out[col].notna(), "")
    if table == "logs":
        out["severity"] = _severity(out["severity"], entry.severity_map)
    if entry.attributes_from:
        out["attributes"] = _fold_attributes(raw, out.get("attributes"), entry, path, locate)
    elif "attributes" in out.columns:
        out["attributes"] = out["attributes"].map(_pairs_to_dict)
    return out


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

    return series.astype(object).map(one)


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
