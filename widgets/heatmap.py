"""Anomaly heatmap (services × time, coloured by score) that opens a cell in the telemetry explorer.

The chart is :func:`workbench.reports.charts.heatmap_chart` (naive-UTC axis, origin first) of
per-service, per-step scores: by default the engine's (:func:`workbench.postmortem.gather.anomaly`
over the incident's baseline and window), or any ``timestamp, service, score`` frame passed in. Clicking a cell reaches :meth:`AnomalyHeatmapExplorer.on_select` through a
HoloViews ``Tap`` stream (live in a kernel); the service dropdown, time field and "Open" button
below the chart call the same method, for the keyboard and for scripts.

Displaying the object shows the chart as an ordinary Panel output followed by the controls and
the explorer (``_ipython_display_``), not inside an ``ipywidgets.Output``: an executed notebook
(papermill) then keeps the heatmap as a static Bokeh chart that draws when the notebook is opened,
while widgets need the cell to run again in a live kernel.

Usage in a notebook cell::

    workbench.widgets.anomaly_heatmap(ws, incident_id)
"""
from __future__ import annotations

from typing import Any

import ipywidgets as w
import pandas as pd

from workbench.workspace import Workspace
from workbench.telemetry.windows import analysis_window

from ._common import CSS, Status, StoreWidget, escape, in_kernel, when
from .explorer import TelemetryExplorer, _panel_extension, _text, _utc


class AnomalyHeatmapExplorer(StoreWidget):
    """The anomaly heatmap of one incident, wired to a :class:`TelemetryExplorer`.

    Parameters
    ----------
    workspace : Workspace or str
    incident_id : str
    kb : KnowledgeBase, optional
    explorer : TelemetryExplorer, optional
        The explorer a selected cell opens; default a new one shown below the heatmap.
    scores : pandas.DataFrame, optional
        ``timestamp`` (tz-aware), ``service``, ``score``; default the engine's (:func:`workbench.postmortem.gather.anomaly`).
    method : str, optional
        What the score is (shown in the title).
    render : bool, optional
        Load Panel's JavaScript into the notebook (default: only inside a running kernel).

    Attributes
    ----------
    widget : ipywidgets.VBox
    scores : pandas.DataFrame
    chart : holoviews.Overlay
        The heatmap (its ``HeatMap`` is :attr:`heat`).
    tap : holoviews.streams.Tap
        Click stream on the chart; its subscriber calls :meth:`on_select`.
    service : ipywidgets.Dropdown
    time : ipywidgets.Text
    open_button : ipywidgets.Button
    selection : tuple of (str, pandas.Timestamp or None) or None
        The last cell opened.
    explorer : TelemetryExplorer
    status : Status
    """

    def __init__(self, workspace: Workspace | str, incident_id: str, *, kb: Any = None,
                 explorer: TelemetryExplorer | None = None, scores: pd.DataFrame | None = None,
                 method: str | None = None, render: bool | None = None):
        import holoviews as hv

        from workbench.postmortem import gather
        from workbench.reports import charts

        super().__init__(workspace, incident_id, kb=kb)
        self.render = in_kernel() if render is None else render
        own_explorer = explorer is None
        self.explorer = explorer or TelemetryExplorer(self.workspace, incident_id, kb=self.kb, render=self.render)
        window = analysis_window(self.incident)
        floor, clip, onset = gather.SCALES["robust z"]
        if scores is None:  # the engine's scores, gathered by the core (once per process)
            found = gather.anomaly(gather.incident_data(self.workspace, incident_id, records=False, logs=False))
            scores, method, (floor, clip, onset) = found.scores, found.method, (found.floor, found.clip, found.onset)
        self.scores = scores
        self.method = method or gather.ROBUST_Z
        self.order = charts.service_order(scores, onset)
        self.chart = charts.heatmap_chart(scores, self.incident, window, self.method, clip=clip, floor=floor,
                                          onset=onset)
        self.heat = next(el for el in self.chart if isinstance(el, hv.HeatMap))
        # A tap selects a cell, and Bokeh fades every other one by default: keep the colours (they
        # are the point of the chart) and outline the chosen cell instead. 940 px fits JupyterLab's
        # output area beside the file browser (the report's 1080 would hide the colour bar).
        self.heat.opts(tools=["hover", "tap"], nonselection_alpha=1.0, selection_line_color="#1f2328",
                       selection_line_alpha=1.0, selection_line_width=2, width=940,
                       hover_tooltips=[("service", "@{service}"), ("time", "@{time}{%F %H:%M} UTC"),
                                       ("score", "@{score}{0.0}")], hover_formatters={"@{time}": "datetime"})
        self.tap = hv.streams.Tap(source=self.chart, x=None, y=None)
        self.tap.add_subscriber(self._tapped)
        self.selection: tuple[str, pd.Timestamp | None] | None = None
        self.service = w.Dropdown(description="Service", options=self.order,
                                  value=self.order[0] if self.order else None)
        self.time = w.Text(description="At (UTC)", value=_text(self.incident.started))
        self.open_button = w.Button(description="Open in explorer", icon="search")
        self.open_button.on_click(lambda _b: self.on_select(self.service.value, self.time.value))
        self.status = Status()
        note = (f"Score: {escape(self.method)}. Click a cell (or pick a service and time below) to open that "
                f"service's metrics in the explorer.") if not scores.empty else \
            "No scores: no metrics with a baseline in this incident's window."
        children = [w.HTML(value=CSS + f"<h4 style='margin:4px 0'>Anomaly heatmap of {escape(self.incident.id)}</h4>"
                                 f"<div class='wbw-muted'>{note}</div>"),
                    w.HBox([self.service, self.time, self.open_button]), self.status.widget]
        if own_explorer:
            children.append(self.explorer.widget)
        self.widget = w.VBox(children)

    def on_select(self, service: str, time: Any = None) -> bool:
        """Open ``service``'s metrics in the explorer with ``time`` marked (what a click calls)."""
        try:
            ts = None if time is None or (isinstance(time, str) and not time.strip()) else _utc(time, "At")
        except ValueError as exc:
            self.status.error(str(exc))
            return False
        if service not in self.order and service not in self.explorer.services.options:
            self.status.error(f"No scores or metrics for service {service!r}; known: {', '.join(self.order)}")
            return False
        self.selection = (service, ts)
        opened = self.explorer.show_service(service, ts)
        if opened:
            self.status.info(f"Opened {service}" + (f" at {when(ts)}" if ts is not None else "") + " in the explorer.")
        else:
            self.status.error(self.explorer.status.text)
        return opened

    def _tapped(self, x: Any = None, y: Any = None, **_: Any) -> None:
        if x is None or y is None:
            return
        # Bokeh sends a datetime axis position as milliseconds since the epoch; HoloViews often
        # converts it to a naive datetime first. Both mean UTC here (the axis is naive UTC).
        ts = pd.Timestamp(x, unit="ms") if isinstance(x, (int, float)) else pd.Timestamp(x)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        # a cell is drawn centred on its step's start: the nearest step start is the cell clicked
        self.on_select(str(y), ts.round(self.workspace.settings.step))

    def view(self) -> Any:
        """The heatmap as a Panel pane (what a notebook shows above the controls)."""
        import panel as pn

        return pn.pane.HoloViews(self.chart, backend="bokeh")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.render:
            _panel_extension()
        display(self.widget.children[0], self.view(), w.VBox(list(self.widget.children[1:])))
