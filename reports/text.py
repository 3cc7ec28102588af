"""How values read in every table the UI layers draw (report, notebook, widgets): times, durations,
scores, missing values.

- Times in UTC: ``2026-11-02 14:03:00 UTC`` alone (:func:`when`); in a column, ``HH:MM:SS UTC``
  with the date only on the first row and where it changes (:func:`clock_column`).
- Missing values (None, NaN, NaT, empty text) read :data:`MISSING`, never ``None``/``nan``/``NaT``.
- Scores and magnitudes are rounded (:func:`number`); durations read ``5 min 48 s``.

Plain text only: escaping is :mod:`workbench.reports.safe`'s job.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

#: What a missing value reads.
MISSING = "—"


def missing(value: Any) -> bool:
    """True for None, NaN, NaT, pandas NA and blank text."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict, set)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # an array-like: not one missing value
        return False


def utc(value: Any) -> pd.Timestamp | None:
    """``value`` as an aware UTC timestamp (naive is taken as UTC); None when missing."""
    if missing(value):
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def when(value: Any, seconds: bool | None = True) -> str:
    """A time as ``2026-11-02 14:03:00 UTC`` (``seconds=False``: minutes only; None: seconds when
    there are any); :data:`MISSING` if none."""
    ts = utc(value)
    if ts is None:
        return MISSING
    show = ts.second != 0 if seconds is None else seconds
    return ts.strftime("%Y-%m-%d %H:%M:%S" if show else "%Y-%m-%d %H:%M") + " UTC"


def clock_column(values: Iterable[Any]) -> list[str]:
    """Times of one table column: ``HH:MM:SS UTC``, with the date in front on the first time and
    wherever the date changes from the row above; :data:`MISSING` for missing ones."""
    out, last_day = [], None
    for value in values:
        ts = utc(value)
        if ts is None:
            out.append(MISSING)
            continue
        day = ts.date()
        text = ts.strftime("%H:%M:%S") + " UTC"
        out.append(f"{ts.strftime('%Y-%m-%d')} {text}" if day != last_day else text)
        last_day = day
    return out


def duration(start: Any, end: Any) -> str:
    """``end - start`` as ``5 min 48 s`` / ``1 h 12 min`` / ``-3 min`` (:data:`MISSING` if either is missing)."""
    a, b = utc(start), utc(end)
    if a is None or b is None:
        return MISSING
    return seconds_text((b - a).total_seconds())


def minutes_text(minutes: Any) -> str:
    """A number of minutes as :func:`seconds_text` reads it (:data:`MISSING` if missing)."""
    number_ = finite(minutes)
    return MISSING if number_ is None else seconds_text(number_ * 60)


def seconds_text(seconds: float) -> str:
    seconds = int(round(seconds))
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h >= 48:
        return f"{sign}{h // 24} d {h % 24} h"
    if h:
        return f"{sign}{h} h {m} min"
    if m:
        return f"{sign}{m} min {s} s" if s else f"{sign}{m} min"
    return f"{sign}{s} s"


def finite(value: Any) -> float | None:
    """``value`` as a finite float, else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def number(value: Any, digits: int = 2) -> str:
    """A score or magnitude rounded to ``digits`` decimals (3 significant digits when smaller than
    that shows); :data:`MISSING` when not a finite number."""
    f = finite(value)
    if f is None:
        return MISSING
    if f != 0 and abs(f) < 10 ** -digits:
        return f"{f:.{max(1, digits)}g}"
    return f"{f:.{digits}f}"


def percent(value: Any) -> str:
    """A 0–1 share as ``83.4 %``; :data:`MISSING` when not a finite number (a rate with an empty
    denominator, a confidence nobody computed)."""
    f = finite(value)
    return MISSING if f is None else f"{100 * f:.1f} %"


def plain(value: Any) -> str:
    """Any value as table text: :data:`MISSING` when missing, floats rounded, the rest ``str()``."""
    if missing(value):
        return MISSING
    if isinstance(value, float):
        return number(value)
    if isinstance(value, pd.Timestamp):
        return when(value)
    return str(value)
