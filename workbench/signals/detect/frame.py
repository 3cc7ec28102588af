"""Metric anomaly detection for one service: align, fit on the baseline, score, explain, find onset.

:func:`align` turns unified metric rows into one wide frame per service; :func:`score_frame`
fits a detector on the rows before ``baseline_end`` and scores the rows after it, returning a
:class:`DetectionResult` (scores, threshold, anomalous steps, sustained onset, per-metric
contributions and the top metrics). :func:`rank_metrics` is the one place contributions are
aggregated over a window; the SMD/ASD benchmark uses it as well.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ...errors import DetectionError, SchemaError
from ...telemetry.windows import step_offset
from .base import REFERENCE_WINDOW, Detector, local_reference
from .catalog import DEFAULT_DETECTOR, get_detector
from ...formats import aware_time

#: Forward-fill gaps of at most this many steps (a scrape or two missed); longer gaps stay NaN as
#: a whole (:func:`_fill_short_gaps`).
FILL_LIMIT = 5
#: Onset rule: the first anomalous step with at least ONSET_K anomalous steps among the ONSET_M
#: steps starting at it (so a lone spike is not an onset).
ONSET_K, ONSET_M = 3, 5
TOP = 10


# --------------------------------------------------------------------------- align

def align(metrics: pd.DataFrame, step: str = "1min", *, fill_limit: int = FILL_LIMIT,
          service: str | None = None) -> dict[str, pd.DataFrame]:
    """Unified metric rows → one wide frame per service, on a regular UTC grid of ``step``.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The unified ``metrics`` table: ``timestamp`` (tz-aware), ``service``, ``name``, ``value``
        (other columns such as ``environment``, ``unit``, ``attributes`` are ignored; series that
        differ only by them are averaged, and a note says so).
    step : str
        A pandas offset alias (``"1min"``, ``"30s"``).
    fill_limit : int
        Longest gap, in steps, that is forward-filled.
    service : str, optional
        Only this service.

    Returns
    -------
    dict of str to pandas.DataFrame
        Per service: index = step start (``datetime64[ns, UTC]``, every step present), one float
        column per metric name holding the mean of the values in the step. Metrics that are
        all-NaN or constant over the whole frame are dropped; ``frame.attrs["notes"]`` lists what
        was dropped or averaged (and :func:`score_frame` reports those notes).

    Raises
    ------
    SchemaError
        A required column is missing or timestamps are not timezone-aware.
    ValueError
        ``step`` is not a pandas offset alias.
    """
    offset = step_offset(step)
    missing = [c for c in ("timestamp", "service", "name", "value") if c not in metrics.columns]
    if missing:
        raise SchemaError("metrics", "align()", [{"column": ", ".join(missing), "check": "a required column, missing",
                                                  "count": len(metrics), "rows": []}])
    ts = metrics["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise SchemaError("metrics", "align()", [{"column": "timestamp", "check": "timezone-aware times (UTC)",
                                                  "count": len(metrics), "rows": []}])
    rows = metrics.assign(timestamp=ts.dt.tz_convert("UTC"), value=pd.to_numeric(metrics["value"], errors="coerce"))
    if service is not None:
        rows = rows[rows["service"] == service]
    out: dict[str, pd.DataFrame] = {}
    for svc, part in rows.groupby("service", sort=True):
        notes: list[str] = []
        extra = [c for c in ("environment", "attributes") if c in part.columns]
        if extra:
            series = part.drop_duplicates(["name", *extra]).groupby("name").size()
            multi = sorted(series[series > 1].index)
            if multi:
                notes.append(f"averaged several series (environment/attributes) per step for: {', '.join(multi)}")
        binned = part.assign(timestamp=part["timestamp"].dt.floor(offset))
        wide = binned.groupby(["timestamp", "name"])["value"].mean().unstack("name")
        wide = _regular(wide, offset, fill_limit)
        wide, dropped = _drop_uninformative(wide)
        notes.extend(f"dropped {c!r}: {why}" for c, why in dropped.items())
        wide.columns.name = None
        wide.attrs["notes"] = notes
        out[str(svc)] = wide
    return out


# --------------------------------------------------------------------------- result

@dataclass
class DetectionResult:
    """What :func:`score_frame` found for one service.

    Attributes
    ----------
    detector : str
        Registered name of the detector (or its class name).
    params : dict
        The detector's hyper-parameters.
    service : str or None
    ok : bool
        False when nothing could be scored; ``notes`` says why.
    scores : pandas.Series
        Anomaly score per scored step (index: UTC step start).
    threshold : float
        The detector's ``threshold_`` (a quantile of the baseline's own scores); NaN if not ok.
    anomalous : pandas.Series of bool
        ``scores > threshold``.
    onset : pandas.Timestamp or None
        First sustained anomalous step (``onset_k`` of ``onset_m`` steps from it anomalous).
    contributions : pandas.DataFrame
        Signed per-metric contributions (index: steps, columns: metrics), see
        :meth:`~workbench.signals.detect.base.Detector.contributions`.
    top : pandas.DataFrame
        :func:`rank_metrics` over the anomalous steps from the onset on (all anomalous steps when
        there is no sustained onset, all scored steps when none is anomalous): columns
        ``metric``, ``direction`` ("up"/"down"), ``magnitude`` (largest |contribution|), ``at``
        (its step), ``value`` (the metric there), ``baseline`` (baseline median).
    baseline_rows, scored_rows : int
    notes : list of str
        Dropped or filled columns, short baseline, empty window, what ``top`` was ranked over.
    """

    detector: str
    params: dict[str, Any]
    service: str | None
    ok: bool
    scores: pd.Series
    threshold: float
    anomalous: pd.Series
    onset: pd.Timestamp | None
    contributions: pd.DataFrame
    top: pd.DataFrame
    baseline_rows: int = 0
    scored_rows: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: times as ISO 8601 text, series as ``{"index": [...], "values": [...]}``."""
        def series(s: pd.Series) -> dict[str, list]:
            return {"index": [t.isoformat() for t in s.index], "values": _plain(s.tolist())}

        top = self.top.assign(at=[t.isoformat() for t in self.top["at"]]) if len(self.top) else self.top
        return {
            "detector": self.detector, "params": _jsonable(self.params), "service": self.service, "ok": self.ok,
            "threshold": None if not np.isfinite(self.threshold) else float(self.threshold),
            "onset": self.onset.isoformat() if self.onset is not None else None,
            "baseline_rows": self.baseline_rows, "scored_rows": self.scored_rows,
            "scores": series(self.scores), "anomalous": series(self.anomalous.astype(bool)),
            "contributions": {"index": [t.isoformat() for t in self.contributions.index],
                              "columns": [str(c) for c in self.contributions.columns],
                              "data": [_plain(row) for row in self.contributions.to_numpy().tolist()]},
            "top": top.to_dict(orient="records"),
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- scoring

def score_frame(frame: pd.DataFrame, baseline_end: Any, *, baseline_start: Any = None, end: Any = None,
                detector: str | Detector | None = None, params: dict[str, Any] | None = None,
                step: str = "1min", fill_limit: int = FILL_LIMIT, reference_window: int | None = REFERENCE_WINDOW,
                onset_k: int = ONSET_K, onset_m: int = ONSET_M, top: int = TOP,
                service: str | None = None) -> DetectionResult:
    """Fit a detector on the steps before ``baseline_end`` and score the steps from it on.

    Parameters
    ----------
    frame : pandas.DataFrame
        One service's metrics, wide: index = UTC timestamps (tz-aware), one numeric column per
        metric (:func:`align` makes one). It is re-gridded to ``step`` (mean per step, gaps of up
        to ``fill_limit`` steps forward-filled), which leaves an aligned frame unchanged.
    baseline_end : time-like
        First scored step; everything before it (from ``baseline_start``) is the baseline.
    baseline_start, end : time-like, optional
        Limits of the baseline and of the scored window (``end`` exclusive).
    detector : str or Detector, optional
        A registered name (default :data:`workbench.signals.detect.DEFAULT_DETECTOR`) or an unfitted
        detector instance.
    params : dict, optional
        Hyper-parameters for a detector given by name.
    step : str
        Alignment step (pandas offset alias).
    fill_limit : int
        Longest gap forward-filled, in steps.
    reference_window : int or None
        Contributions compare each step with the median of this many preceding steps
        (:func:`~workbench.signals.detect.base.local_reference`); 0 or None: with the baseline median.
    onset_k, onset_m : int
        Onset rule: the first anomalous step with ``onset_k`` of the ``onset_m`` steps from it
        anomalous.
    top : int
        How many metrics :attr:`DetectionResult.top` keeps.
    service : str, optional
        Recorded in the result.

    Returns
    -------
    DetectionResult
        ``ok=False`` with a note (never an exception) when the scored window is empty, no metric
        is usable, or the baseline is shorter than the detector needs.

    Raises
    ------
    DetectionError
        ``frame`` is not indexed by timezone-aware times.
    UnknownNameError
        ``detector`` is not registered.
    ValueError
        ``step``, ``onset_k``/``onset_m`` or a hyper-parameter is invalid.
    """
    if not 1 <= onset_k <= onset_m:
        raise DetectionError(f"need 1 <= onset_k <= onset_m, got onset_k={onset_k}, onset_m={onset_m}")
    if isinstance(detector, Detector):
        if params:
            raise DetectionError("give params only with a detector name; set them on the instance instead")
        det, name = detector, type(detector).__name__
    else:
        name = detector or DEFAULT_DETECTOR
        det = get_detector(name, **(params or {}))
    notes = list(frame.attrs.get("notes", []))
    offset = step_offset(step)
    grid = _regular(_numeric(_utc_index(frame), notes), offset, fill_limit)

    t_end = _time(baseline_end, "baseline_end")
    base_mask = grid.index < t_end
    if baseline_start is not None:
        base_mask &= grid.index >= _time(baseline_start, "baseline_start")
    scored_mask = grid.index >= t_end
    if end is not None:
        scored_mask &= grid.index < _time(end, "end")
    base, scored = grid[base_mask], grid[scored_mask]

    def failed(reason: str, columns: list[str] | None = None) -> DetectionResult:
        notes.append(f"not scored: {reason}")
        return _empty_result(name, det, service, scored.index, columns or [], len(base), notes)

    if len(scored) == 0:
        return failed("the scored window is empty (no steps at or after baseline_end)")
    # Columns the baseline cannot describe, or that carry no information at all.
    # (On the arrays at once: per-column pandas calls cost more than the detector itself.)
    keep, why = [], {}
    b_arr, s_arr = base.to_numpy(dtype=float), scored.to_numpy(dtype=float)
    b_empty, s_empty = np.isnan(b_arr).all(axis=0), np.isnan(s_arr).all(axis=0)
    constant = _constant(np.concatenate([b_arr, s_arr]))
    for j, col in enumerate(grid.columns):
        if b_empty[j]:
            why[col] = "no baseline values"
        elif s_empty[j]:
            why[col] = "no values in the scored window"
        elif constant[j]:
            why[col] = "constant"
        else:
            keep.append(col)
    notes.extend(f"dropped {c!r}: {w}" for c, w in why.items())
    if not keep:
        return failed("no usable metric (all dropped)")
    base, scored = base[keep], scored[keep]
    base = base.dropna(how="all")
    need = det.required_rows()
    if len(base) < need:
        return failed(f"the baseline has {len(base)} step(s) with data; {name} needs at least {need}", keep)

    flat = [c for c, same in zip(keep, _constant(base.to_numpy(dtype=float))) if same]
    if flat:
        notes.append(f"constant during the baseline (any change counts fully): {', '.join(map(str, flat))}")
    center = base.median()
    for label, part in (("baseline", base), ("scored window", scored)):
        gaps = part.isna().sum()
        gaps = gaps[gaps > 0]
        if len(gaps):
            shown = ", ".join(f"{c} ({n})" for c, n in gaps.items())
            notes.append(f"{label}: missing steps filled with the baseline median: {shown}")
    fill = center.to_numpy(dtype=float)
    base, scored = (pd.DataFrame(np.where(np.isnan(a), fill, a), index=part.index, columns=part.columns)
                    for a, part in ((base.to_numpy(dtype=float), base), (scored.to_numpy(dtype=float), scored)))

    det.fit(base.to_numpy())
    values = scored.to_numpy()
    scores = pd.Series(det.decision_function(values), index=scored.index, name="score")
    anomalous = scores > det.threshold_
    onset = sustained_onset(anomalous, onset_k, onset_m)
    history = pd.concat([base, scored])
    # The first scored steps take their reference level from the end of the baseline.
    ref = local_reference(history.to_numpy(), reference_window)[len(base):] if reference_window else None
    contrib = pd.DataFrame(det.contributions(values, reference=ref), index=scored.index, columns=keep)

    if onset is not None:
        rows, over = anomalous & (anomalous.index >= onset), "the anomalous steps from the onset on"
    elif anomalous.any():
        rows, over = anomalous, "the anomalous steps (no sustained onset)"
    else:
        rows, over = None, "all scored steps (none is anomalous)"
    notes.append(f"top metrics ranked over {over}")
    ranked = rank_metrics(contrib, rows, limit=top)
    ranked["value"] = [float(scored.at[t, m]) for t, m in zip(ranked["at"], ranked["metric"])]
    ranked["baseline"] = [float(center[m]) for m in ranked["metric"]]
    return DetectionResult(detector=name, params=det.get_params(), service=service, ok=True, scores=scores,
                           threshold=float(det.threshold_), anomalous=anomalous, onset=onset,
                           contributions=contrib, top=ranked, baseline_rows=len(base),
                           scored_rows=len(scored), notes=notes)


def service_scores(metrics: pd.DataFrame, baseline: tuple[Any, Any], window: tuple[Any, Any], *,
                   step: str = "1min", detector: str | Detector | None = None) -> pd.DataFrame:
    """Per service and step, the detector's score over its own threshold: the engine's view of
    "how abnormal", on one scale for every service (1 = the detector's cut-off on that service's
    baseline, 2 = twice as far out).

    Each service's metrics are :func:`align`-ed and scored by :func:`score_frame` (fitted on
    ``baseline``, scoring ``window``), as the localisation's detector pass does; a service the
    detector cannot score (too short a baseline, no usable metric) is left out.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Unified ``metrics`` rows covering baseline and window.
    baseline, window : tuple of time
        ``[start, end)`` of each (tz-aware).
    step : str
        Alignment step.
    detector : str or Detector, optional
        Default :data:`workbench.signals.detect.DEFAULT_DETECTOR`.

    Returns
    -------
    pandas.DataFrame
        ``timestamp`` (datetime64[ns, UTC]), ``service`` (str), ``score`` (float), sorted by
        service then time; empty (with those columns) when nothing could be scored.
    """
    parts = []
    if not metrics.empty:
        (b0, _), (w0, w1) = baseline, window
        for service, frame in sorted(align(metrics, step=step).items()):
            result = score_frame(frame, baseline_end=w0, baseline_start=b0, end=w1, detector=detector, step=step,
                                 service=service)
            if not result.ok or not np.isfinite(result.threshold) or result.threshold <= 0:
                continue
            scores = result.scores[(result.scores.index >= _time(w0, "window start"))]
            parts.append(pd.DataFrame({"timestamp": scores.index, "service": service,
                                       "score": scores.to_numpy(dtype=float) / result.threshold}))
    if not parts:
        return pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                             "service": pd.Series([], dtype=object), "score": pd.Series([], dtype="float64")})
    out = pd.concat(parts, ignore_index=True)
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    return out.sort_values(["service", "timestamp"], kind="stable").reset_index(drop=True)


