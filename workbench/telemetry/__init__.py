"""Telemetry: the unified schema, the Parquet/DuckDB store, analysis windows, sources and ingest.

A source (:mod:`.sources`) turns an outside format into the five unified tables
(:mod:`.schema`: metrics, logs, spans, events, topology), validated once at that edge;
:func:`workbench.telemetry.ingest.ingest` stores them in a workspace's :class:`TelemetryStore`
(validated Parquet per table and UTC day, window queries through DuckDB); :mod:`.windows` says
which window an incident is analysed on and its baseline; :mod:`.sample` generates the shipped
sample data.
"""
from .schema import TABLES, validate
from .sources import open_source
from .store import TelemetryStore
from .windows import analysis_window, baseline_window

__all__ = ["TABLES", "TelemetryStore", "analysis_window", "baseline_window", "open_source", "validate"]
