"""The executed notebook's outputs: each chapter as readable HTML and charts, one call per cell.

The template (``notebooks/templates/postmortem.ipynb``) calls these as ``show.<chapter>(ws,
incident_id, ...)``. Each function reads its data through the core (:mod:`workbench.postmortem.chapters`
for the tables, :mod:`workbench.postmortem.gather` for telemetry and scores) and returns one
displayable object:

- tables (:class:`~workbench.reports.embed.HTML`): times ``HH:MM:SS UTC`` with the date where it
  changes, scores rounded, no ``None``/``NaN``/``NaT`` (a dash instead), long text wrapped, long
  lists folded (``<details>``), every data string escaped (:mod:`workbench.reports.safe`);
- charts (:class:`~workbench.reports.embed.Charts`): the report's own chart functions
  (:mod:`workbench.reports.charts`), embedded so they draw without a kernel, in JupyterLab and in
  ``nbconvert --to html`` pages, after :func:`charts_setup` wrote BokehJS once.

Every object also has a plain-text form, so a script or a terminal shows something readable.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from . import text
from .embed import HTML, BokehJS, Charts
from .safe import CSS, Markup, badge, code, collapsible, fmt, items, join, link, section, table

__all__ = ["action_items", "analysis_notes", "charts_setup", "checks", "conclusions", "detection_gap", "evidence",
           "heatmap", "hypotheses", "hypothesis_evidence", "logs", "metrics", "open_workspace", "recurrence_summary",
           "signatures", "snapshot", "suggestions", "summary", "timeline", "verdicts", "verification_criteria"]

#: Width of a full-width chart in a notebook (JupyterLab's output area beside the file browser).
WIDTH = 900
#: Evidence items shown per service before the rest is folded.
TOP_ITEMS = 5
#: Services whose evidence is open; the others are folded.
OPEN_SERVICES = 3
#: Hypotheses whose evidence series are charted.
TOP_HYPOTHESES = 3
#: Status of a hypothesis, action item or check -> badge class.
STATUS_CLASS = {"confirmed": "ok", "rejected": "", "proposed": "warn", "done": "ok", "open": "warn",
                "in_progress": "warn", "wont_do": "", "holds": "ok", "clear": "ok", "violated": "bad",
                "recurred": "bad", "no_data": "warn", "inconclusive": "warn"}
_STYLE = Markup(f"<style>{CSS}\n.wb details > summary {{ cursor: pointer; color: #0969da; margin: 2px 0; }}\n"
                # JupyterLab styles rendered tables (fixed layout, right-aligned cells): the report's look wins
                ".jp-RenderedHTMLCommon .wb table { table-layout: auto; width: 100%; }\n"
                ".jp-RenderedHTMLCommon .wb th, .jp-RenderedHTMLCommon .wb td { text-align: left; "
                "vertical-align: top; max-width: none; }</style>")


def _pm() -> Any:
    from workbench.postmortem import chapters

    return chapters


def _gather() -> Any:
    from workbench.postmortem import gather

    return gather


def open_workspace(workspace: Any = None) -> Any:
    """The notebook's workspace: a :class:`~workbench.workspace.Workspace` as is, a folder opened,
    ``""``/None meaning ``$WORKBENCH_HOME`` then the current folder."""
    from workbench.workspace import Workspace, open_workspace as _open

    return workspace if isinstance(workspace, Workspace) else _open(workspace or None)


def styled(body: Markup, test_id: str | None = None) -> Markup:
    """``body`` in the report's styled container, with its stylesheet (a self-contained output)."""
    return _STYLE + section(body, test_id)


def _out(body: Markup, plain: str, test_id: str | None = None) -> HTML:
    return HTML(styled(body, test_id), plain)


def _window(ws: Any, incident_id: str, window_start: Any, window_end: Any) -> tuple[Any, Any] | None:
    if window_start in (None, "") and window_end in (None, ""):
        return None
    return _pm().window(ws, incident_id, window_start, window_end)


