"""The source contract: an outside format in, validated unified tables (and incidents) out.

A source class subclasses :class:`Source`, implements :meth:`Source.frames` (raw frames per table)
and, if its format describes incidents, :meth:`Source.incidents`. Validation happens once, here,
in :meth:`Source.read`; a source never validates on its own.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

import pandas as pd

from .. import schema


@dataclass
class RawFrame:
    """One raw frame a source produced for one unified table.

    Attributes
    ----------
    table : str
        The unified table (``metrics``, ``logs``, ``spans``, ``events``, ``topology``).
    frame : pandas.DataFrame
        Rows with exactly the table's columns (optional ones may be absent).
    origin : str
        The file or URL the rows came from; named in validation errors.
    tz : str, optional
        The zone of naive timestamps, when the format declares one.
    """

    table: str
    frame: pd.DataFrame
    origin: str
    tz: str | None = None


@dataclass
class Telemetry:
    """The validated output of a source.

    Attributes
    ----------
    metrics, logs, spans, events, topology : pandas.DataFrame
        Validated tables (see :mod:`workbench.telemetry.schema` for columns).
    incidents : list of dict
        Incident documents in the store's YAML/dict shape (``id``, ``title``, ``started`` ...),
        WITHOUT evaluation labels.
    reports : list of ValidationReport
        One per validated raw frame (duplicates dropped etc.).
    """

    metrics: pd.DataFrame = field(default_factory=lambda: schema.empty("metrics"))
    logs: pd.DataFrame = field(default_factory=lambda: schema.empty("logs"))
    spans: pd.DataFrame = field(default_factory=lambda: schema.empty("spans"))
    events: pd.DataFrame = field(default_factory=lambda: schema.empty("events"))
    topology: pd.DataFrame = field(default_factory=lambda: schema.empty("topology"))
    incidents: list[dict[str, Any]] = field(default_factory=list)
    reports: list[schema.ValidationReport] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The five tables by name."""
        return {t: getattr(self, t) for t in schema.TABLES}

    def rows(self) -> int:
        """Total rows over all tables."""
        return sum(len(f) for f in self.tables().values())


class Source(ABC):
    """Base class of every source.

    Parameters
    ----------
    location : str
        What follows ``scheme:`` in the source URL (a path, a base URL).
    **options
        Source-specific options (from the URL query string or the caller).
    """

    #: The URL scheme the source is registered under (set by ``@register``).
    scheme: ClassVar[str] = ""

    def __init__(self, location: str, **options: Any):
        self.location = location
        self.options = options

    @property
    def url(self) -> str:
        return f"{self.scheme}:{self.location}"

    @abstractmethod
    def frames(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> Iterator[RawFrame]:
        """Yield raw frames, restricted to ``[start, end)`` where the format allows pushing it down."""

    def incidents(self) -> list[dict[str, Any]]:
        """Incident documents the source describes (none by default)."""
        return []

    def read(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
             progress: Callable[[RawFrame], None] | None = None) -> Telemetry:
        """Read and validate everything in ``[start, end)``.

        ``progress`` is called with each raw frame after it validated (the CLI's progress bar).

        Raises
        ------
        SchemaError
            For the first invalid frame, naming its origin, column and rows.
        SourceError
            When the source cannot be read at all.
        """
        parts: dict[str, list[pd.DataFrame]] = {t: [] for t in schema.TABLES}
        reports = []
        for raw in self.frames(start, end):
            validated = schema.validate(raw.table, raw.frame, source=raw.origin, tz=raw.tz)
            parts[raw.table].append(validated.frame)
            reports.append(validated.report)
            if progress is not None:
                progress(raw)
        out = Telemetry(reports=reports, incidents=self.incidents())
        for table, frames in parts.items():
            if frames:
                merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
                if len(frames) > 1:
                    # Frames from different files may overlap (same rows twice): validate the union
                    # once more so cross-file duplicates are dropped and counted, conflicts raised.
                    again = schema.validate(table, merged, source=self.url)
                    merged = again.frame
                    if again.report.duplicates_dropped:
                        reports.append(again.report)
                setattr(out, table, merged)
        return out
