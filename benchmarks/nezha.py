"""Root-cause ranking on the Nezha TrainTicket fault cases: AS@k, AIS@k, calibration, under cross-validation.

Usage (from the repo root)::

    python benchmarks/nezha.py --data ../shared/data/nezha-trainticket --json nezha.json        # shipped constants
    python benchmarks/nezha.py --data ../shared/data/nezha-trainticket --cv --json nezha.json   # + the CV table

Every fault case of the folder is one incident (:meth:`workbench.telemetry.sources.nezha.NezhaSource.incidents`,
which carries no label). Its telemetry runs from the incident's ``window.start`` (the end of the
previous fault, or the day's first sample) to ``window.end`` (inject time + 3 min), cut in memory
from ONE read of the folder. The analysis window starts ``lead`` seconds before ``started`` (README
trap 1: faults show 40-60 s early); with ``--reference construct`` (default) the day's
``construct_data`` ("fault-free") logs and spans join the baseline, as the data set's protocol
allows. Labels (:func:`~workbench.evaluation.nezha.load_labels`,
:func:`~workbench.evaluation.nezha.load_inner_labels`) are read only to score.

What is measured, from the same loaded data:

- the engine with the shipped constants (:data:`workbench.analysis.localize.DEFAULT_PARAMS`, lead 60 s):
  ``cases``, ``AS@1/3/5``, ``mean_rank``, ``by_fault_type`` (the localiser's service order),
  ``hypotheses`` (the same keys for the order of the hypotheses' services, what a reviewer reads),
  ``AIS@1/3`` (the first 1/3 hypotheses
  of :func:`workbench.analysis.hypotheses.rank` include one in the true service that names the labelled
  metric or a log template inside the labelled code region:
  :func:`workbench.evaluation.topk.inner_cause_matches`), ``seconds_per_case`` (modalities +
  combination, warm);
- with ``--cv``, the same keys per protocol under ``cv``: leave one day out and ``--repeats`` x
  stratified 4-fold. Each fold chooses the lead and the combination's constants
  (:func:`workbench.analysis.localize.param_grid`) on its training cases only, fits the confidence
  (Platt scaling of the top score's margin) on them, and scores its test cases; ``brier`` and
  ``reliability`` (5 bins) are those held-out confidences against "the top service is right",
  next to ``brier_constant`` (the training folds' base rate as a constant prediction);
- ``baselines``: the reference methods (:mod:`workbench.evaluation.reference`) on the same
  windows (lead 60 s), and the expectation of a random order. They have no constants to choose,
  so their numbers are the same in and out of sample.

The benchmark reads no constant from a case's label; the modality pass (the expensive part) is
run once per case and lead, and every configuration is scored from it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.analysis import hypotheses as hyp_lib  # noqa: E402
from workbench.analysis import localize as loc  # noqa: E402
from workbench.analysis.confidence import margin as score_margin  # noqa: E402
from workbench.evaluation import cv as cv_lib  # noqa: E402
from workbench.evaluation import reference  # noqa: E402
from workbench.evaluation.calibration import brier, fit_platt, reliability  # noqa: E402
from workbench.evaluation.topk import KS, inner_cause_matches, rank_of, share, summarize  # noqa: E402
from workbench.analysis.evidence import TelemetryWindow  # noqa: E402
from workbench.analysis.signature import template_text  # noqa: E402
from workbench.telemetry.sources import open_source  # noqa: E402
from workbench.evaluation.nezha import (DEFAULT_LEAD, case_window, construct_windows, load_inner_labels,  # noqa: E402
                                        load_labels)

DEFAULT_DATA = REPO.parent / "shared" / "data" / "nezha-trainticket"
#: Leads the cross-validation chooses from.
CV_LEADS = (0, 30, 60)
#: Hypotheses looked at for AIS@k.
AIS_KS = (1, 3)


def named_causes(hypothesis: hyp_lib.Hypothesis, n: int = 3) -> list[str]:
    """What a hypothesis names as its inner cause: the signals and templates of its first evidence."""
    out = []
    for ev in hypothesis.evidence[:n]:
        out.append(ev.signal)
        if ev.kind == "log":
            out.append(template_text(ev))
    return out


class Case:
    """One fault case: its label, and per lead its window and modality pass."""

    def __init__(self, incident: dict, label: dict, inner: str | None):
        self.incident = incident
        self.id = incident["id"]
        self.label = label
        self.inner = inner
        self.day = pd.Timestamp(incident["started"]).strftime("%Y-%m-%d")
        self.windows: dict[float, TelemetryWindow] = {}
        self.results: dict[float, dict] = {}
        self.arrays: dict[float, dict] = {}
        self.callees: dict[float, np.ndarray] = {}
        self.services: dict[float, list[str]] = {}

    def prepare(self, lead: float, window: TelemetryWindow, params: loc.Params) -> float:
        """Run the modalities for ``lead`` (timed, returned in seconds)."""
        t = time.perf_counter()
        results = loc.modalities(window, params=params)
        seconds = time.perf_counter() - t
        services = window.services()
        topology = loc.topology_of(window)
        callees = topology.groupby("caller")["callee"].apply(list).to_dict() if len(topology) else {}
        self.windows[lead], self.results[lead], self.services[lead] = window, results, services
        self.arrays[lead] = loc.score_arrays(services, results)
        self.callees[lead] = loc.callee_matrix(services, callees)
        return seconds

    def rank(self, lead: float, params: loc.Params) -> int:
        """Rank of the true service under ``params``, from the cached modality pass (no telemetry re-read)."""
        services = self.services[lead]
        scores = loc.combined_scores(self.arrays[lead], self.callees[lead], params)["score"]
        order = sorted(range(len(services)), key=lambda i: (-scores[i], services[i]))
        return rank_of([services[i] for i in order], self.label["service"], len(services))

    def hypotheses(self, lead: float, params: loc.Params) -> list[hyp_lib.Hypothesis]:
        window = self.windows[lead]
        suspicions = loc.combine(window, self.results[lead], params).suspicions
        return hyp_lib.rank(window, suspicions, self.incident)

    def review(self, lead: float, params: loc.Params) -> dict:
        """What a reviewer reads: the hypotheses, AIS@k, the margin their confidence comes from."""
        ranked = self.hypotheses(lead, params)
        best: dict[str, float] = {}
        for h in ranked:  # highest score first: a service's first hypothesis is its best
            best.setdefault(h.service, h.score)
        scores = list(best.values())
        truth = self.label["service"]
        out = {"hypotheses": ranked, "margin": score_margin(scores[0], scores[1:2]) if scores else 0.0,
               "right": bool(scores) and next(iter(best)) == truth, "ais": {},
               "rank": rank_of(list(best), truth, len(self.services[lead]))}
        if self.inner is not None:
            hits = [h.service == truth and inner_cause_matches(self.inner, self.label["fault_type"], named_causes(h))
                    for h in ranked]
            out["ais"] = {k: any(hits[:k]) for k in AIS_KS}
        return out


def load(data: Path, reference_mode: str) -> tuple[list[Case], dict[str, pd.DataFrame], dict, float]:
    t0 = time.perf_counter()
    telemetry = open_source(f"nezha:{data}").read()
    read_seconds = time.perf_counter() - t0
    labels = load_labels(data)
    inner = load_inner_labels(data)
    refs = construct_windows(Path(data)) if reference_mode == "construct" else {}
    cases = []
    for incident in telemetry.incidents:
        label = labels[incident["id"]]
        cases.append(Case(incident, label, inner.get(label["service"], {}).get(label["fault_type"])))
    return cases, telemetry.tables(), refs, read_seconds


def configurations(leads) -> list[tuple[float, loc.Params]]:
    """Every (lead, constants) pair the cross-validation may choose, the shipped lead's first."""
    ordered = sorted(leads, key=lambda v: (v != DEFAULT_LEAD, v))
    return [(lead, params) for lead in ordered for params in loc.param_grid()]


