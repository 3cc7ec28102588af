"""Seconds of the enrichment snapshot per incident, and of the review pack over a growing history.

Usage (from the repo root)::

    python benchmarks/review.py --data data/sample --json review.json
    python benchmarks/review.py --data data/sample --incidents 1000 --repeat 3

1. ``--data`` (a folder the ``files`` source reads) is ingested into a workspace in a temp folder
   and its incidents without a confirmed cause are analysed (``store=True``); then
   :func:`workbench.analysis.snapshot.attach` runs ``--repeat`` times per incident on the window the
   analysis read (the snapshot's own cost: the events of its 7 days, the neighbourhood's call
   statistics, the comparison with the stored one) and the median is kept.
2. ``--incidents N`` copies of those incidents are added through the knowledge base (shifted back a
   week per round, each with the confirmed cause of its original where there is one, one action item
   done with a verification check after it, one open and overdue), and the review pack of the last
   ``--days`` (all copies fall in it) is built ``--repeat`` times (:func:`workbench.review_pack.read`
   and :func:`~workbench.review_pack.build`, median kept) and written once as HTML
   (:func:`workbench.reports.review.export_review_pack`, wall seconds and bytes).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import workbench
from workbench.analysis import snapshot
from workbench.analysis.evidence import TelemetryWindow
from workbench.analysis.pipeline import analyze
from workbench.review_pack import Period, build, read
from workbench.store import KnowledgeBase
from workbench.telemetry.ingest import ingest
from workbench.telemetry.windows import analysis_window, baseline_window

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


def snapshots(ws: workbench.Workspace, repeat: int) -> dict:
    out = {}
    with ws.knowledge_base() as kb:
        ids = [i.id for i in kb.list_incidents() if not kb.list_hypotheses(i.id, status="confirmed")]
        for iid in ids:
            analyze(ws, iid)
            inc = kb.get_incident(iid)
            start, end = analysis_window(inc)
            window = TelemetryWindow.from_store(ws.telemetry(), baseline_window(inc)[0], start, end,
                                                step=ws.settings.step)
            seconds = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                snap = snapshot.attach(kb, ws.telemetry(), iid, window=window)
                seconds.append(time.perf_counter() - t0)
            out[iid] = {"seconds": round(statistics.median(seconds), 4), "versions": len(snap["versions"]),
                        "changes": len(snap["changes"]), "alerts": len(snap["alerts"]),
                        "edges": len(snap["neighbourhood"])}
    return out


def add_history(ws: workbench.Workspace, n: int, now: pd.Timestamp) -> None:
    clock = {"now": now.to_pydatetime()}
    with KnowledgeBase(ws.database_url, clock=lambda: clock["now"]) as kb:  # history times in the past
        originals = kb.list_incidents()
        confirmed = kb.confirmed_hypotheses()
        with kb.transaction():
            for k in range(n):
                src = originals[k % len(originals)]
                shift = pd.Timedelta(weeks=1 + k // len(originals))
                times = {key: (getattr(src, key) - shift if getattr(src, key) is not None else None)
                         for key in ("started", "detected", "mitigated", "resolved")}
                iid = f"BENCH-{k + 1:05d}"
                clock["now"] = times["started"] + pd.Timedelta(days=3)  # fixed 3 days later
                kb.create_incident(id=iid, title=f"copy of {src.id}", services=list(src.services), status="closed",
                                   severity=src.severity, who="benchmark", **times)
                for h in confirmed.get(src.id, ()):
                    kb.add_hypothesis(iid, service=h.service, cause=h.cause, summary=h.summary, score=h.score,
                                      rank=1 + k % 4, status="confirmed", reviewer=f"sre-{k % 5}",
                                      rationale="benchmark", who="benchmark")
                item = kb.add_action_item(iid, title=f"fix {k}", owner=f"team-{k % 7}", kind=("prevent", "detect",
                                          "mitigate", "process")[k % 4], status="done", who="benchmark",
                                          due=(times["started"] + pd.Timedelta(days=14)).date())
                kb.add_action_item(iid, title=f"follow up {k}", owner=f"team-{k % 7}", kind="process",
                                   due=(now - pd.Timedelta(days=1 + k % 30)).date(), who="benchmark")
                end = times["started"] + pd.Timedelta(days=2)
                kb.record_check(iid, window_start=end - pd.Timedelta(hours=6), window_end=end, at=end,
                                verdict=("holds", "violated", "no_data")[k % 3], score=0.1, action_item_id=item.id)


def bench(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ws = workbench.init(Path(tmp) / "ws")
        ingest(ws, str(args.data), who="benchmark")
        result = {"data": str(args.data), "repeat": args.repeat, "snapshot": snapshots(ws, args.repeat)}
        now = pd.Timestamp.now(tz="UTC").floor("s")
        t0 = time.perf_counter()
        add_history(ws, args.incidents, now)
        result["history"] = {"incidents_added": args.incidents, "seconds": round(time.perf_counter() - t0, 2)}
        period = Period.of(now - pd.Timedelta(days=args.days), now, now=now)
        reads, builds = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            records = read(ws, period)
            t1 = time.perf_counter()
            pack = build(records, period)
            reads.append(t1 - t0)
            builds.append(time.perf_counter() - t1)
        from workbench.reports.review import export_review_pack

        t0 = time.perf_counter()
        path = export_review_pack(pack, Path(tmp) / "pack.html")
        s = pack.sections
        result["pack"] = {"days": args.days, "incidents": s["incidents"]["count"], "fixes": s["fixes"]["count"],
                          "fix_windows": len(s["interventions"]["fixes"]), "overdue": len(s["ownership"]["overdue"]),
                          "read_s": round(statistics.median(reads), 3), "build_s": round(statistics.median(builds), 3),
                          "export_s": round(time.perf_counter() - t0, 2), "html_bytes": path.stat().st_size}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SAMPLE, help="Data folder to ingest (default data/sample).")
    parser.add_argument("--json", type=Path, help="Write the results as JSON here.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per measurement (median kept).")
    parser.add_argument("--incidents", type=int, default=200, help="Incidents added to the history.")
    parser.add_argument("--days", type=int, default=3650, help="Length of the pack's period, ending now.")
    args = parser.parse_args(argv)
    result = bench(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
