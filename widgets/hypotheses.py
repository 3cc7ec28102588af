"""Hypothesis explorer: one hypothesis (or a service and metric) against the changes, the services
around it and its logs, confirmed or rejected in place.

For the chosen hypothesis it shows (data from the core, :mod:`workbench.postmortem.gather` and the
analysis result; charts from :mod:`workbench.reports.charts`, the report's):

- its evidence series (the metrics its evidence names, or the one chosen) with the incident shaded,
  the changes dashed and the services' onsets dotted;
- its callers' and callees' onsets with their lead or lag against its own (negative: moved first);
- its service's log templates that appeared, vanished or changed rate in the window against the
  window before, with their counts over time;
- the similar past incidents and their confirmed causes;
- Confirm / Reject with the reviewer's name and rationale, through
  :func:`workbench.postmortem.review.decide` — the function ``workbench review`` calls — with the
  version the reviewer saw (a stale one writes nothing and reloads).

Charts are drawn into an ``ipywidgets.Output`` as the notebook's own embedded Bokeh charts
(:class:`workbench.reports.embed.Charts`, BokehJS from the notebook's set-up cell), not Panel:
nothing to load into the kernel, and nothing is drawn until a hypothesis is shown (:meth:`show`,
the "Show" button), so an executed notebook pays nothing for the cell.

Usage in a notebook cell::

    workbench.widgets.hypothesis_explorer(ws, incident_id)
"""
from __future__ import annotations

from typing import Any, Mapping

import ipywidgets as w
import pandas as pd

from workbench.workspace import Workspace

from ._common import (CSS, SAVE_ERRORS, STALE_ERRORS, Status, StoreWidget, badge, blank, conflict_message, escape,
                      in_kernel, table, when)

#: Charts of one hypothesis: its evidence metrics, at most this many.
SERIES = 3


