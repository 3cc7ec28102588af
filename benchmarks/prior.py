"""Does the confirmed-cause prior help? The history term ``H(s, c)`` of the ranking, measured online.

Usage (from the repo root)::

    python benchmarks/prior.py                                       # sample, plus nezha if ../shared is there
    python benchmarks/prior.py --data ../shared/data/nezha-trainticket --json prior.json
    python benchmarks/prior.py --no-nezha --seeds 5

The protocol (online and chronological, the leak guard, the conditions and controls, the
measures) is described in :mod:`workbench.evaluation.prior`, which runs it; this script parses
the options, prints the tables and writes the JSON. Nothing is tuned here: the engine runs with
its shipped settings.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.analysis.hypotheses import HISTORY_BONUS  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402
from workbench.evaluation.prior import CONDITIONS, DEFAULT_SEEDS, SENSITIVITY, nezha_part, sample_part  # noqa: E402

SAMPLE = REPO / "data" / "sample"
NEZHA = REPO.parent / "shared" / "data" / "nezha-trainticket"


# --------------------------------------------------------------------------- output

def print_part(name: str, result: dict[str, Any]) -> None:
    conds = result["conditions"]
    shown = [c for c in CONDITIONS if c in conds]
    print(f"\n== {name}: per incident (pair rank / service rank / log margin; shuffled: mean over seeds)")
    head = f"{'incident':<22} {'truth':<40} {'hist':>4}"
    for c in shown:
        head += f" | {c:^21}"
    print(head + " | top (prior)")
    for r in result["per_case"]:
        truth = f"{r['truth']['service']}/{r['truth']['cause']}"
        line = f"{r['incident']:<22} {truth:<40} {r['history_size']:>4}"
        for c in shown:
            m = r["conditions"][c]
            margin = "   -  " if m["margin"] is None else f"{m['margin']:+.3f}"
            line += f" | {m['pair_rank']:>5.2f} {m['service_rank']:>5.2f} {margin:>7}"
        print(line + f" | {r['conditions']['prior']['top']}")
    print(f"\n== {name}: summary ({len(result['per_case'])} incidents; margin = mean log(score true / best other) "
          f"over {result['summary']['none'].get('margin_cases', 0)} incidents where the true pair is proposed)")
    print(f"{'condition':<13} {'AC@1':>6} {'AC@3':>6} {'rank':>6} {'AS@1':>6} {'AS@3':>6} {'srank':>6} "
          f"{'margin':>7}  {'rank up/down':>12} {'margin up/down':>14}")
    for c in conds:
        s = result["summary"][c]
        if not s.get("cases"):
            continue
        margin = "-" if s["mean_log_margin"] is None else f"{s['mean_log_margin']:+.4f}"
        print(f"{c:<13} {s['AC@1']:>6.3f} {s['AC@3']:>6.3f} {s['mean_rank']:>6.2f} {s['AS@1']:>6.3f} {s['AS@3']:>6.3f} "
              f"{s['mean_service_rank']:>6.2f} {margin:>7}  {s['rank_up']:>5}/{s['rank_down']:<6} "
              f"{s['margin_up']:>6}/{s['margin_down']:<7}")
    print("cause of the true service's first hypothesis (none), per label: " + "; ".join(
        f"{label}: " + ", ".join(f"{c} {n}" for c, n in sorted(found.items(), key=lambda kv: -kv[1]))
        for label, found in sorted(result["true_service_causes"].items())))
    t = result["timings"]
    print("timings: " + ", ".join(f"{k} {v}" for k, v in t.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=NEZHA, help="the Nezha TrainTicket folder (skipped when absent)")
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="the sample folder (default data/sample)")
    parser.add_argument("--no-nezha", action="store_true", help="only the sample")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="permutations per shuffled control (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        return _run(args, sys.argv[1:] if argv is None else argv)
    except WorkbenchError as exc:  # the one boundary: a one-line message, exit code 1
        raise SystemExit(f"{parser.prog}: {exc}") from None


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    command = "python benchmarks/prior.py" + "".join(f" {shlex.quote(a)}" for a in argv)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{command}\n{now}; HISTORY_BONUS {HISTORY_BONUS} (sensitivity rows "
          f"{', '.join(f'{b:g}' for b in SENSITIVITY)}), {args.seeds} seeds per shuffled control")
    results: dict[str, Any] = {"command": command, "date": now, "history_bonus": HISTORY_BONUS,
                               "seeds": args.seeds, "sensitivity": list(SENSITIVITY)}
    t0 = time.perf_counter()
    results["sample"] = sample_part(args.sample, seeds=args.seeds)
    results["sample"]["timings"]["total_s"] = round(time.perf_counter() - t0, 1)
    print_part("sample", results["sample"])
    if args.no_nezha:
        results["nezha"] = {"skipped": "--no-nezha"}
    elif not (args.data / "rca_data").is_dir():
        note = f"{args.data}: no Nezha data set here (no rca_data/), nezha part skipped"
        print(f"\n{note}")
        results["nezha"] = {"skipped": note}
    else:
        t0 = time.perf_counter()
        results["nezha"] = nezha_part(args.data, seeds=args.seeds)
        results["nezha"]["timings"]["total_s"] = round(time.perf_counter() - t0, 1)
        print_part("nezha", results["nezha"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
