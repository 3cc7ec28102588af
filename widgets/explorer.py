"""Telemetry explorer: chosen services' metrics (or log templates) over a time range, with their
anomaly scores beside them and the incident, the onsets and the changes marked.

What is drawn (HoloViews elements kept in :attr:`TelemetryExplorer.charts`, so scripts and tests
can inspect them):

- ``score``: each chosen service's anomaly score from :func:`workbench.signals.detect.score_frame`
  (the workspace's detector, fitted on the 24 hours before the range start, scoring the range)
  divided by the detector's threshold, so 1 is the line every service crosses when it turns
  anomalous; dotted lines are the services' sustained onsets;
- ``metric:<name>``: the raw series of each chosen service (:func:`reports.charts.metric_chart`:
  the incident from start to resolution shaded, changes dashed) with the onsets dotted;
- ``contribution:<name>``: beside it, how much that metric contributed to each service's
  anomaly score (signed, -1 to 1, :meth:`Detector.contributions`);
- ``templates`` (log mode): lines per step of the chosen log templates
  (:func:`workbench.signals.logs.mine` and :func:`workbench.signals.logs.template_counts`; not scored).

Rendering: the charts are shown as ``panel.pane.HoloViews`` (Bokeh) inside an
``ipywidgets.Output``. That renders offline in JupyterLab 4 through the ``@pyviz/jupyterlab_pyviz``
extension once ``panel.extension(inline=True)`` ran in the kernel, which the explorer does when it
is built inside a kernel (STACK.md: without ``inline=True`` the cell stays blank offline). Times
reach HoloViews as naive UTC (a tz-aware axis draws an empty plot without error).

Usage in a notebook cell::

    workbench.widgets.telemetry_explorer(ws, incident_id)
"""
from __future__ import annotations

from typing import Any, Sequence

import ipywidgets as w
import numpy as np
import pandas as pd

from workbench.formats import clip
from workbench.workspace import Workspace
from workbench.telemetry.windows import BASELINE, analysis_window

from ._common import CSS, SAVE_ERRORS, Status, StoreWidget, escape, in_kernel, table, when

MODES = ("metrics", "log templates")
#: The longest range the explorer queries at once (a notebook is not a bulk export).
MAX_RANGE = pd.Timedelta(days=3)
#: Metrics shown when none is chosen.
DEFAULT_METRICS = 4
#: Log templates charted when none is chosen (most lines first).
DEFAULT_TEMPLATES = 5
WIDTH = 470
_ONSET_STYLE = dict(color="#1f2328", line_dash="dotted", line_width=1.5)
_FOCUS_STYLE = dict(color="#fb8500", line_width=2)


