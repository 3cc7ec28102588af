"""Gzip CSV files read with Arrow, for data sets published as many small ``.csv.gz`` files (Nezha).

:func:`read_csv` gives every well-formed row as text columns (a row with the wrong number of
fields is skipped and its record number returned; undecodable bytes become U+FFFD);
:class:`ReadAhead` (and :func:`read_ahead`) reads the next files on reader threads while the
caller maps the ones before; :func:`numbers` turns text cells into float64 and :class:`Vocabulary`
numbers texts and builds a categorical column of their codes at once.
"""
from __future__ import annotations

import csv
import io
import threading
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ...errors import SourceError

try:  # ISA-L inflates these files in 40 % of zlib's time (0.13 s instead of 0.35 s for Nezha's 240 MB)
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _InflateError
except ImportError:  # no isal wheel for this platform: the standard library's zlib
    import gzip as _gzip
    from zlib import error as _InflateError


def read_csv(path: Path, required: Iterable[str], as_arrow: bool = False) -> tuple[Any, list[int]]:
    """Every well-formed row of a gzip CSV as text columns, and the record numbers of malformed rows.

    Arrow's CSV reader (one block per file, so a quoted field may hold newlines): the columns come
    back as Arrow-backed ``str``; a row with the wrong number of fields is skipped and its record
    number (the header is record 1; blank lines do not count) is returned.
    """
    try:
        with open(path, "rb") as handle:
            data = _gzip.decompress(handle.read())
    except (OSError, EOFError, zlib.error, _InflateError) as exc:
        raise SourceError(f"{path}: cannot read this gzip CSV file ({exc})") from exc
    newline = data.find(b"\n")
    first = (data if newline < 0 else data[:newline]).decode("utf-8", errors="replace").rstrip("\r")
    if not first.strip():
        empty = pd.DataFrame(columns=list(required), dtype=object)
        return (pa.Table.from_pandas(empty.astype(str), preserve_index=False) if as_arrow else empty), []
    try:
        header = next(csv.reader([first], strict=True))
    except csv.Error as exc:
        raise SourceError(f"{path}: the header line is not CSV ({exc})") from exc
    missing = [c for c in required if c not in header]
    if missing:
        raise SourceError(f"{path}: missing column(s) {', '.join(missing)}; "
                          f"expected {', '.join(required)} (found {', '.join(header)})")
    try:
        table, bad_lines = _arrow_csv(data, header)
    except pa.ArrowInvalid as exc:
        if "UTF8" not in str(exc).upper().replace("-", ""):
            raise SourceError(f"{path}: unreadable CSV ({exc})") from exc
        # Documented: undecodable bytes are replaced (U+FFFD), never fatal.
        table, bad_lines = _arrow_csv(data.decode("utf-8", errors="replace").encode("utf-8"), header)
    table = table.rename_columns(header)
    return (table if as_arrow else table.to_pandas()), bad_lines


def read_ahead(paths: list[Path], required: Any, as_arrow: bool = False) -> Iterator[tuple[Path, tuple[Any, list[int]]]]:
    """``(path, read_csv(path, required(path)))`` in order, the files read on reader threads ahead
    of the caller (see :class:`ReadAhead`)."""
    with ReadAhead([(path, required(path)) for path in paths], as_arrow=as_arrow) as ahead:
        for path in paths:
            yield path, ahead.take(path)


class ReadAhead:
    """Reads gzip CSV files in the given order on ``workers`` threads, ahead of the caller.

    Decompression and Arrow's parser release the GIL, so the files are read while the caller maps
    the ones before. The threads stay at most ``budget`` bytes of gzip ahead of what the caller
    took (so a data set is never held in memory whole). :meth:`take` returns a file's
    :func:`read_csv` result (or raises its error), waiting for it when a thread is reading it; a
    file no thread has started (taken out of order, or not planned) is read on the spot, so the
    caller never waits on the budget. Use as a context manager: leaving it stops the threads.
    """

    def __init__(self, jobs: list[tuple[Path, Any]], as_arrow: bool = True, budget: int = 32 << 20,
                 workers: int = 2):
        self._jobs = list(jobs)
        self._index: dict[Path, int] = {}
        for i, (path, _) in enumerate(self._jobs):
            self._index.setdefault(path, i)
        self._as_arrow = as_arrow
        self._budget = budget
        self._next = 0  # the next job a thread may start
        self._claimed: set[int] = set()  # jobs the caller read itself
        self._taken: set[int] = set()  # jobs handed to the caller (a second take reads again)
        self._done: dict[Path, tuple[Any, BaseException | None, int]] = {}  # result, error, gzip bytes
        self._ahead = 0  # bytes of gzip started but not yet taken
        self._stop = False
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._run, name=f"gzcsv-read-{i}", daemon=True)
                         for i in range(max(1, min(workers, len(self._jobs))))]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._next in self._claimed:
                        self._next += 1
                    if self._stop or self._next >= len(self._jobs):
                        return
                    size = _size(self._jobs[self._next][0])
                    if not self._ahead or self._ahead + size <= self._budget:
                        break
                    self._cond.wait()
                path, required = self._jobs[self._next]
                self._next += 1
                self._ahead += size
            try:
                result = read_csv(path, required, as_arrow=self._as_arrow)
                error = None
            except BaseException as exc:  # handed to the caller by take()
                result, error = None, exc
            with self._cond:
                self._done[path] = (result, error, size)
                self._cond.notify_all()

    def take(self, path: Path, required: Any = None) -> tuple[Any, list[int]]:
        """:func:`read_csv` of ``path`` (its planned columns, else ``required``)."""
        i = self._index.get(path)
        if i is not None:
            required = self._jobs[i][1]
        found = None
        with self._cond:
            if i is not None and i not in self._taken:
                self._taken.add(i)
                if path not in self._done and i >= self._next:
                    self._claimed.add(i)  # no thread started it: read it here, now
                else:
                    while path not in self._done:
                        self._cond.wait()
                    found = self._done.pop(path)
                    self._ahead -= found[2]
                    self._cond.notify_all()
        if found is None:
            return read_csv(path, required, as_arrow=self._as_arrow)
        result, error, _ = found
        if error is not None:
            raise error
        return result


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _arrow_csv(data: bytes, header: list[str]) -> tuple[pa.Table, list[int]]:
    """Arrow's CSV reader over ``data`` (header line included), every column text, bad rows skipped."""
    bad_lines: list[int] = []

    def skip(row: Any) -> str:
        bad_lines.append(row.number if row.number is not None else -1)
        return "skip"

    names = [f"{c}\x00{i}" if header.count(c) > 1 else c for i, c in enumerate(header)]
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False,
                                       block_size=max(len(data), 1) + 1),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False))
    return table, bad_lines


def numbers(column: pa.ChunkedArray) -> np.ndarray:
    """Text cells as float64, NaN where a cell is not a number (Arrow's cast; pandas' parser when it refuses)."""
    try:
        return np.asarray(pc.cast(pc.if_else(pc.equal(column, ""), None, column), pa.float64())
                          .to_numpy(zero_copy_only=False), dtype="float64")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(column.to_pandas(), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


class Vocabulary:
    """Text values as integer codes, handed to validation as one categorical column."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def code(self, text: str) -> int:
        return self._index.setdefault(text, len(self._index))

    def categorical(self, codes: np.ndarray) -> pd.Series:
        """The texts of ``codes`` as a categorical column (validation checks each text once)."""
        words = pd.Index(list(self._index), dtype="str")
        return pd.Series(pd.Categorical.from_codes(codes, categories=words))
