"""ECOD and COPOD with a frozen baseline: tail probabilities from the baseline's ECDF only.

PyOD's ``ECOD``/``COPOD.decision_function(X)`` rebuild each column's empirical distribution from
the training rows AND the scored rows, so an incident window shapes its own baseline and a row's
score depends on what else is scored (STACK.md). Here the per-column sorted baseline values are
kept at fit time and each scored value is located in them with a binary search, so scoring never
changes the baseline. On the baseline rows themselves the scores equal PyOD's
``decision_scores_`` (same ECDF convention, same skewness correction; checked in the tests).

Beyond the baseline's range the ECDF is 0 and PyOD's score would be infinite; instead the tail
probability stays at its smallest baseline value ``1/n`` and the excess adds
``log1p(excess / width)`` (``width`` = the baseline's range of the column), so a value twice as
far out scores higher, and a metric that was constant in the baseline and moved scores high
without overflowing.
"""
from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from .catalog import register
from .base import DEFAULT_QUANTILE, EXPLAIN_METHODS, Detector


class _TailDetector(Detector):
    """Shared fitting and tail probabilities of :class:`EcodDetector` and :class:`CopodDetector`."""

    explain_methods: ClassVar[tuple[str, ...]] = EXPLAIN_METHODS + ("tail",)

    def __init__(self, quantile: float = DEFAULT_QUANTILE, explain: str = "deviation"):
        super().__init__(quantile=quantile, explain=explain)

    def _fit(self, X: np.ndarray) -> np.ndarray:
        from scipy.stats import skew

        self.sorted_ = np.sort(X, axis=0)
        with warnings.catch_warnings():
            # Constant columns: scipy warns and returns NaN; PyOD maps NaN to 0, so do we.
            warnings.simplefilter("ignore", RuntimeWarning)
            self.skew_sign_ = np.sign(np.nan_to_num(skew(X, axis=0)))
        self.width_ = np.where(self.hi_ > self.lo_, self.hi_ - self.lo_, self.scale_)
        return self._score(X)

    def _tails(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``-log`` left and right tail probabilities of each value against the baseline ECDF."""
        n = self.sorted_.shape[0]
        left = np.empty_like(X)
        right = np.empty_like(X)
        for j in range(X.shape[1]):
            col = self.sorted_[:, j]
            left[:, j] = np.searchsorted(col, X[:, j], side="right")
            right[:, j] = n - np.searchsorted(col, X[:, j], side="left")
        u_l = -np.log(np.maximum(left, 1) / n)
        u_r = -np.log(np.maximum(right, 1) / n)
        u_l += np.log1p(np.maximum(self.lo_ - X, 0) / self.width_)
        u_r += np.log1p(np.maximum(X - self.hi_, 0) / self.width_)
        return u_l, u_r

    def _skew_corrected(self, u_l: np.ndarray, u_r: np.ndarray) -> np.ndarray:
        s = self.skew_sign_
        return u_l * -1 * np.sign(s - 1) + u_r * np.sign(s + 1)

    def _outlyingness(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._outlyingness(X).sum(axis=1)

    def _explain(self, X: np.ndarray, ref: np.ndarray) -> np.ndarray:
        # explain="tail": the per-metric terms of the score, signed by the side of the median.
        sign = np.where(X >= self.center_, 1.0, -1.0)
        return sign * self._outlyingness(X)


@register("ecod")
class EcodDetector(_TailDetector):
    """ECOD (Li et al., TKDE 2022) against a frozen baseline.

    Per metric: the larger of the left tail, the right tail and the skewness-chosen tail
    (``-log`` probabilities); the score is their sum over metrics.

    Parameters
    ----------
    quantile, explain
        See :class:`~workbench.signals.detect.base.Detector`; ``explain="tail"`` returns the per-metric
        terms above, signed by direction.
    """

    def _outlyingness(self, X: np.ndarray) -> np.ndarray:
        u_l, u_r = self._tails(X)
        return np.maximum(np.maximum(u_l, u_r), self._skew_corrected(u_l, u_r))


@register("copod")
class CopodDetector(_TailDetector):
    """COPOD (Li et al., ICDM 2020) against a frozen baseline.

    Per metric: the larger of the skewness-chosen tail and the mean of both tails; the score is
    their sum over metrics.

    Parameters
    ----------
    quantile, explain
        See :class:`EcodDetector`.
    """

    def _outlyingness(self, X: np.ndarray) -> np.ndarray:
        u_l, u_r = self._tails(X)
        return np.maximum(self._skew_corrected(u_l, u_r), (u_l + u_r) / 2)