def rank_metrics(contributions: pd.DataFrame, rows: Any = None, limit: int | None = None) -> pd.DataFrame:
    """Rank metrics by their largest |contribution| over ``rows`` (the window's peak, not its mean).

    The peak is used because a metric that moves for part of a window (a spike, the edge of a
    level shift) matters as much as one that moves all along; on SMD it ranks the labelled
    metrics better than the mean (benchmarks/smd.py).

    Parameters
    ----------
    contributions : pandas.DataFrame
        Signed contributions, rows = steps, columns = metrics.
    rows : boolean mask or index labels, optional
        The steps to rank over (default all).
    limit : int, optional
        Keep the first ``limit`` metrics.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric``, ``direction`` ("up"/"down"; "flat" when the magnitude is 0),
        ``magnitude`` (float >= 0), ``at`` (step of the peak); sorted by magnitude, descending
        (ties keep column order).
    """
    part = contributions if rows is None else contributions.loc[rows]
    if part.empty or part.shape[1] == 0:
        return pd.DataFrame({"metric": pd.Series([], dtype=object), "direction": pd.Series([], dtype=object),
                             "magnitude": pd.Series([], dtype=float), "at": pd.Series([], dtype=part.index.dtype)})
    values = part.to_numpy()
    peak = np.abs(values).argmax(axis=0)
    cols = np.arange(values.shape[1])
    signed = values[peak, cols]
    direction = np.where(signed > 0, "up", np.where(signed < 0, "down", "flat"))
    out = pd.DataFrame({"metric": list(part.columns), "direction": direction,
                        "magnitude": np.abs(signed), "at": part.index[peak]})
    out = out.sort_values("magnitude", ascending=False, kind="stable").reset_index(drop=True)
    return out.head(limit) if limit is not None else out


