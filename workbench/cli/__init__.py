"""The ``workbench`` command: a thin layer over the library.

Library errors (:class:`~workbench.errors.WorkbenchError`) become one-line messages with exit code
2 in exactly one place, :func:`main`. Commands that list or show things take ``--json``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from typer._click import exceptions as click_exc

from .. import config
from ..workspace import init as init_workspace, open_workspace
from ..errors import WorkbenchError
from ..formats import aware_time, clip, key_value

app = typer.Typer(help="Postmortem workbench: evidence, hypotheses and follow-up for every incident.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
incident_app = typer.Typer(help="Create, list, show, export and import incidents.", no_args_is_help=True)
app.add_typer(incident_app, name="incident")

WorkspaceOpt = typer.Option(None, "--workspace", "-w", envvar=config.HOME_ENV,
                            help="Workspace folder (default: $WORKBENCH_HOME, then the current folder).")
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str))


def _time(value: Optional[str], name: str):
    """An aware UTC time from an option (None stays None); anything else is a usage error."""

    if value is None:
        return None
    try:
        return aware_time(value, name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{name}: "), param_hint=name) from None


@app.command()
def init(path: Optional[Path] = typer.Argument(None, help="Folder of the new workspace (default: $WORKBENCH_HOME or .)."),
         database_url: Optional[str] = typer.Option(None, help="Knowledge base URL (default: SQLite file in the workspace)."),
         as_json: bool = JsonOpt) -> None:
    """Create a workspace (idempotent): workbench.toml, the knowledge base and the telemetry folder."""
    ws = init_workspace(path, database_url=database_url)
    if as_json:
        _echo_json({"workspace": str(ws.root), "database_url": ws.database_url})
    else:
        typer.echo(f"workspace ready: {ws.root}")


@app.command()
def ingest(source: str = typer.Argument(..., help="Source URL: scheme:location (files, otlp, nezha) or a folder with manifest.yaml."),
           workspace: Optional[Path] = WorkspaceOpt,
           start: Optional[str] = typer.Option(None, help="Only telemetry at or after this time (ISO 8601 with zone)."),
           end: Optional[str] = typer.Option(None, help="Only telemetry before this time (ISO 8601 with zone)."),
           option: list[str] = typer.Option([], "--option", "-o", help="Source option key=value (repeatable), e.g. -o table=metrics."),
           as_json: bool = JsonOpt) -> None:
    """Validate a source's telemetry into the workspace and import the incidents it describes.

    All or nothing: on any error the workspace is left as it was. Ingesting the same data twice
    adds nothing.
    """
    from tqdm import tqdm

    from ..telemetry.ingest import ingest as run_ingest

    options = dict(_key_value(o) for o in option)
    ws = open_workspace(workspace)
    with tqdm(desc="ingest", unit="step", file=sys.stderr, disable=None, leave=False) as bar:
        def progress(text: str) -> None:
            bar.set_postfix_str(text[-60:])
            bar.update(1)
        result = run_ingest(ws, source, start=_time(start, "--start"), end=_time(end, "--end"), who="cli", progress=progress, **options)
    if as_json:
        _echo_json(result.to_dict())
        return
    typer.echo(f"ingested {result.source} in {result.seconds:.1f} s")
    for table, n in result.rows_read.items():
        if n or result.rows_added.get(table):
            typer.echo(f"  {table:<9} read {n:>9,}  added {result.rows_added.get(table, 0):>9,}  already stored {result.rows_present.get(table, 0):>9,}")
    if result.duplicates_dropped:
        typer.echo(f"  duplicate rows inside the source dropped: {result.duplicates_dropped:,}")
    typer.echo(f"  incidents: {len(result.incidents_added)} added, {len(result.incidents_updated)} updated, {len(result.incidents_unchanged)} unchanged")


def _key_value(text: str, param_hint: str = "--option") -> tuple[str, str]:
    return key_value(text, param_hint, typer.BadParameter, identifier=True)


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
        _echo_json(summary)
    else:
        typer.echo(f"sample written to {out}")
        for key, value in summary.items():
            typer.echo(f"  {key}: {value}")


@app.command()
def sources() -> None:
    """List the registered source schemes."""
    from ..telemetry import sources as registry

    for name in registry.names():
        cls = registry.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{name:<8} {doc[0] if doc else ''}")


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
    _print_incidents(incidents)
    if quick:
        return
    from ..analysis.pipeline import analyze as run_analysis
    from ..postmortem.runner import run as run_nb
    from workbench.reports import export_report

    typer.echo(f"\nanalysing {incident} ...")
    analysis = run_analysis(ws, incident, who="demo")
    for h in analysis.hypotheses[:3]:
        typer.echo(f"  #{h.rank} {h.score:5.2f}  {h.service} / {h.cause}: {h.summary}")
    typer.echo(f"executing the postmortem notebook of {incident} ...")
    nb = run_nb(ws, incident, who="demo")
    typer.echo(f"exporting the report of {incident} ...")
    report_path = export_report(ws, incident)
    typer.echo("")
    typer.echo(f"notebook: {nb.output_path}")
    typer.echo(f"  open it: .venv/bin/jupyter lab --notebook-dir {ws.root} {nb.output_path}")
    typer.echo(f"report:   {report_path} (standalone, works offline)")
    typer.echo(f"serve:    .venv/bin/workbench serve -w {ws.root}   (http://127.0.0.1:5006/)")


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
    """Cross-incident metrics: MTTD, MTTR, time to mitigate, recurrence, action items (definitions in the README)."""
    from ..kpis import metrics as m

    ws = open_workspace(workspace)
    kb = ws.knowledge_base()
    try:
        since_ts, until_ts = _time(since, "--since"), _time(until, "--until")
        if before_after:
            result = m.before_after(kb, before_after, severity=severity, label=label)
        elif accuracy:
            result = m.accuracy(kb, since=since_ts, until=until_ts, service=service, severity=severity, label=label)
        else:
            result = m.summarize(kb, since=since_ts, until=until_ts, service=service, severity=severity, label=label)
    finally:
        kb.close()
    if as_json:
        _echo_json(result.to_dict())
    else:
        typer.echo(m.format_table(result))


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
        _echo_json({"path": str(path), "bytes": path.stat().st_size, "content_hash": meta.get("workbench-content-hash")})
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
        _echo_json(record.to_dict())
    else:
        typer.echo(f"{name} ({role}) signed {incident_id} at content hash {record.content_hash}")


@app.command()
def review(incident_id: str = typer.Argument(..., help="Incident id."),
           confirm: Optional[str] = typer.Option(None, "--confirm", metavar="SERVICE/CAUSE", help="Confirm this hypothesis, e.g. payments/change."),
           reject: Optional[str] = typer.Option(None, "--reject", metavar="SERVICE/CAUSE", help="Reject this hypothesis."),
           name: str = typer.Option(..., "--as", help="Who decides (recorded as the reviewer)."),
           why: str = typer.Option(..., "--why", help="The rationale (required: the next reviewer reads it)."),
           add: bool = typer.Option(False, "--add", help="Record the cause even if the engine did not propose it."),
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
        stored = reviewing.decide(kb, incident_id, service, cause, status, reviewer=name, rationale=why, add=add)
    if as_json:
        _echo_json(stored.to_dict())
    else:
        rank = "not ranked by the engine" if stored.rank is None else f"ranked #{stored.rank}"
        typer.echo(f"{incident_id}: {stored.service}/{stored.cause} {stored.status} by {stored.reviewer} "
                   f"({rank}; version {stored.version})")


@app.command("run")
def run_notebook(incident_id: Optional[str] = typer.Argument(None, help="Incident id (or --all)."),
                 template: str = typer.Option("postmortem", help="Template name in notebooks/templates/ or a path to an .ipynb."),
                 parameter: list[str] = typer.Option([], "--parameter", "-p", help="Template parameter key=value (repeatable; the value is parsed as YAML, so 24 is a number)."),
                 all_incidents: bool = typer.Option(False, "--all", help="Run every incident (with --since: those started since then)."),
                 since: Optional[str] = typer.Option(None, help="With --all: only incidents started at or after this time."),
                 workspace: Optional[Path] = WorkspaceOpt,
                 as_json: bool = JsonOpt) -> None:
    """Execute the postmortem notebook of an incident with papermill (previous runs are kept, timestamped)."""
    import yaml

    from ..postmortem import runner as notebook

    params = {}
    for item in parameter:
        key, value = _key_value(item, "--parameter")
        try:
            params[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            params[key] = value
    ws = open_workspace(workspace)
    if all_incidents or since:
        results = notebook.run_many(ws, None if not incident_id else [incident_id], since=_time(since, "--since") if since else "1970-01-01T00:00:00Z",
                                    template=template, parameters=params or None, who="cli")
        summary = notebook.summarize(results)
        if as_json:
            _echo_json(summary)
        else:
            typer.echo(f"{summary['succeeded']} succeeded, {summary['failed']} failed in {summary['seconds']:.0f} s")
            for f in summary["failures"]:
                typer.echo(f"  {f['incident_id']}: {f.get('ename', 'error')}: {f.get('evalue', '')} (cell {f.get('cell_index')})")
        if summary["failed"]:
            raise typer.Exit(1)
        return
    if not incident_id:
        raise typer.BadParameter("give an incident id, or --all", param_hint="INCIDENT_ID")
    result = notebook.run(ws, incident_id, template=template, parameters=params or None, who="cli")
    if as_json:
        _echo_json(result.to_dict())
    else:
        typer.echo(f"executed {result.output_path} in {result.seconds:.1f} s")
        typer.echo(f"open it: .venv/bin/jupyter lab --notebook-dir {ws.root} {result.output_path}")


@app.command()
def recheck(incident_ids: list[str] = typer.Argument(None, help="Incidents to check (any status)."),
            all_incidents: bool = typer.Option(False, "--all", help="Every incident under watch (resolved, monitoring, recurred)."),
            since: Optional[str] = typer.Option(None, help="Start of the checked window (default: --until minus --window)."),
            until: Optional[str] = typer.Option(None, help="End of the checked window (default: now, capped at the telemetry's end)."),
            window: str = typer.Option("6h", help="Length of the checked window, e.g. 6h, 7d."),
            executor: str = typer.Option("local", help="local (process pool), serial, dask-local, or dask://HOST:PORT."),
            report: bool = typer.Option(False, "--report", help="Also execute the recurrence notebook of every incident that recurred."),
            workspace: Optional[Path] = WorkspaceOpt,
            as_json: bool = JsonOpt) -> None:
    """Check watched incidents for recurrence and every open action item's criterion; record each check."""
    from ..loop import rechecks as loop

    ws = open_workspace(workspace)
    result = loop.recheck(ws, incident_ids or None, all=all_incidents, since=_time(since, "--since"),
                          until=_time(until, "--until"), window=window, executor=executor, report=report, who="cli")
    if as_json:
        _echo_json(result.to_dict())
    else:
        typer.echo(result.summary())
    if result.errors:  # a recurrence is a finding (exit 0); an incident that could not be checked is not
        raise typer.Exit(1)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
