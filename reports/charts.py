"""HoloViews charts of the report and the scores they draw: timeline, key metrics, anomaly heatmap.

Every chart takes unified tables (:mod:`workbench.telemetry.schema`) whose times are timezone-aware UTC and
converts them to naive UTC at this edge only: HoloViews draws a datetime axis that carries a
timezone as an empty plot, without any error (STACK.md). Axes say "UTC".

The heatmap draws any long frame of ``timestamp``, ``service``, ``score``;
:func:`robust_z_scores` is the stand-in used until the analysis engine's scores are passed in.
"""
from __future__ import annotations

from typing import Any, Sequence

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend without hv.extension's notebook output)
import numpy as np
import pandas as pd

from workbench.signals.detect.base import robust_scale
from workbench.signals.detect.frame import align, sustained_onset

#: Events that change the system (marked on metric charts as dashed lines).
CHANGE_KINDS = ("deploy", "config_change", "feature_flag", "scale")
#: Metrics shown first when a service has them (the sample's and most dashboards' golden signals).
KEY_METRICS = ("error_rate", "latency_p99_ms", "request_rate", "cpu_utilization", "db_pool_usage", "queue_depth",
               "latency_p95_ms", "memory_utilization")
#: Name of the heatmap score computed here (shown on the chart and in the report).
ROBUST_Z = "robust z: max over the service's metrics of |value - baseline median| / (1.4826·MAD of the baseline)"
#: Colour scale of the heatmap saturates here (a robust z of 10 is already far outside normal).
Z_CLIP = 10.0
#: Scores up to this are drawn white: the largest |z| of several metrics is often 2 on a normal step.
Z_FLOOR = 2.0
#: A service's onset on the heatmap: the first sustained run of steps at or above this score.
ONSET_Z = 5.0
#: Name of the engine's heatmap score (:func:`workbench.signals.detect.service_scores`), ``{detector}`` filled in.
ENGINE = ("{detector} detector: the service's anomaly score over the detector's threshold on its own baseline "
          "(1 = the cut-off, 2 = twice as far)")
#: Colour scale and onset of each score: (floor, clip, onset). The engine's ratio reaches 1.5 on
#: calm services of the sample and 10-37 at a broken one; a sustained run at 2x marks an onset.
SCALES: dict[str, tuple[float, float, float]] = {"robust z": (Z_FLOOR, Z_CLIP, ONSET_Z), "engine": (1.0, 10.0, 2.0)}
WIDTH = 1080
PHASES = ("started", "detected", "mitigated", "resolved")
_PHASE_COLORS = {"started": "#cf222e", "detected": "#bf8700", "mitigated": "#0969da", "resolved": "#1a7f37"}


# --------------------------------------------------------------------------- times

def naive_utc(values: Any) -> Any:
    """Timezone-aware times (a Series, Index or scalar) as naive UTC; naive input is left as it is."""
    if isinstance(values, (pd.Series, pd.Index)):
        s = pd.to_datetime(values)
        dt = s.dt if isinstance(s, pd.Series) else s
        return dt.tz_convert(None) if dt.tz is not None else s  # tz_convert(None): to UTC, then naive
    if values is None:
        return None
    ts = pd.Timestamp(values)
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


def incident_end(incident: Any, window_end: pd.Timestamp) -> pd.Timestamp:
    """Where the incident's shaded span ends: resolved, else mitigated, else the window end."""
    last = incident.resolved or incident.mitigated
    return pd.Timestamp(last) if last is not None else pd.Timestamp(window_end)


# --------------------------------------------------------------------------- scores