def sustained_onset(anomalous: pd.Series, k: int = ONSET_K, m: int = ONSET_M) -> pd.Timestamp | None:
    """First step that is anomalous and has at least ``k`` anomalous steps among the ``m`` from it.

    A lone spike is not an onset; near the end of the window fewer than ``m`` steps remain and
    ``k`` of them must still be anomalous.
    """
    flags = np.asarray(anomalous, dtype=bool)
    if not flags.any():
        return None
    ahead = pd.Series(flags[::-1].astype(int)).rolling(m, min_periods=1).sum().to_numpy()[::-1]
    hits = np.flatnonzero(flags & (ahead >= k))
    return anomalous.index[hits[0]] if len(hits) else None


# --------------------------------------------------------------------------- helpers

def _empty_result(name: str, det: Detector, service: str | None, index: pd.Index, columns: list[str],
                  baseline_rows: int, notes: list[str]) -> DetectionResult:
    idx = pd.DatetimeIndex(index)
    return DetectionResult(
        detector=name, params=det.get_params(), service=service, ok=False,
        scores=pd.Series(np.nan, index=idx, name="score", dtype=float), threshold=float("nan"),
        anomalous=pd.Series(False, index=idx, dtype=bool), onset=None,
        contributions=pd.DataFrame(np.nan, index=idx, columns=columns, dtype=float),
        top=rank_metrics(pd.DataFrame(index=idx)), baseline_rows=baseline_rows, scored_rows=len(idx), notes=notes)


