"""Calibrated confidence: Platt scaling of a ranking's score margin, Brier score, reliability table.

The model (:class:`workbench.analysis.confidence.Platt`: ``p = 1 / (1 + exp(-(a * margin + b)))`` of the
top service's score margin) is fitted here by maximum likelihood on labelled cases with Platt's
smoothed targets (so a perfectly separated training set does not push ``a`` to infinity). Fitted under the same cross-validation as the ranking
(:mod:`workbench.evaluation.cv`), the held-out predictions give the Brier score and the
reliability table published with the accuracy.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from ..analysis.confidence import Platt

#: Bins of the reliability table.
BINS = 5


def fit_platt(margins: Sequence[float], outcomes: Sequence[bool], iterations: int = 100) -> Platt:
    """Platt scaling by Newton's method on the smoothed log-likelihood.

    Parameters
    ----------
    margins : sequence of float
        One per labelled case (e.g. the log ratio of the top score over the runner-up's).
    outcomes : sequence of bool
        Whether the case's top-ranked item was right.

    Returns
    -------
    Platt
        With no case, ``Platt(0, 0)`` (p = 0.5); targets are ``(n+ + 1) / (n+ + 2)`` for positives
        and ``1 / (n- + 2)`` for negatives (Platt 1999), so the fit always exists.
    """
    x = np.clip(np.nan_to_num(np.asarray(margins, dtype=float), nan=0.0, posinf=50.0, neginf=-50.0), -50, 50)
    y = np.asarray(outcomes, dtype=bool)
    if len(x) == 0:
        return Platt(0.0, 0.0)
    pos, neg = int(y.sum()), int((~y).sum())
    t = np.where(y, (pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0))
    a, b = 0.0, math.log((pos + 1.0) / (neg + 1.0))
    for _ in range(iterations):
        z = a * x + b
        p = 1.0 / (1.0 + np.exp(-z))
        w = np.maximum(p * (1 - p), 1e-12)
        g = np.array([np.sum((p - t) * x), np.sum(p - t)])
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-9:
            break
    return Platt(float(a), float(b))


def brier(probabilities: Iterable[float], outcomes: Iterable[bool]) -> float | None:
    """Mean squared difference between predicted probabilities and outcomes (None when empty)."""
    p = np.asarray(list(probabilities), dtype=float)
    y = np.asarray(list(outcomes), dtype=float)
    return None if len(p) == 0 else round(float(np.mean((p - y) ** 2)), 4)


def reliability(probabilities: Iterable[float], outcomes: Iterable[bool], bins: int = BINS) -> list[dict[str, Any]]:
    """Predicted vs observed frequency in ``bins`` equal-width bins of the predicted probability.

    Returns
    -------
    list of dict
        One per bin: ``bin`` (``"0.0-0.2"``), ``cases``, ``predicted`` (mean predicted
        probability, None when empty), ``observed`` (share of true outcomes, None when empty).
    """
    p = np.asarray(list(probabilities), dtype=float)
    y = np.asarray(list(outcomes), dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    out = []
    for i in range(bins):
        sel = index == i
        n = int(sel.sum())
        out.append({"bin": f"{edges[i]:.1f}-{edges[i + 1]:.1f}", "cases": n,
                    "predicted": round(float(p[sel].mean()), 3) if n else None,
                    "observed": round(float(y[sel].mean()), 3) if n else None})
    return out