def serve(port: int = typer.Option(5006, help="Port to listen on."),
          address: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback needs --basic-auth."),
          basic_auth: Optional[Path] = typer.Option(None, "--basic-auth", help="File holding the password of Panel's basic auth (required off loopback)."),
          tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="PEM certificate (chain) to serve HTTPS with; needs --tls-key."),
          tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
          allow_plain_http: bool = typer.Option(False, "--allow-plain-http", help="Off loopback without --tls-cert: only when a proxy in front terminates TLS."),
          incident: Optional[str] = typer.Option(None, help="Incident shown first."),
          workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Serve the workbench app: incident list, reports, overdue action items, cross-incident metrics."""
    from workbench.reports.app import serve as serve_app

    if address not in LOOPBACK and basic_auth is None:
        raise typer.BadParameter(f"binding to {address} exposes the workbench beyond this machine; give --basic-auth FILE",
                                 param_hint="--address")
    kwargs: dict[str, Any] = {}
    if basic_auth is not None:
        try:
            password = basic_auth.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {basic_auth}: {exc}", param_hint="--basic-auth") from None
        if len(password) < 12:
            raise typer.BadParameter("the basic-auth password must have at least 12 characters", param_hint="--basic-auth")
        import secrets

        kwargs.update(basic_auth=password, cookie_secret=secrets.token_hex(32))
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key, or neither", param_hint="--tls-cert")
    if tls_cert is not None:
        kwargs.update(_tls_options(tls_cert, tls_key))
    elif address not in LOOPBACK and not allow_plain_http:
        # The login form would send the password in clear text across the network.
        raise typer.BadParameter(f"binding to {address} without TLS sends the password in clear text; give --tls-cert "
                                 f"and --tls-key, or --allow-plain-http when a proxy in front terminates TLS",
                                 param_hint="--address")
    ws = open_workspace(workspace)
    scheme = "https" if tls_cert is not None else "http"
    typer.echo(f"serving {ws.root} on {scheme}://{address}:{port}/ (Ctrl-C stops)")
    serve_app(ws, incident_id=incident, port=port, address=address, **kwargs)


def _tls_options(cert: Path, key: Path) -> dict[str, str]:
    """Bokeh's ``ssl_certfile``/``ssl_keyfile`` after checking the pair loads (a clear error now
    instead of a traceback when the server starts)."""
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise typer.BadParameter(f"cannot load the certificate {cert} with the key {key}: {exc}",
                                 param_hint="--tls-cert") from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


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
        _echo_json([n.to_dict() for n in items])
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
        _echo_json(report.to_dict())
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
        _echo_json([n.to_dict() for n in items])
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
    when = _time(as_of, "--as-of") or datetime.now(timezone.utc)
    with ws.knowledge_base() as kb:
        outbox.attach(kb, ws.settings)
        report = nudging.nudge(kb, ws.settings, when)
    if as_json:
        _echo_json(report.to_dict())
    else:
        typer.echo(report.summary())


# ---------------------------------------------------------------- incident commands

def _print_incidents(incidents) -> None:
    if not incidents:
        typer.echo("no incidents")
        return
    typer.echo(f"{'id':<24} {'sev':<5} {'status':<11} {'started (UTC)':<17} {'window (UTC)':<35} title")
    for inc in incidents:
        started = inc.started.strftime("%Y-%m-%d %H:%M") if inc.started else "?"
        window = _window_text(inc)
        typer.echo(f"{inc.id:<24} {inc.severity:<5} {inc.status:<11} {started:<17} {window:<35} {inc.title}")


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
                 workspace: Optional[Path] = WorkspaceOpt,
                 as_json: bool = JsonOpt) -> None:
    """Open a new incident; prints its id (or the whole record with --json)."""
    ws = open_workspace(workspace)
    kb = ws.knowledge_base()
    try:
        inc = kb.create_incident(title=title, started=_time(started, "--started"),
                                 services=[s.strip() for s in services.split(",") if s.strip()],
                                 severity=severity, environment=environment,
                                 detected=_time(detected, "--detected"), who="cli")
    finally:
        kb.close()
    if as_json:
        _echo_json(inc.to_dict())
    else:
        typer.echo(inc.id)


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
        _echo_json([i.to_dict() for i in incidents])
    else:
        _print_incidents(incidents)


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
            _echo_json(data)
        else:
            typer.echo(kb.export_incident(incident_id), nl=False)
    finally:
        kb.close()


@incident_app.command("export")
def incident_export(incident_ids: list[str] = typer.Argument(None, help="Incident ids (default: all)."),
                    out: Path = typer.Option(Path("postmortems"), "--out", help="Folder to write <id>.yaml files into."),
                    workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Export incidents as YAML documents (one file each, stable key order) for review in git."""
    ws = open_workspace(workspace)
    kb = ws.knowledge_base()
    try:
        ids = incident_ids or [i.id for i in kb.list_incidents()]
        out.mkdir(parents=True, exist_ok=True)
        for incident_id in ids:
            path = out / f"{incident_id}.yaml"
            path.write_text(kb.export_incident(incident_id), encoding="utf-8")
            typer.echo(str(path))
    finally:
        kb.close()


