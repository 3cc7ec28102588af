"""Containers of the review widgets: the four editors in tabs, and a widget built on demand."""
from __future__ import annotations

from typing import Any

import ipywidgets as w

from ._common import CSS, escape, static_bundle
from .actions import ActionItemsEditor
from .conclusions import ConclusionsEditor
from .labels import LabelsEditor
from .review import HypothesisReview


class LazyWidget:
    """A button that builds and shows a widget when pressed (nothing is computed before).

    Parameters
    ----------
    build : callable
        Returns the object to display (a widget or anything IPython displays).
    title, description : str
        What the button opens (shown beside it, and as the static view without a kernel).

    Attributes
    ----------
    widget : ipywidgets.VBox
    button : ipywidgets.Button
    output : ipywidgets.Output
    built : object or None
        What ``build`` returned, once pressed.
    """

    def __init__(self, build: Any, title: str, description: str = ""):
        self._build, self.title, self.description = build, title, description
        self.built: Any = None
        self.button = w.Button(description="Open", icon="folder-open", button_style="info",
                               tooltip=f"build the {title}")
        self.button.on_click(lambda _b: self.open())
        self.output = w.Output()
        self._html = CSS + (f"<h4 style='margin:4px 0'>{escape(title)}</h4><div class='wbw-muted'>"
                            f"{escape(description)} Built when you press Open (run this cell in JupyterLab "
                            f"with a kernel).</div>")
        self.widget = w.VBox([w.HTML(value=self._html), self.button, self.output])

    def open(self) -> Any:
        """Build the widget (once) and show it below the button."""
        if self.built is None:
            from IPython.display import display

            self.built = self._build()
            self.button.disabled = True
            with self.output:
                display(self.built)
        return self.built

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return static_bundle(self.widget, self._html, f"{self.title} (run the cell in JupyterLab to open it)", **kwargs)


class ReviewTabs:
    """The four editors of an incident in tabs.

    Attributes
    ----------
    widget : ipywidgets.Tab
    editors : list
        :class:`HypothesisReview`, :class:`ConclusionsEditor`, :class:`LabelsEditor`,
        :class:`ActionItemsEditor`, in tab order.
    """

    TITLES = ("Hypotheses", "Conclusions", "Labels", "Action items")

    def __init__(self, workspace: Any, incident_id: str, who: str = ""):
        self.incident_id = incident_id
        first = HypothesisReview(workspace, incident_id, reviewer=who)
        self.editors = [first, ConclusionsEditor(first.workspace, incident_id, who=who, kb=first.kb),
                        LabelsEditor(first.workspace, incident_id, who=who, kb=first.kb),
                        ActionItemsEditor(first.workspace, incident_id, who=who, kb=first.kb)]
        self.widget = w.Tab(children=[e.widget for e in self.editors], titles=self.TITLES)

    def static_markup(self) -> str:
        """Every tab's static view, one after the other (the hypotheses as a count: their table is
        the review's, above in the template)."""
        hypotheses = self.editors[0].kb.list_hypotheses(self.incident_id)
        counts = {s: sum(h.status == s for h in hypotheses) for s in ("confirmed", "proposed", "rejected")}
        parts = [CSS + f"<h3 style='margin:10px 0 2px 0'>Hypotheses</h3><div class='wbw-muted'>{counts['confirmed']} "
                       f"confirmed, {counts['proposed']} proposed, {counts['rejected']} rejected (the review above "
                       "lists them).</div>"]
        parts += [f"<h3 style='margin:10px 0 2px 0'>{escape(t)}</h3>" + e.static_markup()
                  for t, e in zip(self.TITLES[1:], self.editors[1:])]
        return "".join(parts)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return static_bundle(self.widget, self.static_markup(),
                             f"Review tabs of {self.incident_id} (static view; run the cell in JupyterLab to edit)",
                             **kwargs)

    def close(self) -> None:
        for e in reversed(self.editors):
            e.close()
        self.widget.close()
