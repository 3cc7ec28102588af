"""Metric detection and root-cause metrics on SMD-layout data (SMD, ASD): the product's own path.

Usage (from the repo root)::

    python benchmarks/smd.py --data ../shared/data/smd --json smd.json            # default detector
    python benchmarks/smd.py --data ../shared/data/asd --detector copod
    python benchmarks/smd.py --data ../shared/data/smd --all-detectors            # comparison table

Layout (SMD and ASD alike): ``train/<m>.txt[.gz]``, ``test/<m>.txt[.gz]`` (comma-separated rows,
no header), ``test_label/<m>.txt`` (one 0/1 per test row) and ``interpretation_label/<m>.txt``
(``start-end:d1,d2,...``, 0-based rows, 1-based metric numbers). SMD segment ends are exclusive,
ASD's inclusive; ``--segment-end auto`` (default) decides per machine from ``test_label``: ends
are inclusive when the row at ``end`` is labelled in most segments.

Per machine, ``workbench.signals.detect.score_frame`` runs on the train rows followed by the test rows
(a synthetic 1-minute UTC index; ``baseline_end`` = first test row), exactly as in the product:
fit on train, threshold = the ``--quantile`` of the TRAIN scores (no test label is used), score
test. Reported per machine and as the mean over machines:

- ``f1`` (with ``precision``, ``recall``): point-wise, no point-adjust, at that threshold;
- ``roc_auc``, ``pr_auc`` (average precision): threshold-free;
- ``f1_pa``: best F1 over all thresholds with point-adjust (a labelled run counts as found
  when one of its points is flagged) — only to compare with papers, it flatters every method;
- ``event_recall`` (labelled runs with >= 1 flagged point), ``false_alert_rate`` (normal rows
  flagged);
- ``hitrate@100``, ``hitrate@150``: for each labelled segment with metric set G, metrics ranked
  by ``rank_metrics`` (largest |contribution| over the segment's rows, the product's own
  ranking); HitRate@P % = |top floor(P %·|G|) ∩ G| / |G|, averaged over ALL labelled segments
  (OmniAnomaly averages over detected points instead); ``hitrate_flagged@150`` averages over
  the segments with >= 1 flagged row only.
- ``seconds``: wall time of ``score_frame`` (fit + score + contributions).

``--cv`` chooses the contribution method and its reference window by leave-one-machine-out: for
each machine, the (method, window) pair with the best mean HitRate@150 on the OTHER machines
(ties: the first of :data:`CV_GRID`, the shipped setting) is scored on it; ``cv`` holds the
held-out HitRate@100/150 per machine and their mean, and what each fold chose. The
``deviation``/``zscore`` contributions depend on the baseline's statistics only, not on the
detector's model, so the grid runs with the cheap ``zscore`` detector (``tail`` is ECOD/COPOD's
own and is compared with ``--detector copod``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from workbench.signals import detect  # noqa: E402

#: (contribution method, reference window in steps; 0 = the baseline median) pairs ``--cv`` chooses
#: from, the shipped setting first.
CV_GRID = tuple((m, w) for m in ("deviation", "zscore") for w in (detect.base.REFERENCE_WINDOW, 0, 30, 120))
KEYS = ("f1", "precision", "recall", "roc_auc", "pr_auc", "f1_pa", "event_recall", "false_alert_rate",
        "hitrate@100", "hitrate@150", "hitrate_flagged@150", "seconds")


@dataclass
class Machine:
    """One entity of an SMD-layout folder.

    Attributes
    ----------
    name : str
    train, test : numpy.ndarray, shape (rows, metrics)
    labels : numpy.ndarray of int, shape (test rows,)
    segments : list of (start, stop, dims)
        0-based test rows ``[start, stop)`` (stop exclusive, whatever the file's convention) and the
        0-based labelled metric columns.
    inclusive_ends : bool
        The convention found (or forced) for the interpretation file.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    labels: np.ndarray
    segments: list[tuple[int, int, list[int]]]
    inclusive_ends: bool


def machine_names(data: Path) -> list[str]:
    """Entities that have a train file, sorted."""
    names = {p.name.split(".txt")[0] for p in (data / "train").glob("*.txt*")}
    if not names:
        raise SystemExit(f"{data}: no train/<name>.txt[.gz] files (expected the SMD layout, see the module docstring)")
    return sorted(names)


def load_machine(data: Path, name: str, segment_end: str = "auto") -> Machine:
    """Read one entity; ``segment_end`` is ``auto``, ``inclusive`` or ``exclusive``."""
    train = _matrix(data / "train", name)
    test = _matrix(data / "test", name)
    labels = np.loadtxt(data / "test_label" / f"{name}.txt", dtype=int).reshape(-1)
    if len(labels) != len(test):
        raise SystemExit(f"{data}/test_label/{name}.txt has {len(labels)} rows; test has {len(test)}")
    raw = []
    path = data / "interpretation_label" / f"{name}.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                span, dims = line.strip().split(":")
                start, end = (int(x) for x in span.split("-"))
                raw.append((start, end, [int(d) - 1 for d in dims.split(",") if d.strip()]))
    if segment_end == "auto":
        at_end = [labels[e] == 1 for _, e, _ in raw if e < len(labels)]
        inclusive = bool(at_end) and sum(at_end) > len(at_end) / 2
    else:
        inclusive = segment_end == "inclusive"
    segments = [(s, min(e + 1 if inclusive else e, len(labels)), d) for s, e, d in raw]
    return Machine(name, train, test, labels, segments, inclusive)


def evaluate(machine: Machine, detector: str, params: dict | None = None, quantile: float = 0.995,
             reference_window: int = detect.base.REFERENCE_WINDOW, step: str = "1min") -> dict:
    """Score one entity through :func:`workbench.signals.detect.score_frame` and compute every metric."""
    n_train, n_cols = machine.train.shape
    index = pd.date_range("2000-01-01", periods=n_train + len(machine.test), freq=step, tz="UTC")
    columns = [f"m{j + 1}" for j in range(n_cols)]
    frame = pd.DataFrame(np.vstack([machine.train, machine.test]), index=index, columns=columns)
    t0 = time.perf_counter()
    result = detect.score_frame(frame, baseline_end=index[n_train], detector=detector,
                                params={**(params or {}), "quantile": quantile}, step=step,
                                reference_window=reference_window, service=machine.name)
    seconds = time.perf_counter() - t0
    if not result.ok:
        raise SystemExit(f"{machine.name}: not scored: {result.notes}")
    scores = result.scores.to_numpy()
    flags = result.anomalous.to_numpy()
    y = machine.labels
    out = {"machine": machine.name, **_detection(y, scores, flags), "seconds": round(seconds, 3),
           "threshold": result.threshold, "segments": len(machine.segments),
           "inclusive_segment_ends": machine.inclusive_ends}
    out.update(_hitrates(result.contributions.reindex(columns=columns, fill_value=0.0), machine, flags))
    return out


def run(data: Path, detector: str, params: dict | None = None, quantile: float = 0.995,
        reference_window: int = detect.base.REFERENCE_WINDOW, segment_end: str = "auto",
        machines: list[str] | None = None, step: str = "1min") -> dict:
    """Evaluate every entity of ``data``; the result has per-machine rows and the means."""
    names = machines or machine_names(data)
    rows = [evaluate(load_machine(data, n, segment_end), detector, params, quantile, reference_window, step)
            for n in names]
    out = {"detector": detector,
           "config": {"data": str(data), "params": params or {}, "quantile": quantile,
                      "reference_window": reference_window, "segment_end": segment_end, "step": step,
                      "hitrate_over": "all labelled segments", "ranking": "max |contribution| over the segment"},
           "machines": rows}
    for key in KEYS:
        values = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
        out[key] = round(float(np.mean(values)), 4) if values else None
    return out


def leave_one_machine_out(data: Path, segment_end: str = "auto", machines: list[str] | None = None,
                          detector: str = "zscore", grid: tuple = CV_GRID) -> dict:
    """HitRate@100/150 with the contribution method and window chosen on the other machines."""
    names = machines or machine_names(data)
    loaded = [load_machine(data, n, segment_end) for n in names]
    table = np.zeros((len(loaded), len(grid), 2))
    for i, machine in enumerate(loaded):
        for j, (method, window) in enumerate(grid):
            res = evaluate(machine, detector, {"explain": method}, reference_window=window)
            table[i, j] = res["hitrate@100"] or 0.0, res["hitrate@150"] or 0.0
    folds = []
    for i, name in enumerate(names):
        others = [k for k in range(len(names)) if k != i] or [i]
        score = table[others, :, 1].mean(axis=0)
        j = int(np.flatnonzero(score >= score.max() - 1e-12)[0])
        folds.append({"machine": name, "method": grid[j][0], "reference_window": grid[j][1],
                      "hitrate@100": round(float(table[i, j, 0]), 4), "hitrate@150": round(float(table[i, j, 1]), 4)})
    best_all = int(np.argmax(table[:, :, 1].mean(axis=0)))
    return {"protocol": "leave one machine out", "grid": [list(g) for g in grid], "folds": folds,
            "hitrate@100": round(float(np.mean([f["hitrate@100"] for f in folds])), 4),
            "hitrate@150": round(float(np.mean([f["hitrate@150"] for f in folds])), 4),
            "in_sample_best": {"method": grid[best_all][0], "reference_window": grid[best_all][1],
                               "hitrate@150": round(float(table[:, best_all, 1].mean()), 4)},
            "per_config_hitrate@150": {f"{m}/{w}": round(float(table[:, j, 1].mean()), 4)
                                       for j, (m, w) in enumerate(grid)}}


# --------------------------------------------------------------------------- metrics

def _detection(y: np.ndarray, scores: np.ndarray, flags: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    tp = int((flags & (y == 1)).sum())
    fp = int((flags & (y == 0)).sum())
    fn = int((~flags & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    runs = _runs(y)
    out = {"f1": f1, "precision": precision, "recall": recall,
           "event_recall": float(np.mean([flags[s:e].any() for s, e in runs])) if runs else None,
           "false_alert_rate": fp / max(int((y == 0).sum()), 1)}
    if 0 < y.sum() < len(y):
        out["roc_auc"] = float(roc_auc_score(y, scores))
        out["pr_auc"] = float(average_precision_score(y, scores))
        # Point-adjust: every point of a labelled run takes the run's best score.
        adjusted = scores.copy()
        for s, e in runs:
            adjusted[s:e] = scores[s:e].max()
        p, r, _ = precision_recall_curve(y, adjusted)
        out["f1_pa"] = float(np.max(2 * p * r / np.maximum(p + r, 1e-12)))
    else:
        out.update(roc_auc=None, pr_auc=None, f1_pa=None)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def _hitrates(contrib: pd.DataFrame, machine: Machine, flags: np.ndarray) -> dict:
    hits = {100: [], 150: []}
    flagged = []
    columns = list(contrib.columns)
    for start, stop, dims in machine.segments:
        if stop <= start or not dims:
            continue
        ranked = detect.rank_metrics(contrib.iloc[start:stop])
        order = [columns.index(m) for m in ranked["metric"]]
        truth = set(dims)
        for p in hits:
            top = order[: int(np.floor(p / 100 * len(dims)))]
            hits[p].append(len(truth.intersection(top)) / len(truth))
        if flags[start:stop].any():
            flagged.append(hits[150][-1])
    mean = (lambda v: round(float(np.mean(v)), 4) if v else None)
    return {"hitrate@100": mean(hits[100]), "hitrate@150": mean(hits[150]), "hitrate_flagged@150": mean(flagged),
            "flagged_segments": len(flagged)}


def _runs(y: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], (y == 1).astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _matrix(folder: Path, name: str) -> np.ndarray:
    for suffix in (".txt.gz", ".txt"):
        path = folder / f"{name}{suffix}"
        if path.exists():
            return pd.read_csv(path, header=None).to_numpy(dtype=float)
    raise SystemExit(f"{folder}/{name}.txt[.gz] is missing")


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
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--param {text!r}: expected KEY=VALUE")
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
    parser.add_argument("--segment-end", choices=("auto", "inclusive", "exclusive"), default="auto")
    parser.add_argument("--machine", action="append", help="only this entity (repeatable)")
    parser.add_argument("--cv", action="store_true",
                        help="choose the contribution method and window by leave-one-machine-out (HitRate)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="detector hyper-parameter, VALUE as JSON or text (repeatable), e.g. explain=tail")
    args = parser.parse_args(argv)
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
