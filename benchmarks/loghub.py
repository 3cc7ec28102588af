"""Log-template grouping accuracy on loghub 2k with the workbench's ONE shared Drain3 configuration.

Usage (from the repo root)::

    python benchmarks/loghub.py --data ../shared/data/loghub --json loghub.json
    python benchmarks/loghub.py --data ../shared/data/loghub --tune      # adds the separate tuned runs

Every folder of ``--data`` holding a ``*.log_structured.csv`` (loghub's layout: ``LineId, ...,
Content, EventId, EventTemplate``) is a system. Its ``Content`` column (the message, as loghub
defines it) is mined with :class:`workbench.signals.logs.TemplateMiner` at its defaults, in file order,
and compared with ``EventId``:

- **grouping accuracy** (GA, the loghub/Drain definition): a line is correct when the set of lines
  in its predicted group is exactly the set of lines of its ground-truth group;
- **pairwise F1** over line pairs (the benchmark's other metric).

``--tune`` adds two runs that are kept apart from the shared result: ``per_system_tuned`` (the best
``sim_th``/``depth``/``split_max_values`` of a small grid for each system, like the published
per-system Drain settings) and ``leave_one_system_out`` (for each system, the grid setting that is
best on the *other* systems, scored on the held-out one: an out-of-sample estimate of what tuning
the shared setting is worth). The masks are the same in every run.

loghub is research-only data (see its LICENSE): nothing from it is copied into the repository.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workbench.evaluation.logparsing import discover, evaluate, load, run

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "loghub"

#: The grid of ``--tune`` (the masks stay the shared ones).
GRID = {"sim_th": (0.5, 0.6, 0.65, 0.7, 0.75, 0.8), "depth": (4, 5, 6), "split_max_values": (0, 2, 3, 4)}


def tune(data: Path, systems: Sequence[str]) -> dict:
    """GA of every grid setting on every system, then the per-system best and leave-one-system-out."""
    frames = {s: load(p) for s, p in discover(data).items() if s in systems}
    keys = list(GRID)
    settings = [dict(zip(keys, values)) for values in itertools.product(*GRID.values())]
    ga = np.array([[evaluate(frames[s], p)["grouping_accuracy"] for s in systems] for p in settings])
    best = ga.argmax(axis=0)
    per_system = {s: {"params": settings[best[i]], "grouping_accuracy": float(ga[best[i], i])}
                  for i, s in enumerate(systems)}
    held_out = {}
    for i, s in enumerate(systems):
        others = np.delete(ga, i, axis=1).mean(axis=1)
        k = int(others.argmax())
        held_out[s] = {"params": settings[k], "grouping_accuracy": float(ga[k, i])}
    return {
        "grid": {k: list(v) for k, v in GRID.items()},
        "per_system_tuned": {"systems": per_system,
                             "mean_grouping_accuracy": float(np.mean([v["grouping_accuracy"] for v in per_system.values()]))},
        "leave_one_system_out": {"systems": held_out,
                                 "mean_grouping_accuracy": float(np.mean([v["grouping_accuracy"] for v in held_out.values()]))},
        "best_shared_in_grid": {"params": settings[int(ga.mean(axis=1).argmax())],
                                "mean_grouping_accuracy": float(ga.mean(axis=1).max())},
    }


def _jsonable(params: dict) -> dict:
    out = dict(params)
    out["masks"] = [list(m) for m in params["masks"]]
    out["extra_delimiters"] = list(params["extra_delimiters"])
    return out


def _table(result: dict) -> str:
    head = f"{'system':<14}{'lines':>7}{'truth':>7}{'pred':>7}{'GA':>8}{'F1':>8}{'seconds':>9}"
    rows = [head, "-" * len(head)]
    for name, r in result["systems"].items():
        rows.append(f"{name:<14}{r['lines']:>7}{r['templates_truth']:>7}{r['templates_pred']:>7}"
                    f"{r['grouping_accuracy']:>8.4f}{r['f1']:>8.4f}{r['seconds']:>9.2f}")
    rows.append("-" * len(head))
    rows.append(f"{'mean':<35}{result['mean_grouping_accuracy']:>8.4f}{result['mean_f1']:>8.4f}{result['seconds']:>9.2f}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of loghub system folders")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--systems", nargs="*", help="only these systems (folder names)")
    parser.add_argument("--tune", action="store_true", help="also run the per-system and leave-one-out grid search")
    args = parser.parse_args(argv)

    result = run(args.data, args.systems)
    result["config"] = _jsonable(result["config"])
    print(f"loghub grouping accuracy, one shared configuration ({args.data})")
    print(_table(result))
    if args.tune:
        t0 = time.perf_counter()
        result.update(tune(args.data, list(result["systems"])))
        result["tune_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"\nseparate runs over the grid {GRID} ({result['tune_seconds']} s):")
        for key in ("per_system_tuned", "leave_one_system_out"):
            print(f"  {key:<22} mean GA {result[key]['mean_grouping_accuracy']:.4f}")
        best = result["best_shared_in_grid"]
        print(f"  {'best shared in grid':<22} mean GA {best['mean_grouping_accuracy']:.4f} {best['params']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
