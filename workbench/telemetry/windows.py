"""Time windows of an incident: where to look (analysis window) and what was normal (baseline).

One place for these rules so the CLI, the engine, the notebooks and the recheck loop agree.

The rules
---------
- No override: the analysis window is ``[started - LEAD, resolved + TAIL)`` and the baseline the
  :data:`BASELINE` (24 h) before it.
- An override (``window_start``/``window_end``) that starts before ``started - LEAD_GUARD`` holds a
  quiet *lead-in*: the time between the override's start and the incident's start, the most
  recent normal behaviour. Data-set cases (Nezha: the end of the previous fault) and the recheck's
  follow-up reviews (the checked window; ``started`` = the recurrence onset) are built this way.
  The analysis window is then ``[started - LEAD_GUARD, window_end)`` and the baseline the lead-in,
  extended back before the override's start to at least :data:`LEAD_IN_BASELINE` (60 min):
  ``[min(window_start, started - LEAD_GUARD - LEAD_IN_BASELINE), started - LEAD_GUARD)``.
- Any other override (it starts at or after ``started - LEAD_GUARD``) is taken as it is, with the
  24 h baseline before it.

Why the lead-in rule, measured on the 32 Nezha cases through the workspace path (``python
benchmarks/speed.py --repeat 3``; AS@k = the true service among the first k suspicions): the 24 h
before an override's start holds the whole day's other faults, slow to read and score (2.05 s
median per case, AS@1/3/5 0.719 / 0.906 / 0.969) and contaminated. The lead-in alone is not
enough: Nezha's log and trace files exist only around each fault, so a lead-in holds metrics but
hardly any log lines or spans (lead-ins of 10 min or more as baseline, else 24 h: 0.438 / 0.594
/ 0.688). Extended to 60 min: 1.06 s, 0.812 / 0.906 / 1.000; to 45 min 0.781 / 0.875 / 0.969
(0.94 s), to 90 min 0.812 / 0.938 / 1.000 (1.21 s; variants timed on the same store without the
knowledge-base reads); a 120 s guard instead of 60 s gave 0.719 / 0.906 / 1.000 (Nezha's faults
show 40-60 s before the inject time). The constants were chosen on those same cases.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
from ..errors import ParameterError

#: Margin before the reported start: signals usually move before a human notices.
LEAD = pd.Timedelta(minutes=60)
#: How long after the start to look when the incident has no mitigation/resolution time yet.
OPEN_SPAN = pd.Timedelta(hours=2)
#: Margin after mitigation/resolution, to see the recovery.
TAIL = pd.Timedelta(minutes=15)
#: Default baseline length before the analysis window.
BASELINE = pd.Timedelta(hours=24)
#: With an override holding a lead-in: how long before ``started`` the analysis window starts
#: (signals move a little before the recorded start; the rest of the lead-in is the baseline).
LEAD_GUARD = pd.Timedelta(seconds=60)
#: Shortest baseline taken around a lead-in: a shorter lead-in is extended back before the
#: override's start (a lead-in may hold metrics but hardly any log lines or spans).
LEAD_IN_BASELINE = pd.Timedelta(minutes=60)


def step_offset(step: str) -> pd.DateOffset:
    """The alignment step as a pandas offset; anything but a positive fixed duration is refused."""
    try:
        offset = pd.tseries.frequencies.to_offset(step)
    except (ValueError, TypeError):
        raise ParameterError(f"step must be a pandas offset alias such as '1min' or '30s', got {step!r}") from None
    if offset is None or pd.Timedelta(offset) <= pd.Timedelta(0):
        raise ParameterError(f"step must be a positive fixed duration, got {step!r}")
    return offset


def analysis_window(incident: Any, *, lead_in: bool = True) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of the telemetry to analyse for ``incident``.

    Without an override the window runs from :data:`LEAD` before ``started`` to :data:`TAIL` after
    ``resolved`` (or ``mitigated``; or :data:`OPEN_SPAN` after ``started`` while the incident is
    open). An explicit override (``window_start``/``window_end``) wins, except that an override
    starting before ``started - LEAD_GUARD`` holds a lead-in (see :func:`lead_in_span`): the
    window then starts at ``started -`` :data:`LEAD_GUARD` and the lead-in is the baseline.

    Parameters
    ----------
    incident : Incident record or dict
        ``started``, ``mitigated``, ``resolved``, ``window_start``, ``window_end`` (a dict may
        hold the override as ``window: {start, end}``).
    lead_in : bool
        False: take the override as it is, lead-in included (a reader's explicit window, e.g. a
        notebook's ``window_start`` parameter, rather than the incident's stored one).
    """
    start = _get(incident, "window_start")
    end = _get(incident, "window_end")
    started = _get(incident, "started")
    quiet = lead_in_span(incident) if lead_in else None
    if quiet is not None:
        start = quiet[1]
    elif start is None:
        start = started - LEAD
    if end is None:
        last = _get(incident, "resolved") or _get(incident, "mitigated")
        end = (last + TAIL) if last is not None else started + OPEN_SPAN
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")


def baseline_window(incident: Any, length: pd.Timedelta = BASELINE, *,
                    lead_in: bool = True) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of the baseline: ``length`` (24 h) before the analysis window, or, when the
    incident's override holds a lead-in (:func:`lead_in_span`), the lead-in extended back to at
    least :data:`LEAD_IN_BASELINE` (``length`` is then not used).

    ``end`` is always the analysis window's start (:func:`analysis_window` with the same
    ``lead_in``).
    """
    start, _ = analysis_window(incident, lead_in=lead_in)
    quiet = lead_in_span(incident) if lead_in else None
    if quiet is not None:
        return min(quiet[0], start - LEAD_IN_BASELINE), start
    return start - length, start


def lead_in_span(incident: Any) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """``[window_start, started - LEAD_GUARD)``: the quiet lead-in of an override, or None.

    None unless the incident has a ``window_start`` override earlier than ``started -``
    :data:`LEAD_GUARD` and ``started - LEAD_GUARD`` is before the window's end (an override that
    starts at the fault, or ends before it, holds no lead-in and is taken as it is).
    """
    start = _get(incident, "window_start")
    started = _get(incident, "started")
    if start is None or started is None:
        return None
    cut = started - LEAD_GUARD
    end = _get(incident, "window_end")
    if not start < cut or (end is not None and cut >= end):
        return None
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(cut).tz_convert("UTC")


def _get(obj: Any, name: str) -> pd.Timestamp | None:
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    if value is None and isinstance(obj, dict) and name.startswith("window_"):
        value = (obj.get("window") or {}).get(name[len("window_"):])
    return None if value is None else pd.Timestamp(value)
