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

Why the default is ``knn`` (measured on SMD and ASD with ``benchmarks/smd.py``): ``docs/detectors.md``.
"""
from __future__ import annotations

from .catalog import DEFAULT_DETECTOR, detectors, get_detector, names, register
from .base import DetectionError, Detector, deviation, local_reference, robust_scale, robust_z
from .ecdf import CopodDetector, EcodDetector
from .frame import DetectionResult, align, rank_metrics, score_frame, service_scores, sustained_onset
from .pyod_adapter import HbosDetector, IForestDetector, KnnDetector, LofDetector, PcaDetector, PyodDetector
from .robust import ZScoreDetector

__all__ = [
    "DEFAULT_DETECTOR", "DetectionError", "DetectionResult", "Detector", "PyodDetector", "EcodDetector",
    "CopodDetector", "IForestDetector", "HbosDetector", "KnnDetector", "LofDetector", "PcaDetector",
    "ZScoreDetector", "align", "deviation", "detectors", "get_detector", "local_reference", "names",
    "rank_metrics", "register", "robust_scale", "robust_z", "score_frame", "service_scores", "sustained_onset",
]
