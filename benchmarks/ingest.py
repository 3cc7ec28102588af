"""Ingest throughput and window-query speed, compared with a plain Parquet read of the same rows.

Usage (from the repo root)::

    python benchmarks/ingest.py                                   # the sample, plus nezha if ../shared is there
    python benchmarks/ingest.py --data data/sample --data nezha:../shared/data/nezha-trainticket --json out.json

For each source: a fresh workspace in a temp folder, then
- ``ingest_s``: wall time of ``workbench.telemetry.ingest.ingest`` (read + validate + write + incidents),
- ``rows`` and ``rows_per_s``,
- ``reingest_s``: the same ingest again (adds nothing; the idempotence check costs this much),
- ``parquet_read_s``: ``pyarrow.parquet.read_table`` of every Parquet file the ingest wrote (the
  same rows, no validation), and ``ingest_to_read_ratio`` = ingest_s / parquet_read_s,
- ``window_query_s``: median of 5 :meth:`TelemetryStore.query` calls (metrics, logs, spans) for the
  first incident's analysis window, with its row count.
"""
from __future__ import annotations

import argparse
import json
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


def bench_one(url: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        ws = workbench.init(Path(tmp) / "ws")
        t0 = time.perf_counter()
        result = ingest(ws, url, who="benchmark")
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = ingest(ws, url, who="benchmark")
        reingest_s = time.perf_counter() - t0
        files = sorted(ws.telemetry_dir.rglob("*.parquet"))
        t0 = time.perf_counter()
        read_rows = sum(pq.read_table(f).num_rows for f in files)
        parquet_read_s = time.perf_counter() - t0

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
            **window,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", help="source URL or folder (repeatable); default: data/sample and nezha if present")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    urls = args.data or [str(REPO / "data" / "sample")] + ([f"nezha:{NEZHA}"] if NEZHA.is_dir() else [])
    results = []
    for url in urls:
        print(f"ingesting {url} ...", file=sys.stderr)
        results.append(bench_one(url))
    header = f"{'source':<48} {'rows':>10} {'ingest s':>9} {'rows/s':>9} {'re-ingest s':>11} {'parquet read s':>14} {'ratio':>6} {'window rows':>11} {'query s':>8}"
    print(header)
    for r in results:
        print(f"{r['source'][-48:]:<48} {r['rows']:>10,} {r['ingest_s']:>9.2f} {r['rows_per_s'] or 0:>9,} {r['reingest_s']:>11.2f} "
              f"{r['parquet_read_s']:>14.3f} {r['ingest_to_read_ratio'] or 0:>6} {r.get('window_rows', 0):>11,} "
              f"{r.get('window_query_s', float('nan')):>8.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