class TelemetryExplorer(StoreWidget):
    """Explore one incident's telemetry.

    Parameters
    ----------
    workspace : Workspace or str
    incident_id : str
    kb : KnowledgeBase, optional
    detector : str, optional
        Metric detector name; default the workspace's ``detector`` setting.
    render : bool, optional
        Draw the charts into :attr:`output` (default: only inside a running kernel; tests and
        scripts read :attr:`charts`).
    draw : bool
        Draw the default view (the incident's first two services, key metrics, its window) while
        the cell runs, instead of on the first "Show" click. Off by default: under nbclient
        (papermill) a Panel display into an ``Output`` during the cell sometimes kept the next cell
        waiting until the cell timeout (seen in 1 of 4 runs), and the ``Output``'s content is not
        saved in an executed notebook anyway.

    Attributes
    ----------
    widget : ipywidgets.VBox
    services, metrics, templates : ipywidgets.SelectMultiple
    mode : ipywidgets.ToggleButtons
        ``metrics`` or ``log templates``.
    start, end : ipywidgets.Text
        The range, UTC (``2026-11-02 13:00``; an explicit offset is converted).
    show_button : ipywidgets.Button
    charts : dict of str to holoviews element
        What :meth:`update` drew last (keys described in the module docstring).
    detections : dict of str to workbench.signals.detect.DetectionResult
        Per chosen service (metrics mode).
    range : tuple of pandas.Timestamp
        The ``[start, end)`` drawn last.
    focus : pandas.Timestamp or None
        A time marked on every chart (the heatmap cell that opened the explorer).
    output : ipywidgets.Output
    status : Status
    """

    def __init__(self, workspace: Workspace | str, incident_id: str, *, kb: Any = None, detector: str | None = None,
                 render: bool | None = None, draw: bool = False):
        super().__init__(workspace, incident_id, kb=kb)
        self.store = self.workspace.telemetry()
        self.step = self.workspace.settings.step
        self.detector = detector or self.workspace.settings.detector
        self.window = analysis_window(self.incident)
        self.render = in_kernel() if render is None else render
        if self.render:
            _panel_extension()
        self.catalog = self._catalog()
        services = [s for s in self.incident.services if s in self.catalog] + \
                   sorted(s for s in self.catalog if s not in self.incident.services)
        self.mode = w.ToggleButtons(options=list(MODES), value="metrics", description="Show")
        self.services = w.SelectMultiple(description="Services", options=services, rows=6,
                                         value=tuple(s for s in self.incident.services if s in self.catalog)[:2])
        self.metrics = w.SelectMultiple(description="Metrics", options=[], rows=6)
        self.templates = w.SelectMultiple(description="Templates", options=[], rows=6,
                                          layout=w.Layout(width="60%", display="none"))
        self.start = w.Text(description="From (UTC)", value=_text(self.window[0]))
        self.end = w.Text(description="To (UTC)", value=_text(self.window[1]))
        self.show_button = w.Button(description="Show", button_style="primary", icon="line-chart")
        self.show_button.on_click(lambda _b: self.update())
        self.services.observe(lambda _c: self._metric_options(), names="value")
        self.mode.observe(lambda c: self._mode_changed(c["new"]), names="value")
        self.status = Status()
        self.summary = w.HTML()
        self.output = w.Output()
        self.charts: dict[str, Any] = {}
        self.detections: dict[str, Any] = {}
        self.template_table = pd.DataFrame(columns=["template_id", "service", "template", "lines"])
        self.range = self.window
        self.focus: pd.Timestamp | None = None
        self.widget = w.VBox([
            w.HTML(value=CSS + f"<h4 style='margin:4px 0'>Telemetry of {escape(self.incident.id)}</h4>"
                          "<div class='wbw-muted'>Shaded: the incident (started → resolved); dashed: changes "
                          "(deploy, config, flag, scale); dotted: the services' anomaly onsets.</div>"),
            self.mode, w.HBox([self.services, self.metrics, self.templates]),
            w.HBox([self.start, self.end, self.show_button]), self.status.widget, self.output, self.summary])
        self._metric_options()
        if self.render and draw and self.services.value:
            self.update()

    # ------------------------------------------------------------------ choosing

    def show(self, services: Sequence[str] | None = None, metrics: Sequence[str] | None = None, *,
             templates: Sequence[str] | None = None, start: Any = None, end: Any = None, focus: Any = None,
             mode: str | None = None) -> bool:
        """Set the choices (those given) and draw; returns False when the status line shows an error."""
        if mode is not None:
            self.mode.value = mode
        if services is not None:
            unknown = [s for s in services if s not in self.services.options]
            if unknown:
                self.status.error(f"No telemetry of {', '.join(map(str, unknown))} in the incident's window; "
                                  f"known services: {', '.join(self.services.options)}")
                return False
            self.services.value = tuple(services)
        if metrics is not None:
            self.metrics.value = tuple(m for m in metrics if m in self.metrics.options)
        # typed text goes into the fields as it is: update() reports what it cannot read
        if start is not None:
            self.start.value = start if isinstance(start, str) else _text(start)
        if end is not None:
            self.end.value = end if isinstance(end, str) else _text(end)
        if templates is not None:
            try:
                self.load_templates()
            except ValueError as exc:  # an unreadable From/To: the same message update() would give
                self.status.error(str(exc))
                return False
            self.templates.value = tuple(t for t in templates if t in set(self.template_table["template_id"]))
        self.focus = None if focus is None else _utc(focus)
        return self.update()

    def show_service(self, service: str, time: Any = None) -> bool:
        """Open one service's key metrics over the incident's window, ``time`` marked (heatmap, review)."""
        from workbench.reports.charts import KEY_METRICS

        names = self.catalog.get(service, [])
        key = [m for m in KEY_METRICS if m in names] or names
        return self.show([service], key[:DEFAULT_METRICS], start=self.window[0], end=self.window[1], focus=time,
                         mode="metrics")

    # ------------------------------------------------------------------ drawing

    def update(self) -> bool:
        """Query the telemetry for the current choices and draw; False (and a message) on bad input."""
        try:
            start, end = _utc(self.start.value, "From"), _utc(self.end.value, "To")
        except ValueError as exc:
            self.status.error(str(exc))
            return False
        if end <= start:
            self.status.error(f"The range is empty: To ({when(end)}) must be after From ({when(start)}).")
            return False
        if end - start > MAX_RANGE:
            self.status.error(f"The range is {end - start}; the explorer shows at most {MAX_RANGE} at once.")
            return False
        services = list(self.services.value)
        if not services:
            self.status.error("Choose at least one service.")
            return False
        self.range = (start, end)
        self.status.clear()
        try:
            if self.mode.value == "metrics":
                self._draw_metrics(services, start, end)
            else:
                self._draw_templates(services, start, end)
        except SAVE_ERRORS as exc:
            self.status.error(f"Cannot draw: {exc}")
            return False
        self._render()
        return True

    def _draw_metrics(self, services: list[str], start: pd.Timestamp, end: pd.Timestamp) -> None:
        from workbench.signals import detect
        from workbench.reports import charts

        frame = self.store.query("metrics", start - BASELINE, end, services=services)
        events = self.store.query("events", start, end)
        names = list(self.metrics.value) or self._default_metrics(services)
        self.detections = {}
        for service, wide in detect.align(frame, self.step).items():
            try:
                self.detections[service] = detect.score_frame(
                    wide, baseline_end=start, baseline_start=start - BASELINE, end=end, detector=self.detector,
                    step=self.step, service=service)
            except SAVE_ERRORS as exc:  # a detector that cannot run here: say so, still draw the raw series
                self.detections[service] = None
                self.status.warning(f"{service}: not scored ({exc})")
        onsets = [d.onset for d in self.detections.values() if d is not None and d.ok and d.onset is not None]
        marks = self._marks(onsets)
        self.charts = {"score": score_chart(self.detections, self.incident, (start, end), self.detector, marks)}
        for name in names:
            raw = charts.metric_chart(frame, name, services, self.incident, events, (start, end), width=WIDTH)
            self.charts[f"metric:{name}"] = with_marks(raw, marks)
            self.charts[f"contribution:{name}"] = contribution_chart(self.detections, name, (start, end), marks)
        rows = []
        for service in services:
            d = self.detections.get(service)
            if d is None:
                rows.append((service, "", "", "not scored" if service in self.detections else "no metrics"))
                continue
            top = ", ".join(f"{r.metric} {r.direction}" for r in d.top.head(3).itertuples()) if d.ok else ""
            rows.append((service, when(d.onset) if d.onset is not None else "none",
                         top, "; ".join(d.notes[-2:]) if not d.ok else f"{int(d.anomalous.sum())} anomalous steps"))
        self.summary.value = CSS + f"<b>Anomaly ({escape(self.detector)}, baseline: the 24 h before From)</b>" + \
            table(rows, ("service", "onset", "top metrics", "note"))
        shown = ", ".join(names) if names else "no metric"
        if self.status.kind != "warning":
            self.status.ok(f"{', '.join(services)}: {shown} from {when(start)} to {when(end)}.")

    def load_templates(self) -> pd.DataFrame:
        """Mine the chosen services' logs in the range into templates; fills the template choices.

        Returns
        -------
        pandas.DataFrame
            ``template_id``, ``service``, ``template``, ``lines``, most lines first.
        """
        from workbench.signals.logs import mine

        start, end = _utc(self.start.value, "From"), _utc(self.end.value, "To")
        logs = self.store.query("logs", start, end, services=list(self.services.value))
        if logs.empty:
            self.template_table = pd.DataFrame(columns=["template_id", "service", "template", "lines"])
            self._mined = logs.assign(template_id=pd.Series(dtype=object), template=pd.Series(dtype=object))
        else:
            self._mined = mine(logs.reset_index(drop=True))
            grouped = self._mined.groupby(["template_id", "service"], sort=False)
            self.template_table = grouped.agg(template=("template", "first"), lines=("body", "size")) \
                .reset_index().sort_values(["lines", "template_id"], ascending=[False, True]).reset_index(drop=True)
        chosen = self.templates.value
        self.templates.options = [(f"{r.service}: {r.template} ({r.lines})", r.template_id)
                                  for r in self.template_table.itertuples()]
        self.templates.value = tuple(t for t in chosen if t in set(self.template_table["template_id"]))
        return self.template_table

    def _draw_templates(self, services: list[str], start: pd.Timestamp, end: pd.Timestamp) -> None:
        import holoviews as hv

        from workbench.signals.logs import template_counts
        from workbench.reports.charts import incident_end, naive_utc

        table_ = self.load_templates()
        chosen = list(self.templates.value) or list(table_["template_id"].head(DEFAULT_TEMPLATES))
        counts = template_counts(self._mined, self.step) if len(self._mined) else None
        curves = {}
        for tid in chosen:
            row = table_[table_["template_id"] == tid].iloc[0]
            part = counts[counts["template_id"] == tid] if counts is not None else None
            if part is None or part.empty:
                continue
            label = f"{row['service']}: {clip(row['template'], 60)}"
            curves[label] = hv.Curve(pd.DataFrame({"time": naive_utc(part["timestamp"]).to_numpy(),
                                                   "lines": part["count"].to_numpy()}), "time", "lines")
        span = hv.VSpan(naive_utc(self.incident.started), naive_utc(incident_end(self.incident, end))).opts(
            color="#cf222e", alpha=0.08, line_alpha=0)
        overlay = hv.NdOverlay(curves, kdims="template") if curves else hv.NdOverlay({}, kdims="template")
        self.charts = {"templates": (overlay * span * self._marks([])).opts(  # options last: `*` drops them
            width=2 * WIDTH, height=300, title=f"log lines per {self.step}", xlabel="time (UTC)", ylabel="lines",
            legend_position="top_left", xlim=(naive_utc(start), naive_utc(end)), show_grid=True)}
        self.detections = {}
        rows = [(r.service, r.lines, r.template) for r in table_[table_["template_id"].isin(chosen)].itertuples()]
        self.summary.value = CSS + "<b>Charted templates</b>" + table(rows, ("service", "lines", "template"))
        self.status.ok(f"{len(curves)} log template(s) of {', '.join(services)} from {when(start)} to {when(end)}.")

    def _marks(self, onsets: list[pd.Timestamp]) -> Any:
        """Onset lines (dotted) and the focus time (orange) as one overlay."""
        import holoviews as hv

        from workbench.reports.charts import naive_utc

        lines = hv.VLines(pd.DataFrame({"x": pd.Series([naive_utc(t) for t in onsets], dtype="datetime64[ns]")}),
                          kdims=["x"]).opts(**_ONSET_STYLE)
        focus = [] if self.focus is None else [naive_utc(self.focus)]
        return lines * hv.VLines(pd.DataFrame({"x": pd.Series(focus, dtype="datetime64[ns]")}),
                                 kdims=["x"]).opts(**_FOCUS_STYLE)

    def view(self) -> Any:
        """The charts as one Panel layout (what :attr:`output` displays)."""
        import panel as pn

        panes = [pn.pane.HoloViews(el, backend="bokeh", linked_axes=False) for el in self.charts.values()]
        if "score" in self.charts:
            return pn.Column(panes[0], pn.GridBox(*panes[1:], ncols=2))
        return pn.Column(*panes)

    def _render(self) -> None:
        if not self.render:
            return
        from IPython.display import display

        with self.output:
            self.output.clear_output(wait=True)
            display(self.view())

    # ------------------------------------------------------------------ choices

    def _catalog(self) -> dict[str, list[str]]:
        """Service -> metric names with samples in the incident's analysis window."""
        frame = self.store.query("metrics", *self.window)
        if frame.empty:
            return {}
        pairs = frame[["service", "name"]].drop_duplicates()
        return {str(s): sorted(part["name"].astype(str)) for s, part in pairs.groupby("service", sort=True)}

    def _default_metrics(self, services: Sequence[str]) -> list[str]:
        from workbench.reports.charts import KEY_METRICS

        names = sorted({n for s in services for n in self.catalog.get(s, [])})
        return ([m for m in KEY_METRICS if m in names] or names)[:DEFAULT_METRICS]

    def _metric_options(self) -> None:
        names = sorted({n for s in self.services.value for n in self.catalog.get(s, [])})
        chosen = tuple(m for m in self.metrics.value if m in names)
        self.metrics.options = names
        self.metrics.value = chosen or tuple(self._default_metrics(self.services.value))

    def _mode_changed(self, mode: str) -> None:
        logs = mode == "log templates"
        self.metrics.layout.display = "none" if logs else None
        self.templates.layout.display = None if logs else "none"


