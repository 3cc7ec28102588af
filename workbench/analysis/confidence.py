"""Calibrated confidence of a ranking: the probability that a ranked service is the origin.

The localiser's scores are comparable within one incident only; how far the first service stands
above the runner-up (the *margin*, :func:`margin`) is what says how sure the ranking is. A
:class:`Platt` model maps a margin to a probability; its two constants are fitted on labelled
incidents under cross-validation (``benchmarks/nezha.py --cv``,
:func:`workbench.evaluation.calibration.fit_platt`); :data:`DEFAULT` is fitted on the
cross-validation's held-out predictions. Every service gets the probability of its own margin over the best *other*
service (negative for all but the first), so the probabilities fall with the rank.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

#: Scores below this count as this in a margin (a ranking whose runner-up scored 0 is sure, not infinitely so).
MARGIN_FLOOR = 0.01


@dataclass(frozen=True)
class Platt:
    """``p = 1 / (1 + exp(-(a * margin + b)))``.

    Attributes
    ----------
    a, b : float
        Slope and intercept.
    """

    a: float = 1.0
    b: float = 0.0

    def __call__(self, margin: float) -> float:
        """The probability for one margin (a missing margin counts as 0, the margin is clipped to +-50)."""
        m = 0.0 if margin is None or math.isnan(float(margin)) else float(margin)
        z = self.a * max(-50.0, min(50.0, m)) + self.b
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_dict(self) -> dict[str, float]:
        return {"a": round(self.a, 6), "b": round(self.b, 6)}


#: Fitted by ``benchmarks/nezha.py --cv`` (``all_cases_choice.platt``) on the held-out predictions
#: of its stratified cross-validation over the 32 shared Nezha cases, with the shipped constants'
#: procedure: a margin of 0 (a tie) gives 0.53, 0.25 gives 0.80, 0.5 gives 0.93. Fitted per fold
#: the same way, it scores a Brier of 0.103 on held-out cases against 0.113 for a constant
#: (``docs/ranking.md``).
DEFAULT = Platt(a=4.93483, b=0.132049)


def margin(score: float, others: Sequence[float], floor: float = MARGIN_FLOOR) -> float:
    """``log(score / best of others)``, both floored at ``floor`` (0 when there is no other)."""
    best = max((max(float(o), 0.0) for o in others), default=None)
    if best is None:
        return 0.0
    return math.log(max(float(score), floor) / max(best, floor))


def margins(scores: Sequence[float], floor: float = MARGIN_FLOOR) -> list[float]:
    """Each score's :func:`margin` over the best of the others."""
    values = [max(float(s), 0.0) for s in scores]
    if len(values) < 2:
        return [0.0] * len(values)
    order = sorted(range(len(values)), key=lambda i: -values[i])
    first, second = values[order[0]], values[order[1]]
    return [margin(v, [second if i == order[0] else first], floor) for i, v in enumerate(values)]


def probabilities(scores: Sequence[float], model: Platt | None = None) -> list[float]:
    """The calibrated probability of each score's service being the origin (same order as ``scores``)."""
    model = model or DEFAULT
    return [model(m) for m in margins(scores)]