def anomaly_scores(metrics: pd.DataFrame, baseline: tuple[Any, Any], window: tuple[Any, Any], step: str = "1min",
                   detector: Any = None) -> tuple[pd.DataFrame, str, tuple[float, float, float]]:
    """The heatmap's scores, what they are, and their scale ``(floor, clip, onset)``.

    The engine's (:func:`workbench.signals.detect.service_scores` with ``detector``, the workspace's
    setting), so the chart agrees with the analysis; :func:`robust_z_scores` only when the
    detector could score no service (a baseline too short for it).
    """
    from workbench.signals import detect

    scores = detect.service_scores(metrics, baseline, window, step=step, detector=detector)
    if not scores.empty:
        name = detector if isinstance(detector, str) else (type(detector).__name__ if detector is not None
                                                           else detect.DEFAULT_DETECTOR)
        return scores, ENGINE.format(detector=name), SCALES["engine"]
    return robust_z_scores(metrics, baseline, window, step), ROBUST_Z, SCALES["robust z"]


def robust_z_scores(metrics: pd.DataFrame, baseline: tuple[Any, Any], window: tuple[Any, Any],
                    step: str = "1min") -> pd.DataFrame:
    """A simple anomaly score per service and step: the largest robust |z| of its metrics.

    For each service, metrics are aligned to ``step`` (:func:`workbench.signals.detect.frame.align`); each
    metric's baseline median and robust scale (1.4826·MAD, with the fallbacks of
    :func:`workbench.signals.detect.base.robust_scale`) come from the rows in ``baseline``; a step of
    ``window`` scores ``max_m |x_m - median_m| / scale_m``. Services without baseline rows are left
    out (there is nothing to compare with).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Unified ``metrics`` rows covering both windows: ``timestamp`` (tz-aware), ``service``,
        ``name``, ``value``.
    baseline, window : tuple of time
        ``[start, end)`` of the baseline and of the scored window (tz-aware).
    step : str
        Alignment step (a pandas offset alias).

    Returns
    -------
    pandas.DataFrame
        ``timestamp`` (datetime64[ns, UTC], start of the step), ``service`` (str), ``score``
        (float, NaN where no metric had a value), sorted by service then time.
    """
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
        # robust_scale wants complete rows: a gap in the baseline takes the median of its column
        filled = base.fillna(base.median())
        center = np.median(filled.to_numpy(), axis=0)
        scale = robust_scale(filled.to_numpy())
        z = np.abs(cur.to_numpy() - center) / scale
        with np.errstate(all="ignore"):
            score = np.where(np.isnan(z).all(axis=1), np.nan, np.nanmax(np.where(np.isnan(z), -np.inf, z), axis=1))
        parts.append(pd.DataFrame({"timestamp": cur.index, "service": service, "score": score}))
    if not parts:
        return pd.DataFrame(columns)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["service", "timestamp"], kind="stable").reset_index(drop=True)


def service_order(scores: pd.DataFrame, threshold: float = ONSET_Z) -> list[str]:
    """Services by their sustained onset (:func:`workbench.signals.detect.frame.sustained_onset` of
    ``score >= threshold``; earliest first), then the rest by their 95th-percentile score: the
    likely origin ends up on top of the heatmap, a lone noisy step does not move a service up."""
    if scores.empty:
        return []
    rows = []
    for service, part in scores.groupby("service", sort=True):
        part = part.sort_values("timestamp")
        onset = sustained_onset(pd.Series((part["score"] >= threshold).to_numpy(), index=part["timestamp"]))
        level = part["score"].quantile(0.95)
        rows.append((onset is None, onset.value if onset is not None else 0,
                     -(0.0 if pd.isna(level) else float(level)), str(service)))
    return [r[3] for r in sorted(rows)]


def key_metrics(metrics: pd.DataFrame, services: Sequence[str], limit: int = 6,
                scores: pd.DataFrame | None = None) -> list[str]:
    """Metric names to chart for ``services``: the :data:`KEY_METRICS` they have, in that order,
    else the names with most rows (a data set with other names still gets charts)."""
    rows = metrics[metrics["service"].isin(list(services))] if len(services) else metrics
    present = set(rows["name"].unique())
    names = [m for m in KEY_METRICS if m in present]
    if not names:
        names = list(rows["name"].value_counts().index)
    return names[:limit]