def run(data: Path, reference_mode: str = "construct", do_cv: bool = False, repeats: int = 10,
        quiet: bool = False) -> dict:
    cases, tables, refs, read_seconds = load(data, reference_mode)
    leads = sorted(set(CV_LEADS) | {DEFAULT_LEAD}) if do_cv else [DEFAULT_LEAD]
    shipped = loc.DEFAULT_PARAMS
    compute = loc.Params(weights={m: 1.0 for m in loc.MODALITIES})  # every modality computed once
    seconds = []
    if cases:  # warm-up (imports, first-call compilation): untimed
        loc.localization(case_window(tables, cases[0].incident, pd.Timedelta(seconds=DEFAULT_LEAD),
                                     refs.get(cases[0].day)))
    for case in cases:
        for lead in leads:
            window = case_window(tables, case.incident, pd.Timedelta(seconds=lead), refs.get(case.day))
            spent = case.prepare(lead, window, compute)
            if lead == DEFAULT_LEAD:
                t = time.perf_counter()
                loc.combine(window, case.results[lead], shipped)
                seconds.append(spent + time.perf_counter() - t)

    # ---- the shipped configuration (in sample on the shared cases; out of sample on any other folder)
    rows = []
    for case in cases:
        r = case.rank(DEFAULT_LEAD, shipped)
        seen = case.review(DEFAULT_LEAD, shipped)
        ranked = seen["hypotheses"]
        rows.append({"case": case.id, "fault_type": case.label["fault_type"], "service": case.label["service"],
                     "rank": r, "rank_hypotheses": seen["rank"], "top3": [h.service for h in ranked[:3]],
                     "top_hypothesis": None if not ranked else f"{ranked[0].service}/{ranked[0].cause}",
                     "confidence": None if not ranked else ranked[0].confidence,
                     **{f"ais@{k}": v for k, v in seen["ais"].items()}})
    result = summarize(rows)
    result["hypotheses"] = summarize(rows, rank="rank_hypotheses")
    for k in AIS_KS:
        result[f"AIS@{k}"] = share(r[f"ais@{k}"] for r in rows if f"ais@{k}" in r)
    result["seconds_per_case"] = round(sum(seconds) / len(seconds), 3) if seconds else None
    result["read_seconds"] = round(read_seconds, 2)
    result["params"] = {"lead_seconds": DEFAULT_LEAD, **shipped.to_dict()}

    # ---- the reference methods, same windows
    result["baselines"] = baselines(cases)

    if do_cv:
        result["cv"] = cross_validation(cases, leads, repeats)
        result["brier"] = result["cv"].get("stratified_4fold", {}).get("brier")
    result["config"] = {"data": str(data), "reference": reference_mode, "leads": leads,
                        "read": "whole folder once, windows cut in memory"}
    result["per_case"] = rows
    if not quiet:
        report(result)
    return result


