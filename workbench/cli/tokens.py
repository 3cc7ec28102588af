"""``workbench token new | list | revoke``: the integrations' tokens (secrets shown once, stored hashed)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..formats import iso_utc, printable
from ..workspace import open_workspace
from .entry import JsonOpt, WorkspaceOpt, app, echo_json

token_app = typer.Typer(help="Tokens of the integrations that call the receivers and the API.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("new")
def token_new(name: str = typer.Argument(..., help="What the integration is, e.g. alertmanager-prod."),
              scope: list[str] = typer.Option(..., "--scope", help="alerts:write, telemetry:write, changes:write, api:read or api:write (repeatable)."),
              by: str = typer.Option("cli", "--as", help="Who creates it (recorded)."),
              workspace: Optional[Path] = WorkspaceOpt,
              as_json: bool = typer.Option(False, "--json", help='Print {"token": ..., "id": ..., "name": ..., "scopes": [...]}.')) -> None:
    """Create a token and print its secret ONCE (only its hash is stored)."""
    from ..inbound.tokens import create_token

    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        record, secret = create_token(kb, name, scope, who=by)
    if as_json:
        echo_json({"token": secret, "id": record.id, "name": record.name, "scopes": list(record.scopes)})
    else:
        typer.echo(f"{record.id}  {printable(record.name)}  scopes: {', '.join(record.scopes)}")
        typer.echo(secret)
        typer.echo("(shown once: store it in your integration's secret store; `workbench token revoke` ends it)", err=True)


@token_app.command("list")
def token_list(revoked: bool = typer.Option(False, "--revoked", help="Include revoked tokens."),
               workspace: Optional[Path] = WorkspaceOpt,
               as_json: bool = JsonOpt) -> None:
    """Tokens (never their secrets): id, name, scopes, created, last used, revoked."""
    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        tokens = kb.list_tokens(include_revoked=revoked)
    if as_json:
        echo_json([{**t.to_dict(), "created_at": iso_utc(t.created_at), "last_used_at": iso_utc(t.last_used_at),
                    "revoked_at": iso_utc(t.revoked_at)} for t in tokens])
        return
    if not tokens:
        typer.echo("no tokens (workbench token new NAME --scope SCOPE)")
    for t in tokens:
        state = f"revoked {iso_utc(t.revoked_at)}" if t.revoked_at else f"last used {iso_utc(t.last_used_at) or 'never'}"
        typer.echo(f"{t.id}  {printable(t.name)}  {', '.join(t.scopes)}  created {iso_utc(t.created_at)} by "
                   f"{printable(t.created_by)}  {state}")


@token_app.command("revoke")
def token_revoke(token: str = typer.Argument(..., help="A token id (tok-...) or name (revokes every active token of that name)."),
                 workspace: Optional[Path] = WorkspaceOpt,
                 as_json: bool = JsonOpt) -> None:
    """Revoke a token: it never authenticates again (running servers stop accepting it within 10 s)."""
    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        done = kb.revoke_token(token)
    if as_json:
        echo_json([t.id for t in done])
    else:
        for t in done:
            typer.echo(f"revoked {t.id} ({printable(t.name)})")

