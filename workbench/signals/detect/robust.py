"""A robust |z| baseline detector: distance from the baseline median in robust-scale units."""
from __future__ import annotations

import numpy as np

from .catalog import register
from .base import DEFAULT_QUANTILE, Detector
from ...errors import DetectionError

COMBINE = ("max", "mean")


@register("zscore")
class ZScoreDetector(Detector):
    """Robust |z| against the baseline: ``|x - median| / scale`` per metric, combined per row.

    ``scale`` is 1.4826·MAD of the baseline, with fallbacks for metrics whose MAD is 0
    (:func:`~workbench.signals.detect.base.robust_scale`).

    Parameters
    ----------
    combine : {"max", "mean"}
        How the per-metric |z| of a row become its score: the largest (one metric far out is
        enough) or the mean (many metrics a little out).
    quantile, explain
        See :class:`~workbench.signals.detect.base.Detector`.
    """

    def __init__(self, combine: str = "max", quantile: float = DEFAULT_QUANTILE, explain: str = "deviation"):
        super().__init__(quantile=quantile, explain=explain)
        self.combine = combine

    def _check_params(self) -> None:
        super()._check_params()
        if self.combine not in COMBINE:
            raise DetectionError(f"combine must be one of {', '.join(COMBINE)}; got {self.combine!r}")

    def _fit(self, X: np.ndarray) -> np.ndarray:
        return self._score(X)

    def _score(self, X: np.ndarray) -> np.ndarray:
        z = np.abs(X - self.center_) / self.scale_
        return z.max(axis=1) if self.combine == "max" else z.mean(axis=1)
