"""Everything a review pack is computed from, read from a workspace once.

:func:`read` is the only place the review pack touches the knowledge base and the stored
signatures; the figures (:mod:`.figures`, :mod:`.interventions`) are pure functions of the
:class:`Records` it returns, so a test can build records by hand and check every figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from ..analysis.pipeline import load_history
from ..analysis.signature import similarity
from ..loop.checks import RECUR_MIN
from ..store.records import ActionItem, Check, HistoryEntry, Hypothesis, Incident
from ..workspace import Workspace
from .period import Period

#: Longest window on each side of a fix (:mod:`.interventions` uses the same).
WINDOW = timedelta(days=90)


@dataclass
class Records:
    """The records behind one pack (read by :func:`read`, or built by hand).

    Attributes
    ----------
    incidents : list of Incident
        Every incident (the figures select by period and service themselves).
    hypotheses : dict
        incident id -> its hypotheses (at least those of the period's incidents; others may be missing).
    confirmed : dict
        incident id -> its confirmed hypotheses (every incident).
    action_items : list of ActionItem
    checks : list of Check
        Recurrence and verification checks of every incident.
    history : list of HistoryEntry
        The action items' history (when an item became done, who changed an owner or reopened it).
    decisions : list of SuggestionDecision
    similar : dict
        incident id -> ids of the incidents whose signature is similar to its own
        (:func:`workbench.analysis.signature.similarity` at least the recheck's threshold); only
        for the incidents with a fix, among the incidents within :data:`WINDOW` of their fixes.
    reports : dict
        incident id -> path of its exported report, where one exists.
    """

    incidents: list[Incident] = field(default_factory=list)
    hypotheses: dict[str, list[Hypothesis]] = field(default_factory=dict)
    confirmed: dict[str, list[Hypothesis]] = field(default_factory=dict)
    action_items: list[ActionItem] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    decisions: list[Any] = field(default_factory=list)
    similar: dict[str, set[str]] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)

    def incident(self, incident_id: str) -> Incident | None:
        return self._by_id().get(incident_id)

    def _by_id(self) -> dict[str, Incident]:
        cache = self.__dict__.get("_index")
        if cache is None or len(cache) != len(self.incidents):
            cache = self.__dict__["_index"] = {i.id: i for i in self.incidents}
        return cache


def read(workspace: Workspace, period: Period, *, kb: Any = None) -> Records:
    """Read the records of ``period`` from ``workspace`` (its knowledge base, signatures and reports).

    ``kb``: an open knowledge base of the workspace to use instead of opening one.
    """
    own = kb is None
    kb = workspace.knowledge_base() if own else kb
    try:
        incidents = kb.list_incidents()
        # every hypothesis only of the period's incidents (calibration); the rest need the confirmed ones
        wanted = [i.id for i in incidents if period.since <= i.started < period.until]
        items = kb.list_action_items()
        records = Records(incidents=incidents, hypotheses={i: kb.list_hypotheses(i) for i in wanted},
                          confirmed=kb.confirmed_hypotheses(), action_items=items, checks=kb.list_checks(),
                          history=kb.history(entity="action_item"), decisions=kb.list_suggestion_decisions())
        records.similar = similar_incidents(load_history(kb, workspace), fix_spans(records, period.as_of),
                                            {i.id: i.started for i in incidents})
    finally:
        if own:
            kb.close()
    for incident in incidents:
        path = workspace.incidents_dir / incident.id / "report.html"
        if path.is_file():
            records.reports[incident.id] = str(path)
    return records


def fix_spans(records: Records, as_of: datetime, window: timedelta = WINDOW) -> dict[str, tuple[datetime, datetime]]:
    """incident id -> ``[first fix - window, last fix + window)`` of its fixed action items: where a
    similar incident can fall in a before/after window (:mod:`.interventions`)."""
    from .figures import fix_times  # figures builds on Records: imported when needed

    by_item = {a.id: a.incident_id for a in records.action_items}
    out: dict[str, tuple[datetime, datetime]] = {}
    for item_id, at in fix_times(records, as_of).items():
        iid = by_item[item_id]
        lo, hi = out.get(iid, (at, at))
        out[iid] = (min(lo, at), max(hi, at))
    return {iid: (lo - window, hi + window) for iid, (lo, hi) in out.items()}


def similar_incidents(history: Iterable[Any], spans: Mapping[str, tuple[datetime, datetime]],
                      started: Mapping[str, datetime], threshold: float = RECUR_MIN) -> dict[str, set[str]]:
    """incident id -> the other incidents whose signature is similar to its own, for each incident of
    ``spans``, among those that started inside its span (the only ones a before/after window counts).

    ``history`` holds :class:`~workbench.analysis.signature.PastIncident` items
    (:func:`workbench.analysis.load_history`: stored signatures with the confirmed cause applied,
    else one built from the confirmed hypothesis). Incidents without a signature have no similar ones.
    """
    known: Mapping[str, Any] = {p.incident_id: p.signature for p in history}
    out: dict[str, set[str]] = {}
    for iid in sorted(spans):
        mine = known.get(iid)
        if mine is None:
            continue
        lo, hi = spans[iid]
        out[iid] = {other for other, sig in known.items()
                    if other != iid and other in started and lo <= started[other] < hi
                    and similarity(mine, sig) >= threshold}
    return out
