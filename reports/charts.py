"""HoloViews charts of the report and the notebook: timeline, key metrics, anomaly heatmap, log
template counts, check verdicts. One implementation: the exported report, the executed notebook
(:mod:`workbench.reports.notebook`) and the widgets draw these.

Every chart takes unified tables (:mod:`workbench.telemetry.schema`) whose times are timezone-aware UTC and
converts them to naive UTC at this edge only: HoloViews draws a datetime axis that carries a
timezone as an empty plot, without any error (STACK.md). Axes say "UTC".

Charts draw data they are given: the heatmap's scores come from the core
(:func:`workbench.postmortem.gather.anomaly`, the engine's detector), never computed here.
"""
from __future__ import annotations

from typing import Any, Sequence

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend without hv.extension's notebook output)
import numpy as np
import pandas as pd

from workbench.formats import clip
from workbench.postmortem.gather import ROBUST_Z, SCALES, incident_end
from workbench.signals.detect.frame import sustained_onset

#: Events that change the system (marked on metric charts as dashed lines).
CHANGE_KINDS = ("deploy", "config_change", "feature_flag", "scale")
#: Metrics shown first when a service has them (the sample's and most dashboards' golden signals).
KEY_METRICS = ("error_rate", "latency_p99_ms", "request_rate", "cpu_utilization", "db_pool_usage", "queue_depth",
               "latency_p95_ms", "memory_utilization")
#: The robust-z scale (white up to the floor: the largest |z| of several metrics is often 2 on a
#: normal step; saturated at the clip; a sustained run at the onset score starts a service's onset).
Z_FLOOR, Z_CLIP, ONSET_Z = SCALES["robust z"]
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

def _markers(incident: Any, events: pd.DataFrame, x0: pd.Timestamp, x1: pd.Timestamp,
             onsets: Sequence[Any] = ()) -> hv.Overlay:
    """The incident's span (shaded), the change events (dashed lines) and ``onsets`` (dotted)
    between ``x0`` and ``x1``."""
    span = hv.VSpan(naive_utc(incident.started), naive_utc(incident_end(incident, x1))).opts(
        color="#cf222e", alpha=0.08, line_alpha=0)
    changes = events[events["kind"].isin(CHANGE_KINDS)] if not events.empty else events
    times = naive_utc(changes["timestamp"]) if not changes.empty else pd.Series([], dtype="datetime64[ns]")
    lines = hv.VLines(pd.DataFrame({"x": times[(times >= naive_utc(x0)) & (times < naive_utc(x1))]}), kdims=["x"]).opts(
        color="#6e40c9", line_dash="dashed", line_width=1.2, alpha=0.8)
    if not len(onsets):
        return span * lines
    dots = pd.Series([naive_utc(t) for t in onsets], dtype="datetime64[ns]")
    marks = hv.VLines(pd.DataFrame({"x": dots[(dots >= naive_utc(x0)) & (dots < naive_utc(x1))]}), kdims=["x"]).opts(
        color="#1f2328", line_dash="dotted", line_width=1.5)
    return span * lines * marks


def metric_chart(metrics: pd.DataFrame, name: str, services: Sequence[str], incident: Any, events: pd.DataFrame,
                 x_range: tuple[Any, Any], width: int = WIDTH // 2 - 10, height: int = 230,
                 onsets: Sequence[Any] = ()) -> hv.Overlay:
    """One metric of several services over ``x_range``, with the incident span and changes marked
    (and ``onsets``, e.g. the services' anomaly onsets, dotted).

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
    return (overlay * _markers(incident, events, x0, x1, onsets)).opts(
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


#: Colour of each check verdict on the verdict chart.
VERDICT_COLORS = {"holds": "#1a7f37", "clear": "#1a7f37", "violated": "#cf222e", "recurred": "#cf222e",
                  "no_data": "#bf8700", "inconclusive": "#bf8700"}


def verdict_chart(checks: pd.DataFrame, width: int = WIDTH) -> hv.Overlay:
    """Check verdicts over time: one row per thing checked (``what``), one dot per check coloured
    by its verdict.

    ``checks`` has ``time`` (tz-aware), ``what``, ``verdict`` and ``score`` (float or NaN).
    """
    frame = pd.DataFrame({"time": naive_utc(checks["time"]).to_numpy(), "what": checks["what"].astype(str).to_numpy(),
                          "verdict": checks["verdict"].astype(str).to_numpy(),
                          "score": pd.to_numeric(checks["score"], errors="coerce").to_numpy()})
    frame["color"] = frame["verdict"].map(VERDICT_COLORS).fillna("#57606a")
    rows = sorted(set(frame["what"]), key=lambda w: (w != "recurrence", w))
    what = hv.Dimension("what", label="checked", values=list(reversed(rows)))
    dots = hv.Scatter(frame, "time", [what, "verdict", "score", "color"]).opts(
        size=11, color="color", marker="circle", tools=["hover"],
        hover_tooltips=[("time", "@time{%F %T} UTC"), ("checked", "@what"), ("verdict", "@verdict"),
                        ("score", "@score{0.00}")], hover_formatters={"@time": "datetime"})
    return hv.Overlay([dots]).opts(width=width, height=max(150, 40 * len(rows) + 90), xlabel="time (UTC)", ylabel="",
                                   show_grid=True, title="Verdicts of the rechecks over time", toolbar="above",
                                   show_legend=False)


def template_chart(counts: pd.DataFrame, labels: dict[str, str], incident: Any, x_range: tuple[Any, Any],
                   width: int = WIDTH, height: int = 340) -> hv.Overlay:
    """Log lines per step of some templates (``counts``: ``timestamp``, ``template_id``, ``count``),
    the incident shaded up to its end (``x_range`` is the analysis window); ``labels`` names each
    template."""
    x0, x1 = (pd.Timestamp(t) for t in x_range)
    curves = {}
    for tid, part in counts.groupby("template_id", sort=False):
        label = clip(labels.get(tid, str(tid)), 70)
        curves[label] = hv.Curve(pd.DataFrame({"time": naive_utc(part["timestamp"]).to_numpy(),
                                               "lines": part["count"].to_numpy()}), "time", "lines").opts(
            tools=["hover"], line_width=1.4)
    overlay = hv.NdOverlay(curves, kdims="template") if curves else hv.NdOverlay({}, kdims="template")
    span = hv.VSpan(naive_utc(incident.started), naive_utc(incident_end(incident, x1))).opts(
        color="#cf222e", alpha=0.08, line_alpha=0)
    return (overlay * span).opts(width=width, height=height, title="log lines per step", xlabel="time (UTC)",
                                 ylabel="lines", legend_position="bottom", show_grid=True, toolbar="above")
