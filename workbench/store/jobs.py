"""The durable job queue inside the knowledge base: analysis, notebook and report runs per incident.

What to run, in which order and how to retry is :mod:`workbench.inbound.jobs`'; this module keeps
the rows and makes the state changes atomic on SQLite and PostgreSQL alike.

Row life cycle
--------------
``queued`` (due at ``run_after``) → ``running`` (claimed by one worker, leased until
``leased_until``) → ``done``, or back to ``queued`` at a later ``run_after`` when the attempt
failed and attempts are left, or ``failed`` once ``max_attempts`` attempts failed. A failed job
stays (``list_jobs(status="failed")``) until :meth:`JobMethods.retry_job` queues it again: nothing
is dropped silently.

- One active job per (incident, kind): ``active_key`` is unique while a job is queued or running.
  Queueing a kind that is already queued changes nothing (a job queued twice runs once); queueing
  one that is running sets ``rerun``, and the job is queued again when it finishes (new telemetry
  that arrived during an analysis is analysed once more, not lost and not run in parallel).
- A claim takes the oldest due job with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (several
  workers, each job taken once; SQLite serialises writers with ``BEGIN IMMEDIATE``) and hands out a
  fresh ``lease_token``. A worker that dies mid-job leaves a ``running`` row whose lease runs out:
  the next claim takes it again (the attempt counts). Finishing needs the current lease token, so
  a worker whose lease was taken over cannot overwrite the newer attempt's outcome.
- Jobs are operational records, like the outbox: no history rows.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ConflictError, NotFoundError
from .models import JobRow
from .records import _Record, check_enum, check_id, check_int, check_text, check_time

#: What a job does (the worker's handlers, :mod:`workbench.inbound.jobs`).
JOB_KINDS = ("analysis", "notebook", "report")
JOB_STATUSES = ("queued", "running", "done", "failed")
#: Longest error text kept.
ERROR_LENGTH = 4000


@dataclass(frozen=True)
class Job(_Record):
    """One job row (see the module docstring for the life cycle).

    Attributes
    ----------
    id : int
    kind : str
        One of :data:`JOB_KINDS`.
    incident_id : str
    status : str
        One of :data:`JOB_STATUSES`.
    reason : str
        What queued it (``alertmanager``, ``telemetry``, ``resolved``, ``after analysis`` ...).
    attempts, max_attempts : int
    run_after : datetime
        When a queued job is due.
    rerun : bool
        Queued again while running: runs once more after this attempt.
    lease_token, leased_until, worker : str, datetime, str or None
        The current claim (a running job).
    error : str or None
        The last failed attempt's error (kept while a retry is queued).
    result : dict or None
        What the last successful attempt reported (paths, timings).
    created_at, started_at, finished_at : datetime or None
    """

    id: int
    kind: str
    incident_id: str
    status: str
    reason: str
    attempts: int
    max_attempts: int
    run_after: datetime
    rerun: bool
    lease_token: str | None
    leased_until: datetime | None
    worker: str | None
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def to_job(row: JobRow) -> Job:
    return Job(**{name: copy.deepcopy(getattr(row, name)) for name in Job.__dataclass_fields__})


def _key(kind: str, incident_id: str) -> str:
    return f"{kind}/{incident_id}"


def _active(s: Session, kind: str, incident_id: str) -> JobRow | None:
    return s.scalar(select(JobRow).where(JobRow.active_key == _key(kind, incident_id)))


def enqueue_row(s: Session, incident_id: str, kind: str, reason: str, run_after: datetime, max_attempts: int,
                now: datetime) -> tuple[JobRow, bool]:
    """(the active row, whether a new one was created); see :meth:`JobMethods.enqueue_job`."""
    for _ in range(3):
        row = _active(s, kind, incident_id)
        if row is not None:
            if row.status == "running" and not row.rerun:
                row.rerun = True
                s.flush()
            return row, False
        row = JobRow(kind=kind, incident_id=incident_id, status="queued", reason=reason, attempts=0,
                     max_attempts=max_attempts, run_after=run_after, active_key=_key(kind, incident_id), rerun=False,
                     lease_token=None, leased_until=None, worker=None, error=None, result=None, created_at=now,
                     started_at=None, finished_at=None)
        try:
            with s.begin_nested():
                s.add(row)
                s.flush()
        except IntegrityError:
            continue  # another writer queued it between our look and our insert (PostgreSQL): look again
        return row, True
    raise ConflictError(f"job {kind} of incident {incident_id!r}: concurrent writers kept racing; retry")


def _retire(row: JobRow, status: str, now: datetime) -> None:
    row.status, row.finished_at, row.active_key = status, now, None
    row.lease_token, row.leased_until = None, None


class JobMethods:
    """The job-queue part of :class:`~workbench.store.KnowledgeBase` (one transaction per call)."""

    def enqueue_job(self, incident_id: str, kind: str, *, reason: str, delay: timedelta = timedelta(0),
                    max_attempts: int = 5) -> tuple[Job, bool]:
        """Queue ``kind`` for ``incident_id``, due after ``delay``; returns (job, newly queued).

        An already queued job of the kind is returned unchanged (its due time is kept, so a burst
        of triggers runs it once); a running one gets ``rerun`` set.
        """
        kind = check_enum(kind, "kind", JOB_KINDS)
        reason = check_text(reason, "reason")
        max_attempts = check_int(max_attempts, "max_attempts", 1)
        incident_id = check_id(incident_id, "incident_id")
        with self._session(write=True) as s:
            self._get(s, "incident", incident_id)
            now = self._clock()
            row, created = enqueue_row(s, incident_id, kind, reason, now + delay, max_attempts, now)
            return to_job(row), created

    def claim_job(self, worker: str, *, lease: timedelta, kinds: Sequence[str] | None = None,
                  now: Any = None) -> Job | None:
        """Take the oldest due job (queued and due, or running with an expired lease), or None.

        The job becomes ``running`` with a new ``lease_token`` valid until ``now + lease``; its
        attempt is counted. A job whose lease ran out after its last allowed attempt is marked
        ``failed`` (its worker died each time) and the next one is looked at.
        """
        worker = check_text(worker, "worker")
        now = self._clock() if now is None else check_time(now, "now")
        wanted = JOB_KINDS if kinds is None else tuple(check_enum(k, "kinds", JOB_KINDS) for k in kinds)
        due = or_(and_(JobRow.status == "queued", JobRow.run_after <= now),
                  and_(JobRow.status == "running", JobRow.leased_until < now))
        query = (select(JobRow).where(due, JobRow.kind.in_(wanted)).order_by(JobRow.run_after, JobRow.id).limit(1)
                 # PostgreSQL: concurrent workers skip rows another one is claiming.
                 .with_for_update(skip_locked=True))
        with self._session(write=True) as s:
            while True:
                row = s.scalar(query)
                if row is None:
                    return None
                if row.status == "running" and row.attempts >= row.max_attempts:
                    row.error = (f"the worker running attempt {row.attempts} ({row.worker}) stopped without finishing; "
                                 f"previous error: {row.error or 'none'}")[:ERROR_LENGTH]
                    _retire(row, "failed", now)
                    s.flush()
                    continue
                row.status, row.attempts, row.worker = "running", row.attempts + 1, worker
                row.lease_token, row.leased_until, row.started_at = str(uuid.uuid4()), now + lease, now
                s.flush()
                return to_job(row)

    def extend_job_lease(self, job_id: int, lease_token: str, lease: timedelta) -> bool:
        """Push a running job's lease to ``now + lease``; False when the lease is no longer ours."""
        with self._session(write=True) as s:
            row = s.get(JobRow, job_id)
            if row is None or row.status != "running" or row.lease_token != lease_token:
                return False
            row.leased_until = self._clock() + lease
            return True

    def finish_job(self, job_id: int, lease_token: str, *, error: str | None = None,
                   result: dict[str, Any] | None = None, retry_at: Any = None,
                   then: Iterable[tuple[str, timedelta]] = (), rerun_delay: timedelta = timedelta(0)) -> Job:
        """Record the outcome of a claimed job, in one transaction with what follows it.

        Success (``error`` None): ``done`` with ``result``; the kinds in ``then`` are queued for the
        same incident (each with its delay), and a job asked to run again (``rerun``) is queued
        once more after ``rerun_delay``. Failure: queued again at ``retry_at`` while attempts are
        left (``retry_at`` None: no more tries), else ``failed`` with the error.

        Raises
        ------
        ConflictError
            The lease is not ours any more (it ran out and another worker took the job).
        """
        with self._session(write=True) as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFoundError(f"job {job_id!r} not found")
            if row.status != "running" or row.lease_token != lease_token:
                raise ConflictError(f"job {job_id} ({row.kind} of {row.incident_id}): the lease was lost (status "
                                    f"{row.status}, worker {row.worker}); this attempt's outcome is not recorded")
            now = self._clock()
            if error is None:
                row.error, row.result = None, None if result is None else copy.deepcopy(dict(result))
                if row.rerun:
                    row.status, row.rerun, row.attempts = "queued", False, 0
                    row.run_after, row.reason = now + rerun_delay, f"{row.reason}; again (triggered while running)"
                    row.lease_token, row.leased_until, row.finished_at = None, None, now
                else:
                    _retire(row, "done", now)
                s.flush()
                for kind, delay in then:
                    enqueue_row(s, row.incident_id, check_enum(kind, "then", JOB_KINDS), f"after {row.kind}",
                                now + delay, row.max_attempts, now)
                return to_job(row)
            row.error = str(error)[:ERROR_LENGTH]
            if retry_at is not None and row.attempts < row.max_attempts:
                row.status, row.run_after = "queued", check_time(retry_at, "retry_at")
                row.lease_token, row.leased_until = None, None
            else:
                _retire(row, "failed", now)
            s.flush()
            return to_job(row)

    def list_jobs(self, status: str | None = None, incident_id: str | None = None, kind: str | None = None,
                  limit: int | None = None) -> list[Job]:
        """Jobs, newest first; ``status="failed"`` lists the ones that gave up."""
        query = select(JobRow).order_by(JobRow.id.desc())
        if status is not None:
            query = query.where(JobRow.status == check_enum(status, "status", JOB_STATUSES))
        if incident_id is not None:
            query = query.where(JobRow.incident_id == incident_id)
        if kind is not None:
            query = query.where(JobRow.kind == check_enum(kind, "kind", JOB_KINDS))
        if limit is not None:
            query = query.limit(check_int(limit, "limit", 1))
        with self._session(write=False) as s:
            return [to_job(r) for r in s.scalars(query)]

    def get_job(self, job_id: int) -> Job:
        with self._session(write=False) as s:
            row = s.get(JobRow, check_int(job_id, "job id", 1))
            if row is None:
                raise NotFoundError(f"job {job_id!r} not found")
            return to_job(row)

    def latest_jobs(self, incident_ids: Iterable[str] | None = None) -> dict[str, dict[str, Job]]:
        """incident id -> kind -> its newest job (what the app's job column summarises)."""
        query = select(JobRow).order_by(JobRow.id)
        if incident_ids is not None:
            ids = list(incident_ids)
            if not ids:
                return {}
            query = query.where(JobRow.incident_id.in_(ids))
        out: dict[str, dict[str, Job]] = {}
        with self._session(write=False) as s:
            for row in s.scalars(query):
                out.setdefault(row.incident_id, {})[row.kind] = to_job(row)
        return out

    def release_jobs(self, is_dead: Callable[[str | None], bool]) -> int:
        """End the lease of every running job whose ``worker`` ``is_dead`` says is gone, so the next
        claim takes it at once; returns how many."""
        with self._session(write=True) as s:
            now = self._clock()
            rows = [r for r in s.scalars(select(JobRow).where(JobRow.status == "running")) if is_dead(r.worker)]
            for row in rows:
                row.leased_until = now - timedelta(microseconds=1)
            s.flush()
            return len(rows)

    def retry_job(self, job_id: int) -> Job:
        """Queue a failed job again (attempts reset, due now). Raises ``ConflictError`` when it is not
        failed or another job of its kind is active for the incident."""
        with self._session(write=True) as s:
            row = s.get(JobRow, check_int(job_id, "job id", 1))
            if row is None:
                raise NotFoundError(f"job {job_id!r} not found")
            if row.status != "failed":
                raise ConflictError(f"job {job_id} is {row.status}, not failed: nothing to retry")
            if _active(s, row.kind, row.incident_id) is not None:
                raise ConflictError(f"another {row.kind} job of {row.incident_id} is already queued or running")
            row.status, row.attempts, row.run_after = "queued", 0, self._clock()
            row.active_key, row.finished_at = _key(row.kind, row.incident_id), None
            s.flush()
            return to_job(row)

