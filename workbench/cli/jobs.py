"""``workbench jobs list | retry``: the job queue (analysis, notebook, report per incident)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..formats import clip, iso_utc
from ..workspace import open_workspace
from .entry import JsonOpt, WorkspaceOpt, app, echo_json

jobs_app = typer.Typer(help="The job queue: what the worker ran, runs, will run or gave up on.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def jobs_list(failed: bool = typer.Option(False, "--failed", help="Only jobs that gave up (after their last attempt)."),
              status: Optional[str] = typer.Option(None, help="queued, running, done or failed."),
              incident: Optional[str] = typer.Option(None, help="Only this incident's jobs."),
              limit: int = typer.Option(50, min=1, help="Newest jobs shown."),
              workspace: Optional[Path] = WorkspaceOpt,
              as_json: bool = JsonOpt) -> None:
    """Jobs, newest first, with their attempts and last error."""
    if failed and status not in (None, "failed"):
        raise typer.BadParameter("--failed and --status disagree", param_hint="--failed")
    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        jobs = kb.list_jobs(status="failed" if failed else status, incident_id=incident, limit=limit)
    if as_json:
        echo_json([{**j.to_dict(), **{k: iso_utc(getattr(j, k)) for k in
                                      ("run_after", "leased_until", "created_at", "started_at", "finished_at")}}
                   for j in jobs])
        return
    if not jobs:
        typer.echo("no jobs" + (" failed" if failed else ""))
    for j in jobs:
        line = (f"{j.id:>5}  {j.kind:<8} {j.incident_id:<20} {j.status:<8} attempt {j.attempts}/{j.max_attempts}  "
                f"{iso_utc(j.finished_at or j.started_at or j.run_after)}")
        typer.echo(line + (f"  error: {clip(j.error, 120)}" if j.error else ""))


@jobs_app.command("retry")
def jobs_retry(job_id: int = typer.Argument(..., help="A failed job's id (workbench jobs list --failed)."),
               workspace: Optional[Path] = WorkspaceOpt,
               as_json: bool = JsonOpt) -> None:
    """Queue a failed job again (attempts start afresh)."""
    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        job = kb.retry_job(job_id)
    if as_json:
        echo_json({"id": job.id, "status": job.status})
    else:
        typer.echo(f"job {job.id} ({job.kind} of {job.incident_id}) queued again")
