"""The shared vocabulary of the analysis engine: a telemetry window, evidence items, suspicion.

Every stage speaks these types, so the detectors (metrics, logs, spans), the localisation of the
origin service, the correlation with changes and the hypothesis ranking can be developed and
tested apart:

- :class:`TelemetryWindow` is what the engine reads: the unified tables for baseline + incident.
- :class:`Evidence` is one observed fact with its time and strength, and a one-line explanation a
  human can check against the charts.
- :class:`ServiceSuspicion` is how strongly a service looks like the origin, per modality and
  combined, with the evidence behind it.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from ..telemetry import schema

EvidenceKind = Literal["metric", "log", "span", "change", "topology", "traffic", "history"]
EVIDENCE_KINDS = ("metric", "log", "span", "change", "topology", "traffic", "history")


@dataclass
class TelemetryWindow:
    """The unified tables around one incident.

    Attributes
    ----------
    metrics, logs, spans, events, topology : pandas.DataFrame
        Validated tables (columns as in :mod:`workbench.telemetry.schema`) covering the baseline and the
        incident window.
    baseline_start, baseline_end : pandas.Timestamp
        ``[baseline_start, baseline_end)`` is taken as normal behaviour.
    start, end : pandas.Timestamp
        ``[start, end)`` is the incident (analysis) window; ``start >= baseline_end``.
    step : str
        Alignment step (pandas offset alias), e.g. ``"1min"``.
    """

    metrics: pd.DataFrame
    logs: pd.DataFrame
    spans: pd.DataFrame
    events: pd.DataFrame
    topology: pd.DataFrame
    baseline_start: pd.Timestamp
    baseline_end: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp
    step: str = "1min"

    @classmethod
    def from_store(cls, store: Any, baseline_start: pd.Timestamp, start: pd.Timestamp, end: pd.Timestamp,
                   services: list[str] | None = None, step: str = "1min") -> "TelemetryWindow":
        """Query ``[baseline_start, end)`` from a :class:`~workbench.telemetry.TelemetryStore`."""
        session = getattr(store, "session", None)  # one connection for the five reads
        with session() if session is not None else contextlib.nullcontext():
            tables = {t: store.query(t, baseline_start, end, services=services) for t in ("metrics", "logs", "spans", "events")}
            tables["topology"] = store.query("topology")
        return cls(**tables, baseline_start=baseline_start, baseline_end=start,
                   start=start, end=end, step=step)

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame], baseline_start: pd.Timestamp, start: pd.Timestamp,
                    end: pd.Timestamp, step: str = "1min") -> "TelemetryWindow":
        """Cut ``[baseline_start, end)`` out of in-memory unified tables (benchmarks, tests)."""
        cut = {}
        for table in ("metrics", "logs", "spans", "events"):
            frame = tables.get(table, schema.empty(table))
            col = schema.TIME_COLUMN[table]
            cut[table] = frame[(frame[col] >= baseline_start) & (frame[col] < end)].reset_index(drop=True)
        return cls(**cut, topology=tables.get("topology", schema.empty("topology")), baseline_start=baseline_start,
                   baseline_end=start, start=start, end=end, step=step)

    def services(self) -> list[str]:
        """Every service seen in metrics, logs or spans of the window."""
        found: set[str] = set()
        for frame in (self.metrics, self.logs, self.spans):
            found.update(frame["service"].unique().tolist())
        return sorted(found)


@dataclass
class Evidence:
    """One observed fact behind a hypothesis.

    Attributes
    ----------
    kind : str
        One of :data:`EVIDENCE_KINDS`.
    service : str
        The service the fact is about.
    signal : str
        What was observed, stable and human-readable, e.g. ``metric error_rate``,
        ``log template payments:3f2a…``, ``span checkout→payments p95``, ``deploy v2.15.0``.
    time : pandas.Timestamp or None
        When it started (onset) or happened (change).
    magnitude : float
        Strength on the signal's own scale (robust z, score / threshold, ratio …) — comparable
        within one kind, documented by whoever produces it.
    direction : str or None
        ``up`` / ``down`` for a moved signal, None otherwise.
    explanation : str
        One line a human can check, e.g. ``error_rate 0.12 vs 0.004 baseline (30x) since 14:03``.
    """

    kind: str
    service: str
    signal: str
    time: pd.Timestamp | None
    magnitude: float
    direction: str | None = None
    explanation: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = None if self.time is None else pd.Timestamp(self.time).isoformat().replace("+00:00", "Z")
        data["magnitude"] = None if self.magnitude is None or not math.isfinite(self.magnitude) else round(float(self.magnitude), 4)
        return data


@dataclass
class ServiceSuspicion:
    """How strongly a service looks like the origin of the incident.

    Attributes
    ----------
    service : str
    score : float
        Combined suspicion (higher = more likely the origin); comparable across services of one
        incident only.
    by_modality : dict
        Per-modality scores, e.g. ``{"metrics": 3.1, "logs": 0.4, "spans": 1.2}``.
    onset : pandas.Timestamp or None
        First sustained anomalous time of the service over all modalities.
    evidence : list of Evidence
        Strongest facts first.
    """

    service: str
    score: float
    by_modality: dict[str, float] = field(default_factory=dict)
    onset: pd.Timestamp | None = None
    evidence: list[Evidence] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "score": round(float(self.score), 4),
                "by_modality": {k: round(float(v), 4) for k, v in self.by_modality.items()},
                "onset": None if self.onset is None else pd.Timestamp(self.onset).isoformat().replace("+00:00", "Z"),
                "evidence": [e.to_dict() for e in self.evidence]}
