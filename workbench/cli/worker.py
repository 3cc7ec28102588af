"""``workbench worker``: run the job queue (analysis → notebook → report for each new incident).

Why the worker lives in the CLI layer: the ``report`` job renders the Panel report
(:mod:`workbench.reports`, a UI layer above the core), which the core must not import. The core's
:class:`workbench.inbound.jobs.Worker` runs the ``analysis`` and ``notebook`` jobs and takes the
handlers it is given; this module, the one place that sits above both, adds the ``report`` handler.

``--concurrency N`` runs N worker processes (not threads: the analysis is CPU-bound and Panel's
document state is per process), each claiming jobs from the queue, which hands every job to one
of them (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).
"""
from __future__ import annotations

import importlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..formats import clip, iso_utc
from ..workspace import open_workspace
from .entry import WorkspaceOpt, app, echo_json


def run_report(ws: Any, job: Any) -> dict[str, Any]:
    """The ``report`` job: the incident's offline HTML report (``workbench report``)."""
    from workbench.reports import export_report

    path = export_report(ws, job.incident_id)
    return {"path": str(path), "bytes": path.stat().st_size}


def handlers() -> dict[str, Any]:
    """Every job kind's handler: the core's analysis and notebook, and the report."""
    from ..inbound.jobs import core_handlers

    return {**core_handlers(), "report": run_report}


@app.command()
def worker(once: bool = typer.Option(False, "--once", help="Run what is due, then exit (for cron)."),
           concurrency: int = typer.Option(1, "--concurrency", min=1, max=32, help="Worker processes."),
           poll: float = typer.Option(0.5, "--poll", min=0.05, help="Seconds between looks at an empty queue."),
           max_jobs: Optional[int] = typer.Option(None, "--max-jobs", min=1, help="Exit after this many jobs."),
           workspace: Optional[Path] = WorkspaceOpt,
           as_json: bool = typer.Option(False, "--json", help="One JSON line per finished job.")) -> None:
    """Run queued jobs: each new incident's analysis, executed notebook and report."""
    ws = open_workspace(workspace)
    if concurrency > 1:
        raise typer.Exit(_supervise(ws.root, concurrency, once, poll, max_jobs, as_json))
    from ..inbound.jobs import Worker

    if not once:  # Panel's import, paid before the first report job rather than by it
        importlib.import_module("workbench.reports.export")
    runner = Worker(ws, handlers(), poll=poll)

    def stop(*_: Any) -> None:  # finish the job in hand, then leave
        runner.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def show(outcome: Any) -> None:
        job = outcome.job
        if as_json:
            echo_json(outcome.to_dict())
        elif outcome.ok:
            typer.echo(f"job {job.id} {job.kind} {job.incident_id}: done in {outcome.seconds:.1f} s")
        else:
            then = (f"retry at {iso_utc(job.run_after)}" if job.status == "queued" else job.status)
            typer.echo(f"job {job.id} {job.kind} {job.incident_id}: attempt {job.attempts}/{job.max_attempts} failed "
                       f"({then}): {clip(outcome.error, 300)}", err=True)

    def ready() -> None:
        typer.echo(f"worker {runner.name} ready ({', '.join(runner.handlers)})", err=True)

    try:
        runner.run(once=once, max_jobs=max_jobs, on_outcome=show, on_ready=ready)
    finally:
        runner.close()


def _supervise(root: Path, n: int, once: bool, poll: float, max_jobs: Optional[int], as_json: bool) -> int:
    """Run ``n`` single worker processes; restart one that dies (unless ``--once``); forward stops."""
    argv = [sys.executable, "-m", "workbench.cli", "worker", "-w", str(root), "--poll", str(poll)]
    argv += ["--once"] if once else []
    argv += ["--max-jobs", str(max_jobs)] if max_jobs else []
    argv += ["--json"] if as_json else []
    children = [subprocess.Popen(argv) for _ in range(n)]
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        alive = [c for c in children if c.poll() is None]
        if not alive and (once or stopping or max_jobs):
            return max(c.returncode or 0 for c in children)
        if not once and not stopping and not max_jobs:
            for i, child in enumerate(children):
                if child.poll() is not None:
                    typer.echo(f"worker process {child.pid} exited ({child.returncode}); starting another", err=True)
                    children[i] = subprocess.Popen(argv)
        time.sleep(0.5)
