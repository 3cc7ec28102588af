"""Cross-validation of a ranking's constants: folds, selection on training folds, held-out scores.

Every constant chosen by looking at results is chosen here, on the training folds only, and
the published accuracy is that of the held-out folds. The expensive part of a ranking (reading
telemetry, mining logs, span statistics) does not depend on the constants, so a benchmark
computes, once per case, the rank of the true cause and the score margin under every candidate
configuration (a grid): ``ranks[case, config]`` and ``margins[case, config]``. A fold then
chooses the configuration with the best :func:`objective` on its training cases (ties: the
earlier configuration of the grid, so the grid's order states the preference), fits the
confidence (:func:`~workbench.evaluation.calibration.fit_platt`) on the same training cases, and
scores its test cases. No label of a test case is read before its fold is scored.

Protocols: :func:`leave_one_group_out` (e.g. leave one day out) and
:func:`repeated_stratified_kfold` (folds balanced by fault type, repeated with different seeds).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .calibration import Platt, fit_platt


@dataclass(frozen=True)
class Fold:
    """One split: indexes of the cases fitted on and scored.

    Attributes
    ----------
    protocol : str
    repeat, index : int
    train, test : tuple of int
    name : str
        What is held out (a group value, or ``"repeat r fold i"``).
    """

    protocol: str
    repeat: int
    index: int
    train: tuple[int, ...]
    test: tuple[int, ...]
    name: str = ""


@dataclass
class Prediction:
    """A held-out case as scored by one fold."""

    case: int
    fold: Fold
    config: int
    rank: float
    probability: float


@dataclass
class CVResult:
    """Held-out predictions of one protocol, and what each fold chose."""

    protocol: str
    predictions: list[Prediction] = field(default_factory=list)
    chosen: list[tuple[Fold, int, Platt]] = field(default_factory=list)

    def config_counts(self) -> dict[int, int]:
        """How often each configuration was chosen (by index)."""
        counts: dict[int, int] = defaultdict(int)
        for _, config, _ in self.chosen:
            counts[config] += 1
        return dict(counts)


def leave_one_group_out(groups: Sequence[Any], protocol: str = "leave_one_group_out") -> list[Fold]:
    """One fold per distinct group value: train on every other group, test on it."""
    values = sorted(set(groups), key=str)
    folds = []
    for i, value in enumerate(values):
        test = tuple(j for j, g in enumerate(groups) if g == value)
        train = tuple(j for j, g in enumerate(groups) if g != value)
        folds.append(Fold(protocol, 0, i, train, test, name=str(value)))
    check_folds(folds, len(groups))
    return folds


def repeated_stratified_kfold(strata: Sequence[Any], k: int = 4, repeats: int = 10, seed: int = 0,
                              protocol: str = "stratified_kfold") -> list[Fold]:
    """``repeats`` times, the cases split into ``k`` folds with each stratum spread evenly.

    Within a stratum the cases are shuffled (``numpy.random.default_rng(seed + repeat)``) and dealt
    round-robin, continuing where the previous stratum stopped, so fold sizes differ by at most one.

    Raises
    ------
    ValueError
        ``k < 2`` or fewer cases than folds.
    """
    n = len(strata)
    if k < 2 or n < k:
        raise ValueError(f"k must be at least 2 and at most the number of cases ({n}), got {k}")
    folds = []
    for r in range(repeats):
        rng = np.random.default_rng(seed + r)
        assign = np.empty(n, dtype=int)
        offset = int(rng.integers(k))
        for value in sorted(set(strata), key=str):
            members = np.array([j for j, s in enumerate(strata) if s == value])
            rng.shuffle(members)
            assign[members] = (offset + np.arange(len(members))) % k
            offset = (offset + len(members)) % k
        for i in range(k):
            test = tuple(int(j) for j in np.flatnonzero(assign == i))
            train = tuple(int(j) for j in np.flatnonzero(assign != i))
            folds.append(Fold(protocol, r, i, train, test, name=f"repeat {r} fold {i}"))
    check_folds(folds, n)
    return folds


def check_folds(folds: Sequence[Fold], n: int) -> None:
    """Raise ValueError when a fold trains on a case it tests, or a repeat does not test every case once."""
    by_repeat: dict[tuple[str, int], list[int]] = defaultdict(list)
    for fold in folds:
        overlap = set(fold.train) & set(fold.test)
        if overlap:
            raise ValueError(f"{fold.protocol} {fold.name}: case(s) {sorted(overlap)} both trained on and tested")
        if not fold.test:
            raise ValueError(f"{fold.protocol} {fold.name}: no test case")
        by_repeat[(fold.protocol, fold.repeat)].extend(fold.test)
    for (protocol, repeat), tested in by_repeat.items():
        if sorted(tested) != list(range(n)):
            raise ValueError(f"{protocol} repeat {repeat}: the test folds must cover each of the {n} cases once")


def objective(ranks: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """Per configuration (column): AS@3 + mean reciprocal rank over ``rows``.

    The first three hypotheses are what a reviewer reads (AS@3); the reciprocal rank orders the
    cases within them and rewards a first place most.
    """
    part = np.asarray(ranks, dtype=float)[list(rows)]
    return (part <= 3).mean(axis=0) + (1.0 / part).mean(axis=0)


def choose(ranks: np.ndarray, train: Sequence[int]) -> int:
    """The configuration with the best :func:`objective` on ``train`` (ties: the lowest index)."""
    score = objective(ranks, train)
    return int(np.flatnonzero(score >= score.max() - 1e-12)[0])


def cross_validate(ranks: np.ndarray, margins: np.ndarray | Callable[[int, int], tuple[float, bool]],
                   folds: Sequence[Fold]) -> CVResult:
    """Choose a configuration and fit the confidence per fold; score the held-out cases.

    Parameters
    ----------
    ranks : numpy.ndarray
        ``[case, config]``: rank of the true cause (1 = first).
    margins : numpy.ndarray or callable
        ``[case, config]``: the margin the confidence is computed from
        (:func:`~workbench.analysis.confidence.margin`), the top being right when the rank is 1;
        or ``margins(case, config) -> (margin, top is right)``, called only for the configurations
        a fold chose (a margin may be costly: the product's hypotheses, not the grid's scores).
    folds : sequence of Fold

    Returns
    -------
    CVResult
        One prediction per (fold, test case): the chosen configuration, the case's rank under
        it, and the probability that its top-ranked service is right.
    """
    ranks = np.asarray(ranks, dtype=float)
    if callable(margins):
        margin_of = margins
    else:
        table = np.asarray(margins, dtype=float)
        margin_of = (lambda case, config: (float(table[case, config]), bool(ranks[case, config] == 1)))
    result = CVResult(folds[0].protocol if folds else "")
    for fold in folds:
        config = choose(ranks, fold.train)
        pairs = [margin_of(case, config) for case in fold.train]
        platt = fit_platt([m for m, _ in pairs], [r for _, r in pairs])
        result.chosen.append((fold, config, platt))
        for case in fold.test:
            result.predictions.append(Prediction(case, fold, config, float(ranks[case, config]),
                                                 platt(margin_of(case, config)[0])))
    return result