def baselines(cases: list[Case]) -> dict:
    out = {}
    for name, method in reference.METHODS.items():
        rows = []
        for case in cases:
            window = case.windows[DEFAULT_LEAD]
            ranking = method(window)
            services = ranking.services()
            truth = case.label["service"]
            row = {"fault_type": case.label["fault_type"], "rank": rank_of(services, truth, len(window.services()))}
            if case.inner is not None:
                named = [ranking.inner.get(s, "") for s in services[:3]]
                for k in AIS_KS:
                    row[f"ais@{k}"] = any(s == truth and inner_cause_matches(case.inner, case.label["fault_type"], [n])
                                          for s, n in zip(services[:k], named[:k]))
            rows.append(row)
        summary = summarize(rows)
        for k in AIS_KS:
            summary[f"AIS@{k}"] = share(r[f"ais@{k}"] for r in rows if f"ais@{k}" in r)
        out[name] = summary
    rows = []
    for case in cases:
        n = len(case.services[DEFAULT_LEAD])
        rows.append({"fault_type": case.label["fault_type"], **reference.random_expectation(n)})
    rand = {"cases": len(rows), **{f"AS@{k}": round(float(np.mean([r[f"AS@{k}"] for r in rows])), 4) for k in KS},
            "mean_rank": round(float(np.mean([r["rank"] for r in rows])), 3) if rows else None, "by_fault_type": {}}
    for fault in sorted({r["fault_type"] for r in rows}):
        part = [r for r in rows if r["fault_type"] == fault]
        rand["by_fault_type"][fault] = {"cases": len(part), **{f"AS@{k}": round(float(np.mean([r[f"AS@{k}"] for r in part])), 4)
                                                               for k in KS},
                                        "mean_rank": round(float(np.mean([r["rank"] for r in part])), 3)}
    out["random"] = rand
    return out


