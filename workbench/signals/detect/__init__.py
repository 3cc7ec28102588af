"""Metric anomaly detection: a detector registry, per-service scoring, onsets and contributions.

Usage::

    from workbench import detect
    frames = detect.align(telemetry.metrics, step="1min")          # one wide frame per service
    result = detect.score_frame(frames["checkout"], baseline_end=incident_start - lead)
    result.onset, result.top                                        # when, and which metrics moved

Detectors (``detect.names()``): ``ecod``, ``copod`` (frozen-baseline ECDF tails,
:mod:`.ecdf`), ``iforest``, ``hbos``, ``knn``, ``lof``, ``pca`` (PyOD, :mod:`.pyod_adapter`),
``zscore`` (robust |z|, :mod:`.robust`). Every one is fitted on the baseline only and scores a
row independently of the other scored rows. Third parties register more through the
``workbench.detectors`` entry-point group (a class following :class:`Detector`).

Why the default is ``knn``
--------------------------
Measured with ``benchmarks/smd.py`` on the shared SMD (3 machines) and ASD (8 entities): fit on
train, threshold = 99.5th percentile of the TRAIN scores, F1 without point-adjust; means over
machines:

=========  ======  =======  ======  =====  ======  =======  ======  =====
detector   SMD F1  ROC-AUC  PR-AUC  false  ASD F1  ROC-AUC  PR-AUC  false
=========  ======  =======  ======  =====  ======  =======  ======  =====
knn        0.217   0.754    0.429   0.292  0.289   0.720    0.278   0.006
lof        0.225   0.713    0.353   0.287  0.286   0.706    0.304   0.025
pca        0.219   0.718    0.395   0.164  0.125   0.611    0.153   0.005
ecod       0.180   0.678    0.253   0.158  0.143   0.591    0.150   0.008
copod      0.185   0.725    0.295   0.175  0.141   0.569    0.118   0.010
iforest    0.177   0.731    0.319   0.175  0.087   0.593    0.157   0.002
hbos       0.169   0.737    0.250   0.144  0.026   0.576    0.092   0.003
zscore     0.060   0.685    0.250   0.008  0.110   0.581    0.156   0.004
=========  ======  =======  ======  =====  ======  =======  ======  =====

("false" = share of normal test rows flagged.) KNN (PyOD defaults: k=5, distance to the k-th
neighbour, on baseline-standardised metrics) has the best ROC-AUC and PR-AUC on both data sets and
the best F1 on ASD (LOF has a similar F1 but lower AUCs and is slower); k in 5-20 and
mean-distance made no difference (±0.01). Its weak spot is drift: on machine-1-6, whose metrics
shift level between train and test, it flags 84 % of the normal test rows (ECOD 45 %), which is
most of its SMD false-alert rate (machine-2-1 and 2-2: 1.5 % and 2.5 %). Cost: 2-5 s for 23,700 x 38 baseline and scored rows, well
under a second for a 24-hour, 1-minute baseline. Contributions are detector-independent by
default (``explain="deviation"``), so the choice does not change which metrics are named:
HitRate@150 % 0.845 on SMD (random 0.29), 0.958 on ASD (random 0.76).
"""
from __future__ import annotations

from typing import Any

from ...registry import Registry
from .base import DetectionError, Detector, deviation, local_reference, robust_scale, robust_z
from .ecdf import CopodDetector, EcodDetector
from .frame import DetectionResult, align, rank_metrics, score_frame, service_scores, sustained_onset
from .pyod_adapter import HbosDetector, IForestDetector, KnnDetector, LofDetector, PcaDetector, PyodDetector
from .robust import ZScoreDetector

#: The detector :func:`score_frame` uses unless told otherwise (justified in the docstring above).
DEFAULT_DETECTOR = "knn"

detectors: Registry[type[Detector]] = Registry("detector", entry_point_group="workbench.detectors")
register = detectors.register

register("ecod")(EcodDetector)
register("copod")(CopodDetector)
register("iforest")(IForestDetector)
register("hbos")(HbosDetector)
register("knn")(KnnDetector)
register("lof")(LofDetector)
register("pca")(PcaDetector)
register("zscore")(ZScoreDetector)


def get_detector(name: str, **params: Any) -> Detector:
    """A new, unfitted detector registered as ``name``, with hyper-parameters ``params``.

    Raises
    ------
    UnknownNameError
        ``name`` is not registered (the message suggests close names).
    ValueError
        A hyper-parameter the detector does not accept.
    """
    cls = detectors.get(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"detector {name!r}: invalid hyper-parameters {sorted(params)} ({exc})") from None


def names() -> list[str]:
    """Registered detector names, sorted."""
    return detectors.names()


__all__ = [
    "DEFAULT_DETECTOR", "DetectionError", "DetectionResult", "Detector", "PyodDetector", "EcodDetector",
    "CopodDetector", "IForestDetector", "HbosDetector", "KnnDetector", "LofDetector", "PcaDetector",
    "ZScoreDetector", "align", "deviation", "detectors", "get_detector", "local_reference", "names",
    "rank_metrics", "register", "robust_scale", "robust_z", "score_frame", "service_scores", "sustained_onset",
]
