"""Wall time of ``workbench run`` for sample incidents, split into kernel start, imports,
analysis, rendering and the runner's own work (target: at most 15 s on 2 cores).

Usage (from the repo root)::

    python benchmarks/notebook.py [--data data/sample] [--incident INC-20261102-001] [--repeat 3] [--json out.json]

A fresh workspace in a temp folder ingests ``--data`` (not timed), then the postmortem template is
executed ``--repeat`` times for the incident (the first run also pays the analysis' cold caches;
the best run is reported beside the median). The split comes from papermill's per-cell timings:
``kernel_start`` (papermill start to the first cell), ``imports`` (the cells that import the
package and open the workspace), ``analysis`` (the cells whose source calls the engine:
``pm.evidence``, ``pm.analysis_notes``, ``pm.hypotheses``, ``pm.detection_gap`` — the first of them
runs the analysis, the others reuse it), ``rendering`` (every other cell), and ``runner``
(``run()``'s wall time minus papermill's notebook duration: template checks, store writes, archiving).
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
ANALYSIS_CALLS = ("pm.evidence", "pm.analysis_notes", "pm.hypotheses", "pm.detection_gap")
IMPORT_CALLS = ("from workbench", "import workbench", "pm.open_workspace")


def split(result: notebook.RunResult) -> dict[str, float]:
    """Seconds per part of one run (see the module docstring)."""
    cells = notebooks.cell_timings(result.output_path)
    totals = notebooks.notebook_timings(result.output_path)
    parts = {"kernel_start": totals.get("kernel_start", 0.0), "imports": 0.0, "analysis": 0.0, "rendering": 0.0}
    for _, first_line, seconds in cells:
        if seconds is None:
            continue
        if first_line.startswith(IMPORT_CALLS):
            parts["imports"] += seconds
        elif first_line.startswith(ANALYSIS_CALLS):
            parts["analysis"] += seconds
        else:
            parts["rendering"] += seconds
    parts["runner"] = max(result.seconds - totals.get("notebook", result.seconds), 0.0)
    parts["total"] = result.seconds
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
    print(f"{'part':<14} {'median s':>9} {'best run s':>11}")
    for k in keys:
        print(f"{k:<14} {median[k]:>9.2f} {best[k]:>11.2f}")
    print(f"target: wall <= 15 s -> {'met' if median['wall'] <= 15 else 'NOT met'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"incident": args.incident, "runs": runs, "median": median, "best": best,
                                         "target_s": 15.0}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
