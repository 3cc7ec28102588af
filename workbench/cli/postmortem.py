"""``workbench analyze | run | review | report | signoff``: one incident's postmortem."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..formats import clip, printable
from ..workspace import open_workspace
from .entry import JsonOpt, WorkspaceOpt, app, echo_json, option_pair, option_time, percent
from .live import OfflineOpt, RefreshOpt, fetch_live


@app.command()
def analyze(incident_id: Optional[str] = typer.Argument(None, help="Incident id (or --all)."),
            all_incidents: bool = typer.Option(False, "--all", help="Analyse every incident of the workspace."),
            workspace: Optional[Path] = WorkspaceOpt,
            detector: Optional[str] = typer.Option(None, help="Metric detector (default: the workspace's `detector` setting)."),
            no_store: bool = typer.Option(False, "--no-store", help="Do not store the ranking and signature (a dry run)."),
            top: int = typer.Option(5, min=1, help="Hypotheses shown per incident."),
            evidence: int = typer.Option(3, min=0, help="Evidence lines shown per hypothesis."),
            refresh: bool = RefreshOpt,
            offline: bool = OfflineOpt,
            as_json: bool = JsonOpt) -> None:
    """Rank root-cause hypotheses of an incident, with their evidence and similar past incidents.

    The ranking replaces the incident's proposed hypotheses (confirmed and rejected ones stay) and
    the incident's signature is written to incidents/<id>/signature.json, unless --no-store.
    With live sources in workbench.toml (\\[sources.<name>]), the incident's window and baseline
    are fetched from them first, once (--refresh: again; --offline: not at all).
    """
    from ..analysis.pipeline import analyze as run_analysis

    if all_incidents == (incident_id is not None):
        raise typer.BadParameter("give one incident id or --all", param_hint="INCIDENT_ID")
    ws = open_workspace(workspace)
    if all_incidents:
        kb = ws.knowledge_base()
        try:
            ids = [i.id for i in kb.list_incidents()]
        finally:
            kb.close()
    else:
        ids = [incident_id]
    fetch_live(ws, ids, refresh=refresh, offline=offline)
    results = []
    for i, iid in enumerate(ids):
        result = run_analysis(ws, iid, detector=detector, store=not no_store)
        results.append(result)
        if not as_json:
            if i:
                typer.echo("")
            _print_analysis(result, top=top, evidence=evidence)
    if as_json:
        data = [r.to_dict() for r in results]
        echo_json(data if all_incidents else data[0])


def _print_analysis(result, top: int, evidence: int) -> None:
    inc = result.incident
    start, end = result.window
    t = result.timings
    typer.echo(f"{inc['id']}  {clip(inc.get('title') or '', 200)}")
    typer.echo(f"window {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC, baseline from {result.baseline[0]:%Y-%m-%d %H:%M}"
               f"  (read {t.get('read', 0):.2f} s, detect {t.get('detect', 0):.2f} s, rank {t.get('rank', 0):.2f} s)")
    if not result.hypotheses:
        for note in result.notes:
            typer.echo(f"  {printable(note)}")
        return
    # The calibrated probability, not the bare score: a score is comparable within one incident only.
    typer.echo(f"{'#':>3}  {'conf.':>5}  {'cause':<10} {'service':<16} summary")
    for hyp in result.hypotheses[:top]:
        typer.echo(f"{hyp.rank:>3}  {percent(hyp.confidence):>5}  {hyp.cause:<10} {clip(hyp.service, 40):<16} "
                   f"{clip(hyp.summary, 200)}")
        for ev in hyp.evidence[:evidence]:
            when = f"{ev.time:%H:%M} " if ev.time is not None else ""
            typer.echo(f"{'':>13}- {ev.kind:<8} {when}{clip(ev.explanation or ev.signal, 110)}")
        for sim in hyp.similar[:2]:
            typer.echo(f"{'':>13}~ similar {sim['incident_id']} ({sim['similarity']:.2f}): confirmed "
                       f"{sim['cause']} in {clip(sim['service'], 40)} - {clip(sim['title'], 120)}")
    if len(result.hypotheses) > top:
        typer.echo(f"  ... {len(result.hypotheses) - top} more (--top)")
    if result.similar:
        typer.echo("similar incidents:")
        for sim in result.similar[:5]:
            cause = f"confirmed {sim['cause']} in {sim['service']}" if sim["cause"] else "no confirmed cause yet"
            typer.echo(f"  {sim['incident_id']}  {sim['similarity']:.2f}  {clip(cause, 80)}  {clip(sim['title'], 120)}")
    for note in result.notes:
        typer.echo(printable(note))


@app.command("run")
def run_notebook(incident_id: Optional[str] = typer.Argument(None, help="Incident id (or --all)."),
                 template: str = typer.Option("postmortem", help="Template name in notebooks/templates/ or a path to an .ipynb."),
                 parameter: list[str] = typer.Option([], "--parameter", "-p", help="Template parameter key=value (repeatable; the value is parsed as YAML, so 24 is a number)."),
                 all_incidents: bool = typer.Option(False, "--all", help="Run every incident (with --since: those started since then)."),
                 since: Optional[str] = typer.Option(None, help="With --all: only incidents started at or after this time."),
                 workspace: Optional[Path] = WorkspaceOpt,
                 refresh: bool = RefreshOpt,
                 offline: bool = OfflineOpt,
                 as_json: bool = JsonOpt) -> None:
    """Execute the postmortem notebook of an incident with papermill (previous runs are kept, timestamped).

    With live sources in workbench.toml, the incident's window is fetched from them first, once
    (--refresh: again; --offline: not at all).
    """
    from .. import yamlio
    from ..postmortem import runner as notebook

    params = {}
    for item in parameter:
        key, value = option_pair(item, "--parameter")
        try:  # a value is YAML (so 24 is a number), with the same limits as every YAML the workbench reads
            params[key] = yamlio.load(value, f"--parameter {key}", typer.BadParameter) if value else ""
        except typer.BadParameter:
            params[key] = value
    ws = open_workspace(workspace)
    if all_incidents or since:
        kb = ws.knowledge_base()
        try:
            chosen = [incident_id] if incident_id else [i.id for i in kb.list_incidents(
                since=option_time(since, "--since") if since else None)]
        finally:
            kb.close()
        fetch_live(ws, chosen, refresh=refresh, offline=offline)
        results = notebook.run_many(ws, None if not incident_id else [incident_id], since=option_time(since, "--since") if since else "1970-01-01T00:00:00Z",
                                    template=template, parameters=params or None, who="cli")
        summary = notebook.summarize(results)
        if as_json:
            echo_json(summary)
        else:
            typer.echo(f"{summary['succeeded']} succeeded, {summary['failed']} failed in {summary['seconds']:.0f} s")
            for f in summary["failures"]:
                typer.echo(f"  {f['incident_id']}: {f.get('ename', 'error')}: {clip(f.get('evalue', ''), 200)} (cell {f.get('cell_index')})")
        if summary["failed"]:
            raise typer.Exit(1)
        return
    if not incident_id:
        raise typer.BadParameter("give an incident id, or --all", param_hint="INCIDENT_ID")
    fetch_live(ws, [incident_id], refresh=refresh, offline=offline)
    result = notebook.run(ws, incident_id, template=template, parameters=params or None, who="cli")
    if as_json:
        echo_json(result.to_dict())
    else:
        typer.echo(f"executed {result.output_path} in {result.seconds:.1f} s")
        typer.echo(f"open it: .venv/bin/jupyter lab --notebook-dir {ws.root} {result.output_path}")


@app.command()
def review(incident_id: str = typer.Argument(..., help="Incident id."),
           confirm: Optional[str] = typer.Option(None, "--confirm", metavar="SERVICE/CAUSE", help="Confirm this hypothesis, e.g. payments/change."),
           reject: Optional[str] = typer.Option(None, "--reject", metavar="SERVICE/CAUSE", help="Reject this hypothesis."),
           name: str = typer.Option(..., "--as", help="Who decides (recorded as the reviewer)."),
           why: str = typer.Option(..., "--why", help="The rationale (required: the next reviewer reads it)."),
           add: bool = typer.Option(False, "--add", help="Record the cause even if the engine did not propose it."),
           expect_version: Optional[int] = typer.Option(None, "--expect-version", min=1,
                                                        help="The hypothesis version you read (incident show --json); required to change another reviewer's decision."),
           workspace: Optional[Path] = WorkspaceOpt,
           as_json: bool = JsonOpt) -> None:
    """Confirm or reject a root-cause hypothesis (what the notebook's review buttons do)."""
    from ..postmortem import review as reviewing

    if (confirm is None) == (reject is None):
        raise typer.BadParameter("give exactly one of --confirm SERVICE/CAUSE or --reject SERVICE/CAUSE",
                                 param_hint="--confirm")
    status = "confirmed" if confirm is not None else "rejected"
    service, cause = reviewing.parse_pair(confirm if confirm is not None else reject)
    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        stored = reviewing.decide(kb, incident_id, service, cause, status, reviewer=name, rationale=why, add=add,
                                  version=expect_version)
    if as_json:
        echo_json(stored.to_dict())
    else:
        rank = "not ranked by the engine" if stored.rank is None else f"ranked #{stored.rank}"
        typer.echo(f"{incident_id}: {clip(stored.service, 60)}/{stored.cause} {stored.status} by {clip(stored.reviewer, 60)} "
                   f"({rank}; version {stored.version})")


@app.command()
def report(incident_id: str = typer.Argument(..., help="Incident id."),
           out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: <workspace>/incidents/<id>/report.html)."),
           workspace: Optional[Path] = WorkspaceOpt,
           as_json: bool = JsonOpt) -> None:
    """Export the incident's Panel report as one standalone HTML file that works offline."""
    from workbench.reports import export_report, read_meta

    ws = open_workspace(workspace)
    path = export_report(ws, incident_id, out=out)
    meta = read_meta(path)
    if as_json:
        echo_json({"path": str(path), "bytes": path.stat().st_size, "content_hash": meta.get("workbench-content-hash")})
    else:
        typer.echo(f"{path}  ({path.stat().st_size / 1e6:.1f} MB, content hash {meta.get('workbench-content-hash')})")


@app.command()
def signoff(incident_id: str = typer.Argument(..., help="Incident id."),
            name: str = typer.Option(..., "--as", help="Who approves."),
            role: str = typer.Option(..., "--role", help="In which role, e.g. incident-commander, service-owner."),
            workspace: Optional[Path] = WorkspaceOpt,
            as_json: bool = JsonOpt) -> None:
    """Approve the incident's current content: records who signed which content hash."""
    ws = open_workspace(workspace)
    with ws.knowledge_base() as kb:
        record = kb.add_signoff(incident_id, name=name, role=role, who=name)
    if as_json:
        echo_json(record.to_dict())
    else:
        typer.echo(f"{clip(name, 60)} ({clip(role, 60)}) signed {incident_id} at content hash {record.content_hash}")
