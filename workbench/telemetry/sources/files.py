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

from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from ...errors import SourceError
from .. import schema
from . import register
from .base import RawFrame, Source, window
from .manifest import (MANIFEST, MANIFEST_KEYS, _MINIMAL_MANIFEST, TableEntry, check_table, did_you_mean, load_yaml,
                       parse_entry)
from .readers import read_file


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
        check_table(str(table), str(path))
        if "path" in options:
            raise SourceError(f"{path}: 'path' is the location itself; drop the path option")
        spec = {"path": path.name, **options}
        return parse_entry(str(table), spec, path.parent, where=str(path))

    def _read_manifest(self, path: Path) -> list[TableEntry]:
        doc = load_yaml(path)
        if not isinstance(doc, dict):
            raise SourceError(f"{path}: expected a mapping with 'tables', got {type(doc).__name__}")
        unknown = [k for k in doc if k not in MANIFEST_KEYS]
        if unknown:
            raise SourceError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}"
                              f"{did_you_mean(str(unknown[0]), MANIFEST_KEYS)}; known keys: {', '.join(MANIFEST_KEYS)}")
        tables = doc.get("tables") or {}
        if not isinstance(tables, dict):
            raise SourceError(f"{path}: 'tables' must map table names to entries")
        self.manifest = doc
        self._incidents_spec = doc.get("incidents")
        entries = []
        for table, spec in tables.items():
            check_table(str(table), str(path))
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
                frame = read_file(entry, path, start, end)
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
            doc = load_yaml(path)
            items = doc if isinstance(doc, list) else [doc]
            for item in items:
                if not isinstance(item, dict):
                    raise SourceError(f"{path}: an incident document must be a mapping, got {type(item).__name__}")
                docs.append(item)
        return docs
