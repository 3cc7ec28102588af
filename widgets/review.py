"""Hypothesis review: the ranked root-cause candidates, confirmed or rejected by a named human.

The tool proposes; a person decides. Each decision is one
:meth:`KnowledgeBase.update_hypothesis` call carrying the version the reviewer saw, the
reviewer's name and the rationale, so it is stored with its history (who, when, old, new) and a
new kernel shows it again. Rejected hypotheses stay on the page as the alternatives that were
considered.

- A decision without a reviewer name or a rationale writes nothing and says what is missing.
- A stale version (someone else decided or the analysis re-ranked in the meantime) writes
  nothing: the store's :class:`~workbench.errors.ConflictError` message is shown and the list is
  reloaded, keeping any rationale still being typed.

Usage in a notebook cell::

    workbench.widgets.hypothesis_review(ws, incident_id)
"""
from __future__ import annotations

from typing import Any, Callable

import ipywidgets as w
import pandas as pd

from workbench.postmortem.review import DECISIONS as CORE_DECISIONS, decide
from workbench.reports import text
from workbench.workspace import Workspace

from ._common import CSS, SAVE_ERRORS, STALE_ERRORS, Status, StoreWidget, badge, blank, escape, table, when

#: Button -> the status it sets, and how the outcome is worded.
DECISIONS = {"confirmed": ("confirm", "Confirmed"), "rejected": ("reject", "Rejected"),
             "proposed": ("reopen", "Reopened")}
#: Sections of the list, in page order.
SECTIONS = (("confirmed", "Confirmed root cause"), ("proposed", "Proposed, most likely first"),
            ("rejected", "Rejected (kept as the alternatives considered)"))
_EVIDENCE = ("time", "kind", "service", "signal", "magnitude", "direction", "explanation")


class HypothesisCard:
    """One hypothesis: its summary, evidence, similar incidents, decision history and buttons.

    Attributes
    ----------
    hypothesis : workbench.store.Hypothesis
        The record as loaded (its ``version`` is what a decision expects).
    rationale : ipywidgets.Textarea
    confirm_button, reject_button, reopen_button : ipywidgets.Button
    explore_button : ipywidgets.Button or None
        Present when the review was given ``on_explore``.
    status : Status
        Messages about this card (validation, store errors).
    """

    def __init__(self, review: "HypothesisReview", hypothesis: Any, history: list[Any]):
        self.hypothesis = h = hypothesis
        self.summary = w.HTML(value=CSS + card_markup(h, history))
        self.rationale = w.Textarea(placeholder="Rationale (required): why you confirm, reject or reopen it",
                                    layout=w.Layout(width="98%", height="60px"))
        self.confirm_button = w.Button(description="Confirm", button_style="success", icon="check",
                                       disabled=h.status == "confirmed", tooltip="confirm as a root cause")
        self.reject_button = w.Button(description="Reject", button_style="warning", icon="times",
                                      disabled=h.status == "rejected", tooltip="reject (stays visible)")
        self.reopen_button = w.Button(description="Reopen", icon="undo", disabled=h.status == "proposed",
                                      tooltip="back to proposed")
        for button, status in ((self.confirm_button, "confirmed"), (self.reject_button, "rejected"),
                               (self.reopen_button, "proposed")):
            button.on_click(lambda _b, s=status: review.decide(h.id, s, self.rationale.value))
        buttons = [self.confirm_button, self.reject_button, self.reopen_button]
        self.explore_button = None
        if review.on_explore is not None:
            self.explore_button = w.Button(description="Show metrics", icon="line-chart",
                                           tooltip=f"open {h.service}'s telemetry in the explorer")
            self.explore_button.on_click(lambda _b: review.on_explore(h.service, first_time(h)))
            buttons.append(self.explore_button)
        self.status = Status()
        colour = {"confirmed": "#1a7f37", "rejected": "#8c959f"}.get(h.status, "#bf8700")
        self.widget = w.VBox([self.summary, self.rationale, w.HBox(buttons), self.status.widget],
                             layout=w.Layout(border=f"1px solid {colour}", padding="4px 8px", margin="4px 0"))


