"""``workbench action add | list | update``: action items without the notebook widget.

Every update names the version it read (``--expect-version``, shown by ``action list``): a stale
one is refused with the item's current state and changes nothing, so two people editing one item
never overwrite each other silently. Without ``--expect-version`` the item is read and updated in
one call (still refused if someone else writes in between).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import CriterionError
from ..formats import clip
from ..loop.criteria import Criterion, describe
from ..workspace import open_workspace
from .entry import JsonOpt, WorkspaceOpt, app, echo_json

action_app = typer.Typer(help="Add, list and update action items (owner, due date, kind, status, criterion).",
                         no_args_is_help=True)
app.add_typer(action_app, name="action")

CriterionOpt = typer.Option(None, "--criterion", metavar="JSON|@FILE",
                            help="Verification criterion as JSON (or @file.json), e.g. '{\"signal\": \"metric\", "
                                 "\"service\": \"checkout\", \"metric\": \"latency_p99_ms\", \"aggregate\": \"max\", "
                                 "\"comparator\": \"<\", \"threshold\": 300, \"duration\": \"7d\"}'.")

TicketOpt = typer.Option(None, "--ticket", help="The tracker key of the fix (e.g. PM-1242): a change event naming it "
                                                "marks the fix applied (docs/receivers.md).")


def _criterion(text: Optional[str]) -> dict[str, Any] | None:
    """The criterion of ``--criterion``, checked (naming the field) before anything is written."""
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {text[1:]}: {exc}", param_hint="--criterion") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--criterion") from None
    try:
        return Criterion.from_dict(data).to_dict()
    except CriterionError as exc:
        raise typer.BadParameter(str(exc), param_hint="--criterion") from None


def _line(a: Any) -> str:
    due = a.due.isoformat() if a.due else "no due date"
    criterion = f"  [{describe(a.verification)}]" if a.verification else ""
    ticket = f"  ({clip(a.ticket, 40)})" if a.ticket else ""
    return (f"{a.id:<16} v{a.version:<3} {a.incident_id:<20} {a.status:<11} {a.kind:<9} {due:<11} "
            f"{clip(a.owner, 16):<16} {clip(a.title, 60)}{ticket}{criterion}")


@action_app.command("add")
def action_add(incident_id: str = typer.Argument(..., help="Incident id."),
               title: str = typer.Option(..., help="What will be done."),
               owner: str = typer.Option(..., help="Who owns it."),
               kind: str = typer.Option(..., help="prevent, detect, mitigate or process."),
               due: Optional[str] = typer.Option(None, help="Due date, YYYY-MM-DD."),
               status: str = typer.Option("open", help="open, in_progress, done or wont_do."),
               criterion: Optional[str] = CriterionOpt,
               ticket: Optional[str] = TicketOpt,
               name: str = typer.Option("cli", "--as", help="Who adds it (recorded in the history)."),
               workspace: Optional[Path] = WorkspaceOpt,
               as_json: bool = JsonOpt) -> None:
    """Add an action item to an incident; prints its id (the whole record with --json)."""
    verification = _criterion(criterion)
    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        item = kb.add_action_item(incident_id, title=title, owner=owner, kind=kind, due=due, status=status,
                                  verification=verification, ticket=ticket, who=name)
    if as_json:
        echo_json(item.to_dict())
    else:
        typer.echo(item.id)


@action_app.command("list")
def action_list(incident: Optional[str] = typer.Option(None, "--incident", help="Only this incident's items."),
                owner: Optional[str] = typer.Option(None, help="Only this owner's items."),
                status: Optional[str] = typer.Option(None, help="Only this status."),
                overdue: bool = typer.Option(False, "--overdue", help="Only open or in-progress items due before today (UTC)."),
                workspace: Optional[Path] = WorkspaceOpt,
                as_json: bool = JsonOpt) -> None:
    """List action items (with the version an update must name), by due date across incidents."""
    from datetime import datetime, timezone

    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        items = kb.list_action_items(incident, owner=owner, status=status,
                                     overdue_on=datetime.now(timezone.utc).date() if overdue else None)
    if as_json:
        echo_json([a.to_dict() for a in items])
    elif not items:
        typer.echo("no action items")
    else:
        typer.echo(f"{'id':<16} {'ver':<4} {'incident':<20} {'status':<11} {'kind':<9} {'due':<11} {'owner':<16} title")
        for a in items:
            typer.echo(_line(a))


@action_app.command("update")
def action_update(action_id: str = typer.Argument(..., help="Action item id."),
                  expect_version: Optional[int] = typer.Option(None, "--expect-version", min=1,
                                                               help="The version you read (action list); a newer one refuses the update."),
                  title: Optional[str] = typer.Option(None, help="New title."),
                  owner: Optional[str] = typer.Option(None, help="New owner."),
                  kind: Optional[str] = typer.Option(None, help="New kind."),
                  due: Optional[str] = typer.Option(None, help="New due date, YYYY-MM-DD."),
                  status: Optional[str] = typer.Option(None, help="New status: open, in_progress, done, wont_do."),
                  criterion: Optional[str] = CriterionOpt,
                  ticket: Optional[str] = TicketOpt,
                  name: str = typer.Option("cli", "--as", help="Who changes it (recorded in the history)."),
                  workspace: Optional[Path] = WorkspaceOpt,
                  as_json: bool = JsonOpt) -> None:
    """Change fields of an action item; refused (exit 2, nothing changed) when its version moved on."""
    changes = {k: v for k, v in dict(title=title, owner=owner, kind=kind, due=due, status=status,
                                     ticket=ticket).items() if v is not None}
    if criterion is not None:
        changes["verification"] = _criterion(criterion)
    if not changes:
        raise typer.BadParameter("give at least one field to change", param_hint="--status")
    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        version = expect_version if expect_version is not None else kb.get_action_item(action_id).version
        item = kb.update_action_item(action_id, version, name, **changes)
    if as_json:
        echo_json(item.to_dict())
    else:
        typer.echo(_line(item))