# --------------------------------------------------------------------------- charts

def _markers(incident: Any, events: pd.DataFrame, x0: pd.Timestamp, x1: pd.Timestamp) -> hv.Overlay:
    """The incident's span (shaded) and the change events (dashed lines) between ``x0`` and ``x1``."""
    span = hv.VSpan(naive_utc(incident.started), naive_utc(incident_end(incident, x1))).opts(
        color="#cf222e", alpha=0.08, line_alpha=0)
    changes = events[events["kind"].isin(CHANGE_KINDS)] if not events.empty else events
    times = naive_utc(changes["timestamp"]) if not changes.empty else pd.Series([], dtype="datetime64[ns]")
    lines = hv.VLines(pd.DataFrame({"x": times[(times >= naive_utc(x0)) & (times < naive_utc(x1))]}), kdims=["x"]).opts(
        color="#6e40c9", line_dash="dashed", line_width=1.2, alpha=0.8)
    return span * lines


def metric_chart(metrics: pd.DataFrame, name: str, services: Sequence[str], incident: Any, events: pd.DataFrame,
                 x_range: tuple[Any, Any], width: int = WIDTH // 2 - 10, height: int = 230) -> hv.Overlay:
    """One metric of several services over ``x_range``, with the incident span and changes marked.

    ``metrics`` holds unified rows (``timestamp``, ``service``, ``name``, ``value``).
    """
    x0, x1 = (pd.Timestamp(t) for t in x_range)
    rows = metrics[(metrics["name"] == name) & (metrics["timestamp"] >= x0) & (metrics["timestamp"] < x1)]
    curves = {}
    for service in services:
        part = rows[rows["service"] == service]
        if part.empty:
            continue
        frame = pd.DataFrame({"time": naive_utc(part["timestamp"]).to_numpy(), "value": part["value"].to_numpy(),
                              "service": str(service)})
        curves[str(service)] = hv.Curve(frame, "time", ["value", "service"]).opts(
            tools=["hover"], line_width=1.6)
    overlay = hv.NdOverlay(curves, kdims="service") if curves else hv.NdOverlay({}, kdims="service")
    return (overlay * _markers(incident, events, x0, x1)).opts(
        width=width, height=height, title=str(name), xlabel="time (UTC)", ylabel=str(name),
                        show_grid=True, legend_position="top_left", toolbar="above",
                        xlim=(naive_utc(x0), naive_utc(x1)))


def heatmap_chart(scores: pd.DataFrame, incident: Any, x_range: tuple[Any, Any], method: str = ROBUST_Z, *,
                  clip: float = Z_CLIP, floor: float = Z_FLOOR, onset: float = ONSET_Z,
                  width: int = WIDTH) -> hv.Overlay:
    """Services × time heatmap of ``scores`` (``timestamp``, ``service``, ``score``), origin first.

    Colours run from white at ``floor`` to the darkest at ``clip``; services are ordered by
    :func:`service_order` with ``onset``; the incident's start and detection are marked.
    """
    order = service_order(scores, onset)
    frame = pd.DataFrame({
        "time": naive_utc(scores["timestamp"]).to_numpy(),
        "service": scores["service"].astype(str).to_numpy(),
        "score": np.clip(scores["score"].to_numpy(dtype=float), 0, clip),
    })
    service = hv.Dimension("service", values=list(reversed(order)))
    heat = hv.HeatMap(frame, [hv.Dimension("time", label="time (UTC)"), service],
                      hv.Dimension("score", label="score")).opts(
        cmap="Reds", clim=(floor, clip), colorbar=True, tools=["hover"], line_alpha=0,
        hover_tooltips=[("service", "@{service}"), ("time", "@{time}{%F %H:%M} UTC"), ("score", "@{score}{0.0}")],
        hover_formatters={"@{time}": "datetime"},
        width=width, height=max(160, 34 * len(order) + 90), xlabel="time (UTC)", ylabel="service",
        title=f"Anomaly per service and step ({method.split(':')[0]}; white up to {floor:g}, darkest from {clip:g})",
        toolbar="above")
    marks = [hv.VLine(naive_utc(incident.started)).opts(color="#cf222e", line_width=2, line_dash="dashed")]
    if incident.detected is not None:
        marks.append(hv.VLine(naive_utc(incident.detected)).opts(color="#bf8700", line_width=2, line_dash="dashed"))
    x0, x1 = (naive_utc(t) for t in x_range)
    return hv.Overlay([heat, *marks]).opts(xlim=(x0, x1))


def timeline_chart(incident: Any, events: pd.DataFrame, x_range: tuple[Any, Any], width: int = WIDTH) -> hv.Overlay:
    """Incident phases and telemetry events on one time axis (one row per event kind).

    The detection gap (``started`` → ``detected``) is shaded; hovering an event shows its service
    and summary (Bokeh escapes hover values).
    """
    x0, x1 = (naive_utc(t) for t in x_range)
    phase_rows = [(naive_utc(getattr(incident, p)), "incident phase", p, "", p)
                  for p in PHASES if getattr(incident, p) is not None]
    event_rows = []
    if not events.empty:
        for ts, kind, service, summary in zip(naive_utc(events["timestamp"]), events["kind"], events["service"],
                                              events["summary"]):
            event_rows.append((ts, str(kind), str(kind), str(service), "" if summary is None else str(summary)))
    cols = ["time", "row", "kind", "service", "summary"]
    phases = pd.DataFrame(phase_rows, columns=cols)
    evs = pd.DataFrame(event_rows, columns=cols)
    rows = ["incident phase", *sorted(set(evs["row"]))]
    row_dim = hv.Dimension("row", label="what", values=list(reversed(rows)))
    hover = [("time", "@time{%F %T} UTC"), ("kind", "@kind"), ("service", "@service"), ("summary", "@summary")]
    layers: list[Any] = []
    if incident.detected is not None:
        layers.append(hv.VSpan(naive_utc(incident.started), naive_utc(incident.detected)).opts(
            color="#bf8700", alpha=0.18, line_alpha=0))
    layers.append(hv.VSpan(naive_utc(incident.started), naive_utc(incident_end(incident, x_range[1]))).opts(
        color="#cf222e", alpha=0.05, line_alpha=0))
    if not evs.empty:
        layers.append(hv.Scatter(evs, "time", [row_dim, "kind", "service", "summary"]).opts(
            size=10, color="#6e40c9", alpha=0.8, marker="circle", tools=["hover"],
            hover_tooltips=hover, hover_formatters={"@time": "datetime"}))
    if not phases.empty:
        phases["color"] = phases["kind"].map(_PHASE_COLORS)
        layers.append(hv.Scatter(phases, "time", [row_dim, "kind", "service", "summary", "color"]).opts(
            size=14, color="color", marker="diamond", tools=["hover"],
            hover_tooltips=[("time", "@time{%F %T} UTC"), ("phase", "@kind")], hover_formatters={"@time": "datetime"}))
        labelled = phases.assign(label=phases["kind"])
        # alternate above/below: started and detected are often minutes apart and would overlap
        for offset, part in ((0.3, labelled.iloc[::2]), (-0.3, labelled.iloc[1::2])):
            layers.append(hv.Labels(part, ["time", row_dim], "label").opts(
                text_font_size="9pt", yoffset=offset, text_color="#1f2328"))
    return hv.Overlay(layers).opts(
        width=width, height=max(180, 40 * len(rows) + 80), xlim=(x0, x1), xlabel="time (UTC)", ylabel="",
        show_grid=True, title="Incident phases and events (shaded: detection gap, started → detected)",
        toolbar="above", show_legend=False)
