"""Ingest throughput and window-query speed, compared with a plain Parquet read of the same rows.

Usage (from the repo root)::

    python benchmarks/ingest.py                                   # the sample, plus nezha if ../shared is there
    python benchmarks/ingest.py --data data/sample --data nezha:../shared/data/nezha-trainticket --json out.json
    python benchmarks/ingest.py --prometheus-only --json out.json # only the Prometheus rows
    python benchmarks/ingest.py --repeat 3 --json out.json        # medians of 3 runs (default 3)

For each source: ``--repeat`` fresh workspaces in a temp folder, then
- ``ingest_s``: wall time of ``workbench.telemetry.ingest.ingest`` (read + validate + write +
  incidents), the median of the runs,
- ``rows`` and ``rows_per_s``,
- ``reingest_s``: the same ingest again (adds nothing; the idempotence check costs this much),
- ``parquet_read_s``: ``pyarrow.parquet.read_table`` of every Parquet file the ingest wrote (the
  same rows, no validation; the median over the runs), and ``ingest_to_read_ratio`` = ingest_s /
  parquet_read_s; ``paired_ratio`` is the median over the runs of each run's own ratio, and
  ``best_ratio`` the ratio of the best (smallest) times,
- ``window_query_s``: median of 5 :meth:`TelemetryStore.query` calls (metrics, logs, spans) for the
  first incident's analysis window, with its row count.

The Prometheus rows (when ``prometheus`` and ``promtool`` are installed; ``--no-prometheus`` skips
them): the sample's 61 metric series of 2026-11-02 (plus one hour before, for the windows' start)
are backfilled into a throwaway Prometheus (the tests' ``tests/prom.py``), then a 1 h and a 24 h
incident window ending 2026-11-03T00:00Z are pulled with ``ingest prometheus:URL`` into a fresh
workspace at the default 60 s step: ``fetch_s`` (HTTP + parsing + validation, ``Source.read``),
``ingest_s`` (the whole ingest, median of ``--repeat`` runs, each into a fresh workspace), rows and
rows/s.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

import workbench
from workbench.telemetry.ingest import ingest
from workbench.telemetry.windows import analysis_window

REPO = Path(__file__).resolve().parents[1]
NEZHA = REPO.parent / "shared" / "data" / "nezha-trainticket"


def bench_one(url: str, repeat: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        runs, reads = [], []
        for i in range(repeat):  # each ingest into a fresh workspace; the medians are reported
            ws = workbench.init(Path(tmp) / f"ws{i}")
            t0 = time.perf_counter()
            result = ingest(ws, url, who="benchmark")
            runs.append(time.perf_counter() - t0)
            files = sorted(ws.telemetry_dir.rglob("*.parquet"))
            t0 = time.perf_counter()
            read_rows = sum(pq.read_table(f).num_rows for f in files)
            reads.append(time.perf_counter() - t0)
        ingest_s, parquet_read_s = statistics.median(runs), statistics.median(reads)
        t0 = time.perf_counter()
        again = ingest(ws, url, who="benchmark")
        reingest_s = time.perf_counter() - t0

        kb = ws.knowledge_base()
        incidents = kb.list_incidents()
        kb.close()
        window = {}
        store = ws.telemetry()
        span = store.time_range("metrics")
        # The first incident whose window has telemetry (past incidents in the sample have none).
        inside = [i for i in incidents if span and span[0] <= analysis_window(i)[0] <= span[1]]
        if inside:
            start, end = analysis_window(inside[0])
            times, rows = [], 0
            for _ in range(5):
                t0 = time.perf_counter()
                rows = sum(len(store.query(t, start, end)) for t in ("metrics", "logs", "spans"))
                times.append(time.perf_counter() - t0)
            window = {"incident": inside[0].id, "start": str(start), "end": str(end), "window_rows": rows,
                      "window_query_s": statistics.median(times)}
        rows = sum(result.rows_read.values())
        return {
            "source": result.source,
            "rows": rows,
            "rows_by_table": result.rows_read,
            "duplicates_dropped": result.duplicates_dropped,
            "incidents": len(result.incidents_added),
            "ingest_s": round(ingest_s, 3),
            "rows_per_s": round(rows / ingest_s) if ingest_s else None,
            "reingest_s": round(reingest_s, 3),
            "reingest_rows_added": sum(again.rows_added.values()),
            "parquet_files": len(files),
            "parquet_rows": read_rows,
            "parquet_read_s": round(parquet_read_s, 3),
            "ingest_to_read_ratio": round(ingest_s / parquet_read_s, 1) if parquet_read_s else None,
            # Each run's ingest over the read that follows it, then the median: load from other work
            # tends to hit both halves of a run alike.
            "paired_ratio": round(statistics.median(i / r for i, r in zip(runs, reads) if r), 1),
            # Best of the runs for both (what timeit reports): less sensitive to other work on the machine.
            "ingest_best_s": round(min(runs), 3), "parquet_read_best_s": round(min(reads), 3),
            "best_ratio": round(min(runs) / min(reads), 1) if min(reads) else None,
            **window,
        }


def bench_prometheus(repeat: int = 3) -> list[dict]:
    """Ingest a 1 h and a 24 h window of the sample's series from a throwaway Prometheus."""
    import pandas as pd

    sys.path.insert(0, str(REPO / "tests"))
    import prom  # the tests' throwaway-server helpers

    from workbench.telemetry.sources import open_source

    end = pd.Timestamp("2026-11-03T00:00:00Z")
    out = []
    with tempfile.TemporaryDirectory(prefix="wb-bench-prom-") as tmp:
        t0 = time.perf_counter()
        frame = prom.sample_window(end - pd.Timedelta(hours=25), end)
        blocks = prom.backfill(prom.backfill_text(frame, extras=False), Path(tmp))
        backfill_s = time.perf_counter() - t0
        server = prom.start_prometheus(blocks)
        try:
            url = f"prometheus:{server.url}"
            for hours in (1, 24):
                start = end - pd.Timedelta(hours=hours)
                fetch, runs, rows = [], [], 0
                for i in range(repeat):
                    t0 = time.perf_counter()
                    rows = len(open_source(url).read(start, end).metrics)
                    fetch.append(time.perf_counter() - t0)
                    ws = workbench.init(Path(tmp) / f"ws-{hours}-{i}")
                    t0 = time.perf_counter()
                    result = ingest(ws, url, start, end, who="benchmark")
                    runs.append(time.perf_counter() - t0)
                    assert sum(result.rows_added.values()) == rows
                ingest_s = statistics.median(runs)
                out.append({"source": f"prometheus ({hours} h window, 60 s step)", "window_hours": hours, "rows": rows,
                            "series": result.source_stats.get("series"), "requests": result.source_stats.get("requests"),
                            "fetch_s": round(statistics.median(fetch), 3), "ingest_s": round(ingest_s, 3),
                            "rows_per_s": round(rows / ingest_s) if ingest_s else None,
                            "backfill_s": round(backfill_s, 2)})
        finally:
            server.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", help="source URL or folder (repeatable); default: data/sample and nezha if present")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-prometheus", action="store_true", help="skip the Prometheus rows")
    parser.add_argument("--prometheus-only", action="store_true", help="only the Prometheus rows")
    parser.add_argument("--repeat", type=int, default=3, help="runs per source and Prometheus window (median)")
    args = parser.parse_args(argv)
    urls = args.data or [str(REPO / "data" / "sample")] + ([f"nezha:{NEZHA}"] if NEZHA.is_dir() else [])
    results = []
    for url in ([] if args.prometheus_only else urls):
        print(f"ingesting {url} ...", file=sys.stderr)
        results.append(bench_one(url, args.repeat))
    live = []
    if not args.no_prometheus:
        if shutil.which("prometheus") and shutil.which("promtool"):
            print("pulling windows from a throwaway Prometheus ...", file=sys.stderr)
            live = bench_prometheus(args.repeat)
        else:
            print("prometheus/promtool not installed: no Prometheus rows", file=sys.stderr)
    header = (f"{'source':<48} {'rows':>10} {'ingest s':>9} {'rows/s':>9} {'re-ingest s':>11} {'parquet read s':>14} "
              f"{'ratio':>6} {'paired':>6} {'best':>5} {'window rows':>11} {'query s':>8}")
    if results:
        print(header)
    for r in results:
        print(f"{r['source'][-48:]:<48} {r['rows']:>10,} {r['ingest_s']:>9.2f} {r['rows_per_s'] or 0:>9,} {r['reingest_s']:>11.2f} "
              f"{r['parquet_read_s']:>14.3f} {r['ingest_to_read_ratio'] or 0:>6} {r['paired_ratio'] or 0:>6} "
              f"{r['best_ratio'] or 0:>5} "
              f"{r.get('window_rows', 0):>11,} "
              f"{r.get('window_query_s', float('nan')):>8.3f}")
    if live:
        print(f"\n{'live source':<48} {'rows':>10} {'fetch s':>9} {'ingest s':>9} {'rows/s':>9} {'requests':>9}")
        for r in live:
            print(f"{r['source']:<48} {r['rows']:>10,} {r['fetch_s']:>9.3f} {r['ingest_s']:>9.3f} {r['rows_per_s'] or 0:>9,} "
                  f"{r['requests']:>9}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "prometheus": live}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
