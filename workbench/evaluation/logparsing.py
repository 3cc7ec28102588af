"""How well log lines are grouped into templates, scored against loghub's ground truth.

The loghub 2k data sets (``*.log_structured.csv``: ``Content``, ``EventId`` per line) are mined
with :class:`workbench.signals.logs.TemplateMiner` and scored with loghub's two metrics:

- **grouping accuracy** (GA, the loghub/Drain definition): a line is correct when the set of lines
  in its predicted group is exactly the set of lines of its ground-truth group;
- **pairwise F1** over line pairs.

Used by ``benchmarks/loghub.py`` and the tests.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SourceError
from ..signals.logs import TemplateMiner


def discover(data: Path) -> dict[str, Path]:
    """System name -> structured CSV, for every ``*.log_structured.csv`` one folder below ``data``.

    A folder with one such file is named after the folder (``HDFS``), otherwise after the file.
    """
    found: dict[str, Path] = {}
    for folder in sorted(p for p in Path(data).iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.log_structured.csv"))
        for f in files:
            name = folder.name if len(files) == 1 else f.name.removesuffix(".log_structured.csv")
            found[name] = f
    return found


def load(path: Path) -> pd.DataFrame:
    """The ``Content`` and ``EventId`` columns of a loghub structured CSV, as text."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("Content", "EventId") if c not in frame.columns]
    if missing:
        raise SourceError(f"{path}: expected loghub columns Content and EventId, missing {', '.join(missing)}")
    return frame[["Content", "EventId"]]


def grouping_accuracy(truth: Sequence, pred: Sequence) -> float:
    """Share of lines whose predicted group equals their ground-truth group as a set of lines."""
    pairs = pd.DataFrame({"t": list(truth), "p": list(pred)})
    if pairs.empty:
        return float("nan")
    cells = pairs.groupby(["p", "t"], sort=False).size().rename("n").reset_index()
    cells["p_size"] = cells["p"].map(pairs["p"].value_counts())
    cells["t_size"] = cells["t"].map(pairs["t"].value_counts())
    exact = (cells["n"] == cells["p_size"]) & (cells["n"] == cells["t_size"])
    return float(cells.loc[exact, "n"].sum() / len(pairs))


def pairwise_f1(truth: Sequence, pred: Sequence) -> dict[str, float]:
    """Precision, recall and F1 over the pairs of lines put in one group (loghub's F-measure)."""
    pairs = pd.DataFrame({"t": list(truth), "p": list(pred)})

    def n_pairs(counts: pd.Series) -> float:
        c = counts.to_numpy(dtype=float)
        return float((c * (c - 1) / 2).sum())

    real = n_pairs(pairs["t"].value_counts())
    parsed = n_pairs(pairs["p"].value_counts())
    both = n_pairs(pairs.groupby(["p", "t"], sort=False).size())
    precision = both / parsed if parsed else 1.0
    recall = both / real if real else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def evaluate(frame: pd.DataFrame, params: dict | None = None) -> dict:
    """Mine one system's ``Content`` and score it against ``EventId``."""
    t0 = time.perf_counter()
    pred = TemplateMiner(**(params or {})).fit_predict(frame["Content"].tolist())
    seconds = time.perf_counter() - t0
    return {
        "lines": len(frame),
        "templates_truth": int(frame["EventId"].nunique()),
        "templates_pred": len(set(pred)),
        "grouping_accuracy": grouping_accuracy(frame["EventId"], pred),
        "f1": pairwise_f1(frame["EventId"], pred)["f1"],
        "seconds": round(seconds, 3),
    }


def run(data: Path, systems: Sequence[str] | None = None, params: dict | None = None) -> dict:
    """The shared-configuration run over every system of ``data`` (or the named ones)."""
    found = discover(data)
    if systems:
        unknown = sorted(set(systems) - set(found))
        if unknown:
            raise SourceError(f"{data}: no system {', '.join(unknown)} (found: {', '.join(found) or 'none'})")
        found = {s: found[s] for s in systems}
    if not found:
        raise SourceError(f"{data}: no */*.log_structured.csv found")
    results = {name: evaluate(load(path), params) for name, path in found.items()}
    return {
        "data": str(data),
        "systems": results,
        "mean_grouping_accuracy": float(np.mean([r["grouping_accuracy"] for r in results.values()])),
        "mean_f1": float(np.mean([r["f1"] for r in results.values()])),
        "seconds": round(sum(r["seconds"] for r in results.values()), 3),
        "config": TemplateMiner(**(params or {})).get_params(),
    }
