"""Column-at-once parsing of Nezha log rows (the container runtime's JSON around each line).

Split from :mod:`.nezha` so that module stays readable; only the nezha source uses these.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..columns import not_utf8, to_utc

#: A character of a JSON string that needs no decoding: no quote, backslash or control character.
_PLAIN = r'[^"\\\x00-\x1f]'
#: The runtime's common shape, ``{"log":"…\\n","stream":"stdout","time":"…"}``, with a ``log`` text
#: holding no escape, no control character and one visible ASCII character (so it is not blank for
#: Python's ``str.strip`` either): its JSON text is the line itself. Every other row (escapes such
#: as ``\\u003c``, other key orders, spaces, blank lines, not JSON at all) goes to json.loads.
_PLAIN_DOC = (r'^\{"log":"' + _PLAIN + r'*[!#-\[\]-~]' + _PLAIN + r'*(?:\\n)?","stream":"' + _PLAIN
              + r'*","time":"' + _PLAIN + r'*"\}$')
#: The line's end is looked for in a row's last bytes only (the stream and time that follow it are short).
_TAIL = 96
_PREFIX = len('{"log":"')
#: What ends the line in that shape: the first quote after the prefix begins it.
_SEPARATOR = '","stream":"'
#: A time text that carries its zone.
_HAS_ZONE = r"(?:Z|[+-]\d{2}:?\d{2})$"
#: The level token after the line's clock (``16:42:22.382 INFO  …``), for Arrow's RE2 engine.
_LEVEL_RE2 = r"^\s*\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\s+(?P<level>[A-Za-z]+)\b"


def bodies(log: pa.ChunkedArray, rows: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """:func:`body` of the ``log`` cells at ``rows`` (in that order): (large_string array, partial mask).

    A cell of the common shape (:data:`_PLAIN_DOC`, 96 % of the data set) is its bytes between the
    fixed prefix and the ``","stream":"`` that ends the line (no quote can come earlier); the
    others go through :func:`body`. The bodies are gathered in ``rows`` order with one copy: an
    Arrow string view per row points into the CSV reader's buffers (or the slow rows' own buffer)
    and one cast lays them out, so neither the files' text nor the bodies are copied again
    to concatenate, cut or reorder them.
    """
    rows = np.asarray(rows, dtype=np.int64)
    chunks = [c for c in log.chunks if len(c)]
    buffers: list[pa.Buffer] = []
    begin, length, fast, newline = [], [], [], []
    for chunk in chunks:
        chunk = chunk.fill_null("") if chunk.null_count else chunk
        wide = pa.types.is_large_string(chunk.type)
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64 if wide else np.int32)[
            chunk.offset:chunk.offset + len(chunk) + 1].astype(np.int64)
        data = chunk.buffers()[2]
        binary = chunk.view(pa.large_binary() if wide else pa.binary())
        tails = pc.binary_slice(binary, -_TAIL)
        at = np.asarray(pc.find_substring(tails, _SEPARATOR), dtype=np.int64)
        size = np.diff(offsets)
        cut = size - np.asarray(pc.binary_length(tails), dtype=np.int64) + at  # where the separator starts
        ok = np.asarray(pc.match_substring_regex(chunk, _PLAIN_DOC), dtype=bool) & (at >= 0)
        ok &= data is not None and data.size < 2**31  # a view's offset is 32-bit
        raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        nl = np.zeros(len(chunk), dtype=bool)
        if ok.any():
            end = offsets[:-1][ok] + cut[ok]
            nl[ok] = (raw[end - 2] == 0x5C) & (raw[end - 1] == 0x6E)  # the line's own "\n" escape
        begin.append(offsets[:-1] + _PREFIX)
        length.append(np.where(ok, cut - _PREFIX - 2 * nl, 0))
        fast.append(ok)
        newline.append(nl)
        buffers.append(data if data is not None else pa.py_buffer(b""))
    if not chunks or not len(rows):
        return pa.array([], type=pa.large_string()), np.zeros(len(rows), dtype=bool)
    which = np.concatenate([np.full(len(c), i, dtype=np.int32) for i, c in enumerate(chunks)])[rows]
    begin_, length_ = np.concatenate(begin)[rows], np.concatenate(length)[rows]
    fast_, partial = np.concatenate(fast)[rows], ~np.concatenate(newline)[rows]
    slow = np.flatnonzero(~fast_)
    if len(slow):
        pairs = [body(v) for v in take_rows(log, rows[slow]).to_pylist()]
        partial[slow] = [p for _, p in pairs]
        for batch, texts in _batches(slow, [b for b, _ in pairs]):
            offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[:len(texts) + 1]
            which[batch], begin_[batch], length_[batch] = len(buffers), offsets[:-1], np.diff(offsets)
            buffers.append(texts.buffers()[2] or pa.py_buffer(b""))
    views = _views(length_, which, begin_, buffers)
    out = pa.Array.from_buffers(pa.string_view(), len(rows), [None, pa.py_buffer(views), *buffers])
    return out.cast(pa.large_string()), partial


def take_rows(column: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``column.take(rows)`` chunk by chunk: Arrow's take on a chunked string column first
    concatenates every chunk (all 82 MB of a day's log bodies to pick a few thousand rows)."""
    rows = np.asarray(rows, dtype=np.int64)
    chunks = column.chunks
    if not len(rows):
        return pa.array([], type=column.type)
    if len(chunks) <= 1:
        return column.combine_chunks().take(pa.array(rows))
    starts = np.cumsum([0] + [len(c) for c in chunks])
    which = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(chunks) + 1))
    parts = [chunks[k].take(pa.array(rows[order[a:b]] - starts[k]))
             for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])) if b > a]
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return pa.concat_arrays(parts).take(pa.array(back))