class HypothesisReview(StoreWidget):
    """Review the hypotheses of one incident.

    Parameters
    ----------
    workspace : Workspace or str
    incident_id : str
    reviewer : str
        Pre-filled reviewer name (the field stays editable; it is required to decide).
    kb : KnowledgeBase, optional
        A knowledge base to use instead of the workspace's.
    on_explore : callable, optional
        ``on_explore(service, time)``: each card gets a "Show metrics" button calling it (e.g.
        :meth:`TelemetryExplorer.show_service`).

    Attributes
    ----------
    widget : ipywidgets.VBox
    reviewer : ipywidgets.Text
    cards : list of HypothesisCard
        In page order (confirmed, proposed by rank, rejected).
    status : Status
        The outcome of the last decision (saved, conflict, validation).
    """

    def __init__(self, workspace: Workspace | str, incident_id: str, *, reviewer: str = "", kb: Any = None,
                 on_explore: Callable[[str, Any], Any] | None = None):
        super().__init__(workspace, incident_id, kb=kb)
        self.on_explore = on_explore
        self.reviewer = w.Text(value=reviewer, description="Reviewer", placeholder="your name (required)")
        self.reload_button = w.Button(description="Reload", icon="refresh", tooltip="read the store again")
        self.reload_button.on_click(lambda _b: self.reload())
        self.status = Status()
        self.header = w.HTML()
        self.body = w.VBox()
        self.cards: list[HypothesisCard] = []
        self.widget = w.VBox([self.header, w.HBox([self.reviewer, self.reload_button]), self.status.widget,
                              self.body])
        self.reload()

    # ------------------------------------------------------------------ reading

    def reload(self, keep_typed: bool = True) -> None:
        """Read the incident's hypotheses again; rationales being typed are kept (by hypothesis id)."""
        typed = {c.hypothesis.id: c.rationale.value for c in self.cards} if keep_typed else {}
        self.incident = self.kb.get_incident(self.incident_id)
        hypotheses = self.kb.list_hypotheses(self.incident_id)
        history = [e for e in self.kb.history(incident_id=self.incident_id) if e.entity == "hypothesis"]
        cards, sections = [], []
        for status, title in SECTIONS:
            chosen = [h for h in hypotheses if h.status == status]
            if not chosen:
                continue
            sections.append(w.HTML(value=f"<h4 style='margin:8px 0 2px 0'>{escape(title)} ({len(chosen)})</h4>"))
            for h in chosen:
                card = HypothesisCard(self, h, [e for e in history if e.entity_id == h.id])
                card.rationale.value = typed.get(h.id, "")
                cards.append(card)
                sections.append(card.widget)
        if not hypotheses:
            sections.append(w.HTML(value='<p style="color:#57606a">No hypotheses yet: run the analysis '
                                         '(<code>workbench analyze</code> or the notebook) to propose some.</p>'))
        self.cards = cards
        counts = {s: sum(h.status == s for h in hypotheses) for s, _ in SECTIONS}
        self.header.value = (CSS + f"<h3 style='margin:2px 0'>Hypotheses of {escape(self.incident.id)}: "
                             f"{escape(self.incident.title)}</h3><div class='wbw-muted'>"
                             f"{counts['confirmed']} confirmed, {counts['proposed']} proposed, "
                             f"{counts['rejected']} rejected. Confirming or rejecting needs your name and a "
                             f"rationale; every decision is stored with its history.</div>")
        self.body.children = sections

    def card(self, hypothesis_id: str) -> HypothesisCard:
        """The card of one hypothesis (KeyError naming the ids shown when it is not on the page)."""
        for card in self.cards:
            if card.hypothesis.id == hypothesis_id:
                return card
        raise KeyError(f"hypothesis {hypothesis_id!r} is not shown; shown: {[c.hypothesis.id for c in self.cards]}")

    # ------------------------------------------------------------------ deciding

    def decide(self, hypothesis_id: str, status: str, rationale: str, reviewer: str | None = None) -> Any:
        """Set a hypothesis to ``status`` (confirmed, rejected, proposed) with a rationale.

        What the buttons call. ``reviewer`` defaults to the reviewer field. Returns the stored
        :class:`~workbench.store.Hypothesis`, or None when nothing was written (the status line
        says why: a missing name or rationale, a stale version, a value the store refused).
        """
        verb, done = DECISIONS[status]
        reviewer = self.reviewer.value if reviewer is None else reviewer
        card = self.card(hypothesis_id)
        missing = [name for name, value in (("reviewer name", reviewer), ("rationale", rationale)) if blank(value)]
        if missing:
            self._say(card, "error", f"Nothing saved: {' and '.join(missing)} "
                                     f"{'is' if len(missing) == 1 else 'are'} required to {verb} a hypothesis.")
            return None
        h = card.hypothesis
        try:
            if status in CORE_DECISIONS:  # what `workbench review` calls, with the version the reviewer saw
                stored = decide(self.kb, self.incident_id, h.service, h.cause, status, reviewer=reviewer.strip(),
                                rationale=rationale, version=h.version)
            else:
                stored = self.kb.update_hypothesis(h.id, h.version, who=reviewer.strip(), status=status,
                                                   reviewer=reviewer.strip(), rationale=rationale)
        except STALE_ERRORS as exc:
            self._stale(exc)
            return None
        except SAVE_ERRORS as exc:
            self._say(card, "error", f"Nothing saved: {exc}")
            return None
        self.reload()
        self.card(h.id).rationale.value = ""
        self._say(self.card(h.id), "ok", f"{done} {stored.service} × {stored.cause} (by {stored.reviewer}); "
                                         f"stored as version {stored.version} with its history.")
        return stored

    def confirm(self, hypothesis_id: str, rationale: str, reviewer: str | None = None) -> Any:
        return self.decide(hypothesis_id, "confirmed", rationale, reviewer)

    def reject(self, hypothesis_id: str, rationale: str, reviewer: str | None = None) -> Any:
        return self.decide(hypothesis_id, "rejected", rationale, reviewer)

    def static_markup(self) -> str:
        """The hypotheses and their review state as a table (the cell's output without a kernel)."""
        from workbench.reports.notebook import styled, hypotheses_markup

        hypotheses = self.kb.list_hypotheses(self.incident_id)
        return (CSS + f"<h3 style='margin:2px 0'>Hypotheses of {escape(self.incident.id)}: "
                f"{escape(self.incident.title)}</h3>" + str(styled(hypotheses_markup(hypotheses), "review"))
                + "<div class='wbw-muted'>Run this cell in JupyterLab (with a kernel) to confirm or reject them "
                  "here.</div>")

    def _say(self, card: HypothesisCard, kind: str, text: str) -> None:
        # Top of the page and beside the buttons: a long list scrolls one of them out of view.
        self.status.show(kind, text)
        card.status.show(kind, text)


