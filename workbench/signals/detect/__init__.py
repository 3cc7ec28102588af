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
        raise DetectionError(f"detector {name!r}: invalid hyper-parameters {sorted(params)} ({exc})") from None


def names() -> list[str]:
    """Registered detector names, sorted."""
    return detectors.names()


__all__ = [
    "DEFAULT_DETECTOR", "DetectionError", "DetectionResult", "Detector", "PyodDetector", "EcodDetector",
    "CopodDetector", "IForestDetector", "HbosDetector", "KnnDetector", "LofDetector", "PcaDetector",
    "ZScoreDetector", "align", "deviation", "detectors", "get_detector", "local_reference", "names",
    "rank_metrics", "register", "robust_scale", "robust_z", "score_frame", "service_scores", "sustained_onset",
]
