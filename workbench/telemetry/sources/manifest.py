"""The ``files`` source's declarations: ``manifest.yaml`` and the per-table entries it holds
(the format is described in :mod:`workbench.telemetry.sources.files`)."""
from __future__ import annotations

import difflib
import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ... import yamlio
from ...errors import SourceError, UnknownNameError
from .. import schema
from .base import read_text


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

_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}

_FORMAT_ALIASES = {"ndjson": "jsonl", "jsonlines": "jsonl", "json-lines": "jsonl"}


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
                          f"{did_you_mean(unknown[0], ENTRY_KEYS)}; known keys: {', '.join(ENTRY_KEYS)}")
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
        except (KeyError, ValueError, TypeError):  # unknown zone names raise KeyError subclasses
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
                              f"{did_you_mean(bad[0], unified)} ({', '.join(unified)})")
    both = sorted(set(columns) & set(constants))
    if both:
        raise SourceError(f"{where}: {', '.join(both)} given in both columns and constants; keep one")
    attrs = spec.get("attributes_from") or []
    if isinstance(attrs, str):
        attrs = yamlio.load(attrs, f"{where}: attributes_from", SourceError) if attrs.lstrip().startswith("[") else [attrs]
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
        value = yamlio.load(value, f"{where}: {key}", SourceError)
    if not isinstance(value, dict):
        raise SourceError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
    if text_values and not all(isinstance(v, str) for v in value.values()):
        raise SourceError(f"{where}: {key} values must be file column names (text)")
    return {str(k): v for k, v in value.items()}


def did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=2, cutoff=0.5)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def check_table(table: str, where: str) -> None:
    if table not in schema.TABLES:
        raise UnknownNameError("table", table, list(schema.TABLES), where=where)


def load_yaml(path: Path) -> Any:
    """A manifest or incident document through :func:`workbench.yamlio.load` (libyaml's parser, no
    anchors or aliases, no key given twice), errors as :class:`SourceError` naming the file."""
    return yamlio.load(read_text(path), str(path), SourceError)