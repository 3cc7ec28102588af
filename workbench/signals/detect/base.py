"""The detector contract (PyOD's, with a frozen baseline) and the shared per-metric contributions.

Every detector

- is fitted on the BASELINE only (:meth:`Detector.fit`) and never refits when it scores: the score
  of a row depends on the baseline and that row, not on which other rows are scored with it;
- scores with :meth:`Detector.decision_function` (higher = more abnormal);
- keeps its hyper-parameters in ``__init__``, stored unchanged (:meth:`Detector.get_params`), and
  its fitted state in attributes ending in ``_``; ``threshold_`` is the ``quantile`` of the
  baseline's own scores, computed in one place (:meth:`Detector.fit`);
- explains rows with :meth:`Detector.contributions`: a signed ``(n_rows, n_columns)`` array.

Contributions (``explain="deviation"``, every detector's default)
-----------------------------------------------------------------
The contribution of metric ``j`` at row ``t`` is its deviation from a reference level, measured in
units of the baseline's range of that metric widened to include the row itself::

    c[t, j] = (x[t, j] - ref[t, j]) / (max(hi_j, x[t, j]) - min(lo_j, x[t, j]))

``lo_``/``hi_`` are the baseline minimum and maximum, ``ref`` is the baseline median or, better,
a local level (:func:`local_reference`: the median of the preceding steps). The value lies in
[-1, 1]: the sign is the direction (up/down), 1 means "far beyond anything the baseline showed",
0.3 "moved by 30 % of the metric's normal range". It reads like the chart an SRE looks at, and it
does not explode on metrics that were nearly flat in the baseline, which is what sinks a plain
robust z. On SMD (``benchmarks/smd.py``, HitRate@150 %): 0.845 with the local reference, 0.758
against the baseline median; robust |z| 0.730 / 0.710; ECOD and COPOD tail scores
(``explain="tail"``) 0.628 and 0.684. A metric constant in the baseline that moves gets ±1.
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...errors import DetectionError

#: Default quantile of the baseline's scores used as the alert threshold.
DEFAULT_QUANTILE = 0.995
#: Default number of preceding steps whose median is the local reference level.
REFERENCE_WINDOW = 60
EXPLAIN_METHODS = ("deviation", "zscore")


class Detector:
    """Base class of every detector: fit on a baseline, score other rows against it.

    Parameters
    ----------
    quantile : float
        Quantile of the baseline's scores used as ``threshold_`` (0.5 <= quantile < 1).
    explain : str
        How :meth:`contributions` is computed: ``"deviation"`` (range-normalised deviation, see
        the module docstring) or ``"zscore"`` (robust z against the baseline). ECOD and COPOD add
        ``"tail"`` (their per-metric tail scores).

    Attributes
    ----------
    n_features_in_ : int
    center_, lo_, hi_, scale_ : numpy.ndarray
        Per-column baseline median, minimum, maximum and robust scale (:func:`robust_scale`).
    decision_scores_ : numpy.ndarray
        Scores of the baseline rows (out-of-sample where the model allows it, e.g. KNN).
    threshold_ : float
        ``quantile`` of ``decision_scores_``; rows scoring above it are anomalous.
    """

    #: Fewest baseline rows the detector accepts.
    min_rows: ClassVar[int] = 10
    explain_methods: ClassVar[tuple[str, ...]] = EXPLAIN_METHODS

    def __init__(self, quantile: float = DEFAULT_QUANTILE, explain: str = "deviation"):
        self.quantile = quantile
        self.explain = explain

    # ------------------------------------------------------------------ PyOD contract

    def fit(self, X: Any, y: Any = None) -> "Detector":
        """Learn the baseline from ``X`` (rows = time steps, columns = metrics); ``y`` is ignored.

        Raises
        ------
        ValueError
            A hyper-parameter is out of range.
        DetectionError
            ``X`` is empty, not 2-D, holds NaN/inf, or has fewer than the detector's minimum rows.
        """
        self._check_params()
        X = _as_matrix(X, "baseline")
        need = self.required_rows()
        if X.shape[0] < need:
            raise DetectionError(f"baseline has {X.shape[0]} row(s); {type(self).__name__} needs at least {need}")
        self.n_features_in_ = X.shape[1]
        self.center_ = np.median(X, axis=0)
        self.lo_ = X.min(axis=0)
        self.hi_ = X.max(axis=0)
        self.scale_ = robust_scale(X)
        scores = np.asarray(self._fit(X), dtype=float)
        self.decision_scores_ = scores
        self.threshold_ = float(np.quantile(scores, self.quantile))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of each row of ``X`` against the baseline (higher = more abnormal)."""
        X = self._check_input(X)
        return np.asarray(self._score(X), dtype=float).ravel()

    def predict(self, X: Any) -> np.ndarray:
        """1 where the score is above ``threshold_``, else 0 (PyOD's labels)."""
        return (self.decision_function(X) > self.threshold_).astype(int)

    def contributions(self, X: Any, reference: Any = None) -> np.ndarray:
        """How much each metric contributes to each row's abnormality, with a sign (+ up, - down).

        Parameters
        ----------
        X : array-like, shape (n_rows, n_columns)
        reference : array-like, shape (n_rows, n_columns), optional
            The level each row is compared with (e.g. :func:`local_reference`); default: the
            baseline median. Ignored by ``explain="tail"``.

        Returns
        -------
        numpy.ndarray, shape (n_rows, n_columns)
            See the module docstring for ``"deviation"``; ``"zscore"`` returns
            ``(x - ref) / scale_``.
        """
        X = self._check_input(X)
        ref = self.center_[None, :] if reference is None else _as_matrix(reference, "reference", allow_nan=True,
                                                                              n_features=X.shape[1])
        if ref.shape[1] != X.shape[1] or ref.shape[0] not in (1, X.shape[0]):
            raise DetectionError(f"reference has shape {ref.shape}; expected ({X.shape[0]}, {X.shape[1]})")
        # A reference row that is NaN (no history yet) falls back to the baseline median.
        ref = np.where(np.isnan(ref), self.center_[None, :], ref)
        if self.explain == "zscore":
            return (X - ref) / self.scale_
        if self.explain == "deviation":
            return deviation(X, ref, self.lo_, self.hi_)
        return self._explain(X, ref)

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__`` (so a detector can be cloned)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        out = {n: getattr(self, n) for n in names if hasattr(self, n)}
        out.update(getattr(self, "params", {}) or {})
        out.pop("params", None)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ for subclasses

    def _fit(self, X: np.ndarray) -> np.ndarray:
        """Fit on the baseline; return the baseline's own scores."""
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _explain(self, X: np.ndarray, ref: np.ndarray) -> np.ndarray:
        raise DetectionError(f"explain={self.explain!r} is not supported by {type(self).__name__}")

    def required_rows(self) -> int:
        """Fewest baseline rows this detector (with its hyper-parameters) accepts."""
        return self.min_rows

    def _check_params(self) -> None:
        if not isinstance(self.quantile, (int, float)) or not 0.5 <= self.quantile < 1:
            raise DetectionError(f"quantile must be in [0.5, 1), got {self.quantile!r}")
        if self.explain not in self.explain_methods:
            raise DetectionError(f"explain must be one of {', '.join(self.explain_methods)}; got {self.explain!r}")

    def _check_input(self, X: Any) -> np.ndarray:
        if not hasattr(self, "threshold_"):
            raise DetectionError(f"{type(self).__name__} is not fitted: call fit(baseline) first")
        X = _as_matrix(X, "scored rows", min_rows=0, n_features=self.n_features_in_)
        if X.shape[1] != self.n_features_in_:
            raise DetectionError(f"scored rows have {X.shape[1]} column(s); the baseline had {self.n_features_in_}")
        return X


