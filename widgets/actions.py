"""Action items editor: owner, due date, kind, status and how the fix will be verified.

The verification criterion is built from a small form (service, metric, aggregate, comparator,
threshold, duration, window) and checked by :class:`workbench.loop.criteria.Criterion` before
anything is written: an invalid criterion shows the checker's message and saves nothing, so an
item is never stored half-way. A saved item is one :meth:`KnowledgeBase.add_action_item` or
version-checked :meth:`KnowledgeBase.update_action_item` call (history kept by the store).

The form builds ``signal: metric`` criteria, e.g. "max latency_p99_ms of checkout < 300 per 5min
for 7d". Log-template and span-edge criteria (see :mod:`workbench.loop.criteria`) are listed with
their description but entered as JSON, e.g. with ``kb.add_action_item(..., verification=...)``::

    {"signal": "log_template", "service": "payments", "template": "InvalidFormatException",
     "aggregate": "count", "comparator": "<", "threshold": 1, "duration": "7d", "window": "1h"}
    {"signal": "span_edge", "caller": "checkout", "callee": "payments", "metric": "error_rate",
     "comparator": "<", "threshold": 0.05, "duration": "7d", "window": "6h"}

Usage in a notebook cell::

    workbench.widgets.action_items_editor(ws, incident_id)
"""
from __future__ import annotations

import math
from typing import Any

import ipywidgets as w

from workbench.workspace import Workspace
from workbench.store import ACTION_KINDS, ACTION_STATUSES
from workbench.loop.criteria import AGGREGATES, COMPARATORS, DEFAULT_WINDOW, Criterion, CriterionError, describe
from workbench.telemetry.windows import analysis_window

from ._common import CSS, SAVE_ERRORS, STALE_ERRORS, Status, StoreWidget, blank, table

#: The dropdown entry that starts a new item.
NEW = "new action item"


