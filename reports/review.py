"""The review meeting's pack as Panel: one offline HTML file and a tab of ``workbench serve``.

:class:`ReviewPackView` receives a :class:`workbench.review_pack.ReviewPack` (the core computed
every figure) and lays it out; it reads nothing. Every data string reaches the page through
:mod:`workbench.reports.safe` (escaped); in the served app (``sortable=True``) the big tables are
Tabulators (sortable, cells escaped by their default formatter). :func:`export_review_pack` writes
the standalone file with the same guarantees as the incident report (:mod:`workbench.reports.export`:
Panel's CDN stylesheets inlined, zero external requests, the content hash in a ``<meta>``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote

import holoviews as hv
import pandas as pd
import panel as pn

from workbench.formats import clip

from . import charts, safe, text
from .export import write_page
from .safe import Markup, badge, fmt, table

__all__ = ["ReviewPackView", "ReviewTab", "export_review_pack", "trend_charts", "fix_timeline"]

_STATE_CLASS = {"proposed": "warn", "accepted": "ok", "rejected": "", "holds": "ok", "violated": "bad",
                "no_data": "warn", "inconclusive": "warn", "done": "ok", "open": "warn", "in_progress": "warn",
                "fewer": "ok", "not fewer": "bad", "too few": "warn"}
_KIND_TITLES = {"prevent": "prevent", "detect": "detect", "mitigate": "mitigate", "process": "process"}


def _section(title: str, body: Markup, test_id: str) -> pn.pane.HTML:
    return safe.pane(safe.section(fmt("<h2>{0}</h2>{1}", title, body), test_id))


def _seconds(value: Any) -> str:
    return "unknown" if value is None else text.seconds_text(float(value))


def _stats(d: Mapping[str, Any]) -> str:
    """``12 min 5 s (3 known, 1 unknown)`` of a :class:`~workbench.kpis.summary.DurationStats` dict."""
    return f"{_seconds(d.get('mean_s'))} ({d.get('n_known', 0)} known, {d.get('n_unknown', 0)} unknown)"


def _share(hits: int, n: int, value: Any) -> str:
    return text.MISSING if value is None else f"{text.percent(value)} ({hits} of {n})"


def _muted(value: str) -> Markup:
    return fmt('<span class="muted">{0}</span>', value)


@dataclass
class ReviewPackView:
    """The pack laid out, section by section.

    Parameters
    ----------
    pack : workbench.review_pack.ReviewPack
    base : path, optional
        Folder of the HTML file being written: incidents whose report exists link to it by a
        relative path (none in the served app).
    sortable : bool
        Tabulators instead of static tables (the served app).
    """

    pack: Any
    base: Path | None = None
    sortable: bool = False

    # ------------------------------------------------------------------ pieces

    def _table(self, rows: list[tuple[Any, ...]], header: Sequence[str], empty: str, nowrap: Sequence[int] = (),
               frame: pd.DataFrame | None = None) -> Any:
        """A static escaped table, or (sortable) a Tabulator of ``frame`` (plain text cells)."""
        if self.sortable and frame is not None and not frame.empty:
            # "textarea" wraps long values and, like the default "plaintext", escapes them (never "html")
            wrap = {c: {"type": "textarea"} for c in frame.columns if frame[c].astype(str).str.len().max() > 24}
            return pn.widgets.Tabulator(frame, disabled=True, show_index=False, selectable=False, layout="fit_columns",
                                        formatters=wrap, pagination="local", page_size=20,
                                        sizing_mode="stretch_width")
        return safe.pane(safe.section(table(rows, header, empty, nowrap)))

    def _incident(self, incident_id: str) -> Markup:
        path = self.pack.reports.get(incident_id)
        if path is None or self.base is None:
            return fmt('<span class="id">{0}</span>', incident_id)
        rel = quote(Path(os.path.relpath(path, self.base)).as_posix())  # a relative path: no scheme survives quote()
        return fmt('<a class="id" href="{0}" data-testid="report-link">{1}</a>', rel, incident_id)

    def header(self) -> Markup:
        p, pack = self.pack.period, self.pack
        if not pack.signoffs:
            state = badge("not signed off", "warn")
        elif pack.approved():
            state = badge("signed off on this content", "ok")
        else:
            state = badge("content changed since the last sign-off", "bad")
        signoffs = [(s.name, s.role, text.when(s.at), fmt('<span class="hash">{0}</span>', s.content_hash),
                     badge("this content", "ok") if s.content_hash == pack.content_hash else badge("earlier content", "warn"))
                    for s in pack.signoffs]
        return safe.section(fmt(
            '<div class="id">review pack · {key}</div><h1 data-testid="pack-title">Postmortem review: {since} – {until}</h1>'
            '<div>{service}{state}</div>'
            '<p class="muted">Incidents that started in the period; figures taken at {as_of}; previous period '
            '{p0} – {p1}. Generated {generated}.</p>'
            '<div><b>Content hash</b> <span class="hash" data-testid="content-hash">{hash}</span></div>'
            '<h3>Sign-offs</h3>{signoffs}',
            key=p.key, since=text.when(p.since, None), until=text.when(p.until, None),
            service=badge(f"service: {p.service}") if p.service else Markup(""), state=state, as_of=text.when(p.as_of),
            p0=text.when(p.previous.since, None), p1=text.when(p.previous.until, None),
            generated=text.when(pack.generated_at), hash=pack.content_hash,
            signoffs=table(signoffs, ("name", "role", "at", "content hash", "approves"),
                           "no sign-offs yet (workbench review-signoff FILE --as NAME --role ROLE)")), "pack-header")

    def incidents(self) -> list[Any]:
        s = self.pack.sections["incidents"]
        d = s["durations"]
        sev = ", ".join(f"{k} {v}" for k, v in s["by_severity"].items()) or "none"
        head = fmt('<p><b data-testid="pack-incident-count">{0}</b> incident(s) ({1}; {2} follow-up review(s)). '
                   'MTTD {3}; MTTM {4}; MTTR {5}. A missing phase time is unknown: left out of the mean, counted.</p>',
                   s["count"], sev, s["follow_ups"], _stats(d["mttd"]), _stats(d["mttm"]), _stats(d["mttr"]))
        rows, plain = [], []
        for r in s["rows"]:
            rows.append((self._incident(r["incident_id"]), fmt('<span class="text">{0}</span>', r["title"]),
                         badge(r["severity"], "sev"), ", ".join(r["services"]), r["status"], text.when(r["started"], False),
                         _seconds(r["mttd_s"]), _seconds(r["mttr_s"]), r["cause"] or _muted("not confirmed"),
                         r["follow_up_of"] or ""))
            plain.append((r["incident_id"], r["title"], r["severity"], ", ".join(r["services"]), r["status"],
                          text.when(r["started"], False), _seconds(r["mttd_s"]), _seconds(r["mttr_s"]),
                          r["cause"] or "not confirmed", r["follow_up_of"] or ""))
        header = ("incident", "title", "sev", "services", "status", "started", "MTTD", "MTTR", "confirmed cause",
                  "follow-up of")
        return [_section("Incidents", head, "pack-incidents"),
                self._table(rows, header, "no incidents in the period", (0, 5), pd.DataFrame(plain, columns=header))]

    def engine(self) -> Markup:
        e = self.pack.sections["engine"]
        now, before = e["accuracy"]["period"], e["accuracy"]["previous"]
        acc = table([("this period", now["n_incidents"], now["n_ranked"], _share(now["hits1"], now["n_ranked"], now["ac1"]),
                      _share(now["hits3"], now["n_ranked"], now["ac3"])),
                     ("previous period", before["n_incidents"], before["n_ranked"],
                      _share(before["hits1"], before["n_ranked"], before["ac1"]),
                      _share(before["hits3"], before["n_ranked"], before["ac3"]))],
                    ("", "confirmed causes", "ranked by the engine", "AC@1", "AC@3"))
        rows = [(r["incident_id"], f"{r['service']} / {r['cause']}",
                 _muted("not ranked: added by a person") if r["rank"] is None else f"#{r['rank']}",
                 text.percent(r["confidence"]), r["reviewer"] or text.MISSING) for r in e["confirmed"]]
        confirmed = table(rows, ("incident", "confirmed cause", "engine rank", "stated confidence", "reviewer"),
                          "no cause confirmed in the period", (0, 2, 3))
        missed = safe.items([fmt("{0}: {1} / {2}, confirmed by {3}", r["incident_id"], r["service"], r["cause"],
                                 r["reviewer"]) for r in e["missed"]], "none: the engine ranked every confirmed cause")
        return fmt('<p class="muted">For each confirmed cause, the rank the engine gave it and the confidence it '
                   'stated. AC@k: share of the ranked causes at rank k or better.</p>{0}{1}'
                   '<h3>Causes the engine missed (added by a person)</h3>{2}<h3>Calibration</h3>{3}',
                   acc, confirmed, missed, self.calibration())

    def calibration(self) -> Markup:
        c = self.pack.sections["engine"]["calibration"]
        rows = [(b["bin"], b["cases"], text.percent(b["predicted"]), text.percent(b["observed"])) for b in c["bins"]]
        note = (f"{c['cases']} decided hypothesis(es) with a stated confidence, {c['right']} right; Brier score "
                f"{text.number(c['brier'], 3)}.")
        if not c["enough"]:
            note += f" Too few to say how well calibrated it is (at least {c['min_cases']} cases needed)."
        return fmt('<p data-testid="calibration-note">{0}</p>{1}', note,
                   table(rows, ("stated confidence", "cases", "mean stated", "how often right")) if c["cases"] else Markup(""))

    def fixes(self) -> list[Any]:
        f = self.pack.sections["fixes"]
        head = fmt('<p><b data-testid="pack-fix-count">{0}</b> action item(s) due or done in the period: {1} done, '
                   '{2} overdue. Verdicts: the verification checks over time (holds / violated / no data / '
                   'inconclusive); expected: the criterion promised; observed: the latest check.</p>',
                   f["count"], f["done"], f["overdue"])
        rows, plain = [], []
        for r in f["rows"]:
            due = fmt("{0} {1}", r["due"], badge(f"overdue {r['days_overdue']} d", "bad")) if r["overdue"] else (r["due"] or "—")
            change = r["applied_by"] or {}
            applied = text.when(r["fixed_at"], False) if r["fixed_at"] else "—"
            if change:
                applied = fmt("{0} <span class=\"muted\">by {1}</span>", applied,
                              " ".join(str(v) for k, v in change.items() if k in ("service", "version", "commit")))
            counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in r["counts"].items() if v) or "not checked yet"
            latest = badge(r["latest"], _STATE_CLASS.get(r["latest"], "")) if r["latest"] else _muted("not checked")
            rows.append((fmt('<span class="text" data-testid="fix-title">{0}</span>', r["title"]), r["incident_id"],
                         r["owner"], r["kind"], badge(r["status"], _STATE_CLASS.get(r["status"], "")), due, applied,
                         fmt("{0} {1}", latest, _muted(counts)), r["expected"] or _muted("no criterion"),
                         r["observed"] or "—"))
            plain.append((r["title"], r["incident_id"], r["owner"], r["kind"], r["status"], r["due"] or "—",
                          r["fixed_at"] or "—", r["latest"] or "not checked", r["expected"] or "no criterion",
                          r["observed"] or "—"))
        header = ("action", "incident", "owner", "kind", "status", "due", "applied", "verification", "expected",
                  "observed")
        return [_section("Fixes", head, "pack-fixes"),
                self._table(rows, header, "no action item was due or done in the period", (1, 5),
                            pd.DataFrame(plain, columns=header))]

    def interventions(self) -> Markup:
        s = self.pack.sections["interventions"]

        def rows(groups: Mapping[str, Any]) -> list[tuple[Any, ...]]:
            out = []
            for name, g in groups.items():
                b, a = g["before"], g["after"]
                out.append((name, f"{g['judged']} of {g['fixes']}",
                            f"{text.number(b['per_30_days'])} ({b['incidents']} in {text.number(b['days'], 1)} d)",
                            f"{text.number(a['per_30_days'])} ({a['incidents']} in {text.number(a['days'], 1)} d)",
                            _stats(b["mttr"]), _stats(a["mttr"]), g["recurred_after"],
                            fmt('{0} <span class="text">{1}</span>', badge(g["verdict"], _STATE_CLASS.get(g["verdict"], "")),
                                g["statement"])))
            return out

        header = ("group", "fixes judged", "similar incidents / 30 d before", "after", "MTTR before", "MTTR after",
                  "recurred after", "what it says")
        return fmt('<p class="muted">Similar incidents (same signature, same confirmed cause, follow-up reviews) '
                   'in equal windows of up to {0} days before and after each fix; a fix is judged after {1} days; '
                   'fewer than {2} judged fixes: too few to say.</p><h3>Per action-item kind</h3>{3}'
                   '<h3>Per service</h3>{4}', f"{s['window_days']:g}", s["min_after_days"], s["min_fixes"],
                   table(rows(s["by_kind"]), header, nowrap=(0,)),
                   table(rows(s["by_service"]), header, "no fix applied yet", nowrap=(0,)))

    def recurrences(self) -> Markup:
        r = self.pack.sections["recurrences"]
        checks = [(text.when(c["at"], False), c["incident_id"], text.number(c["similarity"]), ", ".join(c["reasons"]),
                   c["follow_up_id"] or "—") for c in r["checks"]]
        follow = [(f["incident_id"], f["follow_up_of"], fmt('<span class="text">{0}</span>', f["title"]), f["status"],
                   text.when(f["started"], False)) for f in r["follow_ups"]]
        return fmt("{0}<h3>Follow-up reviews opened</h3>{1}",
                   table(checks, ("found at", "incident", "similarity", "why", "follow-up review"),
                         "no recurrence found in the period", (0,)),
                   table(follow, ("review", "of", "title", "status", "started"), "none", (4,)))

    def suggestions(self) -> Markup:
        s = self.pack.sections["suggestions"]
        rows = [(badge(r["kind"] or "?"), r["incident_id"], fmt('<span class="text">{0}</span>', r["text"]),
                 badge(r["status"], _STATE_CLASS.get(r["status"], "")),
                 fmt("{0} {1}", r["decided_by"], _muted(text.when(r["decided_at"], False))) if r["decided_by"] else "—",
                 r["rationale"] or "", r["action_item_id"] or "") for r in s["rows"]]
        c = s["counts"]
        return fmt('<p>{0} proposed, {1} accepted, {2} rejected (accept or reject with <code>workbench suggestion '
                   'accept|reject</code>).</p>{3}', c["proposed"], c["accepted"], c["rejected"],
                   table(rows, ("kind", "incident", "suggestion", "state", "decided by", "why", "action item"),
                         "no runbook or alert suggestion"))

    def ownership(self) -> list[Any]:
        o = self.pack.sections["ownership"]
        leads = [(x["owner"], x["reviews"], text.percent(x["share"]), ", ".join(x["incidents"])) for x in o["review_leads"]]
        owners = [(x["owner"], x["items"], x["done"], x["open"], x["overdue"], x["no_due"]) for x in o["action_owners"]]
        late_rows = [(x["owner"], fmt('<span class="text">{0}</span>', x["title"]), x["incident_id"], x["due"],
                      x["days_overdue"]) for x in o["overdue"]]
        late_plain = [(x["owner"], x["title"], x["incident_id"], x["due"], x["days_overdue"]) for x in o["overdue"]]
        rotation = badge("concentrated", "bad") if o["rotation"]["concentrated"] else Markup("")
        head = fmt('<p data-testid="rotation">{0} {1}</p>{2}<p class="muted">Review lead: the reviewer who confirmed '
                   'the cause; without one the review is unassigned ({3}).</p><h3>Action items per owner</h3>{4}'
                   '<h3>Overdue action items by owner</h3><p><b data-testid="pack-overdue-count">{5}</b> overdue at {6}.</p>',
                   o["rotation"]["statement"], rotation,
                   table(leads, ("review lead", "reviews", "share", "incidents"), "no review lead yet"),
                   ", ".join(o["unassigned"]) or "none",
                   table(owners, ("owner", "items", "done", "open", "overdue", "no due date"), "no action items"),
                   len(o["overdue"]), text.when(self.pack.period.as_of, None))
        header = ("owner", "action", "incident", "due", "days overdue")
        return [_section("Ownership", head, "pack-ownership"),
                self._table(late_rows, header, "nothing overdue", (2, 3), pd.DataFrame(late_plain, columns=header))]

    def decisions(self) -> Markup:
        d = self.pack.sections["decisions"]
        sug = [(text.when(x["at"], False), x["who"], x["incident_id"], x["key"], badge(x["status"], _STATE_CLASS.get(x["status"], "")),
                x["rationale"] or "") for x in d["suggestions"]]
        items = [(text.when(x["at"], False), x["who"], x["action_item_id"], x["field"],
                  safe.code(x["old"]) if x["old"] is not None else "", safe.code(x["new"])) for x in d["action_items"]]
        return fmt("<h3>Suggestions</h3>{0}<h3>Action items (created, reopened or closed, new owner, new due date)</h3>{1}",
                   table(sug, ("at", "who", "incident", "suggestion", "decision", "why"), "none", (0,)),
                   table(items, ("at", "who", "action item", "change", "from", "to"), "none", (0,)))

    def charts(self) -> list[hv.Element]:
        return [*trend_charts(self.pack.sections["trend"]["months"]), fix_timeline(self.pack.sections["fixes"]["rows"])]

    def __panel__(self) -> pn.viewable.Viewable:
        plots = [pn.pane.HoloViews(c, backend="bokeh", linked_axes=False) for c in self.charts() if c is not None]
        plots = [pn.Row(*plots[:2], sizing_mode="stretch_width"), *plots[2:]]  # the two half-width trends side by side
        footer = safe.pane(safe.section(fmt('<p class="muted">Review pack {0}, generated by postmortem-workbench. '
                                            'Content hash {1}.</p>', self.pack.period.key, self.pack.content_hash),
                                        "footer"))
        return pn.Column(
            safe.pane(self.header()), *self.incidents(),
            _section("The engine against the reviewers", self.engine(), "pack-engine"), *self.fixes(),
            _section("Which interventions reduce recurrence", self.interventions(), "pack-interventions"),
            _section("Recurrences and follow-up reviews", self.recurrences(), "pack-recurrences"),
            _section("Runbook and alert suggestions", self.suggestions(), "pack-suggestions"), *self.ownership(),
            _section("Decisions in the period", self.decisions(), "pack-decisions"),
            _section("Trends", fmt('<p class="muted">Per month over the previous period and this one.</p>'), "pack-trends"),
            *plots, footer, sizing_mode="stretch_width", max_width=charts.WIDTH + 40,
            styles={"margin": "0 auto", "padding": "8px 16px"})


class ReviewTab:
    """The served app's "Review" tab: the pack of the last 30, 90 or 365 days (of one service),
    with sortable tables; the pack is computed by the core (:func:`workbench.review_pack.review_pack`).

    Parameters
    ----------
    workspace : Workspace
    services : sequence of str
        Choices of the service filter.
    """

    PERIODS = {"last 30 days": 30, "last 90 days": 90, "last 365 days": 365}

    def __init__(self, workspace: Any, services: Sequence[str] = ()):
        self.workspace = workspace
        self.days = pn.widgets.Select(label="Period", options=self.PERIODS, value=30, width=220)
        self.service = pn.widgets.Select(label="Service", options={"(any)": "", **{s: s for s in services}}, value="",
                                         width=220)

    def view(self, days: int, service: str) -> pn.viewable.Viewable:
        from workbench.review_pack import Period, review_pack

        return ReviewPackView(review_pack(self.workspace, Period.last(int(days), service or None)), sortable=True).__panel__()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.Row(self.days, self.service),
                         pn.param.ParamFunction(pn.bind(self.view, self.days, self.service), loading_indicator=True),
                         sizing_mode="stretch_width")


# --------------------------------------------------------------------------- charts

def trend_charts(months: Sequence[Mapping[str, Any]], width: int = charts.WIDTH) -> list[hv.Element]:
    """MTTR by month, incidents and recurrences by month, and the engine's AC@1/AC@3 by month."""
    frame = pd.DataFrame(list(months), columns=["month", "incidents", "mttr_s", "mttr_known", "mttr_unknown",
                                                "recurrences", "follow_ups", "ranked", "ac1", "ac3"])
    frame["mttr_min"] = pd.to_numeric(frame["mttr_s"], errors="coerce") / 60
    month = hv.Dimension("month", label="month (UTC)")
    mttr = hv.Bars(frame, month, [hv.Dimension("mttr_min", label="MTTR (min, mean of known)"), "mttr_known",
                                  "mttr_unknown"]).opts(
        width=width // 2 - 10, height=260, color="#0969da", tools=["hover"], title="MTTR by month", toolbar="above",
        hover_tooltips=[("month", "@month"), ("MTTR (min)", "@mttr_min{0.0}"), ("known", "@mttr_known"),
                        ("unknown", "@mttr_unknown")])
    counts = frame.melt(id_vars=["month"], value_vars=["incidents", "recurrences"], var_name="what", value_name="n")
    bars = hv.Bars(counts, [month, "what"], hv.Dimension("n", label="count")).opts(
        width=width // 2 - 10, height=260, tools=["hover"], title="Incidents and recurrences by month", toolbar="above",
        multi_level=False, color=hv.dim("what").categorize({"incidents": "#8c959f", "recurrences": "#cf222e"}))
    acc = frame.melt(id_vars=["month", "ranked"], value_vars=["ac1", "ac3"], var_name="k", value_name="accuracy")
    acc["accuracy"] = pd.to_numeric(acc["accuracy"], errors="coerce")
    lines = {k: hv.Curve(acc[acc["k"] == k], month, ["accuracy", "ranked"]).opts(tools=["hover"], line_width=2)
             * hv.Scatter(acc[acc["k"] == k], month, ["accuracy", "ranked"]).opts(size=8, tools=["hover"])
             for k in ("ac1", "ac3")}
    accuracy = hv.NdOverlay({"AC@1": lines["ac1"], "AC@3": lines["ac3"]}, kdims="k").opts(
        width=width, height=260, title="The engine's accuracy by month (ranked confirmed causes)", ylim=(0, 1.05),
        legend_position="top_left", show_grid=True, toolbar="above")
    return [mttr, bars, accuracy]


