"""Recheck loop: cost per incident at scale, and the recurrence threshold's calibration on the sample.

Usage (from the repo root)::

    python benchmarks/recheck.py --incidents 1000 --json out.json        # one timed run, 2 workers
    python benchmarks/recheck.py --incidents 1000 --scale --json out.json # + 100/300/1000 and 1h/6h/24h
    python benchmarks/recheck.py --calibrate --json calib.json           # similarity on sliding windows

Timing (``--incidents N``): a temp workspace with the sample (``--data``, default ``data/sample``)
ingested and its four evaluation incidents analysed (their signatures stored); then a synthetic
watch list of N incidents: copies of the sample's ten incidents, cycled, each moved back by a
whole number of weeks (so its own window ends before the checked one; the copies of the six past
incidents have no telemetry and are compared through their confirmed hypothesis), with the
original's stored signature copied and one action item with a verification criterion (one of
four, on the sample's metrics). ``recheck(all=True)`` is timed over the 6 h window ending at the
recurrence INC-20261106-001's resolution, so the copies of INC-20261102-001 and of
INC-20261106-001 recur (a recurrence-heavy run: follow-ups and notifications are recorded too),
with ``--workers`` processes (default 2). Reported: total wall time, compute and record time,
per-incident cost (wall / N and mean worker seconds), verdict counts, and a second run over the
same window (the steady state: no first-check work, no new follow-ups).

``--scale`` adds runs for 100, 300 and 1000 incidents (6 h) and for 1 h, 6 h and 24 h windows
(1000 incidents), each on a fresh copy of the knowledge base (the telemetry is shared).
``--cold K`` times K incidents without a stored signature (computed from their own window once).

Calibration (``--calibrate``): for each evaluation incident of the sample, the loop's own
per-incident computation (:func:`workbench.loop.checks.check_incident`) over every ``--window`` window
ending on the hour through the sample's week (after the first day, which is baseline); each
(incident, window) pair is labelled from ``labels.yaml`` (benchmarks and tests may read it, the
code never): ``same_cause`` (the window overlaps another evaluation incident with the same root-
cause service and cause: for the evaluation incidents exactly the labelled ``recurrence_of``),
``other`` (it overlaps another evaluation incident) or ``calm``; skipped when inside the incident's
own window. ``--documents`` adds the six past incidents, known only by their confirmed hypothesis
(document signatures). Reported: per label, signature kind and incident the max, the 99th and
50th percentile of the similarity, and how many reach :data:`workbench.loop.checks.RECUR_MIN`.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from workbench import yamlio

import workbench
from workbench.loop import rechecks as loop
from workbench.analysis.pipeline import analyze, read_signature, write_signature
from workbench.telemetry.ingest import ingest
from workbench.telemetry.windows import analysis_window

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
EVALUATION = ("INC-20261102-001", "INC-20261103-001", "INC-20261105-001", "INC-20261106-001")
#: The checked window ends at the resolution of the sample's recurrence.
UNTIL = pd.Timestamp("2026-11-06T16:05:00Z")
CRITERIA = [
    {"signal": "metric", "service": "payments", "metric": "error_rate", "aggregate": "max", "comparator": "<",
     "threshold": 0.5, "duration": "1d", "window": "5min"},
    {"signal": "metric", "service": "checkout", "metric": "latency_p99_ms", "aggregate": "p99", "comparator": "<",
     "threshold": 5000, "duration": "1d", "window": "5min"},
    {"signal": "metric", "service": "orders", "metric": "db_pool_usage", "aggregate": "max", "comparator": "<",
     "threshold": 0.98, "duration": "1d", "window": "15min"},
    {"signal": "metric", "service": "frontend", "metric": "error_rate", "aggregate": "mean", "comparator": "<",
     "threshold": 0.05, "duration": "6h", "window": "5min"},
]


def prepare(root: Path, data: Path) -> workbench.Workspace:
    """A workspace with ``data`` ingested and the evaluation incidents analysed."""
    ws = workbench.init(root)
    ingest(ws, str(data), who="benchmark")
    for iid in EVALUATION:
        analyze(ws, iid)
    return ws


def add_watch_list(ws: workbench.Workspace, n: int, *, signatures: bool = True, prefix: str = "BENCH") -> list[str]:
    """``n`` copies of the sample's incidents (see the module docstring); returns their ids."""
    kb = ws.knowledge_base()
    try:
        originals = kb.list_incidents()
        originals = [i for i in originals if not i.id.startswith(prefix)]
        sigs = {i.id: read_signature(ws, i.id) for i in originals}
        confirmed = {i.id: kb.list_hypotheses(i.id, status="confirmed") for i in originals}
        ids = []
        with kb.transaction():
            for k in range(n):
                src = originals[k % len(originals)]
                shift = pd.Timedelta(weeks=1 + k // len(originals))
                iid = f"{prefix}-{k + 1:05d}"
                moved = {key: (getattr(src, key) - shift if getattr(src, key) is not None else None)
                         for key in ("started", "detected", "mitigated", "resolved", "window_start", "window_end")}
                kb.create_incident(id=iid, title=f"copy of {src.id}: {src.title}", services=list(src.services),
                                   severity=src.severity, environment=src.environment,
                                   status=("monitoring", "resolved")[k % 2], labels=dict(src.labels),
                                   links=[dict(link) for link in src.links], who="benchmark", **moved)
                for h in confirmed[src.id]:
                    kb.add_hypothesis(iid, service=h.service, cause=h.cause, summary=h.summary, score=h.score,
                                      evidence=list(h.evidence), status="confirmed", reviewer=h.reviewer,
                                      rationale=h.rationale, who="benchmark")
                kb.add_action_item(iid, title=f"verify fix {k % len(CRITERIA)}", owner="sre", kind="prevent",
                                   status="done", verification=CRITERIA[k % len(CRITERIA)], who="benchmark")
                ids.append(iid)
        if signatures:
            for k, iid in enumerate(ids):
                sig = sigs[originals[k % len(originals)].id]
                if sig is not None:
                    data = sig.to_dict()
                    data["incident_id"] = iid
                    write_signature(ws, iid, type(sig).from_dict(data))
        # Only the copies are under watch: the originals are closed for the timing runs.
        for inc in originals:
            if inc.status in loop.WATCHED:
                kb.update_incident(inc.id, inc.version, "benchmark", status="closed")
    finally:
        kb.close()
    return ids


def fresh_copy(ws: workbench.Workspace, dest: Path) -> workbench.Workspace:
    """A copy of the workspace with its own knowledge base and signatures, sharing the telemetry."""
    dest.mkdir(parents=True)
    for item in ws.root.iterdir():
        if item.name == "telemetry":
            (dest / "telemetry").symlink_to(item.resolve(), target_is_directory=True)
        elif item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy2(item, dest / item.name)
    return workbench.open_workspace(dest)


def timed(ws: workbench.Workspace, *, window: str, workers: int, executor: str = "local", ids=None) -> dict:
    t0 = time.perf_counter()
    rep = loop.recheck(ws, ids, all=ids is None, until=UNTIL, window=window, executor=executor, workers=workers)
    wall = time.perf_counter() - t0
    n = len(rep.results)
    seconds = [r.seconds for r in rep.results]
    return {
        "incidents": n, "window": window, "workers": rep.workers, "executor": rep.executor,
        "wall_s": round(wall, 2), "compute_s": round(rep.timings["compute"], 2),
        "record_s": round(rep.timings["record"], 2), "per_incident_wall_ms": round(1000 * wall / n, 2) if n else None,
        "per_incident_worker_ms_mean": round(1000 * statistics.mean(seconds), 2) if n else None,
        "per_incident_worker_ms_median": round(1000 * statistics.median(seconds), 2) if n else None,
        "cache_hits": sum(r.cached for r in rep.results), "counts": rep.counts(),
        "follow_ups": len(rep.follow_ups), "errors": [r.error for r in rep.errors][:3],
    }


def bench(args: argparse.Namespace) -> dict:
    out: dict = {"cpu_count": os.cpu_count(), "until": str(UNTIL), "data": str(args.data)}
    with tempfile.TemporaryDirectory(prefix="wb-recheck-") as tmp:
        t0 = time.perf_counter()
        base = prepare(Path(tmp) / "base", args.data)
        out["prepare_s"] = round(time.perf_counter() - t0, 1)
        ids = add_watch_list(base, args.incidents)
        print(f"prepared {args.incidents} incidents in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        ws = fresh_copy(base, Path(tmp) / "main")
        out["main"] = timed(ws, window=args.window, workers=args.workers, executor=args.executor)
        print(f"main: {out['main']}", file=sys.stderr)
        out["second_run"] = timed(ws, window=args.window, workers=args.workers, executor=args.executor)
        print(f"second run: {out['second_run']}", file=sys.stderr)
        if args.scale:
            out["by_count"] = []
            for n in (100, 300, 1000):
                if n > args.incidents:
                    continue
                ws_n = fresh_copy(base, Path(tmp) / f"count-{n}")
                out["by_count"].append(timed(ws_n, window="6h", workers=args.workers, ids=ids[:n]))
                print(f"count {n}: {out['by_count'][-1]}", file=sys.stderr)
            out["by_window"] = []
            for window in ("1h", "6h", "24h"):
                ws_w = fresh_copy(base, Path(tmp) / f"window-{window}")
                out["by_window"].append(timed(ws_w, window=window, workers=args.workers))
                print(f"window {window}: {out['by_window'][-1]}", file=sys.stderr)
        if args.cold:
            ws_c = fresh_copy(base, Path(tmp) / "cold")
            cold = add_watch_list(ws_c, args.cold, signatures=False, prefix="COLD")
            # Copies of the evaluation incidents keep their own (unshifted) telemetry only when
            # unshifted: move them back to their originals' windows for the cold measurement.
            kb = ws_c.knowledge_base()
            try:
                originals = {i.id: i for i in kb.list_incidents() if i.id.startswith("INC-")}
                for k, iid in enumerate(cold):
                    src = list(originals.values())[k % len(originals)]
                    inc = kb.get_incident(iid)
                    kb.update_incident(iid, inc.version, "benchmark", started=src.started, detected=src.detected,
                                       mitigated=src.mitigated, resolved=src.resolved)
            finally:
                kb.close()
            out["cold"] = timed(ws_c, window="6h", workers=args.workers, ids=cold)
            out["cold"]["note"] = "no stored signature: each computed once from its own window"
            print(f"cold: {out['cold']}", file=sys.stderr)
    return out


# --------------------------------------------------------------------------- calibration

def calibrate(args: argparse.Namespace) -> dict:
    labels = yamlio.load((args.data / "labels.yaml").read_text(encoding="utf-8"), str(args.data / "labels.yaml"))
    truth = {i["id"]: i for i in labels["incidents"]}
    window = pd.Timedelta(args.window)
    with tempfile.TemporaryDirectory(prefix="wb-calibrate-") as tmp:
        ws = prepare(Path(tmp) / "ws", args.data)
        kb = ws.knowledge_base()
        incidents = kb.list_incidents()
        own = {i.id: analysis_window(i) for i in incidents}
        # What each checked incident was: the labelled root cause, or a past incident's confirmed one.
        cause = {iid: (truth[iid]["root_cause_service"], truth[iid]["cause"]) for iid in EVALUATION}
        checked = list(EVALUATION)
        if args.documents:
            for inc in incidents:
                confirmed = kb.list_hypotheses(inc.id, status="confirmed")
                if inc.id not in cause and confirmed:
                    cause[inc.id] = (confirmed[0].service, confirmed[0].cause)
                    checked.append(inc.id)
        kb.close()
        first, last = ws.telemetry().time_range("metrics")
        until = (first + pd.Timedelta(days=1) + window).ceil("h")
        ends = []
        while until <= last + pd.Timedelta(minutes=1):
            ends.append(until)
            until += pd.Timedelta(args.step)
        tasks = [(str(ws.root), iid, end - window, end, loop.RECUR_MIN, "calibrate") for end in ends
                 for iid in checked]
        ctx = multiprocessing.get_context("forkserver")
        t0 = time.perf_counter()
        with cf.ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
            results = list(pool.map(_calibration_task, tasks, chunksize=len(checked)))
        seconds = time.perf_counter() - t0
    rows = []
    for task, result in zip(tasks, results):
        _, iid, start, end, *_ = task
        if result["similarity"] is None:
            continue
        # The window holds an evaluation incident with the same root cause (for the evaluation
        # incidents that is exactly labels.yaml's recurrence_of), another one, or none.
        inside = [e for e in EVALUATION if e != iid and _overlaps((start, end), own[e])]
        label = "calm"
        if any(cause[e] == cause[iid] for e in inside):
            label = "same_cause"
        elif inside:
            label = "other"
        rows.append({"incident": iid, "until": str(end), "label": label, "source": result["source"], **result})
    frame = pd.DataFrame(rows)
    summary = []
    for (label, iid), group in frame.groupby(["label", "incident"]):
        s = group["similarity"]
        summary.append({"label": label, "incident": iid, "signature": group["source"].iloc[0], "n": int(len(s)),
                        "max": round(float(s.max()), 4), "p99": round(float(s.quantile(0.99)), 4),
                        "p50": round(float(s.median()), 4), "min": round(float(s.min()), 4),
                        "at_or_above_threshold": int((s >= loop.RECUR_MIN).sum())})
    by_label = {f"{label}/{source}": {"n": int(len(g)), "max": round(float(g["similarity"].max()), 4),
                                      "p99": round(float(g["similarity"].quantile(0.99)), 4),
                                      "min": round(float(g["similarity"].min()), 4),
                                      "at_or_above_threshold": int((g["similarity"] >= loop.RECUR_MIN).sum())}
                for (label, source), g in frame.groupby(["label", "source"])}
    return {"window": args.window, "step": args.step, "threshold": loop.RECUR_MIN, "windows": len(ends),
            "incidents": checked, "seconds": round(seconds, 1), "by_label": by_label, "summary": summary,
            "top_calm": frame[frame["label"] == "calm"].nlargest(5, "similarity").to_dict("records"),
            "same_cause": frame[frame["label"] == "same_cause"].to_dict("records")}


def _calibration_task(task: tuple) -> dict:
    r = loop.check_incident(*task)
    return {"similarity": r.similarity, "source": r.signature_source, "origin": (r.current or {}).get("origin"),
            "cause": (r.current or {}).get("cause"), "error": r.error}


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SAMPLE, help="Sample-layout folder (default data/sample).")
    parser.add_argument("--incidents", type=int, default=1000, help="Synthetic watch-list size.")
    parser.add_argument("--workers", type=int, default=2, help="Worker processes.")
    parser.add_argument("--executor", default="local", help="local, dask-local or dask://HOST:PORT.")
    parser.add_argument("--window", default="6h", help="Checked window length.")
    parser.add_argument("--scale", action="store_true", help="Also 100/300/1000 incidents and 1h/6h/24h windows.")
    parser.add_argument("--cold", type=int, default=0, help="Also time K incidents without stored signatures.")
    parser.add_argument("--calibrate", action="store_true", help="Similarity on sliding windows instead of timing.")
    parser.add_argument("--step", default="1h", help="Calibration: distance between window ends.")
    parser.add_argument("--documents", action="store_true",
                        help="Calibration: also the past incidents known only by their confirmed hypothesis.")
    parser.add_argument("--json", type=Path, help="Write the results here.")
    args = parser.parse_args(argv)
    result = calibrate(args) if args.calibrate else bench(args)
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
