"""The data every view of one incident draws, gathered in the core once: the notebook's charts and
tables, the exported report and the served app receive it and only render it.

- :func:`incident_data`: the incident's records (read fresh on every call: a review decision
  shows at once) and its telemetry around the analysis window (read once per process and window).
- :func:`anomaly`: the heatmap's per-service, per-step scores — the engine's detector
  (:func:`workbench.signals.detect.service_scores`), robust z only where the detector can score
  nothing; computed once per process.
- :func:`log_templates`: the WARN+ log templates while the incident lasted (Drain3 via
  :func:`workbench.signals.logs.mine`); :func:`template_changes`: one service's templates that
  appeared or vanished in the window against its baseline, with counts over time.
- :func:`neighbours`: a service's callers and callees with their onsets and lead/lag.

Pure pandas: nothing here imports Jupyter, HoloViews or Panel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..telemetry import schema
from ..telemetry.windows import BASELINE, analysis_window, baseline_window
from ..workspace import Workspace, open_workspace

__all__ = ["Anomaly", "IncidentData", "ROBUST_Z", "ENGINE", "SCALES", "anomaly", "incident_data", "log_templates",
           "neighbours", "robust_z_scores", "template_changes"]

#: Name of the fallback heatmap score.
ROBUST_Z = "robust z: max over the service's metrics of |value - baseline median| / (1.4826·MAD of the baseline)"
#: Name of the engine's heatmap score, ``{detector}`` filled in.
ENGINE = ("{detector} detector: the service's anomaly score over the detector's threshold on its own baseline "
          "(1 = the cut-off, 2 = twice as far)")
#: Colour scale and onset of each score: (floor, clip, onset). The engine's ratio reaches 1.5 on
#: calm services of the sample and 10-37 at a broken one; a sustained run at 2x marks an onset.
SCALES: dict[str, tuple[float, float, float]] = {"robust z": (2.0, 10.0, 5.0), "engine": (1.0, 10.0, 2.0)}
#: Severities whose log templates the views list.
BAD_SEVERITIES = ("WARN", "ERROR", "FATAL")

# caches: telemetry per (root, incident, window, baseline); scores per (…, detector, step)
_TELEMETRY: dict[tuple[Any, ...], dict[str, pd.DataFrame]] = {}
_ANOMALY: dict[tuple[Any, ...], "Anomaly"] = {}
_TEMPLATES: dict[tuple[Any, ...], pd.DataFrame] = {}


@dataclass
class IncidentData:
    """One incident's records and telemetry, as the views draw them.

    Attributes
    ----------
    incident : workbench.store.Incident
    hypotheses, conclusions, action_items, signoffs, checks : list
        The knowledge base's records of the incident.
    content_hash : str or None
    window, baseline : tuple of pandas.Timestamp
        The analysis window and the baseline before it (``[start, end)``, aware UTC).
    events : pandas.DataFrame
        Unified ``events`` of the window.
    metrics : pandas.DataFrame
        Unified ``metrics`` from the baseline start to the window end.
    logs : pandas.DataFrame
        Unified ``logs`` of the incident's services (all services when it names none) while it
        lasted (started to resolved, else mitigated, else the window end).
    step, detector : str
        The workspace's alignment step and metric detector.
    """

    incident: Any
    window: tuple[pd.Timestamp, pd.Timestamp]
    baseline: tuple[pd.Timestamp, pd.Timestamp]
    hypotheses: list[Any] = field(default_factory=list)
    conclusions: list[Any] = field(default_factory=list)
    action_items: list[Any] = field(default_factory=list)
    signoffs: list[Any] = field(default_factory=list)
    checks: list[Any] = field(default_factory=list)
    content_hash: str | None = None
    events: pd.DataFrame = field(default_factory=lambda: schema.empty("events"))
    metrics: pd.DataFrame = field(default_factory=lambda: schema.empty("metrics"))
    logs: pd.DataFrame = field(default_factory=lambda: schema.empty("logs"))
    step: str = "1min"
    detector: str | None = None
    key: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    @property
    def window_metrics(self) -> pd.DataFrame:
        """:attr:`metrics` inside the window only."""
        return self.metrics[self.metrics["timestamp"] >= self.window[0]] if not self.metrics.empty else self.metrics

    def chart_services(self, scores: pd.DataFrame | None = None, fallback: int = 3) -> list[str]:
        """Services whose metrics are charted: the incident's services that have metrics, else (an
        incident recorded without services) the ``fallback`` most anomalous of ``scores``."""
        present = set(self.metrics["service"].unique()) if not self.metrics.empty else set()
        own = [s for s in self.incident.services if s in present]
        if own or scores is None or scores.empty:
            return own
        level = scores.groupby("service")["score"].quantile(0.95).sort_values(ascending=False)
        return [str(s) for s in level.index[:fallback]]


def incident_end(incident: Any, window_end: Any) -> pd.Timestamp:
    """When the incident stopped hurting: resolved, else mitigated, else ``window_end``."""
    last = incident.resolved or incident.mitigated
    return pd.Timestamp(last) if last is not None else pd.Timestamp(window_end)


def incident_data(workspace: Workspace | str | Any, incident_id: str, *, window: tuple[Any, Any] | None = None,
                  baseline_hours: float | None = None, records: bool = True, logs: bool = True) -> IncidentData:
    """Gather one incident's records and telemetry (see :class:`IncidentData`).

    Parameters
    ----------
    workspace : Workspace or folder
    incident_id : str
    window : tuple, optional
        ``[start, end)`` override; default :func:`workbench.telemetry.windows.analysis_window`.
    baseline_hours : float, optional
        Baseline length before the window start; default the standard baseline (24 h).
    records : bool
        Read the hypotheses, conclusions, action items, sign-offs, checks and content hash too.
    logs : bool
        Read the incident's logs too (only the log templates need them; empty otherwise).

    Raises
    ------
    NotFoundError
        No such incident.
    """
    ws = open_workspace(workspace)
    kb = ws.knowledge_base()
    try:
        incident = kb.get_incident(incident_id)
        extra = dict(hypotheses=kb.list_hypotheses(incident_id), conclusions=kb.list_conclusions(incident_id),
                     action_items=kb.list_action_items(incident_id), signoffs=kb.list_signoffs(incident_id),
                     checks=kb.list_checks(incident_id=incident_id),
                     content_hash=kb.content_hash(incident_id)) if records else {}
    finally:
        kb.close()
    length = BASELINE if baseline_hours is None else pd.Timedelta(hours=float(baseline_hours))
    if window is None:
        win, base = analysis_window(incident), baseline_window(incident, length)
    else:
        win = (pd.Timestamp(window[0]), pd.Timestamp(window[1]))
        base = (win[0] - length, win[0])
    key = (str(ws.root), incident_id, win, base, tuple(incident.services), incident.started, incident.resolved,
           incident.mitigated)
    store = ws.telemetry()
    if key not in _TELEMETRY:
        _TELEMETRY[key] = {"events": store.query("events", *win), "metrics": store.query("metrics", base[0], win[1])}
    tables = _TELEMETRY[key]
    if logs and "logs" not in tables:
        end = incident_end(incident, win[1])
        tables["logs"] = store.query("logs", incident.started, max(end, incident.started + pd.Timedelta(minutes=1)),
                                     services=list(incident.services) or None)
    return IncidentData(incident, win, base, **extra, events=tables["events"], metrics=tables["metrics"],
                        logs=tables["logs"] if logs else schema.empty("logs"), step=ws.settings.step,
                        detector=ws.settings.detector, key=key)


# --------------------------------------------------------------------------- anomaly scores

@dataclass
class Anomaly:
    """Per-service, per-step anomaly scores and how to read them.

    Attributes
    ----------
    scores : pandas.DataFrame
        ``timestamp`` (aware UTC, start of the step), ``service``, ``score`` (higher = more abnormal).
    method : str
        What the score is (:data:`ENGINE` or :data:`ROBUST_Z`).
    floor, clip, onset : float
        Colours run from white at ``floor`` to the darkest at ``clip``; the first sustained run at
        or above ``onset`` is a service's onset.
    """

    scores: pd.DataFrame
    method: str
    floor: float
    clip: float
    onset: float


def anomaly(data: IncidentData, detector: Any = None) -> Anomaly:
    """The heatmap's scores of ``data``'s window (computed once per process and window).

    The engine's detector (``detector``, default the workspace's) on each service's own baseline,
    so the chart agrees with the analysis; robust z only when the detector could score no service
    (a baseline too short for it).
    """
    from ..signals import detect

    detector = detector or data.detector
    key = (data.key or id(data.metrics), data.step, str(detector))
    if key in _ANOMALY:
        return _ANOMALY[key]
    scores = detect.service_scores(data.metrics, data.baseline, data.window, step=data.step, detector=detector)
    if not scores.empty:
        name = detector if isinstance(detector, str) else (type(detector).__name__ if detector is not None
                                                           else detect.DEFAULT_DETECTOR)
        result = Anomaly(scores, ENGINE.format(detector=name), *SCALES["engine"])
    else:
        result = Anomaly(robust_z_scores(data.metrics, data.baseline, data.window, data.step), ROBUST_Z,
                         *SCALES["robust z"])
    _ANOMALY[key] = result
    return result


def robust_z_scores(metrics: pd.DataFrame, baseline: tuple[Any, Any], window: tuple[Any, Any],
                    step: str = "1min") -> pd.DataFrame:
    """Per service and step, the largest robust |z| of its metrics against the baseline.

    Each metric's baseline median and robust scale (:func:`workbench.signals.detect.base.robust_scale`)
    come from the rows in ``baseline``; services without baseline rows are left out.

    Returns
    -------
    pandas.DataFrame
        ``timestamp`` (aware UTC), ``service``, ``score`` (NaN where no metric had a value).
    """
    from ..signals.detect.base import robust_scale
    from ..signals.detect.frame import align

    columns = {"timestamp": pd.Series([], dtype="datetime64[ns, UTC]"), "service": pd.Series([], dtype=object),
               "score": pd.Series([], dtype="float64")}
    if metrics.empty:
        return pd.DataFrame(columns)
    b0, b1 = (pd.Timestamp(t).tz_convert("UTC") for t in baseline)
    w0, w1 = (pd.Timestamp(t).tz_convert("UTC") for t in window)
    parts = []
    for service, wide in align(metrics, step).items():
        base = wide[(wide.index >= b0) & (wide.index < b1)]
        cur = wide[(wide.index >= w0) & (wide.index < w1)]
        base = base.loc[:, base.notna().any()]
        if base.empty or cur.empty or base.shape[1] == 0:
            continue
        cur = cur[base.columns]
        filled = base.fillna(base.median())  # robust_scale wants complete rows
        center = np.median(filled.to_numpy(), axis=0)
        z = np.abs(cur.to_numpy() - center) / robust_scale(filled.to_numpy())
        with np.errstate(all="ignore"):
            score = np.where(np.isnan(z).all(axis=1), np.nan, np.nanmax(np.where(np.isnan(z), -np.inf, z), axis=1))
        parts.append(pd.DataFrame({"timestamp": cur.index, "service": service, "score": score}))
    if not parts:
        return pd.DataFrame(columns)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["service", "timestamp"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- logs

def log_templates(data: IncidentData, limit: int = 12) -> pd.DataFrame:
    """The WARN, ERROR and FATAL log templates while the incident lasted, most lines first.

    Returns
    -------
    pandas.DataFrame
        ``service``, ``template``, ``count``, ``first_seen`` (aware UTC), ``example`` (one line).
    """
    cols = ["service", "template", "count", "first_seen", "example"]
    bad = data.logs[data.logs["severity"].isin(BAD_SEVERITIES)] if not data.logs.empty else data.logs
    if bad.empty:
        return pd.DataFrame(columns=cols)
    key = (data.key or id(data.logs), limit)
    if key not in _TEMPLATES:
        from ..signals.logs import mine

        mined = mine(bad.reset_index(drop=True))
        grouped = mined.groupby(["service", "template_id"], sort=False)
        out = grouped.agg(template=("template", "first"), count=("body", "size"), first_seen=("timestamp", "min"),
                          example=("body", "first")).reset_index()
        _TEMPLATES[key] = out.sort_values(["count", "first_seen"], ascending=[False, True]).head(limit)[cols] \
            .reset_index(drop=True)
    return _TEMPLATES[key]


def template_changes(workspace: Workspace | str | Any, incident_id: str, service: str, *, limit: int = 8,
                     window: tuple[Any, Any] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One service's log templates that appeared, vanished or changed rate in the window.

    The baseline is the same length right before the window (a day of logs would make the
    notebook slow to mine); rates are lines per minute in each.

    Returns
    -------
    changes : pandas.DataFrame
        ``template_id``, ``template``, ``change`` (appeared, vanished, up, down, steady),
        ``baseline_rate``, ``window_rate`` (lines per minute), ``first_seen`` (in the window),
        most changed first, at most ``limit`` rows.
    counts : pandas.DataFrame
        ``timestamp``, ``template_id``, ``count`` per step of the listed templates over baseline
        and window.
    """
    from ..signals.logs import mine, template_counts

    data = incident_data(workspace, incident_id, window=window, records=False, logs=False)
    w0, w1 = data.window
    b0 = w0 - (w1 - w0)
    store = open_workspace(workspace).telemetry()
    logs = store.query("logs", b0, w1, services=[service])
    empty = (pd.DataFrame(columns=["template_id", "template", "change", "baseline_rate", "window_rate", "first_seen"]),
             pd.DataFrame(columns=["timestamp", "template_id", "count"]))
    if logs.empty:
        return empty
    mined = mine(logs.reset_index(drop=True))
    inside = mined["timestamp"] >= w0
    minutes_in, minutes_before = (w1 - w0) / pd.Timedelta(minutes=1), (w0 - b0) / pd.Timedelta(minutes=1)
    rows = []
    for tid, part in mined.groupby("template_id", sort=False):
        n_in, n_before = int(inside[part.index].sum()), int((~inside[part.index]).sum())
        r_in, r_before = n_in / minutes_in, n_before / minutes_before
        if n_before == 0 and n_in > 0:
            change = "appeared"
        elif n_in == 0:
            change = "vanished"
        elif r_in >= 2 * r_before:
            change = "up"
        elif r_in <= 0.5 * r_before:
            change = "down"
        else:
            change = "steady"
        first = part.loc[inside[part.index], "timestamp"].min() if n_in else pd.NaT
        weight = abs(np.log1p(r_in * 60) - np.log1p(r_before * 60))
        rows.append((tid, part["template"].iloc[0], change, r_before, r_in, first, weight))
    table = pd.DataFrame(rows, columns=["template_id", "template", "change", "baseline_rate", "window_rate",
                                        "first_seen", "_weight"])
    table = table.sort_values("_weight", ascending=False).head(limit).drop(columns="_weight").reset_index(drop=True)
    counts = template_counts(mined[mined["template_id"].isin(table["template_id"])], data.step)
    return table, counts[["timestamp", "template_id", "count"]].reset_index(drop=True)


