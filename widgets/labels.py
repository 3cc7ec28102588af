"""Taxonomy labels of an incident: symptom, service, environment, confidence.

The labels feed the cross-incident view (``kb.list_incidents(label=...)``, recurrence and MTTR per
symptom). Saving is one version-checked :meth:`KnowledgeBase.update_incident` call with the
whole ``labels`` mapping; an empty field removes that label.

Usage in a notebook cell::

    workbench.widgets.labels_editor(ws, incident_id)
"""
from __future__ import annotations

import math
from typing import Any

import ipywidgets as w

from workbench.workspace import Workspace
from workbench.store import LABEL_KEYS

from ._common import CSS, SAVE_ERRORS, STALE_ERRORS, Status, StoreWidget, badge, blank, escape


class LabelsEditor(StoreWidget):
    """Edit the taxonomy labels of one incident.

    Parameters
    ----------
    workspace : Workspace or str
    incident_id : str
    who : str
        Pre-filled editor name (required to save).
    kb : KnowledgeBase, optional

    Attributes
    ----------
    widget : ipywidgets.VBox
    symptom, service, environment : ipywidgets.Combobox
        Free text; suggestions are the values other incidents use (and this one's services and
        environment), so the taxonomy stays consistent.
    confidence : ipywidgets.Text
        A number in [0, 1], or empty.
    who : ipywidgets.Text
    save_button : ipywidgets.Button
    status : Status
    """

    def __init__(self, workspace: Workspace | str, incident_id: str, *, who: str = "", kb: Any = None):
        super().__init__(workspace, incident_id, kb=kb)
        used = _used_labels(self.kb)
        self.current = w.HTML()
        self.symptom = w.Combobox(description="Symptom", options=used["symptom"],
                                  placeholder="e.g. errors, latency, saturation")
        self.service = w.Combobox(description="Service",
                                  options=sorted(set(used["service"]) | set(self.incident.services)),
                                  placeholder="the service at fault")
        self.environment = w.Combobox(description="Environment",
                                      options=sorted(set(used["environment"]) | {self.incident.environment}))
        self.confidence = w.Text(description="Confidence", placeholder="0 to 1 (how sure the labels are)")
        self.who = w.Text(value=who, description="Your name", placeholder="recorded in the history (required)")
        self.save_button = w.Button(description="Save labels", button_style="primary", icon="save")
        self.save_button.on_click(lambda _b: self.save())
        self.status = Status()
        self.widget = w.VBox([self.current, w.HBox([self.symptom, self.service]),
                              w.HBox([self.environment, self.confidence]), w.HBox([self.who, self.save_button]),
                              self.status.widget])
        self.reload()

    def reload(self) -> None:
        self.incident = self.kb.get_incident(self.incident_id)
        labels = self.incident.labels
        shown = "".join(badge(f"{k}: {v}") for k, v in labels.items()) or "<span class='wbw-muted'>none</span>"
        self.current.value = (CSS + f"<h4 style='margin:4px 0'>Taxonomy labels of {escape(self.incident.id)}</h4>"
                              f"<div>{shown}</div>")
        self.symptom.value = str(labels.get("symptom", ""))
        self.service.value = str(labels.get("service", ""))
        self.environment.value = str(labels.get("environment", ""))
        confidence = labels.get("confidence")
        self.confidence.value = "" if confidence is None else format(confidence, "g")

    def static_markup(self) -> str:
        """The labels as shown, and how to edit them (the cell's output without a kernel)."""
        return self.current.value + ("<div class='wbw-muted'>Run this cell in JupyterLab (with a kernel) to "
                                    "edit the labels.</div>")

    def labels(self) -> dict[str, Any]:
        """The form as a labels mapping (empty fields left out).

        Raises
        ------
        ValueError
            The confidence is not a number in [0, 1].
        """
        out: dict[str, Any] = {}
        for key in ("symptom", "service", "environment"):
            value = getattr(self, key).value.strip()
            if value:
                out[key] = value
        text = self.confidence.value.strip()
        if text:
            try:
                confidence = float(text)
            except ValueError:
                raise ValueError(f"confidence: expected a number between 0 and 1, got {text!r}") from None
            if not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
                raise ValueError(f"confidence: expected a number between 0 and 1, got {text!r}")
            out["confidence"] = confidence
        return out

    def save(self) -> Any:
        """Store the labels; returns the :class:`~workbench.store.Incident` or None (nothing written)."""
        if blank(self.who.value):
            self.status.error("Nothing saved: your name is required (it is recorded in the history).")
            return None
        try:
            labels = self.labels()
            stored = self.kb.update_incident(self.incident_id, self.incident.version, self.who.value.strip(),
                                             labels=labels)
        except STALE_ERRORS as exc:
            self._stale(exc)
            return None
        except SAVE_ERRORS as exc:
            self.status.error(f"Nothing saved: {exc}")
            return None
        self.reload()
        self.status.ok(f"Saved the labels of {stored.id} (version {stored.version}).")
        return stored


def _used_labels(kb: Any) -> dict[str, list[str]]:
    """Label values already used across incidents, per key (suggestions)."""
    used: dict[str, set[str]] = {k: set() for k in LABEL_KEYS}
    for incident in kb.list_incidents():
        for key, value in incident.labels.items():
            if key != "confidence" and value:
                used[key].add(str(value))
    return {k: sorted(v) for k, v in used.items()}