class ActionItemsEditor(StoreWidget):
    """Add and edit the action items of one incident.

    Parameters
    ----------
    workspace : Workspace or str
    incident_id : str
    who : str
        Pre-filled editor name (recorded in the history; required to save).
    kb : KnowledgeBase, optional

    Attributes
    ----------
    widget : ipywidgets.VBox
    items : list of workbench.store.ActionItem
        As last loaded.
    select : ipywidgets.Dropdown
        ``None`` (a new item) or the id of the item being edited.
    title, owner, who : ipywidgets.Text
    due : ipywidgets.DatePicker
    kind, item_status : ipywidgets.Dropdown
    verify : ipywidgets.Checkbox
        Whether the item carries a verification criterion (the fields below).
    service, metric, comparator : ipywidgets.Combobox
        Free text with suggestions (the incident's services, their metric names, the comparators).
    aggregate : ipywidgets.Dropdown
    threshold, duration, window, environment : ipywidgets.Text
    save_button : ipywidgets.Button
    status : Status
    """

    def __init__(self, workspace: Workspace | str, incident_id: str, *, who: str = "", kb: Any = None):
        super().__init__(workspace, incident_id, kb=kb)
        services = list(self.incident.services)
        self.list_html = w.HTML()
        self.select = w.Dropdown(description="Edit", options=[(NEW, None)], value=None)
        self.select.observe(lambda change: self.load(change["new"]), names="value")
        self.title = w.Text(description="Title", placeholder="what will be done", layout=w.Layout(width="60%"))
        self.owner = w.Text(description="Owner", placeholder="who does it")
        self.due = w.DatePicker(description="Due")
        self.kind = w.Dropdown(description="Kind", options=list(ACTION_KINDS), value="prevent")
        self.item_status = w.Dropdown(description="Status", options=list(ACTION_STATUSES), value="open")
        self.verify = w.Checkbox(description="verified by a metric criterion", value=True, indent=False)
        self.service = w.Combobox(description="Service", options=services, placeholder="metrics.service")
        self.metric = w.Combobox(description="Metric", options=_metric_names(self.workspace, self.incident),
                                 placeholder="metrics.name")
        self.aggregate = w.Dropdown(description="Aggregate", options=list(AGGREGATES), value="max")
        self.comparator = w.Combobox(description="Comparator", options=list(COMPARATORS), value="<",
                                     placeholder="<, <=, > or >=")
        self.threshold = w.Text(description="Threshold", placeholder="a number")
        self.duration = w.Text(description="Holds for", value="7d", placeholder="e.g. 7d, 24h")
        self.window = w.Text(description="Per window", value=DEFAULT_WINDOW, placeholder="e.g. 5min")
        self.environment = w.Text(description="Environment", placeholder="optional")
        self.who = w.Text(value=who, description="Your name", placeholder="recorded in the history (required)")
        self.save_button = w.Button(description="Save", button_style="primary", icon="save")
        self.save_button.on_click(lambda _b: self.save())
        self.new_button = w.Button(description="New item", icon="plus")
        self.new_button.on_click(lambda _b: self._select(None))
        self.status = Status()
        self.criterion_box = w.VBox([w.HBox([self.service, self.metric]), w.HBox([self.aggregate, self.comparator]),
                                     w.HBox([self.threshold, self.environment]), w.HBox([self.duration, self.window])])
        self.verify.observe(lambda change: self._show_criterion(change["new"]), names="value")
        self.widget = w.VBox([
            self.list_html, w.HBox([self.select, self.new_button]), self.title, w.HBox([self.owner, self.due]),
            w.HBox([self.kind, self.item_status]), self.verify, self.criterion_box,
            w.HBox([self.who, self.save_button]), self.status.widget])
        self.items: list[Any] = []
        self.reload()

    # ------------------------------------------------------------------ reading

    def reload(self, select: str | None = None) -> None:
        """Read the items again and show ``select`` (default: the item being edited, if it still exists)."""
        current = self.select.value if select is None else select
        self.incident = self.kb.get_incident(self.incident_id)
        self.items = self.kb.list_action_items(self.incident_id)
        rows = [(a.title, a.owner, a.kind, a.due or "", a.status, _criterion_text(a.verification), a.id)
                for a in self.items]
        self.list_html.value = CSS + "<h4 style='margin:4px 0'>Action items</h4>" + table(
            rows, ("title", "owner", "kind", "due", "status", "verification", "id"), "no action items yet")
        ids = {a.id for a in self.items}
        options = [(NEW, None)] + [(f"{a.title} ({a.owner})", a.id) for a in self.items]
        value = current if current in ids else None
        self.select.options = options
        self.select.value = value
        self.load(value)

    def static_markup(self) -> str:
        """The action items as shown, and how to edit them (the cell's output without a kernel)."""
        return self.list_html.value + ("<div class='wbw-muted'>Run this cell in JupyterLab (with a kernel) to "
                                    "add or edit action items.</div>")

    def item(self, item_id: str) -> Any:
        for a in self.items:
            if a.id == item_id:
                return a
        raise KeyError(f"action item {item_id!r} is not loaded; loaded: {[a.id for a in self.items]}")

    def load(self, item_id: str | None) -> None:
        """Fill the form with a stored item (``None``: an empty form for a new item).

        A stored log-template or span-edge criterion is kept as it is on save (the form edits
        metric criteria only); unticking "verified" removes it."""
        self._kept = None
        if item_id is None:
            self.title.value = self.owner.value = self.threshold.value = self.environment.value = ""
            self.due.value = None
            self.kind.value, self.item_status.value = "prevent", "open"
            self.verify.value = True
            self.service.value = self.incident.services[0] if self.incident.services else ""
            self.metric.value, self.aggregate.value, self.comparator.value = "", "max", "<"
            self.duration.value, self.window.value = "7d", DEFAULT_WINDOW
            return
        a = self.item(item_id)
        self.title.value, self.owner.value = a.title, a.owner
        self.due.value = a.due
        self.kind.value, self.item_status.value = a.kind, a.status
        self.verify.value = a.verification is not None
        c = a.verification if isinstance(a.verification, dict) else {}
        if c and c.get("signal", "metric") != "metric":
            self._kept = dict(c)
            self.status.info(f"This item is verified by a {c.get('signal')} criterion "
                             f"({_criterion_text(c)}); saving keeps it as it is. Untick 'verified' to remove it.")
        self.service.value = str(c.get("service", ""))
        self.metric.value = str(c.get("metric", ""))
        if c.get("aggregate") in AGGREGATES:
            self.aggregate.value = c["aggregate"]
        self.comparator.value = str(c.get("comparator", "<"))
        threshold = c.get("threshold")
        self.threshold.value = "" if threshold is None else format(threshold, "g") \
            if isinstance(threshold, (int, float)) else str(threshold)
        self.duration.value = str(c.get("duration", "7d"))
        self.window.value = str(c.get("window", DEFAULT_WINDOW))
        self.environment.value = str(c.get("environment") or "")

    # ------------------------------------------------------------------ writing

    def criterion(self) -> dict[str, Any] | None:
        """The criterion of the form as stored (``Criterion.to_dict()``), None when unchecked.

        Raises
        ------
        CriterionError
            A field is invalid (the message names it and the allowed values).
        """
        if not self.verify.value:
            return None
        if getattr(self, "_kept", None) is not None:
            return Criterion.from_dict(self._kept).to_dict()
        return Criterion.from_dict({
            "signal": "metric", "service": self.service.value.strip(), "metric": self.metric.value.strip(),
            "aggregate": self.aggregate.value, "comparator": self.comparator.value.strip(),
            "threshold": _number(self.threshold.value), "duration": self.duration.value.strip(),
            "window": self.window.value.strip() or DEFAULT_WINDOW,
            "environment": self.environment.value.strip() or None,
        }).to_dict()

    def save(self) -> Any:
        """Add the form as a new item or update the item being edited.

        Returns the stored :class:`~workbench.store.ActionItem`, or None when nothing was written
        (the status line says why).
        """
        if blank(self.who.value):
            self.status.error("Nothing saved: your name is required (it is recorded in the history).")
            return None
        try:
            verification = self.criterion()
        except CriterionError as exc:
            self.status.error(f"Nothing saved: the verification criterion is invalid: {exc}")
            return None
        values = dict(title=self.title.value, owner=self.owner.value, kind=self.kind.value, due=self.due.value,
                      status=self.item_status.value, verification=verification)
        who = self.who.value.strip()
        item_id = self.select.value
        try:
            if item_id is None:
                stored = self.kb.add_action_item(self.incident_id, who=who, **values)
            else:
                stored = self.kb.update_action_item(item_id, self.item(item_id).version, who, **values)
        except STALE_ERRORS as exc:
            self._stale(exc)
            return None
        except SAVE_ERRORS as exc:
            self.status.error(f"Nothing saved: {exc}")
            return None
        self.reload(select=stored.id)
        verified = f"; verified by: {describe(verification)}" if verification else "; no verification criterion"
        self.status.ok(f"Saved {stored.title!r} (owner {stored.owner}, version {stored.version}){verified}.")
        return stored

    def _select(self, item_id: str | None) -> None:
        self.select.value = item_id
        self.load(item_id)

    def _show_criterion(self, shown: bool) -> None:
        self.criterion_box.layout.display = None if shown else "none"


def _number(text: str) -> Any:
    """The threshold as a float when it reads as a finite number, else the text (refused by the checker)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return value if math.isfinite(value) else text


def _criterion_text(verification: Any) -> str:
    if verification is None:
        return ""
    try:
        return describe(verification)
    except CriterionError as exc:  # stored by another tool in a form this one cannot read
        return f"unreadable criterion: {exc}"


def _metric_names(workspace: Workspace, incident: Any) -> list[str]:
    """Metric names of the incident's services in its analysis window (suggestions only)."""
    try:
        start, end = analysis_window(incident)
        frame = workspace.telemetry().query("metrics", start, end, services=list(incident.services))
    except SAVE_ERRORS:
        return []
    return sorted(frame["name"].astype(str).unique())