def _utc_index(frame: pd.DataFrame) -> pd.DataFrame:
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise DetectionError(f"the frame must be indexed by timestamps, got a {type(idx).__name__}")
    if idx.tz is None:
        raise DetectionError("the frame's timestamps are naive; localise them (e.g. index.tz_localize('UTC'))")
    out = frame.copy()
    out.index = idx.tz_convert("UTC")
    return out.sort_index()


def _numeric(frame: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    bad = [c for c in frame.columns if not (pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))]
    if bad:
        notes.append(f"dropped non-numeric column(s): {', '.join(map(str, bad))}")
    out = frame.drop(columns=bad).astype(float)
    return out.replace([np.inf, -np.inf], np.nan)


def _regular(wide: pd.DataFrame, offset: pd.DateOffset, fill_limit: int) -> pd.DataFrame:
    if not isinstance(fill_limit, (int, np.integer)) or fill_limit < 0:
        raise DetectionError(f"fill_limit must be a number of steps >= 0, got {fill_limit!r}")
    if wide.empty and len(wide.index) == 0:
        return wide.astype(float)
    grid = wide.resample(offset).mean()
    return _fill_short_gaps(grid, fill_limit) if fill_limit else grid


def _fill_short_gaps(grid: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Forward-fill each gap of at most ``limit`` steps; a longer gap stays NaN as a whole.

    ``ffill(limit=...)`` filled the first ``limit`` steps of any gap, so a frame re-gridded again
    (:func:`align`, then :func:`score_frame`) had gaps filled up to twice the limit. This rule is
    idempotent. A gap still open at the end of the frame counts up to the end.
    """
    values = grid.to_numpy(dtype=float, copy=True)
    missing = np.isnan(values)
    if not missing.any():
        return grid
    n = len(values)
    rows = np.arange(n)[:, None]
    last = np.maximum.accumulate(np.where(~missing, rows, -1), axis=0)  # last value at or before
    after = np.minimum.accumulate(np.where(~missing, rows, n)[::-1], axis=0)[::-1]  # next value at or after
    fill = missing & (last >= 0) & (after - last - 1 <= limit)
    values[fill] = values[last.clip(0), np.arange(values.shape[1])][fill]
    return pd.DataFrame(values, index=grid.index, columns=grid.columns)


def _constant(values: np.ndarray) -> np.ndarray:
    """Per column of a float array: at most one distinct value besides NaN (``nunique() <= 1``)."""
    nan = np.isnan(values)
    return np.where(nan, np.inf, values).min(axis=0, initial=np.inf) >= np.where(nan, -np.inf, values).max(
        axis=0, initial=-np.inf)


def _drop_uninformative(wide: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    why = {}
    values = wide.to_numpy(dtype=float)
    for col, empty, constant in zip(wide.columns, np.isnan(values).all(axis=0), _constant(values)):
        if empty:
            why[col] = "no values"
        elif constant:
            why[col] = "constant"
    return wide.drop(columns=list(why)), why


def _time(value: Any, what: str) -> pd.Timestamp:
    return aware_time(value, what)


def _plain(values: list) -> list:
    # NaN is not JSON: a step that could not be scored becomes null.
    return [None if isinstance(v, float) and not np.isfinite(v) else v for v in values]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