def _batches(rows: np.ndarray, texts: list[str]) -> Iterator[tuple[np.ndarray, pa.Array]]:
    """``texts`` as Arrow arrays of under 2 GiB each (a view's offset is 32-bit), with their ``rows``."""
    first, held = 0, 0
    for i, text in enumerate(texts):
        if held and held + 4 * len(text) >= 2**31:  # at most 4 UTF-8 bytes per character
            yield rows[first:i], pa.array(texts[first:i], type=pa.large_string())
            first, held = i, 0
        held += 4 * len(text)
    yield rows[first:], pa.array(texts[first:], type=pa.large_string())


def _views(length: np.ndarray, which: np.ndarray, begin: np.ndarray, buffers: list[pa.Buffer]) -> np.ndarray:
    """Arrow string views (16 bytes each: length, then 12 inline bytes, or a 4-byte prefix, buffer and offset)."""
    views = np.zeros((len(length), 16), dtype=np.uint8)
    views[:, 0:4] = length.astype("<i4").view(np.uint8).reshape(-1, 4)
    for b, buffer in enumerate(buffers):
        mine = np.flatnonzero(which == b)
        if not len(mine):
            continue
        raw = np.frombuffer(buffer, dtype=np.uint8) if buffer.size else np.zeros(1, np.uint8)
        start, size = begin[mine], length[mine]
        reach = np.minimum(start[:, None] + np.arange(12), len(raw) - 1)
        inline = np.where(np.arange(12) < size[:, None], raw[reach], 0).astype(np.uint8)
        long = size > 12
        views[mine[~long], 4:16] = inline[~long]
        views[mine[long], 4:8] = inline[long, :4]
        views[mine[long], 8:12] = np.full(int(long.sum()), b, dtype="<i4").view(np.uint8).reshape(-1, 4)
        views[mine[long], 12:16] = start[long].astype("<i4").view(np.uint8).reshape(-1, 4)
    return views


def body(raw: str) -> tuple[str, bool]:
    """(application line, cut by the runtime?) from the runtime's JSON; the raw text otherwise
    (also when the line escapes a lone surrogate: no text can hold it, the raw text can)."""
    try:
        doc = orjson.loads(raw)  # a third of json's time; json decides what orjson refuses
    except orjson.JSONDecodeError:
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
    line = doc.get("log") if isinstance(doc, dict) else None
    if isinstance(line, str) and not_utf8(line):
        line = None
    if not isinstance(line, str):
        return (raw.strip() or "(empty)"), False
    partial = not line.endswith("\n")
    line = line.rstrip("\r\n")
    return (line if line.strip() else "(empty)"), partial


def level_tokens(body: pa.Array) -> pa.Array:
    """The level token of each line (:data:`_LEVEL_RE2`), null where there is none."""
    found = pc.extract_regex(body, _LEVEL_RE2)
    if isinstance(found, pa.ChunkedArray):
        found = found.combine_chunks()
    return pc.struct_field(found, "level")


def coded(values: Any, func: Any = None, missing: str | None = None) -> pd.Series:
    """A categorical column of an Arrow text array: ``func`` of each distinct value when given,
    ``missing`` for nulls. Validation checks each category once (pods, services, traces repeat)."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()  # one dictionary for all chunks
    words = encoded.dictionary.to_pylist()
    if func is not None:
        words = [func(word) for word in words]
    index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    if missing is not None:
        words.append(missing)
        index[index < 0] = len(words) - 1
    codes, categories = pd.factorize(pd.Series(words, dtype="str"))  # two values may map to one text
    codes = np.append(codes, -1)[index]
    return pd.Series(pd.Categorical.from_codes(codes, categories=categories))


def log_times(text: Any) -> np.ndarray:
    """Nanoseconds since the epoch of the ``Timestamp`` texts (int64; unparseable: the int64 minimum).

    The zone-less texts (multi-line ERROR rows) are UTC like the others (README trap 3): they get a
    ``Z``. Arrow's ISO 8601 cast reads the column; when it refuses a text, the one time parser
    (:func:`~workbench.telemetry.columns.to_utc`) decides each row, as it does for every source.
    """
    text = pc.utf8_trim_whitespace(text)
    text = pc.if_else(pc.match_substring_regex(text, _HAS_ZONE), text, pc.binary_join_element_wise(text, "Z", ""))
    try:
        times = pc.cast(text, pa.timestamp("ns", "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed, _ = to_utc(text.to_pandas())
        return parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return np.asarray(times.cast(pa.int64()).fill_null(np.iinfo(np.int64).min), dtype=np.int64)


def quoted(values: Any) -> pa.Array:
    """The JSON string literal of each text, as ``json.dumps(ensure_ascii=False)`` writes it.

    json escapes only quotes, backslashes and control characters: every other distinct text is
    itself between quotes (Arrow joins them); the few others go through json.dumps.
    """
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    words = encoded.dictionary.cast(pa.string())
    literal = pc.binary_join_element_wise('"', words, '"', "")
    escape = np.flatnonzero(np.asarray(pc.match_substring_regex(words, r'["\\\x00-\x1f]'), dtype=bool))
    if len(escape):
        mask = np.zeros(len(words), dtype=bool)
        mask[escape] = True
        texts = [json_text(w) for w in words.take(pa.array(escape)).to_pylist()]
        literal = pc.replace_with_mask(literal, pa.array(mask), pa.array(texts, type=literal.type))
    return literal.take(encoded.indices)


def json_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
