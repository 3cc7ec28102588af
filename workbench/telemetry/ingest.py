"""Ingest: a source's validated telemetry into the workspace, its incidents into the knowledge base.

All or nothing: the source is read and validated completely, incident documents are checked,
the telemetry files are staged beside their targets, and only then are incidents written in one
knowledge-base transaction and the telemetry swapped in. A failure at any step leaves the
workspace as it was. Ingesting the same data twice adds nothing.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from ..errors import NotFoundError
from ..store.documents import validate_document
from . import schema
from .sources import configured, open_configured, open_source
from .sources.base import RawFrame

if TYPE_CHECKING:  # the workspace sits above the telemetry layer; ingest only calls its two openers
    from ..workspace import Workspace


@dataclass
class IngestResult:
    """What one ingest did.

    Attributes
    ----------
    source : str
        The source URL.
    rows_read : dict
        Validated rows per table read from the source.
    rows_added, rows_present : dict
        Rows new to the workspace / already stored, per table.
    duplicates_dropped : int
        Exact duplicate rows inside the source itself, dropped during validation.
    incidents_added, incidents_updated, incidents_unchanged : list of str
        Incident ids by outcome.
    links_offered : list of dict
        Links (``title``, ``url``) the source offers for incidents, e.g. runbooks named by alerts.
    source_stats : dict
        What a live source did (series, queries, chunks, HTTP requests, dropped points ...).
    seconds : float
        Wall time.
    warnings : list of str
        What the user should know although nothing failed, e.g. that the source held no rows.
    """

    source: str
    rows_read: dict[str, int] = field(default_factory=dict)
    rows_added: dict[str, int] = field(default_factory=dict)
    rows_present: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    incidents_added: list[str] = field(default_factory=list)
    incidents_updated: list[str] = field(default_factory=list)
    incidents_unchanged: list[str] = field(default_factory=list)
    links_offered: list[dict[str, str]] = field(default_factory=list)
    source_stats: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ingest(workspace: Workspace, url: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
           who: str = "ingest", progress: Callable[[str], None] | None = None, **options: Any) -> IngestResult:
    """Read ``url`` (``scheme:location`` or a path) into ``workspace``.

    Parameters
    ----------
    workspace : Workspace
    url : str
        Source URL, e.g. ``nezha:../shared/data/nezha-trainticket``, ``data/sample`` or
        ``prometheus:http://host:9090``, or the name of a ``[sources.<name>]`` table of the
        workspace's ``workbench.toml`` (a name wins over a folder of the same name in the current
        directory only when it has no ``/`` or ``:``).
    start, end : pandas.Timestamp, optional
        Only telemetry in ``[start, end)`` (pushed down to the source where it can).
    who : str
        Recorded in the knowledge base's history for imported incidents.
    progress : callable, optional
        Called with a short text for each validated frame and each written file.
    **options
        Passed to the source.

    Raises
    ------
    SourceError, SchemaError, StoreError
        Nothing is written when any is raised.
    """
    t0 = time.perf_counter()
    source = open_named(workspace, url, **options)
    result = IngestResult(source=source.url)

    def on_frame(raw: RawFrame) -> None:
        if progress:
            progress(f"read {raw.table} from {raw.origin}")

    # Each table is written (beside its target, invisible until the commit) as soon as it is
    # whole, while the others still validate.
    stager = workspace.telemetry().stager(progress=(lambda p: progress(f"write {p}")) if progress else None)
    try:
        telemetry = source.read(start, end, progress=on_frame, status=progress, ready=stager.add)
        result.rows_read = {t: len(f) for t, f in telemetry.tables().items()}
        if not any(result.rows_read.values()) and not telemetry.incidents:
            # A header-only CSV or an empty OTLP export is valid, and almost always a mistake: say so.
            result.warnings.append(f"{source.url}: 0 telemetry rows read (only headers, an empty export, "
                                   f"or nothing in the time range)")
        result.duplicates_dropped = sum(r.duplicates_dropped for r in telemetry.reports)
        for doc in telemetry.incidents:
            validate_document(doc, source.url)
        for table in schema.TABLES:  # the tables the source had no rows for
            if table not in stager.stats.rows_added:
                stager.add(table, None)
        # The incidents go into the knowledge base while the last files are written; the files are
        # swapped in inside the same transaction, so either both land or neither does.
        kb = workspace.knowledge_base()
        try:
            with kb.transaction():
                for doc in telemetry.incidents:
                    action, incident = import_document(kb, doc, who=who, origin=source.url)
                    getattr(result, f"incidents_{action}").append(incident.id)
                staged = stager.finish()
                try:
                    staged.commit()
                except BaseException:
                    staged.rollback()
                    raise
        finally:
            kb.close()
    except BaseException:
        stager.abort()
        raise
    result.rows_added = {t: staged.stats.rows_added[t] for t in schema.TABLES}
    result.rows_present = {t: staged.stats.rows_present[t] for t in schema.TABLES}
    result.links_offered = source.links()
    result.source_stats = dict(getattr(source, "stats", {}) or {})
    result.seconds = time.perf_counter() - t0
    return result


def open_named(workspace: Workspace, url: str, **options: Any):
    """Open ``url``: a ``[sources.<name>]`` of the workspace when it is one of those names, else a source URL."""
    if ":" not in url and "/" not in url and os.sep not in url and url in configured(workspace.settings):
        return open_configured(workspace.settings, url, **options)
    return open_source(url, **options)


def import_document(kb, doc: dict[str, Any], who: str, origin: str) -> tuple[str, Any]:
    """Import one incident document; return (``added`` | ``updated`` | ``unchanged``, incident)."""
    before = None
    if doc.get("id"):
        try:
            before = kb.get_incident(doc["id"])
        except NotFoundError:
            before = None
    history_before = len(kb.history(incident_id=doc["id"])) if before is not None else 0
    incident = kb.import_incident(doc, who=who, origin=origin)
    if before is None:
        return "added", incident
    changed = len(kb.history(incident_id=incident.id)) != history_before
    return ("updated" if changed else "unchanged"), incident
