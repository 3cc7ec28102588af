"""Column-at-once mapping of Nezha trace rows to spans and topology.

Split from :mod:`.nezha` so that module stays readable; ``NezhaSource._spans`` calls
:func:`read_spans`. The trace files are a hundred files of a few thousand rows each, so every
column is computed once over all of them (Arrow and numpy); text is only looked at per distinct
value (pods, operation names).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema
from .nezha import _TRACE_COLUMNS, EARLIEST, ERROR_OPERATION, NezhaSource, _attributes, _malformed, service_of


def read_spans(source: NezhaSource, files: list[Path], start: pd.Timestamp | None,
               end: pd.Timestamp | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``spans`` and ``topology`` frames of the trace ``files`` for ``[start, end)``.

    ``source`` is told the progress and counts the skipped rows per file, once every file is read
    but in the order of a file-by-file reading: its malformed CSV rows, then its rows without usable
    ids, pod, operation or times.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        Spans in file and row order (``parent_span_id`` ``""`` for ``root``), and the sorted
        distinct (caller, callee) service pairs of the spans in the window whose parent is among
        the usable rows of the opened files (its first row by span id).
    """
    read, tables = [], []
    for n, (path, (table, bad_lines)) in enumerate(source.reading(files, lambda p: _TRACE_COLUMNS),
                                                   start=1):
        source.say(f"trace file {n} of {len(files)}")
        read.append((path, bad_lines, table.num_rows))
        if table.num_rows:
            tables.append(table.select(list(_TRACE_COLUMNS)))
    bounds = np.cumsum([0] + [rows for _, _, rows in read])
    # The files' chunks side by side, not copied: a file is rows bounds[i]:bounds[i + 1].
    rows = pa.concat_tables(tables) if tables else None
    ok = np.zeros(0, dtype=bool)
    if rows is not None:
        begin, has_begin = _nanos(rows["StartTimeUnixNano"], bounds)
        finish, has_end = _nanos(rows["EndTimeUnixNano"], bounds)
        exact = has_begin & has_end & (finish >= begin)
        duration = (finish - begin) / 1e6
        if not exact.all():
            _from_duration(rows["Duration"], bounds, exact, duration)
        ok = has_begin & (begin >= EARLIEST.value) & np.isfinite(duration) & (duration >= 0)
        for column in ("TraceID", "SpanID", "PodName", "OperationName"):
            ok &= pc.binary_length(rows[column]).to_numpy() > 0
    for (path, bad_lines, _), lo, hi in zip(read, bounds[:-1], bounds[1:]):
        if bad_lines:
            source._count(path, len(bad_lines), _malformed(bad_lines))
        source._skip(path, ~ok[lo:hi], "no usable ids, PodName, OperationName or times")
    if not ok.any():
        return schema.empty("spans"), schema.empty("topology")
    if not ok.all():  # filtering copies every text column: only when something goes
        rows, begin, duration = rows.filter(pa.array(ok)), begin[ok], duration[ok]

    pod, pods = _codes(rows["PodName"])
    named = [service_of(p) for p in pods]
    services = sorted(set(named))
    service = np.array([services.index(s) for s in named], dtype=np.int64)[pod]
    parent = rows["ParentID"].cast(pa.large_string())
    parent = pc.if_else(pc.equal(parent, "root"), "", parent)
    # Parents are looked up among every span of the opened files (the margin included), so a
    # window edge does not hide a call whose parent started just before it.
    first = _first_rows(rows["SpanID"], parent)
    caller = np.where(first >= 0, service[first], -1)
    inside = np.ones(len(begin), dtype=bool)
    if start is not None:
        inside &= begin >= start.value
    if end is not None:  # not int64's largest as an open end: that is a time (2262-04-11) too
        inside &= begin < end.value
    if not inside.any():
        return schema.empty("spans"), schema.empty("topology")
    if not inside.all():
        keep = pa.array(inside)
        rows, parent = rows.filter(keep), parent.filter(keep)
        begin, duration, pod, service, caller = (a[inside] for a in (begin, duration, pod, service, caller))
    name, names = _codes(rows["OperationName"])
    status = ["error" if ERROR_OPERATION.search(n) else "ok" for n in names]
    spans = pd.DataFrame({
        "trace_id": rows["TraceID"].to_pandas(), "span_id": rows["SpanID"].to_pandas(),
        "parent_span_id": parent.to_pandas(), "service": _text(named, pod),
        "name": rows["OperationName"].to_pandas(),
        "start": pd.Series(pd.DatetimeIndex(begin.view("M8[ns]")).tz_localize("UTC")),
        "duration_ms": duration, "status": _text(status, name),
        "attributes": _text([_attributes({"pod": p}) for p in pods], pod),
    })
    # Distinct (caller, callee) codes as cells of a services x services grid: codes follow the
    # services' sorted order, so the grid's cells come out sorted by caller, then callee.
    calls = (caller >= 0) & (caller != service)
    grid = np.zeros(len(services) ** 2, dtype=bool)
    grid[caller[calls] * len(services) + service[calls]] = True
    callers, callees = np.divmod(np.flatnonzero(grid), len(services))
    topology = pd.DataFrame({"caller": pd.Series([services[c] for c in callers], dtype="str"),
                             "callee": pd.Series([services[c] for c in callees], dtype="str")})
    return spans, topology


