"""The incident's enrichment snapshot, as the report's section and the notebook's chapter: the system
around the incident when it was analysed (:mod:`workbench.analysis.snapshot`) — deployed versions
and their history, the changes before it, the alerts that fired, the callers and callees.

:func:`snapshot_markup` is the one rendering (escaped through :mod:`workbench.reports.safe`);
:class:`SnapshotView` wraps it for the Panel report. Panel is imported only by ``__panel__``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from . import safe, text
from .safe import Markup, badge, fmt, join, table

__all__ = ["SnapshotView", "snapshot_markup", "snapshot_text"]


def _when(value: Any) -> str:
    return text.when(value, None)


def _ratio(calls: Any, rate: Any) -> str:
    return text.MISSING if calls is None else f"{calls} ({text.percent(rate)} errors)"


def snapshot_markup(snapshot: Mapping[str, Any] | None) -> Markup:
    """The snapshot as tables: versions, changes, alerts, neighbourhood (a note when there is none)."""
    if not snapshot:
        return fmt('<p class="muted" data-testid="no-snapshot">No enrichment snapshot: the incident was not analysed '
                   'with telemetry yet (<code>workbench analyze</code> attaches one).</p>')
    taken = snapshot.get("taken_for") or {}
    window = taken.get("window") or {}
    head = fmt('<p class="muted">As the analysis saw it: deploys, config and feature-flag changes of the involved '
               'services ({0}) in the {1} days before the start, every change and alert in the analysis window '
               '{2} – {3}, and the calls between neighbouring services (sampled spans).</p>',
               ", ".join(snapshot.get("services") or ()) or "none", taken.get("days", text.MISSING),
               _when(window.get("start")), _when(window.get("end")))
    versions = []
    for v in snapshot.get("versions") or ():
        back = join((badge(f"rolled back: {x}", "bad") for x in v.get("rolled_back") or ()), Markup(" "))
        history = safe.items([fmt("{0} {1}{2}", _when(d.get("time")), d.get("version") or text.MISSING,
                                  " (rollback)" if d.get("rollback") else "") for d in v.get("deploys") or ()])
        versions.append((v.get("service"), fmt('<b data-testid="version-at-started">{0}</b>', v.get("at_started") or
                                               text.MISSING), _when(v.get("deployed_at")), v.get("previous") or text.MISSING,
                         fmt("{0} {1}", v.get("after") or text.MISSING, back),
                         safe.collapsible(f"{len(v.get('deploys') or ())} deploy(s)", history)))
    changes = [(_when(c.get("time")), c.get("service"), c.get("kind"), fmt('<span class="text">{0}</span>', c.get("summary")),
                badge("in the window", "warn") if c.get("in_window") else "") for c in snapshot.get("changes") or ()]
    alerts = [(_when(a.get("time")), a.get("service"), a.get("name") or text.MISSING,
               fmt('<span class="text">{0}</span>', a.get("summary"))) for a in snapshot.get("alerts") or ()]
    edges = [(e.get("caller"), e.get("callee"), "yes" if e.get("declared") else "from spans",
              _ratio(e.get("calls"), e.get("error_rate")), text.number(e.get("p95_ms"), 1),
              _ratio(e.get("baseline_calls"), e.get("baseline_error_rate"))) for e in snapshot.get("neighbourhood") or ()]
    return fmt('{0}<h3>Deployed versions</h3>{1}<h3>Changes</h3>{2}<h3>Alerts that fired</h3>{3}'
               '<h3>Dependency neighbourhood</h3>{4}', head,
               table(versions, ("service", "at the start", "deployed at", "replacing", "at the window's end", "history"),
                     "no deploy of the involved services in the history", nowrap=(2,)),
               table(changes, ("time", "service", "kind", "summary", ""), "no changes", nowrap=(0, 2)),
               table(alerts, ("time", "service", "alert", "summary"), "no alert fired in the window", nowrap=(0,)),
               table(edges, ("caller", "callee", "declared", "calls in the window", "p95 ms", "calls in the baseline"),
                     "no neighbouring services"))


def snapshot_text(snapshot: Mapping[str, Any] | None) -> str:
    """One line per deployed version, for a terminal."""
    if not snapshot:
        return "no enrichment snapshot"
    lines = [f"{v.get('service')}: {v.get('at_started')} at the start (replacing {v.get('previous')}), "
             f"{v.get('after')} at the window's end" for v in snapshot.get("versions") or ()]
    lines.append(f"{len(snapshot.get('changes') or ())} change(s), {len(snapshot.get('alerts') or ())} alert(s), "
                 f"{len(snapshot.get('neighbourhood') or ())} neighbouring call edge(s)")
    return "\n".join(lines)


@dataclass
class SnapshotView:
    """The report's "Context at the time" section of an incident's snapshot (``incident.snapshot``)."""

    snapshot: Mapping[str, Any] | None

    def __panel__(self) -> Any:
        return safe.pane(safe.section(fmt("<h2>Context at the time</h2>{0}", snapshot_markup(self.snapshot)),
                                      "snapshot"))
