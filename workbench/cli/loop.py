"""``workbench recheck | outbox | nudge | metrics``: the loop after incidents, and the figures across them."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..workspace import open_workspace
from .entry import JsonOpt, WorkspaceOpt, app, echo_json, option_time
from .live import OfflineOpt, RefreshOpt, warn_offline


@app.command()
def recheck(incident_ids: list[str] = typer.Argument(None, help="Incidents to check (any status)."),
            all_incidents: bool = typer.Option(False, "--all", help="Every incident under watch (resolved, monitoring, recurred)."),
            since: Optional[str] = typer.Option(None, help="Start of the checked window (default: --until minus --window)."),
            until: Optional[str] = typer.Option(None, help="End of the checked window (default: now, capped at the telemetry's end)."),
            window: str = typer.Option("6h", help="Length of the checked window, e.g. 6h, 7d."),
            executor: str = typer.Option("local", help="local (process pool), serial, dask-local, or dask://HOST:PORT."),
            report: bool = typer.Option(False, "--report", help="Also execute the recurrence notebook of every incident that recurred."),
            workspace: Optional[Path] = WorkspaceOpt,
            refresh: bool = RefreshOpt,
            offline: bool = OfflineOpt,
            as_json: bool = JsonOpt) -> None:
    """Check watched incidents for recurrence and every open action item's criterion; record each check.

    With live sources in workbench.toml, the checked window and its baseline are fetched from
    them first (--refresh: again; --offline: not at all).
    """
    from ..errors import SourceError
    from ..loop import rechecks as loop

    ws = open_workspace(workspace)
    if offline:
        warn_offline(ws)
    try:
        result = loop.recheck(ws, incident_ids or None, all=all_incidents, since=option_time(since, "--since"),
                              until=option_time(until, "--until"), window=window, executor=executor, report=report,
                              who="cli", fetch=not offline, refresh=refresh)
    except SourceError as exc:
        raise SourceError(f"{exc} (nothing was checked; --offline checks what the store already holds)") from None
    if as_json:
        echo_json(result.to_dict())
    else:
        typer.echo(result.summary())
    if result.errors:  # a recurrence is a finding (exit 0); an incident that could not be checked is not
        raise typer.Exit(1)

outbox_app = typer.Typer(help="Notifications waiting for, or failed in, webhook delivery.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
def outbox_list(status: Optional[str] = typer.Option(None, help="pending, delivered or dead."),
                kind: Optional[str] = typer.Option(None, help="Notification kind, e.g. recurrence."),
                incident: Optional[str] = typer.Option(None, help="Only notifications of this incident."),
                workspace: Optional[Path] = WorkspaceOpt,
                as_json: bool = JsonOpt) -> None:
    """List notifications in the outbox (dead letters with --status dead)."""
    from ..loop import notify as outbox

    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        items = outbox.list_outbox(kb, status=status, kind=kind, incident_id=incident)
    if as_json:
        echo_json([n.to_dict() for n in items])
    else:
        for n in items:
            typer.echo(outbox.describe(n))
        if not items:
            typer.echo("outbox empty")


@outbox_app.command("deliver")
def outbox_deliver(max_attempts: int = typer.Option(8, help="Attempts before a notification becomes a dead letter."),
                   limit: Optional[int] = typer.Option(None, help="Deliver at most this many notifications."),
                   workspace: Optional[Path] = WorkspaceOpt,
                   as_json: bool = JsonOpt) -> None:
    """Send pending notifications to the webhooks of workbench.toml (signed, retried with backoff)."""
    from ..loop import notify as outbox

    ws = open_workspace(workspace)
    webhooks = outbox.load_webhooks(ws.settings)
    with ws.knowledge_base() as kb:
        report = outbox.deliver(kb, webhooks, max_attempts=max_attempts, limit=limit)
    if as_json:
        echo_json(report.to_dict())
    else:
        typer.echo(report.summary())


@outbox_app.command("resend")
def outbox_resend(delivery_ids: list[str] = typer.Argument(None, help="Notification ids to send again (default: every dead letter)."),
                  workspace: Optional[Path] = WorkspaceOpt,
                  as_json: bool = JsonOpt) -> None:
    """Put dead letters back in the queue, keeping their delivery ids (receivers can deduplicate)."""
    from ..loop import notify as outbox

    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        items = outbox.resend(kb, delivery_ids or None)
    if as_json:
        echo_json([n.to_dict() for n in items])
    else:
        typer.echo(f"{len(items)} notification(s) queued again")


@app.command()
def nudge(as_of: Optional[str] = typer.Option(None, "--as-of", help="Judge overdue items as of this time (default: now)."),
          workspace: Optional[Path] = WorkspaceOpt,
          as_json: bool = JsonOpt) -> None:
    """Queue reminders for overdue action items (escalating to approvers after the grace period) and stalled follow-up reviews."""
    from datetime import datetime, timezone

    from ..loop import nudge as nudging
    from ..loop import notify as outbox

    ws = open_workspace(workspace)
    when = option_time(as_of, "--as-of") or datetime.now(timezone.utc)
    with ws.knowledge_base() as kb:
        outbox.attach(kb, ws.settings)
        report = nudging.nudge(kb, ws.settings, when)
    if as_json:
        echo_json(report.to_dict())
    else:
        typer.echo(report.summary())


@app.command()
def metrics(since: Optional[str] = typer.Option(None, help="Only incidents started at or after this time (ISO 8601 with zone)."),
            until: Optional[str] = typer.Option(None, help="Only incidents started before this time."),
            service: Optional[str] = typer.Option(None, help="Only incidents listing this service."),
            severity: Optional[str] = typer.Option(None, help="Only this severity (SEV1..SEV5)."),
            label: Optional[str] = typer.Option(None, help="Only incidents with this taxonomy label, e.g. symptom=latency."),
            accuracy: bool = typer.Option(False, "--accuracy", help="The accuracy ledger: where the engine ranked each confirmed cause."),
            before_after: Optional[str] = typer.Option(None, "--before-after", metavar="SERVICE",
                                                       help="Compare equal windows before/after SERVICE's action items were done."),
            workspace: Optional[Path] = WorkspaceOpt,
            as_json: bool = JsonOpt) -> None:
    """Cross-incident metrics: MTTD, MTTR, time to mitigate, recurrence, action items (definitions in docs/metrics.md)."""
    from ..evaluation.ledger import accuracy as ledger, ledger_table
    from ..kpis import tables
    from ..kpis.remediation import before_after as compare
    from ..kpis.summary import summarize

    ws = open_workspace(workspace)
    kb = ws.knowledge_base()
    try:
        since_ts, until_ts = option_time(since, "--since"), option_time(until, "--until")
        if before_after:
            result, text = compare(kb, before_after, severity=severity, label=label), tables.before_after_table
        elif accuracy:
            result = ledger(kb, since=since_ts, until=until_ts, service=service, severity=severity, label=label)
            text = ledger_table
        else:
            result = summarize(kb, since=since_ts, until=until_ts, service=service, severity=severity, label=label)
            text = tables.summary_table
    finally:
        kb.close()
    if as_json:
        echo_json(result.to_dict())
    else:
        typer.echo(text(result))
