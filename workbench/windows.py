"""Time windows of an incident: where to look (analysis window) and what was normal (baseline).

One place for these rules so the CLI, the engine, the notebooks and the recheck loop agree.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

#: Margin before the reported start: signals usually move before a human notices.
LEAD = pd.Timedelta(minutes=60)
#: How long after the start to look when the incident has no mitigation/resolution time yet.
OPEN_SPAN = pd.Timedelta(hours=2)
#: Margin after mitigation/resolution, to see the recovery.
TAIL = pd.Timedelta(minutes=15)
#: Default baseline length before the analysis window.
BASELINE = pd.Timedelta(hours=24)


def step_offset(step: str) -> pd.DateOffset:
    """The alignment step as a pandas offset; anything but a positive fixed duration is refused."""
    try:
        offset = pd.tseries.frequencies.to_offset(step)
    except (ValueError, TypeError):
        raise ValueError(f"step must be a pandas offset alias such as '1min' or '30s', got {step!r}") from None
    if offset is None or pd.Timedelta(offset) <= pd.Timedelta(0):
        raise ValueError(f"step must be a positive fixed duration, got {step!r}")
    return offset


def analysis_window(incident: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of the telemetry to analyse for ``incident``.

    An explicit override (``window_start``/``window_end``) wins; otherwise the window runs from
    :data:`LEAD` before ``started`` to :data:`TAIL` after ``resolved`` (or ``mitigated``; or
    :data:`OPEN_SPAN` after ``started`` while the incident is open).
    """
    start = _get(incident, "window_start")
    end = _get(incident, "window_end")
    started = _get(incident, "started")
    if start is None:
        start = started - LEAD
    if end is None:
        last = _get(incident, "resolved") or _get(incident, "mitigated")
        end = (last + TAIL) if last is not None else started + OPEN_SPAN
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")


def baseline_window(incident: Any, length: pd.Timedelta = BASELINE) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of the baseline: ``length`` before the analysis window."""
    start, _ = analysis_window(incident)
    return start - length, start


def _get(obj: Any, name: str) -> pd.Timestamp | None:
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    if value is None and isinstance(obj, dict) and name.startswith("window_"):
        value = (obj.get("window") or {}).get(name[len("window_"):])
    return None if value is None else pd.Timestamp(value)