def _data(ws: Any, incident_id: str, window_start: Any = None, window_end: Any = None,
          baseline_hours: Any = None, records: bool = True) -> Any:
    return _gather().incident_data(ws, incident_id, window=_window(ws, incident_id, window_start, window_end),
                                   baseline_hours=baseline_hours, records=records, logs=False)


def charts_setup() -> BokehJS:
    """BokehJS for the notebook's charts, inline, once (the first chart cell needs it above)."""
    return BokehJS()


# --------------------------------------------------------------------------- summary

def summary(ws: Any, incident_id: str, *, window_start: Any = None, window_end: Any = None,
            baseline_hours: float = 24) -> HTML:
    """Title, severity, status, services, phases with durations, window, baseline, labels, links."""
    ws = open_workspace(ws)
    data = _data(ws, incident_id, window_start, window_end, baseline_hours, records=False)
    i = data.incident
    phases = [(p, getattr(i, p)) for p in ("started", "detected", "mitigated", "resolved")]
    clocks = text.clock_column(t for _, t in phases)
    rows = [(p, c, "" if t is None or p == "started" else text.duration(i.started, t)
             + (" (detection gap)" if p == "detected" else "")) for (p, t), c in zip(phases, clocks)]
    labels = join(badge(f"{k}: {v}") for k, v in sorted(i.labels.items())) or fmt('<span class="muted">none</span>')
    services = join(badge(s) for s in i.services) or fmt('<span class="muted">none</span>')
    links = join((link(l.get("title") or l.get("url"), l.get("url")) for l in i.links), Markup(" · ")) \
        or fmt('<span class="muted">none</span>')
    body = fmt(
        '<div class="id">{id} · {env}</div><h1 data-testid="incident-title">{title}</h1>'
        '<div>{sev}{status}</div><p><b>Services</b> {services}</p>{phases}'
        '<p class="muted">Analysis window {w0} – {w1}; baseline {b0} – {b1}.</p>'
        '<p><b>Labels</b> {labels}</p><p><b>Links</b> {links}</p>',
        id=i.id, env=i.environment, title=i.title, sev=badge(i.severity, "sev"), status=badge(f"status: {i.status}"),
        services=services, phases=table(rows, ("phase", "time", "since start"), nowrap=(1, 2)),
        w0=text.when(data.window[0]), w1=text.when(data.window[1]), b0=text.when(data.baseline[0]),
        b1=text.when(data.baseline[1]), labels=labels, links=links)
    plain = f"{i.id}: {i.title} ({i.severity}, {i.status}); started {text.when(i.started)}, " \
            f"detected after {text.duration(i.started, i.detected)}"
    return _out(body, plain, "summary")


def conclusions(ws: Any, incident_id: str, kind: str | None = None) -> HTML:
    """The written conclusions (of one ``kind``), oldest first, with author and time."""
    frame = _pm().conclusions(open_workspace(ws), incident_id, kind)
    rows = [fmt('<span class="text">{0}</span> <span class="muted">— {1}, {2}</span>', r.text, r.author,
                text.when(r.created)) for r in frame.itertuples()]
    what = (kind or "conclusion").replace("_", " ")
    body = items(rows, f"No {what} written yet (the conclusions editor below adds one).")
    plain = "\n".join(f"{r.text} — {r.author}" for r in frame.itertuples()) or f"no {what} written yet"
    return _out(body, plain, f"conclusions-{kind or 'all'}")


def snapshot(ws: Any, incident_id: str) -> HTML:
    """The system around the incident as the analysis saw it: deployed versions, changes, alerts that
    fired, callers and callees (the incident's enrichment snapshot, :mod:`workbench.reports.context`)."""
    from .context import snapshot_markup, snapshot_text

    with open_workspace(ws).knowledge_base() as kb:
        found = kb.get_incident(incident_id).snapshot
    return _out(snapshot_markup(found), snapshot_text(found), "snapshot")


