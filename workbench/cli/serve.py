"""``workbench serve``: the app with its login and TLS options. The exposure rules themselves
(loopback unless a password, its length, TLS or an explicit plain-HTTP opt-in) live in
:func:`workbench.reports.app.serve`, so calling it from Python cannot bypass them."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..workspace import open_workspace
from .entry import WorkspaceOpt, app


@app.command()
def serve(port: int = typer.Option(5006, help="Port to listen on."),
          address: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback needs --basic-auth."),
          basic_auth: Optional[Path] = typer.Option(None, "--basic-auth", help="File holding the password of the login form (required off loopback)."),
          tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="PEM certificate (chain) to serve HTTPS with; needs --tls-key."),
          tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
          allow_plain_http: bool = typer.Option(False, "--allow-plain-http", help="Off loopback without --tls-cert: only when a proxy in front terminates TLS."),
          trusted_proxy: List[str] = typer.Option([], "--trusted-proxy", help="Address or CIDR network of a reverse proxy in front (repeatable): failed logins then count against the client its X-Forwarded-For names."),
          incident: Optional[str] = typer.Option(None, help="Incident shown first."),
          workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Serve the workbench app: incident list, reports, overdue action items, cross-incident metrics."""
    from workbench.reports.app import check_exposure, serve as serve_app
    from workbench.reports.auth import proxy_networks

    password = None
    if basic_auth is not None:
        try:
            password = basic_auth.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {basic_auth}: {exc}", param_hint="--basic-auth") from None
    # checked before the workspace is opened or anything printed: a refused exposure changes nothing
    check_exposure(address, basic_auth=password, tls_cert=tls_cert, tls_key=tls_key, allow_plain_http=allow_plain_http)
    try:
        proxy_networks(trusted_proxy)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--trusted-proxy") from None
    ws = open_workspace(workspace)
    scheme = "https" if tls_cert is not None else "http"
    typer.echo(f"serving {ws.root} on {scheme}://{address}:{port}/ (Ctrl-C stops)")
    serve_app(ws, incident_id=incident, port=port, address=address, basic_auth=password, tls_cert=tls_cert,
              tls_key=tls_key, allow_plain_http=allow_plain_http, trusted_proxies=trusted_proxy)