# --------------------------------------------------------------------------- neighbours

def neighbours(workspace: Workspace | str | Any, incident_id: str, service: str, onsets: pd.DataFrame) -> pd.DataFrame:
    """``service``'s callers and callees (the telemetry's topology) with their onsets and lead/lag.

    Parameters
    ----------
    onsets : pandas.DataFrame
        ``service``, ``onset`` (the analysis' :attr:`~workbench.analysis.AnalysisResult.onsets`).

    Returns
    -------
    pandas.DataFrame
        ``service``, ``relation`` (``calls it`` / ``called by it``), ``onset`` (aware UTC or NaT),
        ``lag_minutes`` (its onset − ``service``'s onset: negative = it moved first).
    """
    from ..analysis.correlate import Topology

    store = open_workspace(workspace).telemetry()
    topology = Topology.from_frame(store.query("topology"))
    when = dict(zip(onsets["service"], onsets["onset"])) if onsets is not None and not onsets.empty else {}
    own = when.get(service)
    rows = [(s, rel, when.get(s)) for rel, names in (("calls it", topology.callers(service)),
                                                     ("called by it", topology.callees(service))) for s in names]
    frame = pd.DataFrame(rows, columns=["service", "relation", "onset"])
    frame["onset"] = pd.to_datetime(frame["onset"], utc=True)
    frame["lag_minutes"] = [(o - own) / pd.Timedelta(minutes=1) if own is not None and not pd.isna(own)
                            and not pd.isna(o) else np.nan for o in frame["onset"]]
    return frame