class HypothesisExplorer(StoreWidget):
    """Explore and decide the hypotheses of one incident.

    Parameters
    ----------
    workspace : Workspace or str
    incident_id : str
    reviewer : str
        Pre-filled reviewer name (required to decide).
    kb : KnowledgeBase, optional
    detector : str, optional
        The analysis' metric detector (default: the workspace setting).
    render : bool, optional
        Display charts into :attr:`output` (default: inside a running kernel).

    Attributes
    ----------
    widget : ipywidgets.VBox
    choice : ipywidgets.Dropdown
        The hypothesis shown (its id), or ``""`` for the service and metric below.
    service, metric : ipywidgets.Dropdown
        What to show when no hypothesis is chosen.
    reviewer : ipywidgets.Text
    rationale : ipywidgets.Textarea
    confirm_button, reject_button, show_button : ipywidgets.Button
    charts : list
        HoloViews elements drawn last (tests and scripts read them).
    neighbours, templates, counts : pandas.DataFrame
        What the last :meth:`show` found (see :func:`workbench.postmortem.gather.neighbours` and
        :func:`~workbench.postmortem.gather.template_changes`).
    output : ipywidgets.Output
    status : Status
    """

    def __init__(self, workspace: Workspace | str, incident_id: str, *, reviewer: str = "", kb: Any = None,
                 detector: str | None = None, render: bool | None = None):
        super().__init__(workspace, incident_id, kb=kb)
        from workbench.postmortem import gather

        self.detector = detector
        self.render = in_kernel() if render is None else render
        self.data = gather.incident_data(self.workspace, incident_id, records=False, logs=False)
        frame = self.data.window_metrics
        self.catalog = {str(s): sorted(p["name"].astype(str).unique()) for s, p in frame.groupby("service")} \
            if not frame.empty else {}
        self.hypotheses: list[Any] = []
        self.choice = w.Dropdown(description="Hypothesis", layout=w.Layout(width="70%"))
        self.service = w.Dropdown(description="or service", options=sorted(self.catalog))
        self.metric = w.Dropdown(description="metric", options=[])
        self.service.observe(lambda _c: self._metrics(), names="value")
        self.show_button = w.Button(description="Show", button_style="primary", icon="search")
        self.show_button.on_click(lambda _b: self.show())
        self.reviewer = w.Text(value=reviewer, description="Reviewer", placeholder="your name (required)")
        self.rationale = w.Textarea(placeholder="Rationale (required): why you confirm or reject it",
                                    layout=w.Layout(width="98%", height="60px"))
        self.confirm_button = w.Button(description="Confirm", button_style="success", icon="check")
        self.reject_button = w.Button(description="Reject", button_style="warning", icon="times")
        self.confirm_button.on_click(lambda _b: self.decide("confirmed"))
        self.reject_button.on_click(lambda _b: self.decide("rejected"))
        self.status = Status()
        self.header = w.HTML()
        self.facts = w.HTML()
        self.output = w.Output()
        self.charts: list[Any] = []
        self.neighbours = pd.DataFrame(columns=["service", "relation", "onset", "lag_minutes"])
        self.templates = pd.DataFrame()
        self.counts = pd.DataFrame()
        self.widget = w.VBox([
            self.header, w.HBox([self.choice, self.show_button]), w.HBox([self.service, self.metric]),
            self.status.widget, self.output, self.facts,
            w.HTML(value="<b>Decide</b> (stored with your name, the rationale and its history)"),
            self.reviewer, self.rationale, w.HBox([self.confirm_button, self.reject_button])])
        self._metrics()
        self.reload()

    # ------------------------------------------------------------------ reading

    def reload(self) -> None:
        """Read the hypotheses again (keeps the chosen one when it is still there)."""
        chosen = self.choice.value
        self.hypotheses = self.kb.list_hypotheses(self.incident_id)
        order = sorted(self.hypotheses, key=lambda h: ({"confirmed": 0, "proposed": 1}.get(h.status, 2),
                                                       h.rank if h.rank is not None else 1e9))
        options = [(f"#{h.rank if h.rank is not None else '-'} {h.service} × {h.cause} ({h.status})", h.id)
                   for h in order]
        self.choice.options = [*options, ("(the service and metric below)", "")]
        self.choice.value = chosen if chosen in {v for _, v in self.choice.options} else \
            (options[0][1] if options else "")
        self.header.value = CSS + (f"<h4 style='margin:4px 0'>Explore the hypotheses of {escape(self.incident_id)}</h4>"
                                   "<div class='wbw-muted'>Pick one and press Show: its series against the changes, "
                                   "the services around it, its logs and similar past incidents.</div>")

    def hypothesis(self) -> Any:
        """The chosen hypothesis record (None for the service-and-metric choice)."""
        return next((h for h in self.hypotheses if h.id == self.choice.value), None)

    # ------------------------------------------------------------------ showing

    def show(self, hypothesis_id: str | None = None, *, service: str | None = None, metric: str | None = None) -> bool:
        """Show a hypothesis (by id), or ``service``'s ``metric``; False (and a message) when unknown."""
        if hypothesis_id is not None:
            if hypothesis_id not in {h.id for h in self.hypotheses}:
                self.status.error(f"No hypothesis {hypothesis_id!r} for {self.incident_id}.")
                return False
            self.choice.value = hypothesis_id
        if service is not None:
            if service not in self.catalog:
                self.status.error(f"No metrics of {service!r} in the window; known: {', '.join(self.catalog)}")
                return False
            self.choice.value = ""
            self.service.value = service
            if metric is not None:
                self.metric.value = metric if metric in self.catalog[service] else self.metric.value
        h = self.hypothesis()
        svc = h.service if h is not None else self.service.value
        if not svc:
            self.status.error("Choose a hypothesis, or a service and a metric.")
            return False
        try:
            self._draw(h, svc)
        except SAVE_ERRORS as exc:
            self.status.error(f"Cannot show {svc}: {exc}")
            return False
        what = f"{h.service} × {h.cause}" if h is not None else f"{svc}: {self.metric.value}"
        self.status.ok(f"Showing {what}.")
        return True

    def _draw(self, h: Any, service: str) -> None:
        from workbench.postmortem import chapters, gather
        from workbench.reports import charts
        from workbench.reports.notebook import evidence_metrics

        result = chapters.analysis(self.workspace, self.incident_id, detector=self.detector)
        onsets = result.onsets if result is not None else pd.DataFrame(columns=["service", "onset"])
        frame = self.data.window_metrics
        names = evidence_metrics(h, frame)[:SERIES] if h is not None else [self.metric.value]
        self.neighbours = gather.neighbours(self.workspace, self.incident_id, service, onsets)
        shown = [service, *[s for s in self.neighbours["service"] if s in self.catalog][:3]]
        # the onsets of the services drawn (dotted): who moved first is read off the lines
        marks = [t for s, t in zip(onsets["service"], onsets["onset"]) if s in shown and not pd.isna(t)] \
            if not onsets.empty else []
        series = [charts.metric_chart(frame, name, shown, self.data.incident, self.data.events, self.data.window,
                                      width=440, onsets=marks) for name in names if name]
        self.templates, self.counts = gather.template_changes(self.workspace, self.incident_id, service)
        logs = []
        if not self.counts.empty:
            labels = dict(zip(self.templates["template_id"], self.templates["template"]))
            logs = [charts.template_chart(self.counts, labels, self.data.incident, self.data.window, width=900)]
        self.charts = series + logs
        self.facts.value = CSS + self._facts_markup(h, service)
        if self.render:
            from IPython.display import display

            from workbench.reports.embed import Charts

            with self.output:
                self.output.clear_output(wait=True)
                display(Charts(series, f"{service}: its series, dotted lines the onsets of " + ", ".join(shown),
                               columns=2))
                if logs:
                    display(Charts(logs, f"{service}: log templates, lines per step (the window and the same "
                                         f"length before)"))

    def _facts_markup(self, h: Any, service: str) -> str:
        own = self.neighbours
        rows = [(r.service, r.relation, when(r.onset) if not pd.isna(r.onset) else "no onset",
                 "" if pd.isna(r.lag_minutes) else f"{r.lag_minutes:+.0f} min") for r in own.itertuples()]
        parts = [f"<b>Services around {escape(service)}</b> (lag: their onset − {escape(service)}'s; "
                 "negative = they moved first)" + table(rows, ("service", "relation", "onset", "lead/lag"),
                                                             "no callers or callees in the topology", nowrap=(1, 2, 3))]
        trows = [(badge(r.change, {"appeared": "proposed", "vanished": "rejected", "up": "proposed"}.get(r.change, "")),
                  f"{r.baseline_rate:.2f}", f"{r.window_rate:.2f}", when(r.first_seen) if not pd.isna(r.first_seen)
                  else "", r.template) for r in self.templates.itertuples()] if not self.templates.empty else []
        parts.append(f"<b>Log templates of {escape(service)}</b> (lines per minute, the window vs the same length "
                     "before)" + table(trows, ("change", "before", "window", "first seen", "template"),
                                            "no log lines", nowrap=(0, 1, 2, 3)))
        if h is not None:
            sims = [s for s in h.similar if isinstance(s, Mapping)]
            srows = [(s.get("incident_id", ""), s.get("title", ""), " / ".join(str(s[k]) for k in ("service", "cause")
                      if s.get(k)) or "not confirmed", f"{s['similarity']:.2f}" if isinstance(
                      s.get("similarity"), (int, float)) else "") for s in sims]
            parts.append("<b>Similar past incidents</b>" + table(srows, ("incident", "title", "confirmed cause",
                                                                            "similarity"), "none", nowrap=(0, 3)))
        return "".join(parts)

    # ------------------------------------------------------------------ deciding

    def decide(self, status: str, rationale: str | None = None, reviewer: str | None = None) -> Any:
        """Confirm or reject the chosen hypothesis (what the buttons call); the stored record, or None
        when nothing was written (the status line says why)."""
        from workbench.postmortem.review import decide

        h = self.hypothesis()
        reviewer = self.reviewer.value if reviewer is None else reviewer
        rationale = self.rationale.value if rationale is None else rationale
        if h is None:
            self.status.error("Nothing saved: choose a hypothesis first (a service and metric cannot be confirmed).")
            return None
        missing = [n for n, v in (("reviewer name", reviewer), ("rationale", rationale)) if blank(v)]
        if missing:
            self.status.error(f"Nothing saved: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                              f"required.")
            return None
        try:
            stored = decide(self.kb, self.incident_id, h.service, h.cause, status, reviewer=reviewer.strip(),
                            rationale=rationale, version=h.version)
        except STALE_ERRORS as exc:
            self.reload()
            self.status.error(conflict_message(exc))
            return None
        except SAVE_ERRORS as exc:
            self.status.error(f"Nothing saved: {exc}")
            return None
        self.rationale.value = ""
        self.reload()
        self.status.ok(f"{status.capitalize()} {stored.service} × {stored.cause} (by {stored.reviewer}); stored as "
                       f"version {stored.version} with its history.")
        return stored

    # ------------------------------------------------------------------ static view

    def static_markup(self) -> str:
        """What the cell shows where the live widget is not running (a saved notebook)."""
        from workbench.reports.notebook import hypotheses_markup

        return (CSS + f"<h4 style='margin:4px 0'>Explore the hypotheses of {escape(self.incident_id)}</h4>"
                "<div class='wbw-muted'>Interactive: run this cell in JupyterLab (with a kernel) to chart a "
                "hypothesis against the changes, its neighbours' onsets and its logs, and to confirm or reject it "
                "here.</div>" + str(hypotheses_markup(self.hypotheses)))

    def _metrics(self) -> None:
        from workbench.reports.charts import KEY_METRICS

        names = self.catalog.get(self.service.value, [])
        self.metric.options = [m for m in KEY_METRICS if m in names] + [m for m in names if m not in KEY_METRICS]
