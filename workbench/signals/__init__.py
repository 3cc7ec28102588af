"""Signals: what moved in the telemetry — log templates, span statistics and metric detectors.

:mod:`.logs` mines log lines into templates (Drain3, one shared measured configuration);
:mod:`.spans` turns spans into per-edge and per-operation statistics (self time, error rates);
:mod:`.detect` holds the metric detectors behind one PyOD-style contract and the one
robust-z/threshold step every score passes through.
"""
from .detect import Detector, get_detector, score_frame
from .logs import TemplateMiner, mine, template_counts
from .spans import annotate, self_times

__all__ = ["Detector", "TemplateMiner", "annotate", "get_detector", "mine", "score_frame", "self_times",
           "template_counts"]