# --------------------------------------------------------------------------- charts

def with_marks(chart: Any, marks: Any) -> Any:
    """``chart * marks`` keeping ``chart``'s overlay options (``*`` builds a new overlay without them:
    the chart would lose its size, title and axis labels)."""
    return (chart * marks).opts(**chart.opts.get().kwargs)


def score_chart(detections: dict[str, Any], incident: Any, x_range: tuple[Any, Any], detector: str,
                marks: Any = None) -> Any:
    """Each service's anomaly score divided by its detector threshold (1 = the anomaly line);
    ``marks`` (an overlay of lines) is drawn on top."""
    import holoviews as hv

    from workbench.reports.charts import incident_end, naive_utc

    x0, x1 = (pd.Timestamp(t) for t in x_range)
    curves = {}
    for service, d in detections.items():
        if d is None or not d.ok or d.scores.empty:
            continue
        scale = d.threshold if np.isfinite(d.threshold) and d.threshold > 0 else 1.0
        frame = pd.DataFrame({"time": naive_utc(d.scores.index.to_series()).to_numpy(),
                              "score": d.scores.to_numpy() / scale})
        curves[str(service)] = hv.Curve(frame, "time", "score").opts(line_width=1.6, tools=["hover"])
    overlay = hv.NdOverlay(curves, kdims="service") if curves else hv.NdOverlay({}, kdims="service")
    span = hv.VSpan(naive_utc(incident.started), naive_utc(incident_end(incident, x1))).opts(
        color="#cf222e", alpha=0.08, line_alpha=0)
    line = hv.HLine(1.0).opts(color="#cf222e", line_dash="dashed", line_width=1)
    chart = overlay * span * line
    return (chart if marks is None else chart * marks).opts(
        width=2 * WIDTH, height=230, title=f"anomaly score ÷ threshold ({detector}; above 1 = anomalous)",
        xlabel="time (UTC)", ylabel="score ÷ threshold", show_grid=True, legend_position="top_left",
        xlim=(naive_utc(x0), naive_utc(x1)))