def fix_timeline(rows: Iterable[Mapping[str, Any]], width: int = charts.WIDTH) -> hv.Element | None:
    """Fix outcomes as a timeline: each fix's verification verdicts at the end of the window they
    examined (green holds, red violated, amber no data / inconclusive); None without any check."""
    points = [{"time": pd.Timestamp(v["window_end"]), "verdict": v["verdict"], "score": v["worst"],
               "what": clip(f"{r['action_item_id']}: {r['title']}", 60)} for r in rows for v in r["verdicts"]]
    if not points:
        return None
    return charts.verdict_chart(pd.DataFrame(points), width=width).opts(title="Fix outcomes over time")


# --------------------------------------------------------------------------- export

def export_review_pack(pack: Any, out: str | os.PathLike[str]) -> Path:
    """Write ``pack`` as one standalone HTML file at ``out`` (atomically) and return the path.

    Raises
    ------
    workbench.reports.ReportError
        The saved page would still load something from the network.
    """
    path = Path(out)
    view = ReviewPackView(pack, base=path.resolve().parent)
    meta = {"workbench-review-pack": pack.period.key, "workbench-content-hash": pack.content_hash,
            "workbench-since": pack.period.to_dict()["since"], "workbench-until": pack.period.to_dict()["until"],
            "workbench-as-of": pack.period.to_dict()["as_of"], "workbench-service": pack.period.service or ""}
    return write_page(view.__panel__(), path, f"Postmortem review {pack.period.key}", meta)