def cross_validation(cases: list[Case], leads, repeats: int) -> dict:
    configs = configurations(leads)
    ranks = np.zeros((len(cases), len(configs)))
    for i, case in enumerate(cases):
        for j, (lead, params) in enumerate(configs):
            ranks[i, j] = case.rank(lead, params)
    protocols = {}
    if len(cases) >= 4:  # a folder of fewer cases cannot hold four folds
        protocols["stratified_4fold"] = cv_lib.repeated_stratified_kfold(
            [c.label["fault_type"] for c in cases], 4, repeats, protocol="stratified_4fold")
    days = [c.day for c in cases]
    if len(set(days)) > 1:
        protocols["leave_one_day_out"] = cv_lib.leave_one_group_out(days, protocol="leave_one_day_out")
    out = {}
    reviews: dict[tuple[int, int], dict] = {}

    def review(case: int, config: int) -> dict:
        if (case, config) not in reviews:
            reviews[(case, config)] = cases[case].review(*configs[config])
        return reviews[(case, config)]

    def margin_of(case: int, config: int) -> tuple[float, bool]:
        seen = review(case, config)
        return seen["margin"], seen["right"]

    held_out_pairs: list[tuple[float, bool]] = []
    for name, folds in protocols.items():
        res = cv_lib.cross_validate(ranks, margin_of, folds)
        if name == "stratified_4fold":
            held_out_pairs = [margin_of(p.case, p.config) for p in res.predictions]
        rows = []
        for p in res.predictions:
            seen = review(p.case, p.config)
            rows.append({"fault_type": cases[p.case].label["fault_type"], "rank": p.rank, "p": p.probability,
                         "right": seen["right"], "rank_hypotheses": seen["rank"],
                         **{f"ais@{k}": v for k, v in seen["ais"].items()}})
        summary = summarize(rows)
        summary["hypotheses"] = summarize(rows, rank="rank_hypotheses")
        for k in AIS_KS:
            summary[f"AIS@{k}"] = share(r[f"ais@{k}"] for r in rows if f"ais@{k}" in r)
        # the confidence is that of the first hypothesis' service being the origin
        hits = [r["right"] for r in rows]
        summary["brier"] = brier([r["p"] for r in rows], hits)
        # the constant predictor: each fold's training base rate of a right first hypothesis
        constant, outcomes = [], []
        for fold, config, _ in res.chosen:
            rate = float(np.mean([review(c, config)["right"] for c in fold.train]))
            constant += [rate] * len(fold.test)
            outcomes += [review(c, config)["right"] for c in fold.test]
        summary["brier_constant"] = brier(constant, outcomes)
        summary["reliability"] = reliability([r["p"] for r in rows], hits)
        summary["folds"] = len(folds)
        summary["chosen"] = [{"fold": fold.name, "lead_seconds": configs[config][0], **configs[config][1].to_dict(),
                              "platt": platt.to_dict()} for fold, config, platt in res.chosen]
        out[name] = summary
    best = cv_lib.choose(ranks, range(len(cases)))
    lead, params = configs[best]
    # The shipped confidence is fitted on held-out predictions (each case scored by folds that did
    # not choose their constants on it), so it carries the optimism of choosing on the cases seen;
    # fitted in sample it would promise the in-sample accuracy.
    held_out = held_out_pairs or [margin_of(i, best) for i in range(len(cases))]
    platt = fit_platt([m for m, _ in held_out], [r for _, r in held_out])
    in_sample = [margin_of(i, best) for i in range(len(cases))]
    out["all_cases_choice"] = {"lead_seconds": lead, **params.to_dict(), "platt": platt.to_dict(),
                               "platt_in_sample": fit_platt([m for m, _ in in_sample], [r for _, r in in_sample]).to_dict(),
                               **summarize([{"fault_type": c.label["fault_type"], "rank": ranks[i, best]}
                                            for i, c in enumerate(cases)])}
    out["grid_size"] = len(configs)
    return out


