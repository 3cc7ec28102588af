"""``workbench review-pack | review-signoff | suggestion``: the periodic review meeting.

``review-pack`` writes the pack of a period as one offline HTML file (``--json`` prints its
figures instead of a summary); ``--last 30 --notify`` is the scheduled form (cron) that also
queues a ``review_pack`` notification with the file's location. ``review-signoff`` approves a
written pack (refused when its content changed since it was written); ``suggestion`` accepts or
rejects the recheck loop's runbook and alert suggestions. Reopening an action item or changing
its owner is ``workbench action update``. Every decision is recorded with who and when.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from ..formats import clip
from ..workspace import open_workspace
from .entry import JsonOpt, WorkspaceOpt, app, echo_json, option_time

#: Folder of the written packs inside the workspace.
REVIEWS_DIR = "reviews"

suggestion_app = typer.Typer(help="Runbook and alert suggestions of the recheck loop: list, accept, reject.",
                             no_args_is_help=True)
app.add_typer(suggestion_app, name="suggestion")


@app.command("review-pack")
def review_pack(since: Optional[str] = typer.Option(None, help="Start of the period (incidents started at or after it)."),
                until: Optional[str] = typer.Option(None, help="End of the period (default: now)."),
                last: Optional[int] = typer.Option(None, "--last", min=1, metavar="DAYS",
                                                   help="The DAYS up to now instead of --since/--until (for cron)."),
                service: Optional[str] = typer.Option(None, help="Only incidents that list this service."),
                out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: <workspace>/reviews/review-<since>-<until>.html)."),
                notify: bool = typer.Option(False, "--notify", help="Queue a review_pack notification with the file's location (outbox)."),
                workspace: Optional[Path] = WorkspaceOpt,
                as_json: bool = JsonOpt) -> None:
    """Write the review meeting's pack of a period: incidents, the engine against the reviewers, fixes,
    which interventions reduce recurrence, recurrences, suggestions, ownership, trends (one offline HTML)."""
    from workbench.reports.review import export_review_pack

    from .. import review_pack as rp

    if (last is None) == (since is None):
        raise typer.BadParameter("give --since (and optionally --until) or --last DAYS", param_hint="--since")
    if last is not None and until is not None:
        raise typer.BadParameter("--until goes with --since, not with --last", param_hint="--until")
    period = rp.Period.last(last, service) if last is not None else \
        rp.Period.of(_day_or_time(since, "--since"), _day_or_time(until, "--until"), service)
    ws = open_workspace(workspace)
    pack = rp.review_pack(ws, period)
    path = out or ws.root / REVIEWS_DIR / _file_name(period)
    export_review_pack(pack, path)
    queued = 0
    if notify:
        with ws.knowledge_base() as kb:
            queued = rp.announce(kb, ws.settings, pack, str(path.resolve()))
    if as_json:
        echo_json({"path": str(path), "bytes": path.stat().st_size, "notified": queued, **pack.to_dict()})
        return
    s = pack.sections
    typer.echo(f"{path}  ({path.stat().st_size / 1e6:.1f} MB, content hash {pack.content_hash})")
    typer.echo(f"{s['incidents']['count']} incident(s), {s['fixes']['count']} fix(es) due or done, "
               f"{len(s['ownership']['overdue'])} overdue action item(s), {len(s['recurrences']['checks'])} recurrence(s)")
    if notify:
        typer.echo(f"queued {queued} review_pack notification(s)" if queued else
                   "no webhook takes review_pack notifications ([webhooks.<name>] kinds): nothing queued")


def _day_or_time(value: Optional[str], name: str):
    """A day (``2026-10-01``: its start, 00:00 UTC, since a review period is counted in UTC days) or
    a time with a zone (:func:`option_time`)."""
    if value is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        value = value.strip() + "T00:00:00Z"
    return option_time(value, name)


def _file_name(period) -> str:
    day = lambda t: t.strftime("%Y%m%d")  # noqa: E731
    service = f"-{period.service}" if period.service else ""
    name = f"review-{day(period.since)}-{day(period.until)}{service}.html"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


@app.command("review-signoff")
def review_signoff(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A pack written by review-pack."),
                   name: str = typer.Option(..., "--as", help="Who approves."),
                   role: str = typer.Option(..., "--role", help="In which role, e.g. review-lead, engineering-manager."),
                   workspace: Optional[Path] = WorkspaceOpt,
                   as_json: bool = JsonOpt) -> None:
    """Approve a written review pack: records who signed its content hash (refused when the knowledge
    base no longer gives the same content: write the pack again and review that)."""
    from workbench.reports import read_meta

    from .. import review_pack as rp
    from ..errors import WorkbenchError

    meta = read_meta(file)
    if "workbench-review-pack" not in meta:
        raise WorkbenchError(f"{file}: not a review pack written by workbench review-pack (no workbench-review-pack meta)")
    period = rp.Period.from_dict({"since": meta["workbench-since"], "until": meta["workbench-until"],
                                  "as_of": meta["workbench-as-of"], "service": meta.get("workbench-service") or None})
    ws = open_workspace(workspace)
    record = rp.sign(ws, period, meta["workbench-content-hash"], name=name, role=role, path=str(file.resolve()))
    if as_json:
        echo_json(record.to_dict())
    else:
        typer.echo(f"{clip(name, 60)} ({clip(role, 60)}) signed review pack {period.key} at {record.content_hash}")


@suggestion_app.command("list")
def suggestion_list(incident: Optional[str] = typer.Option(None, "--incident", help="Only this incident's suggestions."),
                    workspace: Optional[Path] = WorkspaceOpt,
                    as_json: bool = JsonOpt) -> None:
    """List the suggestions with their state (proposed, accepted, rejected) and who decided."""
    from .. import review_pack as rp

    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        rows = rp.suggestions(kb, incident)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        typer.echo("no suggestions")
    for r in rows:
        who = f" by {clip(r['decided_by'], 30)}" if r["decided_by"] else ""
        typer.echo(f"{r['incident_id']:<22} {clip(r['key'], 40):<40} {r['status']:<9}{who}  {clip(r['text'] or '', 100)}")


@suggestion_app.command("accept")
def suggestion_accept(incident_id: str = typer.Argument(..., help="Incident id."),
                      key: str = typer.Argument(..., help="Suggestion key, e.g. alert:payments/error_rate."),
                      owner: str = typer.Option(..., help="Owner of the action item it becomes."),
                      due: Optional[str] = typer.Option(None, help="Due date, YYYY-MM-DD."),
                      kind: Optional[str] = typer.Option(None, help="Action-item kind (default: detect for an alert, mitigate for a runbook)."),
                      title: Optional[str] = typer.Option(None, help="Action-item title (default: the suggestion's text)."),
                      name: str = typer.Option(..., "--as", help="Who decides."),
                      why: Optional[str] = typer.Option(None, "--why", help="Why (recorded with the decision)."),
                      workspace: Optional[Path] = WorkspaceOpt,
                      as_json: bool = JsonOpt) -> None:
    """Accept a suggestion: it becomes an action item, and the decision is recorded with it."""
    from .. import review_pack as rp

    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        decision, item = rp.accept_suggestion(kb, incident_id, key, who=name, owner=owner, due=due, kind=kind,
                                              title=title, rationale=why)
    if as_json:
        echo_json({"decision": decision.to_dict(), "action_item": item.to_dict()})
    else:
        typer.echo(f"{key} of {incident_id} accepted by {clip(name, 60)}: action item {item.id} ({item.kind}, owner "
                   f"{clip(item.owner, 60)})")


@suggestion_app.command("reject")
def suggestion_reject(incident_id: str = typer.Argument(..., help="Incident id."),
                      key: str = typer.Argument(..., help="Suggestion key."),
                      name: str = typer.Option(..., "--as", help="Who decides."),
                      why: str = typer.Option(..., "--why", help="Why (required: the next meeting reads it)."),
                      workspace: Optional[Path] = WorkspaceOpt,
                      as_json: bool = JsonOpt) -> None:
    """Reject a suggestion, with the reason."""
    from .. import review_pack as rp

    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        decision = rp.reject_suggestion(kb, incident_id, key, who=name, rationale=why)
    if as_json:
        echo_json(decision.to_dict())
    else:
        typer.echo(f"{key} of {incident_id} rejected by {clip(name, 60)}")
