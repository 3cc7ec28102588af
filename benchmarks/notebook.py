"""Wall time of ``workbench run`` for sample incidents, split into kernel start, imports,
analysis, charts, rendering and the runner's own work, and the executed notebook's size
(targets: at most 10 s on 2 cores, at most 5 MB).

Usage (from the repo root)::

    python benchmarks/notebook.py [--data data/sample] [--incident INC-20261102-001] [--repeat 3] [--json out.json]

A fresh workspace in a temp folder ingests ``--data`` (not timed), then the postmortem template is
executed ``--repeat`` times for the incident (the first run also pays the analysis' cold caches;
the best run is reported beside the median). The split comes from papermill's per-cell timings:
``kernel_start`` (papermill start to the first cell), ``imports`` (the cells that import the
package and open the workspace), ``analysis`` (the cells whose source calls the engine:
``show.detection_gap``, ``show.analysis_notes``, ``show.evidence``, ``show.hypotheses`` — the first
of them runs the analysis, the others reuse it), ``charts`` (BokehJS and the chart cells: timeline,
key metrics, the heatmap with its engine scores, the top hypotheses' series), ``rendering`` (every
other cell: tables and widgets), and ``runner`` (``run()``'s wall time minus papermill's notebook
duration: template checks, store writes, archiving, making widget outputs static and signing).
``size_mb`` is the executed notebook's size on disk.
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
from workbench.postmortem import notebooks, runner as notebook
from workbench.telemetry.ingest import ingest

REPO = Path(__file__).resolve().parents[1]
ANALYSIS_CALLS = ("show.evidence", "show.analysis_notes", "show.hypotheses(", "show.detection_gap")
CHART_CALLS = ("show.charts_setup", "show.timeline", "show.metrics", "show.heatmap", "show.hypothesis_evidence")
IMPORT_CALLS = ("from workbench", "import workbench", "ws = show.open_workspace")
TARGET_S, TARGET_MB = 10.0, 5.0


def split(result: notebook.RunResult) -> dict[str, float]:
    """Seconds per part of one run (see the module docstring)."""
    cells = notebooks.cell_timings(result.output_path)
    totals = notebooks.notebook_timings(result.output_path)
    parts = {"kernel_start": totals.get("kernel_start", 0.0), "imports": 0.0, "analysis": 0.0, "charts": 0.0,
             "rendering": 0.0}
    for _, first_line, seconds in cells:
        if seconds is None:
            continue
        if first_line.startswith(IMPORT_CALLS):
            parts["imports"] += seconds
        elif first_line.startswith(ANALYSIS_CALLS):
            parts["analysis"] += seconds
        elif first_line.startswith(CHART_CALLS):
            parts["charts"] += seconds
        else:
            parts["rendering"] += seconds
    parts["runner"] = max(result.seconds - totals.get("notebook", result.seconds), 0.0)
    parts["total"] = result.seconds
    parts["size_mb"] = Path(result.output_path).stat().st_size / 1e6
    return {k: round(v, 3) for k, v in parts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO / "data" / "sample"), help="source to ingest (default: the sample)")
    parser.add_argument("--incident", default="INC-20261102-001", help="incident to run")
    parser.add_argument("--repeat", type=int, default=3, help="runs to time")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wb-nb-bench-") as tmp:
        ws = workbench.init(Path(tmp) / "ws")
        ingest(ws, args.data, who="benchmark")
        runs = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            result = notebook.run(ws, args.incident, who="benchmark")
            wall = time.perf_counter() - t0
            parts = split(result)
            parts["wall"] = round(wall, 3)
            runs.append(parts)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()), file=sys.stderr)
    keys = list(runs[0])
    median = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    best = min(runs, key=lambda r: r["wall"])
    print(f"{'part':<14} {'median':>9} {'best run':>11}   (seconds; size_mb in MB)")
    for k in keys:
        print(f"{k:<14} {median[k]:>9.2f} {best[k]:>11.2f}")
    print(f"target: wall <= {TARGET_S:g} s -> {'met' if median['wall'] <= TARGET_S else 'NOT met'}; "
          f"notebook <= {TARGET_MB:g} MB -> {'met' if median['size_mb'] <= TARGET_MB else 'NOT met'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"incident": args.incident, "runs": runs, "median": median, "best": best,
                                         "target_s": TARGET_S, "target_mb": TARGET_MB}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