def report(result: dict) -> None:
    print(f"{'case':<22} {'fault type':<15} {'true service':<30} {'rank':>4} {'hyp.':>4}  {'AIS@1':>5}  top hypothesis")
    for r in result["per_case"]:
        print(f"{r['case']:<22} {r['fault_type']:<15} {r['service']:<30} {r['rank']:>4} {r['rank_hypotheses']:>4}  "
              f"{str(r.get('ais@1', '-')):>5}  {r['top_hypothesis']}")
    columns = [("shipped (in-sample)", result)]
    for name in ("stratified_4fold", "leave_one_day_out"):
        if name in result.get("cv", {}):
            columns.append((f"CV {name.replace('_', ' ')}", result["cv"][name]))
    columns += [(name, s) for name, s in result["baselines"].items()]
    faults = ["all", *sorted(result["by_fault_type"])]
    for metric in ("AS@1", "AS@3", "AS@5", "mean_rank"):
        print(f"\n{metric:<15}" + "".join(f"{name[:22]:>24}" for name, _ in columns))
        for fault in faults:
            cells = []
            for _, s in columns:
                part = s if fault == "all" else s.get("by_fault_type", {}).get(fault, {})
                value = part.get(metric)
                cells.append("-" if value is None else f"{value:.3f}")
            print(f"{fault:<15}" + "".join(f"{c:>24}" for c in cells))
    cells = []
    for _, s in columns:
        h = s.get("hypotheses")
        cells.append("-" if not h else f"{h['AS@1']:.3f} / {h['AS@3']:.3f}")
    print(f"\n{'hyp. AS@1 / @3':<15}" + "".join(f"{c:>24}" for c in cells))
    print(f"{'AIS@1 / AIS@3':<15}" + "".join(
        f"{(str(s.get('AIS@1')) + ' / ' + str(s.get('AIS@3'))) if s.get('AIS@1') is not None else '-':>24}" for _, s in columns))
    for name in ("stratified_4fold", "leave_one_day_out"):
        s = result.get("cv", {}).get(name)
        if not s:
            continue
        print(f"\n{name}: {s['folds']} folds; Brier {s['brier']} (constant predictor {s['brier_constant']})")
        print(f"  {'predicted':<10} {'cases':>5} {'mean p':>7} {'observed':>8}")
        for b in s["reliability"]:
            print(f"  {b['bin']:<10} {b['cases']:>5} {b['predicted'] if b['predicted'] is not None else '-':>7} "
                  f"{b['observed'] if b['observed'] is not None else '-':>8}")
        chosen = defaultdict(int)
        for c in s["chosen"]:
            chosen[json.dumps({k: c[k] for k in ("lead_seconds", "weights", "floors", "discount", "explain")},
                              sort_keys=True)] += 1
        for text, count in sorted(chosen.items(), key=lambda kv: -kv[1])[:3]:
            print(f"  chosen in {count} fold(s): {text}")
    if "cv" in result:
        print(f"\nchoice on all cases (what the product ships): {json.dumps(result['cv']['all_cases_choice'])}")
    print(f"\nread {result['read_seconds']} s (once); modalities + combination {result['seconds_per_case']} s per case (warm)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the Nezha TrainTicket folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--reference", choices=("construct", "none"), default="construct",
                        help="add the construct (fault-free) window's logs and spans to the baseline")
    parser.add_argument("--cv", action="store_true", help="cross-validate the constants (leave one day out, "
                                                          "repeated stratified 4-fold) and print the CV table")
    parser.add_argument("--repeats", type=int, default=10, help="repeats of the stratified 4-fold (default %(default)s)")
    args = parser.parse_args(argv)
    if not (args.data / "rca_data").is_dir():
        parser.error(f"{args.data}: not a Nezha data set folder (no rca_data/ inside)")
    result = run(args.data, args.reference, args.cv, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
