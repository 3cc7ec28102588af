"""PyOD models behind the workbench contract: one small class per model, imported lazily.

``pyod.models`` imports no detector (PyOD 3), so each model is imported from its own module on
first fit, never at import time and never through ``pyod[torch]``. Inputs are standardised with
the baseline's mean and standard deviation first (distance- and histogram-based models are scale
sensitive; the scaling is frozen at fit time like everything else). Baseline scores are PyOD's
``decision_scores_`` (out-of-sample for KNN and LOF, which exclude each point itself).

These models score each row independently of the other scored rows, unlike PyOD's ECOD/COPOD
(see :mod:`workbench.signals.detect.ecdf`).
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Any, ClassVar

import numpy as np

from ...errors import DetectionError, MissingDependencyError
from .catalog import register
from .base import DEFAULT_QUANTILE, Detector

#: The process's thread pools (threadpoolctl), found once on first use.
_CONTROLLER: Any = None


class PyodDetector(Detector):
    """A PyOD model fitted on the (standardised) baseline.

    Subclasses name the model (``model = "pyod.models.iforest:IForest"``) and its defaults; a new
    PyOD model is one subclass and one registration line in :mod:`workbench.signals.detect`.

    Parameters
    ----------
    quantile, explain
        See :class:`~workbench.signals.detect.base.Detector`.
    **params
        Hyper-parameters of the PyOD model (override :attr:`defaults`), e.g. ``n_neighbors=10``.
    """

    #: ``"module:Class"`` of the PyOD model.
    model: ClassVar[str] = ""
    #: Hyper-parameters used unless the caller overrides them.
    defaults: ClassVar[dict[str, Any]] = {}
    #: Fit and score on one thread (OpenMP and BLAS). scikit-learn's neighbour search starts OpenMP
    #: threads on every call: on the tens to hundreds of baseline rows of an incident they cost more
    #: than they save, and on a busy machine each call waits for them (5-40 ms instead of 0.5 ms).
    #: The distances, and so the scores, do not depend on the thread count.
    single_thread: ClassVar[bool] = False

    def __init__(self, quantile: float = DEFAULT_QUANTILE, explain: str = "deviation", **params: Any):
        super().__init__(quantile=quantile, explain=explain)
        self.params = params

    def required_rows(self) -> int:
        """Fewest baseline rows this detector (with its hyper-parameters) accepts."""
        k = self._model_params().get("n_neighbors", 0)
        return max(self.min_rows, int(k) + 2)

    def _model_params(self) -> dict[str, Any]:
        return {**self.defaults, **self.params}

    def _fit(self, X: np.ndarray) -> np.ndarray:
        module_name, _, class_name = self.model.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except ImportError as exc:
            raise MissingDependencyError(
                f"{type(self).__name__} needs {module_name} ({exc}); install pyod: pip install postmortem-workbench") from None
        try:
            self.model_ = cls(**self._model_params())
        except TypeError as exc:
            raise DetectionError(f"{type(self).__name__}: invalid hyper-parameter for {class_name} ({exc})") from None
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.mean_ = mean
        self.std_ = np.where(std > 0, std, self.scale_)
        with self._threads():
            self.model_.fit(self._standardise(X))
        return np.asarray(self.model_.decision_scores_, dtype=float)

    def _threads(self) -> Any:
        """A context that limits OpenMP and BLAS to one thread when :attr:`single_thread` is set."""
        if not self.single_thread:
            return contextlib.nullcontext()
        global _CONTROLLER
        if _CONTROLLER is None:  # after the model's import, so its OpenMP runtime is found
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        return _CONTROLLER.limit(limits=1)

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.std_

    def _score(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0:
            return np.empty(0)
        with self._threads():
            return self.model_.decision_function(self._standardise(X))


@register("iforest")
class IForestDetector(PyodDetector):
    """Isolation forest (PyOD ``IForest``); seeded, so repeated runs agree."""

    model = "pyod.models.iforest:IForest"
    defaults = {"n_estimators": 100, "random_state": 0}


@register("hbos")
class HbosDetector(PyodDetector):
    """Histogram-based outlier score (PyOD ``HBOS``); the first fit compiles numba code (~2 s).

    PyOD scores a value beyond the baseline's histogram like the baseline's rarest bin, so a
    metric far outside its normal range adds no more than a rare normal value: HBOS misses
    large level shifts that every other detector here catches.
    """

    model = "pyod.models.hbos:HBOS"
    defaults = {"n_bins": 10}


@register("knn")
class KnnDetector(PyodDetector):
    """Distance to the k-th nearest baseline row (PyOD ``KNN``)."""

    model = "pyod.models.knn:KNN"
    defaults = {"n_neighbors": 5}
    single_thread = True


@register("lof")
class LofDetector(PyodDetector):
    """Local outlier factor against the baseline (PyOD ``LOF``, sklearn's novelty mode)."""

    model = "pyod.models.lof:LOF"
    defaults = {"n_neighbors": 20}
    single_thread = True


@register("pca")
class PcaDetector(PyodDetector):
    """Distance from the baseline's principal subspace (PyOD ``PCA``).

    ``weighted=False``: PyOD's default divides by each component's variance, which is 0 (an
    infinite score) as soon as a metric is constant in the baseline or two metrics are collinear.
    """

    model = "pyod.models.pca:PCA"
    defaults = {"random_state": 0, "weighted": False}
