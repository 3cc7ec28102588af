"""The per-incident notebook runs itself: what the job queue runs, in which order, and the worker.

A new incident from a receiver queues ``analysis``; a finished analysis queues the ``notebook``
(papermill) and the ``report``, which only need the stored analysis, not each other, so two
workers run them side by side (``workbench worker --concurrency 2``; one worker runs the notebook
first). New telemetry in an open incident's window and a
resolved notification queue the analysis again after ``debounce`` (a burst of triggers runs it
once; one that arrives while it runs makes it run once more afterwards; see
:mod:`workbench.store.jobs` for the queue's guarantees).

:class:`Worker` claims one due job at a time, runs its handler, and records the outcome with what
follows it in one transaction. A failed attempt is retried after ``job_backoff`` (doubling, at
most :data:`MAX_BACKOFF`); after ``job_attempts`` attempts the job is ``failed`` and stays visible
(``workbench jobs list --failed``) until retried. While a handler runs, the worker extends its
lease; a worker that is killed leaves the job ``running`` with a lease that runs out, and the next
worker takes it again (at once, when the dead worker ran on the same host: its process is gone).

Handlers are ``handler(workspace, job) -> dict`` (a JSON-safe result). The core provides
``analysis`` and ``notebook`` (:func:`core_handlers`); the ``report`` handler renders the Panel
report, a UI layer the core cannot import: ``workbench worker`` (:mod:`workbench.cli.worker`)
adds it. A worker only claims the kinds it has handlers for.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

import pandas as pd

from ..analysis.pipeline import analyze
from ..errors import ConflictError, WorkbenchError
from ..postmortem import runner
from ..store.jobs import JOB_KINDS, Job
from ..telemetry.live import fetch_incident
from ..telemetry.windows import analysis_window
from ..workspace import Workspace, open_workspace
from .settings import ReceiverSettings, receiver_settings

#: What a finished job of a kind queues next.
CHAIN: dict[str, tuple[str, ...]] = {"analysis": ("notebook", "report"), "notebook": (), "report": ()}
#: Longest wait between attempts.
MAX_BACKOFF = timedelta(hours=1)
#: Incident statuses whose analysis new telemetry re-queues.
LIVE_STATUSES = ("open", "mitigated")
WHO = "worker"

Handler = Callable[[Workspace, Job], "dict[str, Any] | None"]


def run_analysis(ws: Workspace, job: Job) -> dict[str, Any]:
    """The ``analysis`` job: fetch the incident's window from the workspace's live sources (as
    ``workbench analyze`` does; a source that is down fails the attempt, which is retried), then
    rank hypotheses and store them with the signature."""
    fetched = fetch_incident(ws, job.incident_id, who=WHO)
    result = analyze(ws, job.incident_id, who=WHO)
    top = result.hypotheses[0] if result.hypotheses else None
    return {"hypotheses": len(result.hypotheses), "stored": bool(result.stored),
            "top": None if top is None else f"{top.service}/{top.cause}", "fetched": fetched.summary(),
            "seconds": round(result.timings.get("total", 0.0), 3)}


def run_notebook(ws: Workspace, job: Job) -> dict[str, Any]:
    """The ``notebook`` job: execute the postmortem notebook with papermill (a run a killed worker
    left behind is taken over by the runner itself: its record failed, its partial file removed)."""
    result = runner.run(ws, job.incident_id, who=WHO)
    return {"output_path": str(result.output_path), "run_id": result.run_id, "seconds": round(result.seconds, 3)}


def core_handlers() -> dict[str, Handler]:
    """The handlers the core provides: ``analysis`` and ``notebook``."""
    return {"analysis": run_analysis, "notebook": run_notebook}


def backoff(settings: ReceiverSettings, attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: ``job_backoff`` doubled per failed attempt, capped."""
    return min(settings.job_backoff * (2 ** max(0, attempts - 1)), MAX_BACKOFF)


def requeue_for_telemetry(kb: Any, tables: Mapping[str, pd.DataFrame], settings: ReceiverSettings) -> list[Job]:
    """Queue (after ``debounce``) the analysis of every open or mitigated incident whose analysis
    window holds the new rows and whose services include theirs; returns the jobs touched.

    Alert events are left out: the alert receiver queues their incident itself.
    """
    spans = []
    services: set[str] = set()
    for table, frame in tables.items():
        if frame is None or frame.empty or table == "topology":
            continue
        if table == "events":
            frame = frame[frame["kind"] != "alert"]
            if frame.empty:
                continue
        column = "start" if table == "spans" else "timestamp"
        spans.append((frame[column].min(), frame[column].max()))
        services.update(frame["service"].unique())
    if not spans:
        return []
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    touched = []
    for status in LIVE_STATUSES:
        for incident in kb.list_incidents(status=status):
            start, end = analysis_window(incident)
            if hi < start or lo >= end or (incident.services and not services & set(incident.services)):
                continue
            job, _ = kb.enqueue_job(incident.id, "analysis", reason="new telemetry", delay=settings.debounce,
                                    max_attempts=settings.job_attempts)
            touched.append(job)
    return touched