# ---------------------------------------------------------------------- shared helpers

def deviation(X: np.ndarray, ref: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Range-normalised signed deviation ``(x - ref) / (max(hi, x) - min(lo, x))``, in [-1, 1].

    ``lo``/``hi`` are the baseline minimum and maximum; 0 where the widened range is 0.
    """
    width = np.maximum(hi, X) - np.minimum(lo, X)
    diff = X - ref
    out = np.zeros_like(diff)
    np.divide(diff, width, out=out, where=width > 0)
    return np.clip(out, -1.0, 1.0)


def robust_scale(X: np.ndarray, *, floor: Any = None, fallback: bool = True) -> np.ndarray:
    """Per-column robust scale: 1.4826·MAD around the median (NaN cells skipped).

    The one scale every robust z of the workbench divides by (the detectors, the localiser, the
    correlation, the charts). Where the MAD is 0 (a metric that sits on one value most of the
    time) ``fallback`` uses 1.2533·mean absolute deviation, else the standard deviation; ``floor``
    (a number or one per column) is the least scale, e.g. a share of the metric's level so that a
    flat baseline does not make every wiggle huge. A column with no scale at all gets a tiny
    positive one so that any change stands out.
    """
    X = np.asarray(X, dtype=float)
    with np.errstate(all="ignore"):
        med = np.nanmedian(X, axis=0) if X.size else np.zeros(X.shape[1:])
        dev = np.abs(X - med)
        scale = np.nan_to_num(1.4826 * np.nanmedian(dev, axis=0)) if X.size else np.zeros(X.shape[1:])
        if fallback:
            scale = np.where(scale > 0, scale, np.nan_to_num(1.2533 * np.nanmean(dev, axis=0)))
            scale = np.where(scale > 0, scale, np.nan_to_num(np.nanstd(X, axis=0)))
    if floor is not None:
        scale = np.maximum(scale, np.nan_to_num(np.asarray(floor, dtype=float)))
    tiny = 1e-9 * np.maximum(1.0, np.abs(np.nan_to_num(med)))
    return np.maximum(scale, tiny)


def robust_z(values: np.ndarray, baseline: np.ndarray, *, floor: Any = None, fallback: bool = True) -> np.ndarray:
    """``(values - median) / robust_scale`` per column, the median and scale from ``baseline``.

    Signed: a value above the baseline's median has a positive z. ``floor`` and ``fallback`` as
    in :func:`robust_scale`.
    """
    baseline = np.asarray(baseline, dtype=float)
    with np.errstate(all="ignore"):
        center = np.nanmedian(baseline, axis=0)
    return (np.asarray(values, dtype=float) - center) / robust_scale(baseline, floor=floor, fallback=fallback)


def local_reference(values: pd.DataFrame | np.ndarray, window: int = REFERENCE_WINDOW) -> np.ndarray:
    """The level each row is compared with: the median of the ``window`` preceding rows.

    The row itself is excluded, so a spike is measured against what came before it. Rows must be
    in time order, one per step (e.g. the baseline followed by the scored rows); the first row has
    no history and gets NaN (callers fall back to the baseline median). NaN cells are skipped.

    Returns
    -------
    numpy.ndarray, same shape as ``values``
    """
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise DetectionError(f"window must be a positive number of steps, got {window!r}")
    frame = pd.DataFrame(np.asarray(values, dtype=float))
    return frame.shift(1).rolling(int(window), min_periods=1).median().to_numpy()


def _as_matrix(X: Any, what: str, min_rows: int = 1, allow_nan: bool = False,
               n_features: int | None = None) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise DetectionError(f"{what}: column(s) {', '.join(map(str, bad))} are not numeric")
        X = X.to_numpy(dtype=float, na_value=np.nan)
    try:
        X = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DetectionError(f"{what}: expected a numeric matrix ({exc})") from None
    if X.ndim == 1:
        # One metric over time, or (when the caller knows the width) one row of every metric.
        X = X.reshape(1, -1) if n_features is not None and n_features > 1 and X.size == n_features else X.reshape(-1, 1)
    if X.ndim != 2:
        raise DetectionError(f"{what}: expected a 2-D matrix (rows x metrics), got {X.ndim} dimension(s)")
    if X.shape[1] == 0:
        raise DetectionError(f"{what}: no metric columns")
    if X.shape[0] < min_rows:
        raise DetectionError(f"{what}: no rows")
    if not allow_nan:
        bad = ~np.isfinite(X)
        if bad.any():
            cols = np.flatnonzero(bad.any(axis=0))
            raise DetectionError(f"{what}: {int(bad.sum())} NaN/inf value(s) in column position(s) "
                                 f"{', '.join(map(str, cols[:10]))}; fill or drop them first (align() does)")
    return X
