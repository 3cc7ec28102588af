"""Analysis: from an incident's telemetry window to ranked root-cause hypotheses.

:mod:`.evidence` (the window and the evidence items), :mod:`.localize` (which service started
it, per modality and combined), :mod:`.correlate` (changes before onsets, lead/lag, topology),
:mod:`.hypotheses` (ranked service × cause candidates), :mod:`.signature` (an incident's
fingerprint and similarity, for similar-incident search and recurrence checks) and
:mod:`.pipeline` (:func:`analyze`: query, localise, rank, store).
"""
from .evidence import Evidence, ServiceSuspicion, TelemetryWindow
from .pipeline import AnalysisError, AnalysisResult, analyze, analyze_window
from .signature import Signature, similarity

__all__ = ["AnalysisError", "AnalysisResult", "Evidence", "ServiceSuspicion", "Signature", "TelemetryWindow",
           "analyze", "analyze_window", "similarity"]
