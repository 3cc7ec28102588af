"""``workbench init | ingest | sample | sources | demo``: workspaces and the telemetry in them."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..formats import clip, printable
from ..workspace import init as init_workspace, open_workspace
from .entry import JsonOpt, WorkspaceOpt, app, echo_json, option_pair, option_time, percent
from .incidents import print_incidents


@app.command()
def init(path: Optional[Path] = typer.Argument(None, help="Folder of the new workspace (default: $WORKBENCH_HOME or .)."),
         workspace: Optional[Path] = typer.Option(None, "--workspace", "-w", help="The same folder, as every other command takes it."),
         database_url: Optional[str] = typer.Option(None, help="Knowledge base URL (default: SQLite file in the workspace)."),
         as_json: bool = JsonOpt) -> None:
    """Create a workspace (idempotent): workbench.toml, the knowledge base and the telemetry folder."""
    if path is not None and workspace is not None and path.resolve() != workspace.resolve():
        raise typer.BadParameter(f"two different folders: {path} and --workspace {workspace}", param_hint="PATH")
    ws = init_workspace(path if path is not None else workspace, database_url=database_url)
    if as_json:
        echo_json({"workspace": str(ws.root), "database_url": ws.database_url})
    else:
        typer.echo(f"workspace ready: {ws.root}")


@app.command()
def ingest(source: str = typer.Argument(..., help="Source URL: scheme:location (files, otlp, nezha, prometheus, "
                                                    "alertmanager), a folder with manifest.yaml, or the name of a "
                                                    "\\[sources.<name>] table of workbench.toml."),
           workspace: Optional[Path] = WorkspaceOpt,
           start: Optional[str] = typer.Option(None, help="Only telemetry at or after this time (ISO 8601 with zone)."),
           end: Optional[str] = typer.Option(None, help="Only telemetry before this time (ISO 8601 with zone)."),
           match: list[str] = typer.Option([], "--match", help="Prometheus series selector (repeatable), e.g. "
                                                              "'{job=\"checkout\"}'; default: every series."),
           step: Optional[str] = typer.Option(None, "--step", help="Prometheus query step, e.g. 60s (default 60s)."),
           option: list[str] = typer.Option([], "--option", "-o", help="Source option key=value (repeatable), e.g. -o table=metrics."),
           as_json: bool = JsonOpt) -> None:
    """Validate a source's telemetry into the workspace and import the incidents it describes.

    All or nothing: on any error the workspace is left as it was. Ingesting the same data twice
    adds nothing. Live sources (prometheus, alertmanager) need --start and --end.
    """
    from tqdm import tqdm

    from ..telemetry.ingest import ingest as run_ingest

    options = dict(option_pair(o) for o in option)
    if match:
        options["match"] = list(match)
    if step is not None:
        options["step"] = step
    ws = open_workspace(workspace)
    with tqdm(desc="ingest", unit="step", file=sys.stderr, disable=None, leave=False) as bar:
        def progress(text: str) -> None:
            bar.set_postfix_str(text[-60:])
            bar.update(1)
        result = run_ingest(ws, source, start=option_time(start, "--start"), end=option_time(end, "--end"), who="cli", progress=progress, **options)
    if as_json:
        echo_json(result.to_dict())
        return
    typer.echo(f"ingested {result.source} in {result.seconds:.1f} s")
    for table, n in result.rows_read.items():
        if n or result.rows_added.get(table):
            typer.echo(f"  {table:<9} read {n:>9,}  added {result.rows_added.get(table, 0):>9,}  already stored {result.rows_present.get(table, 0):>9,}")
    if result.duplicates_dropped:
        typer.echo(f"  duplicate rows inside the source dropped: {result.duplicates_dropped:,}")
    typer.echo(f"  incidents: {len(result.incidents_added)} added, {len(result.incidents_updated)} updated, {len(result.incidents_unchanged)} unchanged")
    if result.source_stats.get("points_not_finite"):
        typer.echo(f"  points without a finite value (NaN, Inf) dropped: {result.source_stats['points_not_finite']:,}")
    for link in result.links_offered:
        typer.echo(f"  link offered: {printable(link['title'])} <{printable(link['url'])}>")
    for warning in result.warnings:
        typer.echo(f"warning: {printable(warning)}", err=True)


@app.command()
def sample(out: Path = typer.Option(Path("data/sample"), "--out", help="Folder to write the sample into."),
           seed: int = typer.Option(7, help="Random seed (the committed sample uses 7)."),
           days: int = typer.Option(7, help="Days of telemetry."),
           as_json: bool = JsonOpt) -> None:
    """Generate the deterministic online-shop sample (telemetry, incidents, ground-truth labels)."""
    from ..telemetry.sample import generate

    try:
        summary = generate(out, seed=seed, days=days)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if as_json:
        echo_json(summary)
    else:
        typer.echo(f"sample written to {out}")
        for key, value in summary.items():
            typer.echo(f"  {key}: {value}")


@app.command()
def sources(source: Optional[str] = typer.Argument(None, help="A live source URL (prometheus:http://host:9090) or a "
                                                              "\\[sources.<name>] name: list what it holds."),
            workspace: Optional[Path] = WorkspaceOpt,
            start: Optional[str] = typer.Option(None, help="Window start for the listing (default: one hour ago)."),
            end: Optional[str] = typer.Option(None, help="Window end for the listing (default: now)."),
            match: list[str] = typer.Option([], "--match", help="Prometheus series selector (repeatable)."),
            label: Optional[str] = typer.Option(None, "--label", help="Prometheus: list the values of this label "
                                                                       "('' lists the label names)."),
            option: list[str] = typer.Option([], "--option", "-o", help="Source option key=value (repeatable)."),
            as_json: bool = JsonOpt) -> None:
    """List the registered source schemes and the workspace's configured sources, or what one live source holds.

    With a source: Prometheus metric names with their kind (gauge, counter fetched as a rate,
    histogram fetched as quantiles), series counts and services; Alertmanager's alerts.
    """
    import json

    import pandas as pd

    from ..errors import WorkbenchError
    from ..telemetry import sources as registry

    if source is None:
        rows = [{"scheme": name, "about": ((registry.get(name).__doc__ or "").strip().splitlines() or [""])[0]}
                for name in registry.names()]
        try:
            named = registry.configured(open_workspace(workspace).settings)
        except WorkbenchError:
            named = {}  # outside a workspace: only the schemes
        if as_json:
            echo_json({"schemes": rows, "configured": {n: u for n, (u, _) in named.items()}})
            return
        for row in rows:
            typer.echo(f"{row['scheme']:<13} {row['about']}")
        for name, (url, _) in named.items():
            typer.echo(f"[sources.{name}] {url}")
        return
    options: dict = dict(option_pair(o) for o in option)
    if match:
        options["match"] = list(match)
    end_ts = option_time(end, "--end") or pd.Timestamp.now(tz="UTC")
    start_ts = option_time(start, "--start") or end_ts - pd.Timedelta(hours=1)
    if ":" not in source:
        src = registry.open_configured(open_workspace(workspace).settings, source, **options)
    else:
        src = registry.open_source(source, **options)
    if label is not None:
        if not hasattr(src, "label_values"):
            raise typer.BadParameter(f"{src.scheme} sources have no labels", param_hint="--label")
        values = src.label_values(label, start_ts, end_ts) if label else src.label_names(start_ts, end_ts)
        if as_json:
            echo_json(values)
        else:
            typer.echo("\n".join(printable(v) for v in values))  # label values are telemetry: escaped
        return
    table = src.catalogue(start_ts, end_ts)
    if as_json:
        echo_json(json.loads(table.to_json(orient="records", date_format="iso")))
    elif table.empty:
        typer.echo(f"{src.url}: nothing in {start_ts} .. {end_ts}")
    else:
        typer.echo(table.map(lambda v: clip(v, 80) if isinstance(v, str) else v).to_string(index=False))


@app.command()
def demo(workspace: Path = typer.Option(Path("demo-workspace"), "--workspace", "-w", help="Workspace to (re)use for the demo."),
         sample_dir: Path = typer.Option(Path("data/sample"), "--sample", help="Sample folder to ingest."),
         incident: str = typer.Option("INC-20261102-001", help="Incident to analyse, run and report (the sample's bad deploy)."),
         quick: bool = typer.Option(False, help="Only ingest and list (skip analysis, notebook and report).")) -> None:
    """The whole path on the sample: ingest, analyse, execute the postmortem notebook, export the report."""
    from ..telemetry.ingest import ingest as run_ingest

    ws = init_workspace(workspace)
    typer.echo(f"workspace: {ws.root}")
    result = run_ingest(ws, str(sample_dir), who="demo")
    added = sum(result.rows_added.values())
    typer.echo(f"ingested {sample_dir}: {sum(result.rows_read.values()):,} rows read, {added:,} new, "
               f"{len(result.incidents_added)} incidents added in {result.seconds:.1f} s")
    with ws.knowledge_base() as kb:
        incidents = kb.list_incidents()
    typer.echo("")
    print_incidents(incidents)
    if quick:
        return
    from ..analysis.pipeline import analyze as run_analysis
    from ..postmortem.runner import run as run_nb
    from workbench.reports import export_report

    typer.echo(f"\nanalysing {incident} ...")
    analysis = run_analysis(ws, incident, who="demo")
    for h in analysis.hypotheses[:3]:
        typer.echo(f"  #{h.rank} {percent(h.confidence):>4}  {clip(h.service, 40)} / {h.cause}: {clip(h.summary, 200)}")
    typer.echo(f"executing the postmortem notebook of {incident} ...")
    nb = run_nb(ws, incident, who="demo")
    typer.echo(f"exporting the report of {incident} ...")
    report_path = export_report(ws, incident)
    typer.echo("")
    typer.echo(f"notebook: {nb.output_path}")
    typer.echo(f"  open it: .venv/bin/jupyter lab --notebook-dir {ws.root} {nb.output_path}")
    typer.echo(f"report:   {report_path} (standalone, works offline)")
    typer.echo(f"serve:    .venv/bin/workbench serve -w {ws.root}   (http://127.0.0.1:5006/)")