def contribution_chart(detections: dict[str, Any], name: str, x_range: tuple[Any, Any], marks: Any = None) -> Any:
    """How much metric ``name`` moved each service's anomaly score (signed, -1 … 1); ``marks`` on top."""
    import holoviews as hv

    from workbench.reports.charts import naive_utc

    x0, x1 = (pd.Timestamp(t) for t in x_range)
    curves = {}
    for service, d in detections.items():
        if d is None or not d.ok or name not in d.contributions.columns:
            continue
        c = d.contributions[name]
        frame = pd.DataFrame({"time": naive_utc(c.index.to_series()).to_numpy(), "contribution": c.to_numpy()})
        curves[str(service)] = hv.Curve(frame, "time", "contribution").opts(line_width=1.4, tools=["hover"])
    overlay = hv.NdOverlay(curves, kdims="service") if curves else hv.NdOverlay({}, kdims="service")
    chart = overlay * hv.HLine(0).opts(color="#8c959f", line_width=1)
    return (chart if marks is None else chart * marks).opts(
        width=WIDTH, height=230, title=f"{name}: contribution to the anomaly", xlabel="time (UTC)",
        ylabel="contribution (−1 … 1)", ylim=(-1.05, 1.05), show_grid=True, legend_position="top_left",
        xlim=(naive_utc(x0), naive_utc(x1)))


# --------------------------------------------------------------------------- helpers

_PANEL_LOADED = False


def _panel_extension(force: bool = False) -> None:
    """Load Panel's JavaScript into the notebook, inline (offline JupyterLab shows nothing otherwise).

    Once per kernel: the inline bundle is about 6 MB of cell output, and every call would add it
    to the notebook again. ``force`` loads it again (after the output holding it was cleared).
    """
    global _PANEL_LOADED
    if _PANEL_LOADED and not force:
        return
    import panel as pn

    pn.extension(inline=True)
    _PANEL_LOADED = True


def _utc(value: Any, field: str = "time") -> pd.Timestamp:
    """A time typed by a user (UTC unless it names an offset) or given by code, as aware UTC."""
    try:
        ts = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: expected a time such as 2026-11-02 13:00 (UTC), got {value!r}") from None
    if pd.isna(ts):
        raise ValueError(f"{field}: expected a time such as 2026-11-02 13:00 (UTC), got {value!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _text(value: Any) -> str:
    ts = _utc(value)
    return ts.strftime("%Y-%m-%d %H:%M:%S" if ts.second else "%Y-%m-%d %H:%M")

