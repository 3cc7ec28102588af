"""Metric detection and root-cause metrics on SMD-layout data (SMD, ASD): the product's own path.

Usage (from the repo root)::

    python benchmarks/smd.py --data ../shared/data/smd --json smd.json            # default detector
    python benchmarks/smd.py --data ../shared/data/asd --detector copod
    python benchmarks/smd.py --data ../shared/data/smd --all-detectors            # comparison table
    python benchmarks/smd.py --data ../shared/data/smd --cv                       # leave one machine out

The layout, the protocol and every reported key are described in :mod:`workbench.evaluation.smd`,
which does the loading and scoring; this script parses the options and prints the tables.
``--cv`` chooses the contribution method and its reference window by leave-one-machine-out
(:func:`workbench.evaluation.smd.leave_one_machine_out`): ``cv`` holds the held-out
HitRate@100/150 per machine and their mean, and what each fold chose.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from workbench.errors import ParameterError, WorkbenchError  # noqa: E402
from workbench.evaluation.smd import KEYS, SEGMENT_ENDS, leave_one_machine_out, run  # noqa: E402
from workbench.formats import key_value  # noqa: E402
from workbench.signals import detect  # noqa: E402


# --------------------------------------------------------------------------- CLI

def _table(results: list[dict], keys: tuple[str, ...], label: str = "detector") -> str:
    widths = [max(len(k) + 2, 8) for k in keys]
    head = f"{label:12s}" + "".join(f"{k:>{w}s}" for k, w in zip(keys, widths))
    lines = [head, "-" * len(head)]
    for r in results:
        cells = "".join(f"{r[k]:{w}.3f}" if isinstance(r.get(k), (int, float)) else f"{'-':>{w}s}"
                        for k, w in zip(keys, widths))
        lines.append(f"{str(r.get(label)):12s}{cells}")
    return "\n".join(lines)


def _param(text: str) -> tuple[str, object]:
    key, value = key_value(text, "--param", ParameterError, identifier=True)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder in the SMD layout (SMD or ASD)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--detector", default=detect.DEFAULT_DETECTOR, help=f"one of {', '.join(detect.names())}")
    parser.add_argument("--all-detectors", action="store_true", help="compare every registered detector")
    parser.add_argument("--quantile", type=float, default=0.995, help="threshold quantile of the train scores")
    parser.add_argument("--reference-window", type=int, default=detect.base.REFERENCE_WINDOW,
                        help="steps whose median is each row's reference level (contributions)")
    parser.add_argument("--segment-end", choices=SEGMENT_ENDS, default="auto")
    parser.add_argument("--machine", action="append", help="only this entity (repeatable)")
    parser.add_argument("--cv", action="store_true",
                        help="choose the contribution method and window by leave-one-machine-out (HitRate)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="detector hyper-parameter, VALUE as JSON or text (repeatable), e.g. explain=tail")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except WorkbenchError as exc:  # the one boundary: a one-line message, exit code 1
        raise SystemExit(f"{parser.prog}: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    params = dict(_param(p) for p in args.param)
    if args.cv:
        cv = leave_one_machine_out(args.data, args.segment_end, args.machine)
        for f in cv["folds"]:
            print(f"{f['machine']:<14} chose {f['method']}/{f['reference_window']:<4} "
                  f"HitRate@100 {f['hitrate@100']:.3f}  @150 {f['hitrate@150']:.3f}")
        print(f"leave one machine out: HitRate@100 {cv['hitrate@100']:.3f}, @150 {cv['hitrate@150']:.3f} "
              f"(in-sample best {cv['in_sample_best']})")
        if args.json:
            args.json.write_text(json.dumps({"cv": cv}, indent=2, default=str))
        return 0

    names = detect.names() if args.all_detectors else [args.detector]
    results = []
    for name in names:
        t0 = time.perf_counter()
        res = run(args.data, name, params=params, quantile=args.quantile, reference_window=args.reference_window,
                  segment_end=args.segment_end, machines=args.machine)
        res["total_seconds"] = round(time.perf_counter() - t0, 2)
        results.append(res)
        if args.all_detectors:
            print(f"{name}: {res['total_seconds']} s", file=sys.stderr, flush=True)
        else:
            print(_table(res["machines"], KEYS, label="machine"))
    print("\nmean over machines:\n" + _table(results, KEYS))
    if args.json:
        main_result = next((r for r in results if r["detector"] == args.detector), results[0])
        out = dict(main_result)
        if args.all_detectors:
            out["comparison"] = {r["detector"]: {k: r[k] for k in (*KEYS, "total_seconds")} for r in results}
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
