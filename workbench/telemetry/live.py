"""An incident's telemetry from the workspace's live sources, fetched once and kept in the store.

When ``workbench.toml`` names live sources (``[sources.<name>]`` tables of the ``prometheus`` or
``alertmanager`` kind, :func:`workbench.telemetry.sources.live_sources`), :func:`fetch_incident`
pulls the incident's analysis window and its baseline (``[baseline start, window end)``, the span
:func:`workbench.analysis.pipeline.analyze` reads) from each of them into the telemetry store.
``workbench analyze`` and ``workbench run`` call it before they read the store, and so does the
notebook's analysis chapter; ``workbench recheck`` calls :func:`fetch_window_for` for its checked
window. A script can too::

    report = fetch_incident(workspace, "INC-20261102-001")   # once; later calls find it cached
    report.fetched, report.cached, report.summary()

Rules
-----
- Once: every fetch is recorded in the incident's history (``field = "evidence"``: the source
  name and URL, the window, the rows per table, when); a later call whose window is covered by a
  recorded fetch of the same source does not ask again (``cached``). ``refresh=True`` fetches
  again. A window reaching into the future is fetched up to now and stays uncovered after it, so
  the next call fetches what has arrived since.
- All or nothing: every source is read and validated first; a source that is down or refuses
  (:class:`~workbench.errors.SourceError`, naming the source, the URL, the request and the
  server's message) raises before anything is written, and the incident and the store stay as
  they were. What the store already holds can still be analysed: the commands' ``--offline``
  skips this step with a visible warning (:func:`offline_warning`).
- A refetch replaces what an earlier fetch stored for the same keys (a series' point, an alert):
  a live server's latest points and an alert's state change between fetches.
- Runbook links the alerts name (``runbook_url`` annotations) are added to the incident's links,
  in the same transaction (its history records it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from ..formats import aware_time, iso_utc
from . import schema
from .sources import live_sources, open_configured
from .windows import analysis_window, baseline_window

#: History field of a recorded fetch.
EVIDENCE_FIELD = "evidence"
WHO = "workbench-fetch"


@dataclass
class SourceFetch:
    """One live source's part of a fetch.

    Attributes
    ----------
    name, url : str
        The ``[sources.<name>]`` table and the source URL.
    start, end : pandas.Timestamp
        The window asked for.
    cached : bool
        True when a recorded fetch already covered the window (nothing was asked).
    rows_read : dict
        Rows per table read from the source.
    seconds : float
    stats : dict
        What the source did (series, requests ...).
    """

    name: str
    url: str
    start: pd.Timestamp
    end: pd.Timestamp
    cached: bool = False
    rows_read: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "start": iso_utc(self.start), "end": iso_utc(self.end),
                "cached": self.cached, "rows_read": dict(self.rows_read),
                "seconds": round(self.seconds, 3), "stats": dict(self.stats)}


@dataclass
class FetchReport:
    """What :func:`fetch_incident` did for one incident.

    Attributes
    ----------
    incident_id : str
    sources : list of SourceFetch
        One per configured live source (empty when the workspace has none).
    rows_added : dict
        Rows per table new to the store (all sources together).
    links_added : list of dict
        Runbook links added to the incident.
    """

    incident_id: str
    sources: list[SourceFetch] = field(default_factory=list)
    rows_added: dict[str, int] = field(default_factory=dict)
    links_added: list[dict[str, str]] = field(default_factory=list)

    @property
    def fetched(self) -> list[SourceFetch]:
        return [s for s in self.sources if not s.cached]

    @property
    def cached(self) -> list[SourceFetch]:
        return [s for s in self.sources if s.cached]

    def summary(self) -> list[str]:
        """One line per source, for the CLI."""
        lines = []
        for s in self.sources:
            window = f"{iso_utc(s.start)} .. {iso_utc(s.end)}"
            if s.cached:
                lines.append(f"{s.name}: {window} already fetched (cached in the store; --refresh fetches again)")
            else:
                rows = ", ".join(f"{t} {n:,}" for t, n in s.rows_read.items() if n) or "no rows"
                lines.append(f"{s.name}: fetched {window} from {s.url} in {s.seconds:.1f} s ({rows})")
        lines += [f"link added: {link['title']} <{link['url']}>" for link in self.links_added]
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "sources": [s.to_dict() for s in self.sources],
                "rows_added": dict(self.rows_added), "links_added": list(self.links_added)}


def fetch_window(incident: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[baseline start, analysis window end)``: what the analysis of ``incident`` reads."""
    return baseline_window(incident)[0], analysis_window(incident)[1]


def fetch_incident(workspace: Any, incident_id: str, *, refresh: bool = False, who: str = WHO,
                   environ: Mapping[str, str] | None = None, now: pd.Timestamp | None = None) -> FetchReport:
    """Make sure the store holds ``incident_id``'s :func:`fetch_window` from every configured live source.

    Parameters
    ----------
    workspace : Workspace
    incident_id : str
    refresh : bool
        Fetch again even where a recorded fetch covers the window.
    who : str
        Recorded in the incident's history.
    environ : mapping, optional
        Where the sources' ``*_env`` settings are read (default ``os.environ``).
    now : pandas.Timestamp, optional
        The present (tests); a window is fetched up to it.

    Returns
    -------
    FetchReport
        Empty when the workspace has no live sources.

    Raises
    ------
    NotFoundError
        No incident ``incident_id``.
    SourceError, SchemaError, ConfigError
        A source is down, refuses or sends what the schema refuses; nothing was written.
    """
    if not live_sources(workspace.settings, environ):
        return FetchReport(incident_id)
    kb = workspace.knowledge_base()
    try:
        start, end = fetch_window(kb.get_incident(incident_id))
    finally:
        kb.close()
    return fetch_window_for(workspace, [incident_id], start, end, refresh=refresh, who=who, environ=environ,
                            now=now)[incident_id]


