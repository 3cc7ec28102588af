"""Seconds per incident of the whole analysis (read, detect, rank), warm, on the sample and on Nezha.

Usage (from the repo root)::

    python benchmarks/speed.py                                    # sample, plus nezha if ../shared is there
    python benchmarks/speed.py --nezha ../shared/data/nezha-trainticket --json speed.json
    python benchmarks/speed.py --no-nezha --repeat 3

For each data set: a workspace in a temp folder (or ``--workspace-dir`` to keep and reuse one:
ingest is skipped when it already holds incidents), the data ingested, one analysis run to warm
up (imports, numba compilation, DuckDB), then every evaluation incident analysed ``--repeat``
times with :func:`workbench.analysis.analyze` (``store=False``) and the median kept:

- ``read_s``: :meth:`TelemetryWindow.from_store` of ``[baseline start, window end)`` - the time
  to merely read the incident's telemetry;
- ``detect_s``: :func:`workbench.analysis.localize.localize`;
- ``rank_s``: correlation, ranking, signature and similar incidents;
- ``total_s``: the whole :func:`analyze` call (knowledge base reads included); ``cpu_s`` the
  same in CPU time of this process (on a shared machine the wall time depends on the others);
- ``ratio``: (detect + rank) / read - how many times the analysis costs what reading costs.

Nezha only, the accuracy of the same workspace path (labels from
:func:`workbench.evaluation.nezha.load_labels`, read by the benchmark, never by the analysis), scored
with :mod:`workbench.evaluation.topk` (``rank_of``, ``summarize``) so it compares with ``benchmarks/nezha.py``'s
in-memory path: ``rank`` = rank of the injected service among the analysis' suspicions (the
ranking benchmarks/nezha.py scores), ``rank_hypotheses`` = its rank among the distinct services of
the ranked hypotheses (what a reviewer sees); an incident with no ranking at all counts as a miss
(rank = the services of the topology and the ranking + 1). The summary holds AS@1/3/5 and the
mean rank of both, overall and per fault type.
The sample's incidents are the four evaluation incidents (those without a confirmed cause).
Target: at most 1 s per Nezha case, warm.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
import workbench

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
NEZHA = REPO.parent / "shared" / "data" / "nezha-trainticket"
TARGET_S = 1.0


def prepare(url: str, root: Path) -> tuple[object, float | None]:
    """A workspace at ``root`` holding ``url``'s data (ingest skipped when already there)."""
    from workbench.telemetry.ingest import ingest

    ws = workbench.init(root)
    kb = ws.knowledge_base()
    try:
        present = bool(kb.list_incidents())
    finally:
        kb.close()
    if present:
        return ws, None
    t0 = time.perf_counter()
    ingest(ws, url, who="benchmark")
    return ws, time.perf_counter() - t0


def evaluation_ids(ws) -> list[str]:
    """Incidents with telemetry to analyse: those nobody confirmed a cause for."""
    kb = ws.knowledge_base()
    try:
        return [i.id for i in kb.list_incidents() if not kb.list_hypotheses(i.id, status="confirmed")]
    finally:
        kb.close()


def bench(ws, ids: list[str], repeat: int, detector: str | None, labels: dict | None = None) -> list[dict]:
    from workbench.analysis.pipeline import analyze
    from workbench.evaluation.topk import rank_of

    if labels is not None:
        topology = ws.telemetry().query("topology")
        known = set(topology["caller"]) | set(topology["callee"])
    if ids:
        analyze(ws, ids[0], detector=detector, store=False)  # warm-up
    rows = []
    for iid in ids:
        runs, cpu = [], []
        for _ in range(repeat):
            c0 = time.process_time()
            runs.append(analyze(ws, iid, detector=detector, store=False))
            cpu.append(time.process_time() - c0)
        t = {k: statistics.median(r.timings.get(k, 0.0) for r in runs) for k in ("read", "detect", "rank", "total")}
        last = runs[-1]
        row = {"incident": iid, "read_s": round(t["read"], 4), "detect_s": round(t["detect"], 4),
               "rank_s": round(t["rank"], 4), "total_s": round(t["total"], 4),
               "cpu_s": round(statistics.median(cpu), 4),
               "ratio": round((t["detect"] + t["rank"]) / t["read"], 2) if t["read"] > 0 else None,
               "hypotheses": len(last.hypotheses),
               "top": None if not last.hypotheses else f"{last.hypotheses[0].service}/{last.hypotheses[0].cause}"}
        if labels is not None and iid in labels:
            truth = labels[iid]["service"]
            suspicions = [s.service for s in last.suspicions]
            services = list(dict.fromkeys(h.service for h in last.hypotheses))
            size = len(known | set(suspicions))  # an empty ranking is a miss, not rank 1
            row.update({"truth": f"{truth}/{labels[iid]['fault_type']}", "fault_type": labels[iid]["fault_type"],
                        "rank": rank_of(suspicions, truth, size),
                        "rank_hypotheses": rank_of(services, truth, size)})
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    if not rows:
        return {}
    out = {"incidents": len(rows)}
    for key in ("read_s", "detect_s", "rank_s", "total_s", "cpu_s", "ratio"):
        values = [r[key] for r in rows if r[key] is not None]
        out[f"median_{key}"] = round(statistics.median(values), 4) if values else None
        out[f"max_{key}"] = round(max(values), 4) if values else None
    out["within_target"] = sum(1 for r in rows if r["total_s"] <= TARGET_S)
    scored = [r for r in rows if "rank" in r]
    if scored:
        from workbench.evaluation.topk import summarize

        out["suspicions"] = summarize(scored)
        out["hypotheses"] = summarize([{**r, "rank": r["rank_hypotheses"]} for r in scored])
        out["suspicions_by_fault_type"] = out["suspicions"].pop("by_fault_type")
        out["hypotheses"].pop("by_fault_type")
    return out


