"""The source contract: an outside format in, validated unified tables (and incidents) out.

A source class subclasses :class:`Source`, implements :meth:`Source.frames` (raw frames per table)
and, if its format describes incidents, :meth:`Source.incidents`. Validation happens once, here,
in :meth:`Source.read`; a source never validates on its own.
"""
from __future__ import annotations

import gzip
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import pandas as pd

from ...errors import SourceError
from ...formats import utc_bound
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
    duplicates : int
        Rows the source left out because they repeat an earlier row of its input exactly (it
        found them with :func:`~workbench.telemetry.schema.duplicate_rows` before building the
        costly columns); validation counts them with the duplicates it drops itself.
    """

    table: str
    frame: pd.DataFrame
    origin: str
    tz: str | None = None
    duplicates: int = 0


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
    #: True for sources that query a live system for a window (they need ``start`` and ``end``).
    live: ClassVar[bool] = False

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

    def links(self) -> list[dict[str, str]]:
        """Links (``title``, ``url``) the source offers for incidents, e.g. runbooks named by alerts.

        Known after :meth:`read`; none by default.
        """
        return []

    def catalogue(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
        """What a live source holds in the window (``workbench sources URL``); one row per kind of thing.

        Raises
        ------
        SourceError
            The source has no discovery (files are listed by the shell).
        """
        from ..errors import SourceError

        raise SourceError(f"{self.url}: the {self.scheme} source has no discovery listing")

    #: Where :meth:`say` sends a short text while a slow source reads (set by :meth:`read`).
    status: Callable[[str], None] | None = None

    def say(self, text: str) -> None:
        """Tell the reader's caller what is being read (a progress line), when it asked to know."""
        if self.status is not None:
            self.status(text)

    def read(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
             progress: Callable[[RawFrame], None] | None = None,
             status: Callable[[str], None] | None = None,
             ready: Callable[[str, pd.DataFrame], None] | None = None) -> Telemetry:
        """Read and validate everything in ``[start, end)``.

        ``progress`` is called with each raw frame after it validated (the CLI's progress bar);
        ``status`` with short texts a slow source says while it reads (:meth:`say`); ``ready``
        with each whole validated table (name, frame) as soon as the source has no more frames and
        its own validation is done, while other tables may still validate (an ingest writes it).

        Raises
        ------
        SchemaError
            For the first invalid frame, naming its origin, column and rows.
        SourceError
            When the source cannot be read at all.
        """
        parts: dict[str, list[pd.DataFrame]] = {t: [] for t in schema.TABLES}
        reports = []
        self.status = status
        # A frame is validated on a second thread while the source reads the next one (Arrow's
        # kernels release the GIL); frames are taken back in order, and the first invalid one
        # raises as soon as it is known.
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="validate")
        pending: list[tuple[RawFrame, Future]] = []

        def collect(wait: bool) -> None:
            while pending and (wait or pending[0][1].done()):
                raw, job = pending.pop(0)
                validated = job.result()
                validated.report.rows_in += raw.duplicates
                validated.report.duplicates_dropped += raw.duplicates
                parts[raw.table].append(validated.frame)
                reports.append(validated.report)
                if progress is not None:
                    progress(raw)
                if ready is not None and done and not any(r.table == raw.table for r, _ in pending):
                    finish(raw.table)

        out = Telemetry(reports=reports)
        finished: set[str] = set()

        def finish(table: str) -> None:
            frames = parts[table]
            finished.add(table)
            if not frames:
                return
            merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            if len(frames) > 1:
                # Frames from different files may overlap (same rows twice): cross-file
                # duplicates are dropped and counted, conflicts raised (the frames themselves
                # are valid already: only the duplicate and key rules apply to the union).
                again = schema.combine(table, merged, source=self.url)
                merged = again.frame
                if again.report.duplicates_dropped:
                    reports.append(again.report)
            setattr(out, table, merged)
            if ready is not None:
                ready(table, merged)

        done = False
        try:
            for raw in self.frames(start, end):
                pending.append((raw, pool.submit(schema.validate, raw.table, raw.frame, source=raw.origin, tz=raw.tz)))
                collect(wait=False)
            done = True  # every table is complete once its frames validated
            for table in parts:
                if parts[table] and not any(r.table == table for r, _ in pending) and table not in finished:
                    finish(table)
            collect(wait=True)
        finally:
            self.status = None
            for _, job in pending:
                job.cancel()
            pool.shutdown(wait=True)
        out.incidents = self.incidents()
        for table in parts:
            if table not in finished:
                finish(table)
        return out


# --------------------------------------------------------------------------- helpers every source uses

#: Longest line a text source may hold, in (decompressed) bytes. An OTLP/JSON export line is one
#: batch (the collector's file exporter writes a few MB); a CSV or JSON-lines row is far smaller. A
#: longer line is refused as soon as the reader passes this many bytes of it, instead of after
#: the whole file was held and parsed (a 200 MB single-line file peaked at 1.4 GB).
MAX_LINE_BYTES = 64 * 2**20
_CHUNK = 4 * 2**20  # smaller than MAX_LINE_BYTES: only a line crossing chunks can be too long


def read_text(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> str:
    """Read a text file (``.gz`` decompressed) as strict UTF-8, streaming.

    Parameters
    ----------
    path : str or Path
        The file; a name ending in ``.gz`` is gunzipped first.
    max_line_bytes : int
        Longest line accepted (:data:`MAX_LINE_BYTES`).

    Returns
    -------
    str
        The decoded text, without a leading byte-order mark.

    Raises
    ------
    SourceError
        The file is missing or unreadable, is not valid gzip, holds a line longer than
        ``max_line_bytes`` (named by its number; the rest is not read) or bytes that are not UTF-8
        (the message names the byte offset and line, counted in the decompressed bytes).
    """
    path = Path(path)
    gz = path.name.lower().endswith(".gz")
    chunks: list[bytes] = []
    run = lines = 0  # bytes of the line being read, newlines so far
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            while chunk := fh.read(min(_CHUNK, max_line_bytes)):
                first = chunk.find(b"\n")
                if first < 0:
                    run += len(chunk)
                else:
                    run += first
                if run > max_line_bytes:
                    raise SourceError(f"{path}: line {lines + 1} is longer than {max_line_bytes:,} bytes; split the "
                                      f"file into lines (one record or export batch per line)")
                if first >= 0:
                    lines += chunk.count(b"\n")
                    run = len(chunk) - chunk.rfind(b"\n") - 1
                chunks.append(chunk)
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise SourceError(f"{path}: not a readable gzip file ({exc})") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    data = b"".join(chunks)
    del chunks
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start
        line = data.count(b"\n", 0, offset) + 1
        where = " (after decompression)" if gz else ""
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