@incident_app.command("import")
def incident_import(files: list[Path] = typer.Argument(..., help="YAML documents written by `incident export`."),
                    workspace: Optional[Path] = WorkspaceOpt,
                    as_json: bool = JsonOpt) -> None:
    """Import (create or update) incidents from YAML documents, all in one transaction."""
    import yaml

    from ..errors import SourceError
    from ..telemetry.ingest import import_document
    from ..store.documents import validate_document

    docs = []
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise SourceError(f"{path}: cannot read incident document: {exc}") from None
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
        _echo_json([{"id": inc.id, "action": action} for action, inc in outcomes])
    else:
        for action, inc in outcomes:
            typer.echo(f"{inc.id}: {action}")


# ---------------------------------------------------------------- analysis

@app.command()
def analyze(incident_id: Optional[str] = typer.Argument(None, help="Incident id (or --all)."),
            all_incidents: bool = typer.Option(False, "--all", help="Analyse every incident of the workspace."),
            workspace: Optional[Path] = WorkspaceOpt,
            detector: Optional[str] = typer.Option(None, help="Metric detector (default: the workspace's `detector` setting)."),
            no_store: bool = typer.Option(False, "--no-store", help="Do not store the ranking and signature (a dry run)."),
            top: int = typer.Option(5, min=1, help="Hypotheses shown per incident."),
            evidence: int = typer.Option(3, min=0, help="Evidence lines shown per hypothesis."),
            as_json: bool = JsonOpt) -> None:
    """Rank root-cause hypotheses of an incident, with their evidence and similar past incidents.

    The ranking replaces the incident's proposed hypotheses (confirmed and rejected ones stay) and
    the incident's signature is written to incidents/<id>/signature.json, unless --no-store.
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
        _echo_json(data if all_incidents else data[0])


def _print_analysis(result, top: int, evidence: int) -> None:
    inc = result.incident
    start, end = result.window
    t = result.timings
    typer.echo(f"{inc['id']}  {inc.get('title') or ''}")
    typer.echo(f"window {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC, baseline from {result.baseline[0]:%Y-%m-%d %H:%M}"
               f"  (read {t.get('read', 0):.2f} s, detect {t.get('detect', 0):.2f} s, rank {t.get('rank', 0):.2f} s)")
    if not result.hypotheses:
        for note in result.notes:
            typer.echo(f"  {note}")
        return
    typer.echo(f"{'#':>3}  {'score':>6}  {'cause':<10} {'service':<16} summary")
    for hyp in result.hypotheses[:top]:
        typer.echo(f"{hyp.rank:>3}  {hyp.score:>6.3f}  {hyp.cause:<10} {hyp.service:<16} {hyp.summary}")
        for ev in hyp.evidence[:evidence]:
            when = f"{ev.time:%H:%M} " if ev.time is not None else ""
            typer.echo(f"{'':>13}- {ev.kind:<8} {when}{clip(ev.explanation or ev.signal, 110)}")
        for sim in hyp.similar[:2]:
            typer.echo(f"{'':>13}~ similar {sim['incident_id']} ({sim['similarity']:.2f}): confirmed "
                       f"{sim['cause']} in {sim['service']} - {sim['title']}")
    if len(result.hypotheses) > top:
        typer.echo(f"  ... {len(result.hypotheses) - top} more (--top)")
    if result.similar:
        typer.echo("similar incidents:")
        for sim in result.similar[:5]:
            cause = f"confirmed {sim['cause']} in {sim['service']}" if sim["cause"] else "no confirmed cause yet"
            typer.echo(f"  {sim['incident_id']}  {sim['similarity']:.2f}  {cause}  {sim['title']}")
    for note in result.notes:
        typer.echo(note)


# ---------------------------------------------------------------- entry point

def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every WorkbenchError becomes ``workbench: error: …`` and exit code 2."""
    try:
        app(args=argv, prog_name="workbench", standalone_mode=False)
    except WorkbenchError as exc:
        typer.echo(f"workbench: error: {exc}", err=True)
        return 2
    except click_exc.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    return 0