def print_table(name: str, rows: list[dict], summ: dict, ingest_s: float | None) -> None:
    print(f"\n{name}" + (f"  (ingest {ingest_s:.1f} s)" if ingest_s is not None else ""))
    extra = "rank" in (rows[0] if rows else {})
    print(f"{'incident':<24} {'read':>6} {'detect':>7} {'rank':>6} {'total':>6} {'ratio':>6}  top hypothesis"
          + ("  (truth)" if extra else ""))
    for r in rows:
        mark = f"  ({r['truth']}; rank {r['rank']}, in hypotheses {r['rank_hypotheses']})" if extra else ""
        print(f"{r['incident']:<24} {r['read_s']:>6.3f} {r['detect_s']:>7.3f} {r['rank_s']:>6.3f} {r['total_s']:>6.3f} "
              f"{r['ratio'] if r['ratio'] is not None else '-':>6}  {r['top'] or '-'}{mark}")
    if summ:
        print(f"median: read {summ['median_read_s']} s, detect {summ['median_detect_s']} s, rank {summ['median_rank_s']} s, "
              f"total {summ['median_total_s']} s (max {summ['max_total_s']} s; CPU {summ['median_cpu_s']} s), "
              f"ratio {summ['median_ratio']}; "
              f"{summ['within_target']}/{summ['incidents']} within {TARGET_S:g} s")
    for name in ("suspicions", "hypotheses"):
        if name in summ:
            s = summ[name]
            print(f"AS@1/3/5 by {name}: {s['AS@1']:.3f} / {s['AS@3']:.3f} / {s['AS@5']:.3f}, mean rank {s['mean_rank']:.2f}")
    for fault_type, s in summ.get("suspicions_by_fault_type", {}).items():
        print(f"  {fault_type:<15} ({s['cases']}) AS@1/3/5 {s['AS@1']:.3f} / {s['AS@3']:.3f} / {s['AS@5']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="Sample folder (default data/sample).")
    parser.add_argument("--nezha", type=Path, default=NEZHA, help="Nezha TrainTicket folder (skipped when absent).")
    parser.add_argument("--no-nezha", action="store_true", help="Only the sample.")
    parser.add_argument("--json", type=Path, help="Write the results as JSON here.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per incident (median kept).")
    parser.add_argument("--detector", help="Metric detector (default: the workspace setting).")
    parser.add_argument("--workspace-dir", type=Path, help="Keep the workspaces here and reuse them on the next run.")
    args = parser.parse_args(argv)

    results: dict = {"target_s": TARGET_S, "repeat": args.repeat, "detector": args.detector}
    with tempfile.TemporaryDirectory(prefix="wb-speed-") as tmp:
        base = args.workspace_dir or Path(tmp)
        sets = [("sample", str(args.sample), None)]
        if not args.no_nezha and args.nezha.is_dir():
            from workbench.evaluation.nezha import load_labels

            sets.append(("nezha", f"nezha:{args.nezha}", load_labels(args.nezha)))
        elif not args.no_nezha:
            print(f"nezha: {args.nezha} not found, skipped", file=sys.stderr)
        for name, url, labels in sets:
            ws, ingest_s = prepare(url, base / name)
            rows = bench(ws, evaluation_ids(ws), args.repeat, args.detector, labels)
            summ = summary(rows)
            results[name] = {"source": url, "ingest_s": None if ingest_s is None else round(ingest_s, 2),
                             "summary": summ, "incidents": rows}
            print_table(name, rows, summ, ingest_s)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
