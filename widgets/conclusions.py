"""Conclusions editor: summary, impact, contributing factors, lessons and conclusions of an incident.

Each save is one :meth:`KnowledgeBase.add_conclusion` or version-checked
:meth:`KnowledgeBase.update_conclusion` call; a stale version shows the conflict and reloads.

Usage in a notebook cell::

    workbench.widgets.conclusions_editor(ws, incident_id)
"""
from __future__ import annotations

from typing import Any

import ipywidgets as w

from workbench.formats import clip
from workbench.workspace import Workspace
from workbench.store import CONCLUSION_KINDS

from ._common import CSS, SAVE_ERRORS, STALE_ERRORS, Status, StoreWidget, blank, table

NEW = "new conclusion"


class ConclusionsEditor(StoreWidget):
    """Add and edit the conclusions of one incident.

    Parameters
    ----------
    workspace : Workspace or str
    incident_id : str
    who : str
        Pre-filled author name (required to save; recorded as author and in the history).
    kb : KnowledgeBase, optional

    Attributes
    ----------
    widget : ipywidgets.VBox
    conclusions : list of workbench.store.Conclusion
    select : ipywidgets.Dropdown
        ``None`` (a new conclusion) or the id being edited.
    kind : ipywidgets.Dropdown
    text : ipywidgets.Textarea
    who : ipywidgets.Text
    save_button : ipywidgets.Button
    status : Status
    """

    def __init__(self, workspace: Workspace | str, incident_id: str, *, who: str = "", kb: Any = None):
        super().__init__(workspace, incident_id, kb=kb)
        self.list_html = w.HTML()
        self.select = w.Dropdown(description="Edit", options=[(NEW, None)], value=None)
        self.select.observe(lambda change: self.load(change["new"]), names="value")
        self.kind = w.Dropdown(description="Kind", options=list(CONCLUSION_KINDS), value="summary")
        self.text = w.Textarea(description="Text", placeholder="blameless: what happened and why",
                               layout=w.Layout(width="90%", height="90px"))
        self.who = w.Text(value=who, description="Your name", placeholder="author (required)")
        self.save_button = w.Button(description="Save", button_style="primary", icon="save")
        self.save_button.on_click(lambda _b: self.save())
        self.new_button = w.Button(description="New conclusion", icon="plus")
        self.new_button.on_click(lambda _b: setattr(self.select, "value", None))
        self.status = Status()
        self.widget = w.VBox([self.list_html, w.HBox([self.select, self.new_button]), self.kind, self.text,
                              w.HBox([self.who, self.save_button]), self.status.widget])
        self.conclusions: list[Any] = []
        self.reload()

    def reload(self, select: str | None = None) -> None:
        current = self.select.value if select is None else select
        self.conclusions = self.kb.list_conclusions(self.incident_id)
        rows = [(c.kind, c.text, c.author, c.id) for c in self.conclusions]
        self.list_html.value = CSS + "<h4 style='margin:4px 0'>Conclusions</h4>" + table(
            rows, ("kind", "text", "author", "id"), "no conclusions yet")
        ids = {c.id for c in self.conclusions}
        value = current if current in ids else None
        self.select.options = [(NEW, None)] + [(f"{c.kind}: {clip(c.text, 50)}", c.id) for c in self.conclusions]
        self.select.value = value
        self.load(value)

    def static_markup(self) -> str:
        """The conclusions as shown, and how to edit them (the cell's output without a kernel)."""
        return self.list_html.value + ("<div class='wbw-muted'>Run this cell in JupyterLab (with a kernel) to "
                                    "add or edit conclusions.</div>")

    def conclusion(self, conclusion_id: str) -> Any:
        for c in self.conclusions:
            if c.id == conclusion_id:
                return c
        raise KeyError(f"conclusion {conclusion_id!r} is not loaded")

    def load(self, conclusion_id: str | None) -> None:
        if conclusion_id is None:
            self.text.value = ""
            return
        c = self.conclusion(conclusion_id)
        self.kind.value, self.text.value = c.kind, c.text

    def save(self) -> Any:
        """Add or update; returns the stored :class:`~workbench.store.Conclusion` or None (nothing written)."""
        if blank(self.who.value):
            self.status.error("Nothing saved: your name is required (it is recorded as the author and in the history).")
            return None
        if blank(self.text.value):
            self.status.error("Nothing saved: the text is empty.")
            return None
        who, cid = self.who.value.strip(), self.select.value
        try:
            if cid is None:
                stored = self.kb.add_conclusion(self.incident_id, kind=self.kind.value, text=self.text.value, who=who)
            else:
                stored = self.kb.update_conclusion(cid, self.conclusion(cid).version, who, kind=self.kind.value,
                                                   text=self.text.value)
        except STALE_ERRORS as exc:
            self._stale(exc)
            return None
        except SAVE_ERRORS as exc:
            self.status.error(f"Nothing saved: {exc}")
            return None
        self.reload(select=stored.id)
        self.status.ok(f"Saved the {stored.kind} (version {stored.version}).")
        return stored

