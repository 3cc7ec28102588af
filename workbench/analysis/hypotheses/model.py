"""The hypothesis record and the constants and vocabularies the scoring and the wording share.

The score's formula and the reasons for each constant are in ``docs/ranking.md``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..evidence import Evidence, ServiceSuspicion
from ..signature import WEIGHTS

#: Prior weight of each cause (``W[c]`` in the module docstring; traffic has no floor, see ``D``).
CAUSE_WEIGHTS: dict[str, float] = {"change": 1.0, "traffic": 1.0, "resource": 0.85, "code": 0.85, "dependency": 0.5}
#: Weight of a change kind (``kind_weight`` in the module docstring).
CHANGE_WEIGHTS: dict[str, float] = {"deploy": 1.0, "config_change": 1.0, "feature_flag": 0.7, "scale": 0.4}
#: Time constant of the change strength's decay with the lag before the onset.
CHANGE_DECAY = pd.Timedelta(minutes=15)
#: How much a change explains away a resource or code signal of the same service.
EXPLAIN_AWAY = 0.7
#: Share of the score that is localisation alone: cause evidence can at most double it.
EVIDENCE_FLOOR = 0.5
#: Weakest cause evidence that still makes a hypothesis.
MIN_STRENGTH = 0.05
#: Largest discount of every non-traffic hypothesis during a traffic surge at an entry service.
TRAFFIC_DISCOUNT = 0.5
#: Largest bonus of a matching confirmed past incident.
HISTORY_BONUS = 0.25
#: Signature aspects the history term compares (``H``): what moved, not who was blamed. The
#: origin and cause of the incident being ranked are the engine's own first guess and those of a
#: past incident are a reviewer's verdict, so comparing them would make ``H`` reward agreement
#: between today's guess and yesterday's label (measured: benchmarks/prior.py's shuffled-label
#: controls then kept most of the gain) instead of evidence that looks like a confirmed case.
PRIOR_WEIGHTS: dict[str, float] = {k: v for k, v in WEIGHTS.items() if k not in ("origin", "cause")}
#: How much earlier a callee's onset must be to count as "moved first" (onsets are steps apart).
ONSET_MARGIN = pd.Timedelta(minutes=1)
#: Largest discount of a service whose callee moved first.
PROPAGATION = 0.6
#: Services whose resource metrics are read directly (the most suspicious), and the least
#: sustained robust z of a resource metric that counts as moved.
RESOURCE_TOP = 5
RESOURCE_MIN_Z = 3.0
#: Sustained robust z of a resource metric from which it starts to count as a cause, and at
#: which it counts fully. A resource that causes an incident is driven far out of its range:
#: on Nezha, CPU under injected contention reaches z 96-390 while the CPU of a pod whose
#: network is delayed moves z 2.5-9 (it works a little more on retries); both are "moves".
RESOURCE_Z_START, RESOURCE_Z_FULL = 10.0, 100.0
#: Request-rate ratio at which traffic strength starts, and the span to full strength.
TRAFFIC_START, TRAFFIC_SPAN = 1.3, 0.7
#: Windows of the request-rate ratio: after the onset, and before it.
TRAFFIC_AFTER, TRAFFIC_BEFORE = pd.Timedelta(minutes=15), pd.Timedelta(minutes=60)
#: Most hypotheses kept, and most evidence items per hypothesis.
DEFAULT_LIMIT = 10
MAX_EVIDENCE = 8
#: Similar past incidents attached to each hypothesis (at least :data:`~workbench.analysis.signature.SIMILAR_MIN` alike).
SIMILAR_LIMIT = 3

RESOURCE_WORDS = ("cpu", "memory", "mem", "heap", "gc", "pool", "queue", "disk", "thread", "connection", "fd",
                  "file_descriptor", "saturation", "swap", "iowait")
TRAFFIC_WORDS = ("request_rate", "requests", "rps", "qps", "throughput", "workload", "request_count")
SYMPTOM_WORDS = ("latency", "duration", "error", "fail", "p50", "p90", "p95", "p99", "timeout", "success")
_ERROR_TEXT = re.compile(r"exception|error|fail|fatal|panic|timeout|timed out|refused|denied|unreachable|"
                         r"traceback|exhausted|\bERROR\b", re.IGNORECASE)
_RESOURCE_TEXT = re.compile(r"pool|exhausted|out ?of ?memory|oom|heap space|too many (?:open files|connections)|"
                            r"no space left|disk full|queue (?:is )?full|thread", re.IGNORECASE)
_NEW_TEXT = re.compile(r"\bnew\b|first seen|never seen|not in the baseline", re.IGNORECASE)


@dataclass
class Hypothesis:
    """One proposed root cause.

    Attributes
    ----------
    service : str
    cause : str
        One of ``change``, ``resource``, ``dependency``, ``code``, ``traffic``.
    summary : str
        One line a responder can check.
    score : float
        The documented score (module docstring); comparable within one incident.
    rank : int
        1 = most likely.
    evidence : list of Evidence
        Strongest first: the cause's own facts, then the service's anomaly, topology and history.
    similar : list of dict
        Similar past incidents whose confirmed hypothesis shares this one's service or cause
        (the same pair first): ``incident_id``, ``title``, ``cause``, ``service``,
        ``similarity`` (0-1), at most :data:`SIMILAR_LIMIT`.
    parts : dict
        The factors of the score (``L`` or ``D``, ``P``, ``S``, ``W``, ``E`` = the cause strength,
        ``H``) for inspection; not stored.
    confidence : float or None
        Calibrated probability (0-1) that this is the root cause (:mod:`.confidence`): the
        probability that the hypothesis' service is the origin, for the service's strongest cause,
        scaled by the score ratio for its weaker causes.
    """

    service: str
    cause: str
    summary: str
    score: float
    rank: int = 0
    evidence: list[Evidence] = field(default_factory=list)
    similar: list[dict[str, Any]] = field(default_factory=list)
    parts: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None

    @property
    def status(self) -> str:
        """Always ``proposed``: the tool never confirms."""
        return "proposed"

    def to_dict(self) -> dict[str, Any]:
        """The knowledge base's hypothesis fields (:meth:`KnowledgeBase.add_hypothesis`)."""
        return {"service": self.service, "cause": self.cause, "summary": self.summary,
                "score": round(float(self.score), 4), "rank": int(self.rank), "status": "proposed",
                "confidence": None if self.confidence is None else round(float(self.confidence), 4),
                "evidence": [e.to_dict() for e in self.evidence], "similar": [dict(s) for s in self.similar]}


@dataclass
class _Service:
    """Per-service inputs of the score."""

    suspicion: ServiceSuspicion
    L: float
    onset: pd.Timestamp
    P: float = 1.0
    first_callee: tuple[str, float] | None = None
    blame_reason: str = ""
    blamed: list[tuple[str, Evidence]] = field(default_factory=list)
    C: float = 0.0
    change: dict[str, Any] | None = None
    R: float = 0.0
    resource: list[Evidence] = field(default_factory=list)
    resource_logs: list[Evidence] = field(default_factory=list)
    K: float = 0.0
    code: list[Evidence] = field(default_factory=list)
    T: float = 0.0
    traffic: dict[str, Any] | None = None
    U: float = 0.5
    has_onset: bool = False
