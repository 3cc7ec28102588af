"""Notebook runs and recurrence/verification checks: the run part of :class:`~workbench.store.KnowledgeBase`.

Both are children of an incident written like the others (history, one transaction per call);
a run goes ``running`` -> ``succeeded`` / ``failed`` once, a check is append-only.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from sqlalchemy import select

from ..errors import ConflictError
from . import writes
from .models import CheckRow, RunRow
from .records import (RUN_STATUSES, Check, Run, as_list, check_enum, check_time, check_who, check_window, clean, fail,
                      iso, to_record)


class RunMethods:
    """Runs and checks of :class:`~workbench.store.KnowledgeBase` (one transaction per call)."""

    def start_run(self, incident_id: str, *, template: str, parameters: Mapping[str, Any] | None = None,
                  started: Any = None, id: str | None = None, who: str = "workbench") -> Run:
        """Record a notebook run that is starting (status ``running``)."""
        values = clean("run", dict(template=template, parameters=parameters or {},
                                   started=self._clock() if started is None else started, ended=None,
                                   status="running", error_cell=None, output_path=None))
        return self._add_child("run", incident_id, values, id, who)

    def finish_run(self, run_id: str, status: str, error_cell: int | None = None, output_path: str | None = None,
                   *, ended: Any = None, who: str = "workbench") -> Run:
        """Mark a running run ``succeeded`` or ``failed`` (with the failing cell's index)."""
        values = clean("run", dict(status=status, error_cell=error_cell, output_path=output_path,
                                   ended=self._clock() if ended is None else ended))
        if values["status"] == "running":
            raise fail("status", "succeeded or failed", status)
        who = check_who(who)
        with self._session(write=True) as s:
            row = self._get(s, "run", run_id)
            if row.status != "running":
                raise ConflictError(f"run {run_id!r} already finished ({row.status})")
            if values["ended"] < row.started:
                raise fail("ended", f"a time at or after the run started ({iso(row.started)})", ended)
            writes.apply(s, "run", row, values, who, self._clock())
            return to_record("run", row)

    def list_runs(self, incident_id: str | None = None, status: str | None = None) -> list[Run]:
        query = select(RunRow).order_by(RunRow.started, RunRow.id)
        if incident_id is not None:
            query = query.where(RunRow.incident_id == incident_id)
        if status is not None:
            query = query.where(RunRow.status == check_enum(status, "status", RUN_STATUSES))
        return self._rows("run", query)

    # ------------------------------------------------------------------ recurrence checks

    def record_check(self, incident_id: str, *, window_start: Any, window_end: Any, verdict: str,
                     score: float | None = None, evidence: Iterable[Any] = (), action_item_id: str | None = None,
                     at: Any = None, id: str | None = None, who: str = "workbench") -> Check:
        """Record one recurrence check (or, with ``action_item_id``, one verification check)."""
        values = clean("check", dict(at=self._clock() if at is None else at, window_start=window_start,
                                     window_end=window_end, score=score, verdict=verdict,
                                     evidence=as_list(evidence), action_item_id=action_item_id))
        check_window(values["window_start"], values["window_end"])
        with self._session(write=True) as s:
            if action_item_id is not None and self._get(s, "action_item", action_item_id).incident_id != incident_id:
                raise fail("action_item_id", f"an action item of incident {incident_id!r}", action_item_id)
            return self._add_child("check", incident_id, values, id, who, s)

    def list_checks(self, incident_id: str | None = None, action_item_id: str | None = None,
                    since: Any = None) -> list[Check]:
        query = select(CheckRow).order_by(CheckRow.at, CheckRow.id)
        if incident_id is not None:
            query = query.where(CheckRow.incident_id == incident_id)
        if action_item_id is not None:
            query = query.where(CheckRow.action_item_id == action_item_id)
        if since is not None:
            query = query.where(CheckRow.at >= check_time(since, "since"))
        return self._rows("check", query)
