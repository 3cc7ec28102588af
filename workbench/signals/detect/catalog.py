"""The detector registry: names to detector classes, the default, and :func:`get_detector`.

Each detector module registers its classes beside them (``@register("knn")``); third parties add
theirs through the ``workbench.detectors`` entry-point group, loaded on the first lookup that misses.
"""
from __future__ import annotations

from typing import Any

from ...errors import DetectionError
from ...registry import Registry
from .base import Detector

#: The detector :func:`~workbench.signals.detect.frame.score_frame` uses unless told otherwise (why: docs/detectors.md).
DEFAULT_DETECTOR = "knn"

detectors: Registry[type[Detector]] = Registry("detector", entry_point_group="workbench.detectors")
register = detectors.register


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
