"""``workbench incident new | list | show | export | import``: incident records and documents."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..workspace import open_workspace
from ..formats import clip, key_value
from .entry import JsonOpt, WorkspaceOpt, echo_json, incident_app, option_time


def print_incidents(incidents) -> None:
    if not incidents:
        typer.echo("no incidents")
        return
    typer.echo(f"{'id':<24} {'sev':<5} {'status':<11} {'started (UTC)':<17} {'window (UTC)':<35} title")
    for inc in incidents:
        started = inc.started.strftime("%Y-%m-%d %H:%M") if inc.started else "?"
        window = _window_text(inc)
        typer.echo(f"{inc.id:<24} {inc.severity:<5} {inc.status:<11} {started:<17} {window:<35} {clip(inc.title, 200)}")


def _window_text(inc) -> str:
    from ..telemetry.windows import analysis_window

    start, end = analysis_window(inc)
    return f"{start:%m-%d %H:%M} .. {end:%m-%d %H:%M}"


@incident_app.command("new")
def incident_new(title: str = typer.Option(..., help="Short human title."),
                 started: str = typer.Option(..., help="When the impact started (ISO 8601 with zone)."),
                 services: str = typer.Option(..., help="Comma-separated affected services."),
                 severity: str = typer.Option("SEV3", help="SEV1 (worst) .. SEV5."),
                 environment: str = typer.Option("production", help="deployment.environment."),
                 detected: Optional[str] = typer.Option(None, help="When it was detected (alert/page time)."),
                 label: list[str] = typer.Option([], "--label", metavar="KEY=VALUE",
                                                 help="Taxonomy label (repeatable): symptom=latency, service=..., environment=..., confidence=0.8."),
                 link: list[str] = typer.Option([], "--link", metavar="[TITLE=]URL",
                                                help="Runbook or ticket link (repeatable), e.g. 'runbook=https://wiki/checkout'."),
                 workspace: Optional[Path] = WorkspaceOpt,
                 as_json: bool = JsonOpt) -> None:
    """Open a new incident; prints its id (or the whole record with --json)."""
    labels: dict[str, object] = dict(key_value(item, "--label", typer.BadParameter) for item in label)
    if "confidence" in labels:  # the one numeric label; the store checks the range
        try:
            labels["confidence"] = float(labels["confidence"])
        except ValueError:
            raise typer.BadParameter(f"confidence must be a number, got {labels['confidence']!r}",
                                     param_hint="--label") from None
    links = [_link(item) for item in link]
    ws = open_workspace(workspace)
    kb = ws.knowledge_base()
    try:
        inc = kb.create_incident(title=title, started=option_time(started, "--started"),
                                 services=[s.strip() for s in services.split(",") if s.strip()],
                                 severity=severity, environment=environment,
                                 detected=option_time(detected, "--detected"), labels=labels or None,
                                 links=links or None, who="cli")
    finally:
        kb.close()
    if as_json:
        echo_json(inc.to_dict())
    else:
        typer.echo(inc.id)


def _link(text: str) -> dict[str, str]:
    """``title=url`` or a bare URL (titled by the URL itself); the store checks the URL's scheme."""
    title, sep, url = text.partition("=")
    if not sep or "://" in title:
        return {"title": text, "url": text}
    return {"title": title.strip(), "url": url.strip()}


@incident_app.command("list")
def incident_list(status: Optional[str] = typer.Option(None, help="Only this status."),
                  service: Optional[str] = typer.Option(None, help="Only incidents involving this service."),
                  workspace: Optional[Path] = WorkspaceOpt,
                  as_json: bool = JsonOpt) -> None:
    """List incidents, oldest first, with their analysis windows."""
    ws = open_workspace(workspace)
    kb = ws.knowledge_base()
    try:
        incidents = kb.list_incidents(status=status, service=service)
    finally:
        kb.close()
    if as_json:
        echo_json([i.to_dict() for i in incidents])
    else:
        print_incidents(incidents)


@incident_app.command("show")
def incident_show(incident_id: str = typer.Argument(..., help="Incident id."),
                  workspace: Optional[Path] = WorkspaceOpt,
                  as_json: bool = JsonOpt) -> None:
    """Show one incident with its hypotheses, action items and conclusions."""
    ws = open_workspace(workspace)
    kb = ws.knowledge_base()
    try:
        if as_json:
            inc = kb.get_incident(incident_id)
            data = inc.to_dict()
            data["hypotheses"] = [h.to_dict() for h in kb.list_hypotheses(incident_id)]
            data["action_items"] = [a.to_dict() for a in kb.list_action_items(incident_id=incident_id)]
            data["conclusions"] = [c.to_dict() for c in kb.list_conclusions(incident_id)]
            echo_json(data)
        else:
            typer.echo(kb.export_incident(incident_id), nl=False)
    finally:
        kb.close()


@incident_app.command("export")
def incident_export(incident_ids: list[str] = typer.Argument(None, help="Incident ids (default: all)."),
                    out: Optional[Path] = typer.Option(None, "--out", help="Folder to write <id>.yaml files into (default: <workspace>/postmortems)."),
                    workspace: Optional[Path] = WorkspaceOpt,
                    as_json: bool = JsonOpt) -> None:
    """Export incidents as YAML documents (one file each, stable key order) for review in git."""
    ws = open_workspace(workspace)
    out = out if out is not None else ws.root / "postmortems"
    kb = ws.knowledge_base()
    written = []
    try:
        ids = incident_ids or [i.id for i in kb.list_incidents()]
        out.mkdir(parents=True, exist_ok=True)
        for incident_id in ids:
            path = out / f"{incident_id}.yaml"
            text = kb.export_incident(incident_id)
            path.write_text(text, encoding="utf-8")
            written.append({"id": incident_id, "path": str(path), "bytes": len(text.encode("utf-8")),
                            "content_hash": kb.content_hash(incident_id)})
            if not as_json:
                typer.echo(str(path))
    finally:
        kb.close()
    if as_json:
        echo_json(written)


@incident_app.command("import")
def incident_import(files: list[Path] = typer.Argument(..., help="YAML documents written by `incident export`."),
                    workspace: Optional[Path] = WorkspaceOpt,
                    as_json: bool = JsonOpt) -> None:
    """Import (create or update) incidents from YAML documents, all in one transaction."""
    from ..store.documents import read_document, validate_document
    from ..telemetry.ingest import import_document

    docs = []
    for path in files:
        doc = read_document(path)
        validate_document(doc, str(path))
        docs.append((doc, str(path)))
    ws = open_workspace(workspace)
    kb = ws.knowledge_base()
    outcomes = []
    try:
        with kb.transaction():
            for doc, origin in docs:
                outcomes.append(import_document(kb, doc, who="cli", origin=origin))
    finally:
        kb.close()
    if as_json:
        echo_json([{"id": inc.id, "action": action} for action, inc in outcomes])
    else:
        for action, inc in outcomes:
            typer.echo(f"{inc.id}: {action}")
