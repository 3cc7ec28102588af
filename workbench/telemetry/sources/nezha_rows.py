"""Column-at-once parsing of Nezha log rows (the container runtime's JSON around each line).

Split from :mod:`.nezha` so that module stays readable; only the nezha source uses these.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..columns import distinct

#: A character of a JSON string that needs no decoding: no quote, backslash or control character.
_PLAIN = r'[^"\\\x00-\x1f]'
#: The runtime's common shape, ``{"log":"…\\n","stream":"stdout","time":"…"}``, with a ``log`` text
#: holding no escape, no control character and one visible ASCII character (so it is not blank for
#: Python's ``str.strip`` either): its JSON text is the line itself. Every other row (escapes such
#: as ``\\u003c``, other key orders, spaces, blank lines, not JSON at all) goes to json.loads.
_PLAIN_DOC = (r'^\{"log":"' + _PLAIN + r'*[!#-\[\]-~]' + _PLAIN + r'*(?:\\n)?","stream":"' + _PLAIN
              + r'*","time":"' + _PLAIN + r'*"\}$')
#: What follows the line in that shape (found in the last :data:`_TAIL` bytes of a row).
_SUFFIX = r'(?P<suffix>(?P<newline>\\n)?","stream":"' + _PLAIN + r'*","time":"' + _PLAIN + r'*"\}$)'
_TAIL = 96
_PREFIX = len('{"log":"')
#: The level token after the line's clock (``16:42:22.382 INFO  …``), for Arrow's RE2 engine.
_LEVEL_RE2 = r"^\s*\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\s+(?P<level>[A-Za-z]+)\b"


def bodies(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """:func:`body` of every row: the common shape cut out with Arrow, the rest through json.loads.

    A row of the common shape is its bytes between the fixed prefix and its suffix (ASCII both,
    so the cut stays valid UTF-8); rows are cut in groups of equal suffix length (a handful).
    """
    arr = _flat(pa.array(raw.astype("str"), from_pandas=True))
    data = arr.view(pa.large_binary() if pa.types.is_large_string(arr.type) else pa.binary())
    fast = np.array(pc.fill_null(pc.match_substring_regex(arr, _PLAIN_DOC), False), dtype=bool)
    tails = pc.extract_regex(pc.binary_slice(data, -_TAIL), _SUFFIX)
    suffix = np.array(pc.fill_null(pc.binary_length(pc.struct_field(tails, "suffix")), -1), dtype=np.int64)
    newline = np.array(pc.fill_null(pc.binary_length(pc.struct_field(tails, "newline")), 0), dtype=np.int64) > 0
    fast &= (suffix > 0) & (suffix + 2 <= _TAIL)  # a suffix cut by the tail could hide its \n
    partial = ~newline
    pieces, where = [], []
    for length in np.unique(suffix[fast]):
        rows = np.flatnonzero(fast & (suffix == length))
        pieces.append(pc.binary_slice(data.take(pa.array(rows)), _PREFIX, -int(length)).view(arr.type))
        where.append(rows)
    slow = np.flatnonzero(~fast)
    if len(slow):
        pairs = [body(v) for v in arr.take(pa.array(slow)).to_pylist()]
        partial[slow] = [p for _, p in pairs]
        pieces.append(pa.array([b for b, _ in pairs], type=arr.type))
        where.append(slow)
    # Put the groups back in row order with one take.
    if not pieces:
        return pd.Series([], index=raw.index, dtype="str"), partial
    order = np.empty(len(arr), dtype=np.int64)
    order[np.concatenate(where)] = np.arange(len(arr))
    out = pa.concat_arrays(pieces).take(pa.array(order))
    series = out.to_pandas()
    series.index = raw.index
    return series, partial


def _flat(arr: Any) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def body(raw: str) -> tuple[str, bool]:
    """(application line, cut by the runtime?) from the runtime's JSON; the raw text otherwise."""
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    line = doc.get("log") if isinstance(doc, dict) else None
    if not isinstance(line, str):
        return (raw.strip() or "(empty)"), False
    partial = not line.endswith("\n")
    line = line.rstrip("\r\n")
    return (line if line.strip() else "(empty)"), partial


def level_tokens(body: pd.Series) -> pd.Series:
    """The level token of each line (:data:`_LEVEL_RE2`), NaN where there is none."""
    found = pc.extract_regex(pa.array(body.astype("str"), type=pa.string()), _LEVEL_RE2)
    if isinstance(found, pa.ChunkedArray):
        found = found.combine_chunks()
    token = pc.struct_field(found, "level").to_pandas()
    token.index = body.index
    return token


def per_value(series: pd.Series, func: Any) -> pd.Series:
    """``series.map(func)`` computed once per distinct value (pods, operations repeat a lot), as ``str``."""
    codes, uniques = distinct(series.astype("str"))
    mapped = pd.array([func(value) for value in uniques], dtype="str")
    return pd.Series(mapped.take(codes, allow_fill=True), index=series.index)


def json_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