# --------------------------------------------------------------------------- markup

def card_markup(h: Any, history: list[Any]) -> str:
    """The escaped HTML of one hypothesis: header, summary, decision, evidence, similar, history."""
    rank = f"#{h.rank} " if h.rank is not None else ""
    parts = [f"<div><b>{escape(rank)}{escape(h.service)} × {escape(h.cause)}</b> {badge(h.status, h.status)}"
             f"<span class='wbw-muted'>score {escape(_number(h.score))} · id {escape(h.id)} · "
             f"version {escape(h.version)}</span></div>",
             f"<div class='wbw-text'>{escape(h.summary)}</div>"]
    if h.reviewer or h.rationale:
        parts.append(f"<div class='wbw-text'><b>{escape(h.status.capitalize())}</b> by {escape(h.reviewer)}: "
                     f"{escape(h.rationale)}</div>")
    rows = [[_cell(item, key) for key in _EVIDENCE] for item in h.evidence]
    parts.append("<div><b>Evidence</b></div>" + table(rows, _EVIDENCE, "no evidence recorded"))
    if h.similar:
        sim = [[_cell(s, k) for k in ("incident_id", "title", "service", "cause", "similarity")] for s in h.similar]
        parts.append("<div><b>Similar past incidents</b></div>"
                     + table(sim, ("incident", "title", "service", "cause", "similarity")))
    decisions = decision_history(history)
    if decisions:
        parts.append("<div><b>Decisions</b></div>" + table(decisions, ("when", "who", "status", "rationale")))
    return "".join(parts)


def decision_history(history: list[Any]) -> list[tuple[str, str, str, str]]:
    """``(when, who, "old → new", rationale)`` for every status change in ``history`` (oldest first)."""
    out = []
    for entry in history:
        if entry.field != "status":
            continue
        rationale = next((e.new for e in history if e.field == "rationale" and e.at == entry.at
                          and e.who == entry.who), None)
        out.append((when(entry.at), entry.who, f"{entry.old} → {entry.new}", rationale or ""))
    return out


def first_time(h: Any) -> pd.Timestamp | None:
    """The earliest evidence time of a hypothesis (where the explorer should look), or None."""
    times = [pd.Timestamp(e["time"]) for e in h.evidence if isinstance(e, dict) and e.get("time")]
    return min(times) if times else None


def _cell(item: Any, key: str) -> Any:
    value = item.get(key) if isinstance(item, dict) else None
    if key == "time" and value:
        return when(value)
    if isinstance(value, float):
        return _number(value)
    return "" if value is None else value


def _number(value: Any) -> str:
    return "" if value is None else text.number(value)