@dataclass
class Outcome:
    """One job a worker ran: the job as recorded afterwards, and how long the handler took."""

    job: Job
    ok: bool
    error: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.job.id, "kind": self.job.kind, "incident_id": self.job.incident_id,
                "status": self.job.status, "ok": self.ok, "error": self.error, "seconds": round(self.seconds, 3)}


def worker_name() -> str:
    """``host:pid:random``: unique per worker, and says which process to look for."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _dead_here(worker: str | None) -> bool:
    """Whether ``worker`` names a process of this host that no longer exists."""
    host, _, rest = (worker or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Worker:
    """Runs queued jobs of one workspace (see the module docstring).

    Parameters
    ----------
    workspace : Workspace or path
    handlers : mapping of kind -> handler, optional
        Default :func:`core_handlers` (no ``report``).
    settings : ReceiverSettings, optional
        Attempts, backoff, lease and debounce; default from the workspace's ``workbench.toml``.
    poll : float
        Seconds between looks at an empty queue.
    """

    def __init__(self, workspace: Workspace | str | os.PathLike[str], handlers: Mapping[str, Handler] | None = None,
                 *, settings: ReceiverSettings | None = None, poll: float = 0.5, name: str | None = None):
        self.ws = open_workspace(workspace)
        self.handlers = dict(core_handlers() if handlers is None else handlers)
        unknown = [k for k in self.handlers if k not in JOB_KINDS]
        if unknown:
            raise WorkbenchError(f"no job kind {unknown[0]!r}; known: {', '.join(JOB_KINDS)}")
        self.settings = settings or receiver_settings(self.ws.settings.extra)
        self.poll = float(poll)
        self.name = name or worker_name()
        self.kb = self.ws.knowledge_base()
        self.stopping = threading.Event()

    def close(self) -> None:
        self.kb.close()

    def release_dead(self) -> int:
        """Make the jobs of dead workers of this host claimable now; returns how many."""
        return self.kb.release_jobs(_dead_here)

    def run_once(self) -> Outcome | None:
        """Claim and run one due job; None when nothing is due."""
        job = self.kb.claim_job(self.name, lease=self.settings.job_lease, kinds=list(self.handlers))
        if job is None:
            return None
        beat = threading.Event()
        pulse = threading.Thread(target=self._heartbeat, args=(job, beat), daemon=True)
        pulse.start()
        t0 = time.perf_counter()
        error, result = None, None
        try:
            result = self.handlers[job.kind](self.ws, job) or {}
        except Exception as exc:  # noqa: BLE001 - any failure of a job is recorded on the job
            error = f"{type(exc).__name__}: {exc}"
        finally:
            beat.set()
            pulse.join()
        seconds = time.perf_counter() - t0
        now = datetime.now(timezone.utc)
        try:
            if error is None:
                then = [(kind, timedelta(0)) for kind in CHAIN[job.kind]]
                recorded = self.kb.finish_job(job.id, job.lease_token, result=result, then=then,
                                              rerun_delay=self.settings.debounce)
            else:
                recorded = self.kb.finish_job(job.id, job.lease_token, error=error,
                                              retry_at=now + backoff(self.settings, job.attempts))
        except ConflictError as exc:  # the lease ran out and another worker took over
            return Outcome(job, False, str(exc), seconds)
        return Outcome(recorded, error is None, error, seconds)

    def warm_up(self) -> float:
        """Fit the workspace's detector once on a small random frame; returns the seconds taken.

        The first analysis in a process pays the detector's imports and compilation (~2 s of a
        3.5 s analysis on the sample), the first notebook papermill's import: a worker that waits
        for pages pays them before the first one arrives instead of after.
        """
        import numpy as np

        from ..signals.detect.catalog import get_detector

        t0 = time.perf_counter()
        try:
            frame = np.random.default_rng(0).normal(size=(256, 8))
            get_detector(self.ws.settings.detector).fit(frame).decision_function(frame[:32])
            if "notebook" in self.handlers:
                runner._papermill()  # papermill's import: 2-7 s, paid now rather than by the first notebook
        except Exception:  # noqa: BLE001 - only a head start: the jobs report real problems
            pass
        return time.perf_counter() - t0

    def run(self, once: bool = False, max_jobs: int | None = None,
            on_outcome: Callable[[Outcome], None] | None = None,
            on_ready: Callable[[], None] | None = None) -> list[Outcome]:
        """Run jobs until :attr:`stopping` is set (``once``: until nothing is due).

        A long-running worker warms up first (:meth:`warm_up`), then calls ``on_ready``.
        """
        self.release_dead()
        if not once:
            self.warm_up()
        if on_ready is not None:
            on_ready()
        done: list[Outcome] = []
        while not self.stopping.is_set():
            outcome = self.run_once()
            if outcome is None:
                if once:
                    break
                self.stopping.wait(self.poll)
                continue
            done.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if max_jobs is not None and len(done) >= max_jobs:
                break
        return done

    def _heartbeat(self, job: Job, stop: threading.Event) -> None:
        every = max(self.settings.job_lease.total_seconds() / 3, 0.05)
        while not stop.wait(every):
            try:
                if not self.kb.extend_job_lease(job.id, job.lease_token, self.settings.job_lease):
                    return
            except WorkbenchError:
                continue  # a busy database: try again at the next beat, the lease still runs
