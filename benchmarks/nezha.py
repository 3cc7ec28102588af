"""Root-cause localisation on the Nezha TrainTicket fault cases: AS@1/3/5 and mean rank.

Usage (from the repo root)::

    python benchmarks/nezha.py --data ../shared/data/nezha-trainticket --json nezha.json

Every fault case of the folder is one incident (:meth:`workbench.telemetry.sources.nezha.NezhaSource.incidents`,
which carries no label). Its telemetry runs from the incident's ``window.start`` (the end of the
previous fault, or the day's first sample) to ``window.end`` (inject time + 3 min) and is cut in
memory from ONE read of the whole folder (faster than one windowed read per case: the metric
files are whole days and the log/trace files are small; ``read_seconds`` reports it).

The analysis window starts ``--lead`` seconds before the incident's ``started`` (README trap 1:
faults show 40-60 s before the recorded inject time), so ``[window.start, started - lead)`` is the
baseline. With ``--reference construct`` (the default) the log and span records of the folder's
``construct_data`` ("fault-free") files of the same day are added to the baseline, as the README's
protocol allows ("use that gap and/or the construct window as the baseline"): a case's own
files start only ~1 min before the fault, so without them the log and span baselines are a few
seconds long. Metrics are never taken from before ``window.start`` (other faults lie there).
The construct window's times are read from those files' own records, not from a constant.

Labels (:func:`workbench.evaluation.nezha.load_labels`) are read only to score. The output lists,
per case, the fault type, the true service, its rank and the top 3, then AS@1/3/5 (share of
cases whose true service is within the top k; a service ranked after a tie counts at its worst
position), the mean rank (services missing from the ranking count as rank = number of services
+ 1), the same per fault type, and ``seconds_per_case`` (localisation only, warm: one untimed
run first, data read excluded; ``cpu_seconds_per_case`` is the same in CPU time).
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.analysis.evidence import TelemetryWindow  # noqa: E402
from workbench.analysis.localize import localize  # noqa: E402
from workbench.telemetry.sources import open_source  # noqa: E402
from workbench.evaluation.nezha import load_labels  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "nezha-trainticket"
#: Seconds the analysis window starts before the incident's ``started`` (README trap 1).
DEFAULT_LEAD = 60


def construct_windows(root: Path) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Per day, ``[first, last]`` record time of the ``construct_data`` log and trace files."""
    out: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    for day_dir in sorted((root / "construct_data").glob("*")):
        times = []
        for path in sorted(day_dir.glob("log/*.csv.gz")):
            with gzip.open(path, "rt") as handle:
                frame = pd.read_csv(handle, usecols=["Timestamp"], dtype=str)
            text = frame["Timestamp"].str.strip()
            text = text.where(text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True), text + "Z")
            times.append(pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601"))
        for path in sorted(day_dir.glob("trace/*.csv.gz")):
            with gzip.open(path, "rt") as handle:
                frame = pd.read_csv(handle, usecols=["StartTimeUnixNano"], dtype=str)
            times.append(pd.to_datetime(pd.to_numeric(frame["StartTimeUnixNano"], errors="coerce"), unit="ns", utc=True))
        if times:
            stamps = pd.concat(times).dropna()
            stamps = stamps[stamps > pd.Timestamp("2000-01-01", tz="UTC")]
            if len(stamps):
                out[day_dir.name] = (stamps.min(), stamps.max() + pd.Timedelta(microseconds=1))
    return out


def case_window(tables: dict[str, pd.DataFrame], incident: dict, lead: pd.Timedelta,
                reference: tuple[pd.Timestamp, pd.Timestamp] | None) -> TelemetryWindow:
    """The incident's window cut from the whole-folder tables (see the module docstring)."""
    begin = pd.Timestamp(incident["window"]["start"])
    end = pd.Timestamp(incident["window"]["end"])
    started = pd.Timestamp(incident["started"])
    start = max(started - lead, begin)
    window = TelemetryWindow.from_tables(tables, begin, start, end)
    if reference is not None and reference[0] < begin:
        ref_start, ref_end = reference[0], min(reference[1], begin)
        extra = TelemetryWindow.from_tables(tables, ref_start, ref_end, ref_end)
        window.logs = pd.concat([extra.logs, window.logs], ignore_index=True)
        window.spans = pd.concat([extra.spans, window.spans], ignore_index=True)
        window.baseline_start = ref_start
    return window


def rank_of(ranking: list[str], truth: str, size: int | None = None) -> int:
    """1-based rank of ``truth``; when absent, ``size + 1`` (``size`` default ``len(ranking)``).

    ``size`` (the number of services that could have been ranked) keeps an empty ranking from
    counting as rank 1; this benchmark's rankings are never empty, ``benchmarks/speed.py``'s can be.
    """
    if truth in ranking:
        return ranking.index(truth) + 1
    return (len(ranking) if size is None else max(size, len(ranking))) + 1


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    if n == 0:
        return {"cases": 0, "AS@1": None, "AS@3": None, "AS@5": None, "mean_rank": None}
    return {"cases": n, **{f"AS@{k}": round(sum(r["rank"] <= k for r in rows) / n, 4) for k in (1, 3, 5)},
            "mean_rank": round(sum(r["rank"] for r in rows) / n, 3)}


def run(data: Path, lead_s: float, reference: str, weights: dict | None, quiet: bool = False) -> dict:
    t0 = time.perf_counter()
    source = open_source(f"nezha:{data}")
    telemetry = source.read()
    incidents = telemetry.incidents
    read_seconds = time.perf_counter() - t0
    refs = construct_windows(Path(data)) if reference == "construct" else {}
    labels = load_labels(data)
    tables = telemetry.tables()
    lead = pd.Timedelta(seconds=lead_s)
    windows = [case_window(tables, inc, lead, refs.get(pd.Timestamp(inc["started"]).strftime("%Y-%m-%d")))
               for inc in incidents]
    if windows:
        localize(windows[0], weights=weights)  # warm-up (imports, first-call compilation): untimed
    rows, seconds, cpu = [], [], []
    for inc, window in zip(incidents, windows):
        t, c = time.perf_counter(), time.process_time()
        ranked = localize(window, weights=weights)
        seconds.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        truth = labels[inc["id"]]
        names = [s.service for s in ranked]
        rows.append({"case": inc["id"], "fault_type": truth["fault_type"], "service": truth["service"],
                     "rank": rank_of(names, truth["service"]), "top3": names[:3],
                     "top_score": round(ranked[0].score, 4) if ranked else None})
    result = summary(rows)
    by_type = defaultdict(list)
    for r in rows:
        by_type[r["fault_type"]].append(r)
    result["by_fault_type"] = {k: summary(v) for k, v in sorted(by_type.items())}
    result["seconds_per_case"] = round(sum(seconds) / len(seconds), 3) if seconds else None
    # CPU time too: on a shared machine the wall time depends on the other processes.
    result["cpu_seconds_per_case"] = round(sum(cpu) / len(cpu), 3) if cpu else None
    result["read_seconds"] = round(read_seconds, 2)
    result["config"] = {"data": str(data), "lead_seconds": lead_s, "reference": reference,
                        "weights": weights, "read": "whole folder once, windows cut in memory"}
    result["per_case"] = rows
    if not quiet:
        print(f"{'case':<22} {'fault type':<15} {'true service':<30} {'rank':>4}  top 3")
        for r in rows:
            print(f"{r['case']:<22} {r['fault_type']:<15} {r['service']:<30} {r['rank']:>4}  {', '.join(r['top3'])}")
        print()
        print(f"{'':<15} {'cases':>5} {'AS@1':>6} {'AS@3':>6} {'AS@5':>6} {'mean rank':>9}")
        for name, s in [("all", result), *result["by_fault_type"].items()]:
            print(f"{name:<15} {s['cases']:>5} {s['AS@1']:>6.3f} {s['AS@3']:>6.3f} {s['AS@5']:>6.3f} {s['mean_rank']:>9.2f}")
        print(f"\nread {result['read_seconds']} s (once); localisation {result['seconds_per_case']} s per case "
              f"(warm; CPU {result['cpu_seconds_per_case']} s)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the Nezha TrainTicket folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--lead", type=float, default=DEFAULT_LEAD,
                        help="seconds the analysis window starts before the incident's start (default %(default)s)")
    parser.add_argument("--reference", choices=("construct", "none"), default="construct",
                        help="add the construct (fault-free) window's logs and spans to the baseline")
    parser.add_argument("--weights", type=json.loads, default=None,
                        help='modality weights as JSON, e.g. \'{"metrics": 0}\'')
    args = parser.parse_args(argv)
    if not (args.data / "rca_data").is_dir():
        parser.error(f"{args.data}: not a Nezha data set folder (no rca_data/ inside)")
    result = run(args.data, args.lead, args.reference, args.weights)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
