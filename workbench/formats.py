"""Shared value rules: times in UTC, finite numbers, one-line text, ``key=value`` pairs.

The one place for the small conversions every layer needs, so a time typed on the command line,
read from a criterion or stored in a signature goes through the same rule everywhere.
"""
from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd


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
