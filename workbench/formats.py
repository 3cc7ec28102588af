"""Shared value rules: times in UTC, finite numbers, acceptable text, one-line text, ``key=value`` pairs.

The one place for the small conversions every layer needs, so a time typed on the command line,
read from a criterion or stored in a signature goes through the same rule everywhere.

Acceptable text
---------------
Text anywhere in the workbench (telemetry at the edge, the knowledge base) is valid Unicode that
UTF-8 can encode (no lone surrogates, which is how undecodable bytes survive
``errors="surrogateescape"``) and holds no C0 control character (U+0000-U+001F), except that
*multi-line* text (a log body, an event summary, an attribute value, an incident's title or a
rationale) may hold a tab, a line feed and a carriage return. NUL is refused everywhere: PostgreSQL
cannot store it in ``text``, and a NUL inside a name cuts it short in C tools. One-line text
(service, environment, metric and span names, ids, attribute keys) takes no control character
at all. :func:`text_problem` checks one value, :func:`bad_text` a column at once (Arrow's regex
engine); both apply :data:`CONTROL_ONE_LINE` / :data:`CONTROL_MULTI_LINE`.

Names and titles are also bounded (:data:`MAX_NAME_CHARS`, :data:`MAX_TITLE_CHARS`): a service,
environment or person's name, and an incident's, action item's or link's title, are shown whole
in tables and headings, where a 100,000-character value made a report 1.7 million pixels wide.
Telemetry's service and environment columns take the same bound as the knowledge base's service
fields, so an analysis never proposes a name the knowledge base would refuse.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

#: Characters one-line text may not hold: every C0 control character.
CONTROL_ONE_LINE = "[\\x00-\\x1f]"
#: Characters multi-line text may not hold: C0 controls except tab, line feed, carriage return.
CONTROL_MULTI_LINE = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"
_CONTROL = {False: re.compile(CONTROL_ONE_LINE), True: re.compile(CONTROL_MULTI_LINE)}
#: Most characters of a service, environment or person's name (telemetry and knowledge base).
MAX_NAME_CHARS = 256
#: Most characters of an incident's, action item's or link's title.
MAX_TITLE_CHARS = 500


def text_problem(value: str, multiline: bool = True) -> str | None:
    """What makes ``value`` unacceptable text (see the module docstring), or None when it is fine.

    Parameters
    ----------
    value : str
    multiline : bool
        True for text that may span lines (tab, LF and CR allowed), False for names and ids.

    Returns
    -------
    str or None
        e.g. ``"a NUL character (\\x00)"``, ``"a control character ('\\x1b')"``, ``"a lone surrogate
        (not UTF-8)"``.
    """
    found = _CONTROL[multiline].search(value)
    if found is not None:
        char = found.group()
        return "a NUL character (\\x00)" if char == "\x00" else f"a control character ({char!r})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (not UTF-8)"
    return None


def bad_text(values: pd.Series, multiline: bool = True) -> np.ndarray:
    """Boolean mask of the strings in ``values`` that :func:`text_problem` refuses (missing values: False).

    Vectorised: the UTF-8 bytes of the column are scanned for the C0 controls at once (in valid
    UTF-8 a byte below 0x20 is always that character); a column Arrow cannot hold (lone
    surrogates) is checked once per distinct value instead.
    """
    import pyarrow as pa

    if not len(values):
        return np.zeros(0, dtype=bool)
    try:
        arrow = pa.array(values, from_pandas=True)
        if not (pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type)):
            arrow = arrow.cast(pa.large_string())
    except (pa.ArrowException, UnicodeEncodeError, TypeError):
        codes, uniques = pd.factorize(values)
        flags = np.array([isinstance(u, str) and text_problem(u, multiline) is not None for u in uniques] + [False])
        return flags[codes]
    chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    if not chunks:
        return np.zeros(0, dtype=bool)
    return np.concatenate([_control_rows(chunk, multiline) for chunk in chunks])


#: Bytes scanned at a time by :func:`_control_rows` (the scratch mask stays in cache).
_SCAN = 1 << 22


def _control_rows(text: Any, multiline: bool) -> np.ndarray:
    """Which strings of one Arrow string array hold a C0 control character other than the allowed."""
    out = np.zeros(len(text), dtype=bool)
    if not len(text) or text.buffers()[2] is None:
        return out
    width = np.int64 if text.type.id == _large_string_id() else np.int32
    offsets = np.frombuffer(text.buffers()[1], dtype=width)[text.offset:text.offset + len(text) + 1].astype(np.int64)
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)
    for lo in range(int(offsets[0]), int(offsets[-1]), _SCAN):
        chunk = data[lo:min(lo + _SCAN, int(offsets[-1]))]
        found = np.flatnonzero(chunk < 0x20)
        if multiline and len(found):
            byte = chunk[found]
            found = found[(byte != 0x09) & (byte != 0x0A) & (byte != 0x0D)]
        if len(found):
            out[np.searchsorted(offsets, found + lo, side="right") - 1] = True
    if text.null_count:
        out &= np.asarray(text.is_valid(), dtype=bool)
    return out


def _large_string_id() -> int:
    import pyarrow as pa

    return pa.large_string().id


def aware_time(value: Any, field: str, error: type[Exception] = ValueError) -> pd.Timestamp:
    """``value`` (a time or ISO 8601 text with a zone) as a UTC timestamp, else ``error(message)``.

    The one check every user-given time goes through (CLI options, recheck windows, criteria,
    detector frames): text that is no time, NaT and naive times are refused with a message naming
    ``field``; a naive time is never guessed to be UTC.
    """
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise error(f"{field}: expected a time such as 2026-11-06T16:05:00Z, got {value!r}") from None
    if pd.isna(ts):
        raise error(f"{field}: expected a time, got {value!r}")
    if ts.tzinfo is None:
        raise error(f"{field}: {value!r} has no time zone; give UTC explicitly (e.g. '...Z') or an offset "
                    f"like +01:00")
    return ts.tz_convert("UTC")


def utc_bound(value: Any) -> pd.Timestamp | None:
    """A window bound as a UTC timestamp (None stays None); a naive bound is refused (ValueError)."""
    return None if value is None else aware_time(value, "window bound")


def as_utc(value: Any) -> pd.Timestamp:
    """A time the code itself produced as a UTC timestamp; a naive one is taken as UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def iso_utc(value: Any) -> str | None:
    """ISO 8601 text in UTC ending in ``Z`` (naive values are taken as UTC); None/NaT give None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    return as_utc(ts).isoformat().replace("+00:00", "Z")


def finite(value: Any, default: float | None = None) -> float | None:
    """``value`` as a finite float, else ``default`` (for None, text that is no number, NaN, inf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


#: Characters a terminal acts on instead of showing: C0 controls (newline, carriage return, ESC ...),
#: DEL, C1 controls, the line/paragraph separators and the bidirectional overrides and isolates
#: (which reorder what follows them on screen).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: Any) -> str:
    """``text`` with every character a terminal would act on written as an escape (``\\n``,
    ``\\x1b``, ``\\u202e``): a title cannot fake table rows, move the cursor or reorder a line."""
    return _UNPRINTABLE.sub(lambda m: _ESCAPES.get(m.group(), m.group().encode("unicode_escape").decode("ascii")),
                            str(text))


def clip(text: Any, width: int) -> str:
    """``text`` on one line (runs of whitespace, newlines included, become one space; other control
    characters escaped by :func:`printable`), at most ``width`` characters, cut with ``…`` — so one
    record stays one row of a table."""
    text = printable(" ".join(str(text).split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def key_value(text: str, field: str, error: type[Exception] = ValueError, *,
              identifier: bool = False) -> tuple[str, str]:
    """Split ``key=value`` or raise ``error`` naming ``field``.

    By default spaces around the key and the value are dropped (label filters). With
    ``identifier=True`` the key must be a Python identifier and the value is kept exactly as
    typed (notebook parameters and source options, where spaces may be data).
    """
    key, sep, value = str(text).partition("=")
    if identifier:
        if not sep or not key.isidentifier():
            raise error(f"{field}: expected key=value with an identifier key, got {text!r}")
        return key, value
    key = key.strip()
    if not sep or not key:
        raise error(f"{field}: expected key=value, got {text!r}")
    return key, value.strip()