# --------------------------------------------------------------------------- timeline and charts

def timeline(ws: Any, incident_id: str, *, window_start: Any = None, window_end: Any = None) -> Charts:
    """The timeline chart (phases, deploys, alerts, mitigations …) above the table of its events."""
    from . import charts

    ws = open_workspace(ws)
    data = _data(ws, incident_id, window_start, window_end, records=False)
    frame = _pm().timeline(ws, incident_id, window_start=window_start, window_end=window_end)
    rows = [(c, r.service, badge(r.kind, "warn" if r.source == "incident" else ""), fmt('<span class="text">{0}</span>', r.summary))
            for c, r in zip(text.clock_column(frame["time"]), frame.itertuples())]
    events = table(rows, ("time", "service", "kind", "summary"), "no events in the window", nowrap=(0, 2))
    chart = charts.timeline_chart(data.incident, data.events, data.window, width=WIDTH)
    after = styled(events if len(rows) <= 25 else collapsible(f"{len(rows)} events", events), "timeline")
    return Charts([chart], "Incident phases and events", after=after,
                  text_rows=[f"{c}  {r.service}  {r.kind}  {r.summary}"
                             for c, r in zip(text.clock_column(frame["time"]), frame.itertuples())])


def metrics(ws: Any, incident_id: str, *, window_start: Any = None, window_end: Any = None,
            limit: int = 4) -> Charts:
    """Key metrics of the incident's services over the window; the incident shaded, changes dashed."""
    from . import charts

    ws = open_workspace(ws)
    data = _data(ws, incident_id, window_start, window_end, records=False)
    services = data.chart_services()
    frame = data.window_metrics
    names = charts.key_metrics(frame, services, limit=limit) if services else []
    plots = [charts.metric_chart(frame, n, services, data.incident, data.events, data.window, width=WIDTH // 2 - 6)
             for n in names]
    note = fmt('<p class="muted">{0}: shaded, the incident (started → resolved); dashed, changes (deploy, config '
               'change, feature flag, scale).</p>', ", ".join(services) or "no service with metrics")
    return Charts(plots, "Key metrics", columns=2, before=styled(note, "metrics"))


def heatmap(ws: Any, incident_id: str, *, detector: str | None = None, window_start: Any = None,
            window_end: Any = None) -> Charts:
    """Services × time anomaly heatmap from the engine's own scores, likely origin on top."""
    from . import charts

    ws = open_workspace(ws)
    data = _data(ws, incident_id, window_start, window_end, records=False)
    scores = _gather().anomaly(data, detector)
    if scores.scores.empty:
        return Charts([], "Anomaly heatmap", before=styled(
            fmt('<p class="muted">No scores: no metrics with a baseline in the window.</p>'), "heatmap"))
    chart = charts.heatmap_chart(scores.scores, data.incident, data.window, scores.method, clip=scores.clip,
                                 floor=scores.floor, onset=scores.onset, width=WIDTH)
    note = fmt('<p class="muted">Score: {0}. Services ordered by onset (first sustained run at or above {1}; '
               'earliest on top). Dashed: started (red), detected (amber). With a kernel, the heatmap explorer '
               'below opens a clicked cell in the telemetry explorer.</p>', scores.method, f"{scores.onset:g}")
    return Charts([chart], "Anomaly heatmap", before=styled(note, "heatmap"))


# --------------------------------------------------------------------------- detection and evidence

def detection_gap(ws: Any, incident_id: str, *, detector: str | None = None) -> HTML:
    """When it started, when telemetry showed it, when it alerted and when a human noticed."""
    gap = _pm().detection_gap(open_workspace(ws), incident_id, detector=detector)
    moments = [("started", gap["started"], ""),
               ("first anomaly", gap["first_anomaly"], f"in {gap['origin']}" if gap.get("origin") else ""),
               ("first alert or page", gap["first_alert"], ""), ("detected", gap["detected"], "")]
    clocks = text.clock_column(t for _, t, _ in moments)
    rows = [(name, c, text.duration(gap["started"], t) if t and name != "started" else "", note)
            for (name, t, note), c in zip(moments, clocks)]
    lead = gap.get("anomaly_lead")
    verdict = (fmt("<p>Telemetry showed it <b>{0}</b> before detection.</p>", text.minutes_text(lead))
               if lead is not None and lead > 0 else Markup(""))
    body = fmt('<p>Time to detect: <b data-testid="time-to-detect">{0}</b>; first alert after {1}.</p>{2}{3}',
               text.minutes_text(gap["time_to_detect"]), text.minutes_text(gap["alert_delay"]), verdict,
               table(rows, ("moment", "time", "after start", "note"), nowrap=(1, 2)))
    plain = f"time to detect {text.minutes_text(gap['time_to_detect'])}; first anomaly {gap['first_anomaly']} " \
            f"in {gap.get('origin')}; first alert {gap['first_alert']}"
    return _out(body, plain, "detection")


def analysis_notes(ws: Any, incident_id: str, *, detector: str | None = None) -> HTML:
    """What the analysis did and how long it took."""
    frame = _pm().analysis_notes(open_workspace(ws), incident_id, detector=detector)
    notes = [r.text for r in frame.itertuples() if r.topic == "note"]
    seconds = [r.text for r in frame.itertuples() if r.topic == "seconds"]
    body = fmt("{0}{1}", items([fmt('<span class="text">{0}</span>', n) for n in notes], "no notes"),
               fmt('<p class="muted">Seconds: {0}</p>', ", ".join(seconds)) if seconds else Markup(""))
    return _out(body, "\n".join(notes) or "no notes", "analysis-notes")


def evidence(ws: Any, incident_id: str, *, detector: str | None = None, top: int = TOP_ITEMS) -> HTML:
    """Evidence per suspicious service (most suspicious first), strongest items first, the rest folded."""
    frame = _pm().evidence(open_workspace(ws), incident_id, detector=detector)
    if frame.empty:
        return _out(fmt('<p class="muted">No evidence: nothing suspicious, or the analysis did not run '
                        '(see the notes above).</p>'), "no evidence", "evidence")
    parts, plain = [], []
    order = list(dict.fromkeys(frame["service"]))
    for n, service in enumerate(order):
        part = frame[frame["service"] == service].copy()
        part["_m"] = part["magnitude"].abs().fillna(-1.0)
        part = part.sort_values("_m", ascending=False, kind="stable")
        rows = [(badge(r.kind), fmt('<span class="text">{0}</span>', r.signal), clock, text.number(r.magnitude),
                 text.plain(r.direction), fmt('<span class="text">{0}</span>', r.explanation))
                for r, clock in zip(part.itertuples(), _clocks(part["time"]))]
        header = ("kind", "signal", "time", "magnitude", "direction", "explanation")
        body = table(rows[:top], header, nowrap=(0, 2, 3))
        if len(rows) > top:
            body = body + collapsible(f"{len(rows) - top} more item(s) of {service}",
                                      table(rows[top:], header, nowrap=(0, 2, 3)))
        title = fmt("<h3>{0} <span class=\"muted\">suspicion {1}, {2} item(s)</span></h3>", service,
                    text.number(part["suspicion"].iloc[0]), len(rows))
        block = title + body
        parts.append(block if n < OPEN_SERVICES else collapsible(
            f"{service}: suspicion {text.number(part['suspicion'].iloc[0])}, {len(rows)} item(s)", body))
        plain.append(f"{service} (suspicion {text.number(part['suspicion'].iloc[0])}): {len(rows)} item(s)")
    return _out(join(parts), "\n".join(plain), "evidence")


def logs(ws: Any, incident_id: str, *, limit: int = 12) -> HTML:
    """The warning and error log templates while the incident lasted, most lines first (Drain3 in
    the core, :func:`workbench.postmortem.gather.log_templates`)."""
    ws = open_workspace(ws)
    data = _gather().incident_data(ws, incident_id, records=False)
    frame = _gather().log_templates(data, limit=limit)
    rows = [(r.service, r.count, text.when(r.first_seen), fmt("<code>{0}</code>", r.template),
             fmt("<code>{0}</code>", r.example)) for r in frame.itertuples()]
    body = table(rows, ("service", "lines", "first seen", "template", "example line"),
                 "No WARN or ERROR lines while the incident lasted.", nowrap=(1, 2))
    plain = "\n".join(f"{r.service}  {r.count}  {r.template}" for r in frame.itertuples()) or "no WARN or ERROR lines"
    return _out(body, plain, "logs")


def _clocks(values: Iterable[Any]) -> list[str]:
    # evidence rows are sorted by strength, not time: every time carries its own date
    return [text.when(v) for v in values]


# --------------------------------------------------------------------------- hypotheses

def hypotheses(ws: Any, incident_id: str, *, detector: str | None = None) -> HTML:
    """The ranked hypotheses with their review state (what the review widget shows, as a table)."""
    ws = open_workspace(ws)
    _pm().analysis(ws, incident_id, detector=detector)
    with ws.knowledge_base() as kb:
        records = kb.list_hypotheses(incident_id)
    return _out(hypotheses_markup(records), hypotheses_text(records), "hypotheses")


def hypotheses_markup(records: Sequence[Any]) -> Markup:
    """The hypotheses table: rank, service × cause, score (and calibrated confidence when there is
    one), status, summary, evidence and similar incidents, decision and rationale."""
    if not records:
        return fmt('<p class="muted">No hypotheses yet: run the analysis (<code>workbench analyze</code>) '
                   'to propose some.</p>')
    with_confidence = any(getattr(h, "confidence", None) is not None for h in records)
    rows = []
    for h in sorted(records, key=_review_order):
        similar = [s for s in h.similar if isinstance(s, Mapping)]
        sim = join((fmt("{0}{1}", s.get("incident_id", ""), f" ({s['service']} / {s['cause']})"
                        if s.get("cause") else "") for s in similar[:3]), Markup("<br>")) or text.MISSING
        decided = fmt('{0}: <span class="text">{1}</span>', h.reviewer, h.rationale) if h.reviewer else text.MISSING
        row = [text.plain(h.rank), fmt("<b>{0}</b> × {1}", h.service, h.cause), text.number(h.score)]
        if with_confidence:
            row.append(text.percent(getattr(h, "confidence", None)))
        row += [badge(h.status, STATUS_CLASS.get(h.status, "")), fmt('<span class="text">{0}</span>', h.summary),
                len(h.evidence), sim, decided]
        rows.append(tuple(row))
    header = ["rank", "hypothesis", "score", *(["confidence"] if with_confidence else []), "status", "summary",
              "evidence", "similar past incidents", "decision"]
    counts = {s: sum(h.status == s for h in records) for s in ("confirmed", "proposed", "rejected")}
    head = fmt('<p>{0} confirmed, {1} proposed, {2} rejected. The tool proposes; a person confirms or rejects, '
               'with a rationale (the review below, or <code>workbench review</code>).</p>',
               counts["confirmed"], counts["proposed"], counts["rejected"])
    return head + table(rows, header, nowrap=(0, 2, 4))


def hypotheses_text(records: Sequence[Any]) -> str:
    return "\n".join(f"#{h.rank if h.rank is not None else '-'} {h.service} × {h.cause}  score "
                     f"{text.number(h.score)}  {h.status}: {h.summary}" for h in sorted(records, key=_review_order)) \
        or "no hypotheses yet"


def _review_order(h: Any) -> tuple[int, float]:
    return ({"confirmed": 0, "proposed": 1, "rejected": 2}.get(h.status, 3), h.rank if h.rank is not None else 1e9)


def hypothesis_evidence(ws: Any, incident_id: str, *, detector: str | None = None, top: int = TOP_HYPOTHESES,
                        per_hypothesis: int = 1) -> Charts:
    """For each of the ``top`` hypotheses, the metric series its evidence names (on its service),
    the incident shaded, changes dashed and the service's onset dotted; hypotheses that point at
    the same series share one chart."""
    from . import charts

    ws = open_workspace(ws)
    result = _pm().analysis(ws, incident_id, detector=detector)
    data = _data(ws, incident_id)
    frame = data.window_metrics
    onsets = {} if result is None or result.onsets.empty else dict(zip(result.onsets["service"], result.onsets["onset"]))
    ranked = sorted((h for h in data.hypotheses if h.status != "rejected"), key=_review_order)[:top]
    series: dict[tuple[str, str], list[str]] = {}  # (service, metric) -> the hypotheses it backs
    listed = []
    for h in ranked:
        names = evidence_metrics(h, frame)[:per_hypothesis]
        for name in names:
            series.setdefault((h.service, name), []).append(f"#{text.plain(h.rank)} {h.cause}")
        listed.append(fmt("<li><b>#{0} {1} × {2}</b>: {3}</li>", text.plain(h.rank), h.service, h.cause,
                          ", ".join(names) or "no metric in its evidence"))
    plots = []
    for (service, name), backs in series.items():
        onset = onsets.get(service)
        chart = charts.metric_chart(frame, name, [service], data.incident, data.events, data.window,
                                    width=WIDTH // 2 - 6, onsets=[] if onset is None or pd.isna(onset) else [onset])
        plots.append(chart.opts(title=f"{service}: {name} ({', '.join(backs)})"))
    note = fmt('<p class="muted">The series behind the top hypotheses (shaded: the incident; dashed: changes; '
               'dotted: the service\'s onset).</p><ul>{0}</ul>', join(listed)) if listed else \
        fmt('<p class="muted">No hypotheses to chart.</p>')
    return Charts(plots, "Evidence of the top hypotheses", columns=2, before=styled(note, "hypothesis-evidence"))


def evidence_metrics(h: Any, metrics_frame: pd.DataFrame) -> list[str]:
    """Metric names a hypothesis' evidence points at (``signal: "metric <name>"``) that its service
    has in ``metrics_frame``, strongest first; the key metrics of the service when it names none."""
    from .charts import KEY_METRICS

    have = set(metrics_frame.loc[metrics_frame["service"] == h.service, "name"]) if not metrics_frame.empty else set()
    named = []
    for e in sorted((e for e in h.evidence if isinstance(e, Mapping)), key=lambda e: -abs(text.finite(
            e.get("magnitude")) or 0.0)):
        signal = str(e.get("signal") or "")
        if e.get("service", h.service) == h.service and signal.startswith("metric "):
            name = signal[len("metric "):].strip()
            if name in have and name not in named:
                named.append(name)
    return named or [m for m in KEY_METRICS if m in have]


# --------------------------------------------------------------------------- follow-up

def action_items(ws: Any, incident_id: str) -> HTML:
    """Action items: owner, due date (overdue marked), kind, status, how the fix is verified."""
    ws = open_workspace(ws)
    with ws.knowledge_base() as kb:
        records = kb.list_action_items(incident_id)
        checks_ = kb.list_checks(incident_id=incident_id)
    body = action_items_markup(records, checks_)
    plain = "\n".join(f"{a.title} — {a.owner}, {a.kind}, {a.status}, due {a.due or text.MISSING}" for a in records) \
        or "no action items"
    return _out(body, plain, "action-items")


def action_items_markup(records: Sequence[Any], checks_: Sequence[Any] = ()) -> Markup:
    today = pd.Timestamp.now(tz="UTC").date()
    latest: dict[str, Any] = {}
    for c in checks_:
        if c.action_item_id is not None and (c.action_item_id not in latest or c.at >= latest[c.action_item_id].at):
            latest[c.action_item_id] = c
    rows = []
    for a in records:
        overdue = a.due is not None and a.due < today and a.status in ("open", "in_progress")
        due = fmt("{0} {1}", a.due.isoformat(), badge("overdue", "bad")) if overdue else \
            (a.due.isoformat() if a.due else text.MISSING)
        check = latest.get(a.id)
        result = fmt('{0} <span class="muted">{1}</span>', badge(check.verdict, STATUS_CLASS.get(check.verdict, "")),
                     text.when(check.at)) if check else fmt('<span class="muted">not checked yet</span>')
        rows.append((fmt('<span class="text">{0}</span>', a.title), a.owner, due, a.kind,
                     badge(a.status, STATUS_CLASS.get(a.status, "")), _criterion(a.verification), result))
    return table(rows, ("action", "owner", "due", "kind", "status", "verification", "latest check"),
                 "No action items yet (the action items editor below adds them).", nowrap=(2, 3))


def _criterion(verification: Any) -> Markup:
    if verification is None:
        return fmt('<span class="muted">none</span>')
    try:
        from workbench.loop.criteria import describe

        return fmt('<span class="text">{0}</span>', describe(verification))
    except Exception:  # noqa: BLE001 - a criterion stored by an older version still shows, as JSON
        return code(verification)


# --------------------------------------------------------------------------- recurrence

def recurrence_summary(ws: Any, incident_id: str, *, since: Any = None, window_hours: float = 24) -> HTML:
    """Where the follow-up stands: checks so far, the last verdict, follow-up reviews, the next window."""
    frame = _pm().recurrence_summary(open_workspace(ws), incident_id, since=since, window_hours=window_hours)
    rows = [(r.field, fmt('<span class="text">{0}</span>', _readable_times(r.value))) for r in frame.itertuples()]
    return _out(table(rows, ("", "")), "\n".join(f"{r.field}: {r.value}" for r in frame.itertuples()),
                "recurrence-summary")


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


def _readable_times(value: Any) -> str:
    """ISO 8601 times inside a chapter's text as ``2026-11-02 14:03:00 UTC``."""
    return _ISO.sub(lambda m: text.when(m.group(0)), text.plain(value))


def checks(ws: Any, incident_id: str, *, since: Any = None) -> HTML:
    """Every recurrence and verification check, newest first, the older ones folded."""
    frame = _pm().checks(open_workspace(ws), incident_id, since=since).iloc[::-1]
    rows = [(c, badge(r.verdict, STATUS_CLASS.get(r.verdict, "")), text.number(r.score),
             fmt("{0} → {1}", text.when(r.window_start), text.when(r.window_end)),
             "recurrence" if text.missing(r.action_item_id) else fmt("action item {0}", r.action_item_id), r.evidence)
            for r, c in zip(frame.itertuples(), text.clock_column(frame["at"]))]
    header = ("checked at", "verdict", "score", "window", "what", "evidence items")
    body = table(rows[:20], header, "not checked yet", nowrap=(0, 1, 2))
    if len(rows) > 20:
        body = body + collapsible(f"{len(rows) - 20} older check(s)", table(rows[20:], header, nowrap=(0, 1, 2)))
    return _out(body, f"{len(rows)} check(s)", "checks")


def verdicts(ws: Any, incident_id: str, *, since: Any = None) -> Charts:
    """Verdicts over time as a chart: one row for the recurrence check, one per action item."""
    from . import charts

    ws = open_workspace(ws)
    frame = _pm().checks(ws, incident_id, since=since)
    with ws.knowledge_base() as kb:
        titles = {a.id: a.title for a in kb.list_action_items(incident_id)}
    # placed at the end of the window each check examined: the time the verdict is about (a replay
    # or a late recheck runs long after it)
    rows = pd.DataFrame({
        "time": frame["window_end"].fillna(frame["at"]), "verdict": frame["verdict"].astype(str),
        "what": ["recurrence" if text.missing(a) else f"action: {titles.get(a, a)}" for a in frame["action_item_id"]],
        "score": frame["score"]})
    plots = [charts.verdict_chart(rows, width=WIDTH)] if not rows.empty else []
    note = fmt('<p class="muted">{0} check(s), each at the end of the window it examined; green: holds / clear, '
               'red: violated / recurred, amber: no data or inconclusive.</p>', len(rows))
    return Charts(plots, "Verdicts over time", before=styled(note, "verdicts"))


def signatures(ws: Any, incident_id: str) -> HTML:
    """The incident's signature beside the last recurrence check's window: what moved, how much."""
    facts, frame = _pm().signature_comparison(open_workspace(ws), incident_id)
    if not facts["has_original"] and not facts["has_current"]:
        return _out(fmt('<p class="muted">No signature yet: the incident was not analysed, and no recurrence check '
                        'ran.</p>'), "no signature yet", "signatures")
    parts = facts["parts"]
    rows = [(r.aspect, fmt('<span class="text">{0}</span>', r.key) if r.key else "", _weight(r.original),
             _weight(r.current), text.number(parts.get(r.aspect)) if not r.key or r.Index == _first(frame, r.aspect)
             else "") for r in frame.itertuples()]
    head = fmt('<p>Last recurrence check {0} over {1} → {2}: {3}, similarity {4}.</p>', text.when(facts["checked_at"]),
               text.when(facts["window_start"]), text.when(facts["window_end"]),
               badge(facts["verdict"] or "not checked", STATUS_CLASS.get(facts["verdict"] or "", "")),
               text.number(facts["similarity"])) if facts["checked_at"] is not None else \
        fmt('<p class="muted">No recurrence check yet: only the incident\'s own signature.</p>')
    body = head + table(rows, ("aspect", "what", "original (incident)", "current (last check)", "similarity"),
                        nowrap=(0, 2, 3, 4))
    plain = f"signature of {incident_id}: {len(frame)} part(s); last check {text.when(facts['checked_at'])}"
    return _out(body, plain, "signatures")


def _weight(value: Any) -> Any:
    return text.number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else text.plain(value)


def _first(frame: pd.DataFrame, aspect: str) -> Any:
    return frame.index[frame["aspect"] == aspect][0]


def verification_criteria(ws: Any, incident_id: str) -> HTML:
    """The action items that say how their fix is verified."""
    ws = open_workspace(ws)
    with ws.knowledge_base() as kb:
        records = [a for a in kb.list_action_items(incident_id) if a.verification is not None]
    rows = [(fmt('<span class="text">{0}</span>', a.title), badge(a.status, STATUS_CLASS.get(a.status, "")),
             _criterion(a.verification)) for a in records]
    return _out(table(rows, ("action", "status", "verification"), "no action item has a verification criterion"),
                "\n".join(a.title for a in records) or "no criteria", "criteria")


def suggestions(ws: Any, incident_id: str) -> HTML:
    """Runbook and alert updates the recheck proposed."""
    frame = _pm().suggestions(open_workspace(ws), incident_id)
    rows = [(badge(r.kind), text.plain(r.service), fmt('<span class="text">{0}</span>', r.text),
             fmt('<span class="text">{0}</span>', r.reason), text.when(r.proposed), text.plain(r.key))
            for r in frame.itertuples()]
    # the key (``runbook:payments``) is how a reviewer names the proposal when accepting it
    return _out(table(rows, ("kind", "service", "suggestion", "why", "proposed", "key"), "no suggestions"),
                f"{len(rows)} suggestion(s)", "suggestions")