def fetch_window_for(workspace: Any, incident_ids: list[str], start: Any, end: Any, *, refresh: bool = False,
                     who: str = WHO, environ: Mapping[str, str] | None = None,
                     now: pd.Timestamp | None = None) -> dict[str, FetchReport]:
    """Fetch ``[start, end)`` once from every live source for several incidents (the recheck's window).

    Each incident's history records the fetch; the window counts as cached only when every
    incident's recorded fetches cover it. See :func:`fetch_incident` for the rest.

    Returns
    -------
    dict
        Incident id -> its :class:`FetchReport` (the same sources and rows for each).
    """
    reports = {iid: FetchReport(iid) for iid in incident_ids}
    names = live_sources(workspace.settings, environ)
    if not names or not incident_ids:
        return reports
    now = pd.Timestamp.now(tz="UTC") if now is None else aware_time(now, "now")
    start, end = aware_time(start, "window start"), min(aware_time(end, "window end"), now.floor("s"))
    kb = workspace.knowledge_base()
    try:
        recorded = {}
        for iid in incident_ids:
            kb.get_incident(iid)  # an unknown id fails before any source is asked
            recorded[iid] = [h.new for h in kb.history(entity="incident", entity_id=iid)
                             if h.field == EVIDENCE_FIELD and isinstance(h.new, dict)]
    finally:
        kb.close()
    tables: dict[str, list[pd.DataFrame]] = {t: [] for t in schema.TABLES}
    offered: list[dict[str, str]] = []
    parts: list[SourceFetch] = []
    for name in names:
        source = open_configured(workspace.settings, name, environ)
        part = SourceFetch(name=name, url=source.url, start=start, end=end)
        parts.append(part)
        if end <= start or (not refresh and all(_covered(recorded[i], name, source.url, start, end)
                                                for i in incident_ids)):
            part.cached = True
            continue
        t0 = time.perf_counter()
        telemetry = source.read(start, end)  # raises before anything is written
        part.seconds = time.perf_counter() - t0
        part.rows_read = {t: len(f) for t, f in telemetry.tables().items()}
        part.stats = dict(getattr(source, "stats", {}) or {})
        for table, frame in telemetry.tables().items():
            if len(frame):
                tables[table].append(frame)
        offered += source.links()
    for report in reports.values():
        report.sources = list(parts)
    opened = [p for p in parts if not p.cached]
    if not opened:
        return reports
    merged = {t: (pd.concat(fs, ignore_index=True) if len(fs) > 1 else fs[0]) for t, fs in tables.items() if fs}
    staged = workspace.telemetry().stage(merged, replace=True)
    kb = workspace.knowledge_base()
    try:
        with kb.transaction():
            for iid in incident_ids:
                incident = kb.get_incident(iid)
                known = {link["url"] for link in incident.links}
                new_links = [link for link in offered if link["url"] not in known]
                if new_links:
                    kb.update_incident(iid, incident.version, who, links=[*incident.links, *new_links])
                    reports[iid].links_added = new_links
                for part in opened:
                    kb.record_evidence(iid, {
                        "source": part.name, "url": part.url, "start": iso_utc(part.start),
                        "end": iso_utc(part.end), "rows": {t: n for t, n in part.rows_read.items() if n},
                        "refresh": refresh}, who=who)
            staged.commit()
    except BaseException:
        staged.rollback()
        raise
    finally:
        kb.close()
    added = {t: n for t, n in staged.stats.rows_added.items() if n}
    for report in reports.values():
        report.rows_added = dict(added)
    return reports


def offline_warning(workspace: Any, incident_ids: list[str] | None = None) -> str | None:
    """The warning to show when a command skips the live sources (``--offline``), or None without any."""
    names = live_sources(workspace.settings)
    if not names:
        return None
    which = f" for {', '.join(incident_ids)}" if incident_ids else ""
    return (f"warning: not asking the live sources ({', '.join(names)}){which}: the analysis uses only what the "
            f"telemetry store already holds")


def _covered(recorded: list[dict[str, Any]], name: str, url: str, start: pd.Timestamp, end: pd.Timestamp) -> bool:
    spans = []
    for entry in recorded:
        if entry.get("source") != name or entry.get("url") != url:
            continue
        try:
            spans.append((pd.Timestamp(entry["start"]), pd.Timestamp(entry["end"])))
        except (KeyError, TypeError, ValueError):
            continue
    # The union of recorded windows must cover [start, end).
    reach = start
    for lo, hi in sorted(spans):
        if lo > reach:
            break
        reach = max(reach, hi)
        if reach >= end:
            return True
    return reach >= end