def _first_rows(span_id: pa.ChunkedArray, parent: pa.ChunkedArray) -> np.ndarray:
    """For each parent, the first row of its span id (-1: none).

    Ids of one length in whole 8-byte words (Nezha's: 16 hexadecimal digits) are hashed as one
    64-bit number folded from their bytes, in about half the time of Arrow's hash of the text; ids
    that share a number are then checked to be equal. Other ids, or a clash, go through Arrow's hash.
    """
    lengths = pc.min_max(pc.binary_length(span_id))
    width = lengths["min"].as_py()
    if width and width == lengths["max"].as_py() and not width % 8:
        _, ids = _words(span_id, width)
        fits, calls = _words(parent, width)  # a parent of another length is no span id
        keys = _fold(ids)
        again = pd.Series(keys).duplicated().to_numpy()
        firsts = np.flatnonzero(~again)
        index = pd.Index(keys[firsts])
        found = index.get_indexer(_fold(calls))
        found = np.where(found >= 0, firsts[found], -1)
        # Equal numbers, equal ids? (Rows after an id's first, and each parent found.)
        later = np.flatnonzero(again)
        same = firsts[index.get_indexer(keys[later])]
        if all((word[later] == word[same]).all() and ((call == word[found]) | (found < 0)).all()
               for word, call in zip(ids, calls)):
            out = np.full(len(fits), -1, dtype=np.int64)
            out[fits] = found
            return out
    return pc.index_in(parent, value_set=span_id).fill_null(-1).to_numpy()


def _words(column: pa.ChunkedArray, width: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(mask of the values ``width`` bytes long, their bytes as ``width // 8`` uint64 arrays)."""
    array = column.combine_chunks()
    kind = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=kind)[array.offset:array.offset + len(array) + 1]
    fit = np.diff(offsets) == width
    if not fit.any():
        return fit, [np.zeros(0, dtype=np.uint64)] * (width // 8)
    data = array.buffers()[2]
    if fit.all():  # the values one after the other: a view
        words = np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]].view("<u8").reshape(len(array), -1)
        return fit, [words[:, j] for j in range(width // 8)]
    # Every byte of the data as the start of a little-endian uint64 (a view), read where values start.
    at = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    starts = offsets[:-1][fit]
    return fit, [at[starts + 8 * j] for j in range(width // 8)]


def _fold(words: list[np.ndarray]) -> np.ndarray:
    """One uint64 per value, ``(…((w0 * K) ^ w1) * K …) ^ wn``: equal values give equal numbers."""
    out = words[0].copy()
    for word in words[1:]:
        out *= np.uint64(0x9E3779B97F4A7C15)
        out ^= word
    return out


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """(int codes, distinct values) of a text column, through Arrow's hash over every chunk at once."""
    encoded = pc.dictionary_encode(column)
    codes = np.concatenate([chunk.indices.to_numpy() for chunk in encoded.chunks])
    return codes, encoded.chunk(encoded.num_chunks - 1).dictionary.to_pylist()


def _text(values: list[str], codes: np.ndarray) -> pd.Series:
    """The ``str`` column of ``values[codes]`` (one Arrow take, no Python object per row)."""
    return pa.array(values, type=pa.large_string()).take(codes).to_pandas()


def _nanos(column: pa.ChunkedArray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 nanoseconds, mask of usable values) parsed exactly: floats would lose the last digits.

    Arrow's cast reads the usual column (19-digit times) at once; a file holding anything else is
    read as :func:`_text_nanos` reads it.
    """
    whole = _plain_nanos(column)
    if whole is not None:
        return whole, np.ones(len(whole), dtype=bool)
    values, usable = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = column.slice(lo, hi - lo)
        plain = _plain_nanos(part)
        found = (plain, np.ones(len(plain), dtype=bool)) if plain is not None else _text_nanos(part.to_pandas())
        values.append(found[0])
        usable.append(found[1])
    return np.concatenate(values), np.concatenate(usable)


def _plain_nanos(column: pa.ChunkedArray) -> np.ndarray | None:
    """The values when every one is an integer of 19 or more characters, else None.

    Arrow's cast also reads hexadecimal (``0x…``, at most 18 characters for an int64); at 19
    characters and more what it reads is decimal digits (with a ``-`` maybe), read alike by
    ``int``, which :func:`_text_nanos` uses.
    """
    if not len(column):
        return np.zeros(0, dtype=np.int64)
    if pc.min(pc.binary_length(column)).as_py() < 19:
        return None
    try:
        return pc.cast(column, pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        return None


def _text_nanos(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_nanos` of one file's column that Arrow cannot read at once, value by value."""
    try:
        return text.to_numpy(dtype=object).astype("int64"), np.ones(len(text), dtype=bool)
    except (ValueError, OverflowError, TypeError):
        pass  # some value is not a plain integer: check each one
    clean = text.str.strip()
    # 19 digits may exceed int64; equal-length digit strings compare like the numbers.
    fits = clean.str.fullmatch(r"\d{1,19}") & ~((clean.str.len() == 19) & (clean > _INT64_MAX))
    ok = np.array(fits, dtype=bool)
    out = np.zeros(len(text), dtype="int64")
    if ok.any():
        out[ok] = clean[ok].to_numpy(dtype=object).astype("int64")
    return out, ok


_INT64_MAX = str(np.iinfo("int64").max)


def _from_duration(column: pa.ChunkedArray, bounds: np.ndarray, exact: np.ndarray, duration: np.ndarray) -> None:
    """Fill ``duration`` (ms) from the ``Duration`` column (µs) where the times do not give it.

    Per file, as pandas reads the column: a file's text decides how each value is read."""
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if exact[lo:hi].all():
            continue
        micros = pd.to_numeric(column.slice(lo, hi - lo).to_pandas(), errors="coerce").to_numpy(dtype="float64")
        duration[lo:hi] = np.where(exact[lo:hi], duration[lo:hi], micros / 1000.0)
