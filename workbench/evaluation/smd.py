"""Metric detection and root-cause metrics on SMD-layout data (SMD, ASD), scored through the product's own path.

Used by ``benchmarks/smd.py`` (which adds the command line and the tables) and the tests.

Layout (SMD and ASD alike): ``train/<m>.txt[.gz]``, ``test/<m>.txt[.gz]`` (comma-separated rows,
no header), ``test_label/<m>.txt`` (one 0/1 per test row) and ``interpretation_label/<m>.txt``
(``start-end:d1,d2,...``, 0-based rows, 1-based metric numbers). SMD segment ends are exclusive,
ASD's inclusive; ``segment_end="auto"`` (default) decides per machine from ``test_label``: ends
are inclusive when the row at ``end`` is labelled in most segments.

Per machine, :func:`workbench.signals.detect.score_frame` runs on the train rows followed by the
test rows (a synthetic 1-minute UTC index; ``baseline_end`` = first test row), exactly as in the
product: fit on train, threshold = the ``quantile`` of the TRAIN scores (no test label is used),
score test. :func:`run` reports per machine and as the mean over machines (:data:`KEYS`):

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

:func:`leave_one_machine_out` chooses the contribution method and its reference window: for
each machine, the (method, window) pair with the best mean HitRate@150 on the OTHER machines
(ties: the first of :data:`CV_GRID`, the shipped setting) is scored on it. The
``deviation``/``zscore`` contributions depend on the baseline's statistics only, not on the
detector's model, so the grid runs with the cheap ``zscore`` detector (``tail`` is ECOD/COPOD's
own and is compared with ``detector="copod"``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DetectionError, ParameterError, SourceError
from ..signals import detect

#: (contribution method, reference window in steps; 0 = the baseline median) pairs
#: :func:`leave_one_machine_out` chooses from, the shipped setting first.
CV_GRID = tuple((m, w) for m in ("deviation", "zscore") for w in (detect.base.REFERENCE_WINDOW, 0, 30, 120))
#: The figures of each machine that :func:`run` also reports as the mean over machines.
KEYS = ("f1", "precision", "recall", "roc_auc", "pr_auc", "f1_pa", "event_recall", "false_alert_rate",
        "hitrate@100", "hitrate@150", "hitrate_flagged@150", "seconds")
#: How the interpretation file's segment ends are read (``auto``: decided per machine from ``test_label``).
SEGMENT_ENDS = ("auto", "inclusive", "exclusive")


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
        raise SourceError(f"{data}: no train/<name>.txt[.gz] files (expected the SMD layout: train/, test/, "
                          f"test_label/, interpretation_label/)")
    return sorted(names)


def load_machine(data: Path, name: str, segment_end: str = "auto") -> Machine:
    """Read one entity; ``segment_end`` is ``auto``, ``inclusive`` or ``exclusive``."""
    if segment_end not in SEGMENT_ENDS:
        raise ParameterError(f"segment_end must be one of {', '.join(SEGMENT_ENDS)}, got {segment_end!r}")
    train = _matrix(data / "train", name)
    test = _matrix(data / "test", name)
    labels = np.loadtxt(data / "test_label" / f"{name}.txt", dtype=int).reshape(-1)
    if len(labels) != len(test):
        raise SourceError(f"{data}/test_label/{name}.txt has {len(labels)} rows; test has {len(test)}")
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
        raise DetectionError(f"{machine.name}: not scored: {result.notes}")
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
    raise SourceError(f"{folder}/{name}.txt[.gz] is missing")
