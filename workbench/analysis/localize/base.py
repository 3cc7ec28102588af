"""What the localiser's parts share: the modality result, the localisation, the combination's constants.

:class:`Params` holds every constant of the combination that cross-validation chooses
(:func:`param_grid`, ``benchmarks/nezha.py --cv``); :data:`DEFAULT_PARAMS` is the choice on all
shared cases. ``docs/ranking.md`` derives the formulas and reports the cross-validated accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from ..evidence import Evidence, ServiceSuspicion

MODALITIES = ("metrics", "logs", "spans")
#: Modality weights of the combination (``weights=`` overrides them).
W = {"metrics": 0.25, "logs": 1.0, "spans": 1.0}
#: Score a modality reaches on noise alone (the least reference it is divided by): logs 0.6 = 60 %
#: of an operation's executions changed; spans 2.0 = a 7x (e^2) slower operation or call;
#: metrics 1.0 = a robust z of Z_REF sustained. Chosen with W, TOPOLOGY_DISCOUNT and EXPLAIN_RATIO
#: by cross-validation (:func:`param_grid`; ``docs/ranking.md``).
FLOOR = {"metrics": 1.0, "logs": 0.6, "spans": 2.0}
#: Largest normalised score of one modality (one extreme modality cannot drown the others).
CAP = 4.0
#: A modality's onset counts for a service when its normalised score there is at least this.
ONSET_MIN = 0.5
#: Largest share of a caller's score taken off when a callee explains its symptoms (0: the
#: cross-validation found no gain on Nezha; errors are attributed through traces instead) ...
TOPOLOGY_DISCOUNT = 0.0
#: ... which a callee does fully when its intrinsic score is at least this share of the caller's.
EXPLAIN_RATIO = 1.0
#: Metric name prefixes of infrastructure shared by many services (not a service's own metric).
SHARED_PREFIXES = ("node_", "node.", "host_", "host.", "machine_")


@dataclass
class ModalityResult:
    """One modality's view of the incident.

    Attributes
    ----------
    name : str
    scores : pandas.Series
        Raw score per service (float >= 0), index = service.
    intrinsic : pandas.Series
        The part of the score that does not come from calls into the service (for the topology).
    evidence : dict of str to list of Evidence
        Per service, strongest first.
    onsets : dict of str to pandas.Timestamp
    notes : list of str
    """

    name: str
    scores: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    intrinsic: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)
    onsets: dict[str, pd.Timestamp] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Localization:
    """Everything :func:`localization` found.

    Attributes
    ----------
    suspicions : list of ServiceSuspicion
        Most suspicious first (what :func:`localize` returns).
    modalities : dict of str to ModalityResult
    table : pandas.DataFrame
        One row per service: ``service``, ``score``, one column per modality (normalised) and
        ``raw_<modality>``, ``topology_discount``, ``onset``; sorted like ``suspicions``.
    notes : list of str
    """

    suspicions: list[ServiceSuspicion]
    modalities: dict[str, ModalityResult]
    table: pd.DataFrame
    notes: list[str]


@dataclass(frozen=True)
class Params:
    """The constants of the combination (see the module docstring), chosen under cross-validation.

    ``benchmarks/nezha.py --cv`` chooses them on training folds only from :func:`param_grid`;
    the defaults are the choice on all 32 shared Nezha cases (``docs/ranking.md``).

    Attributes
    ----------
    weights : dict
        ``W[m]`` per modality (0 switches a modality off: it is then not computed).
    floors : dict
        ``FLOOR[m]``: the least reference a modality's scores are divided by.
    discount : float
        Largest share of a caller's score taken off when a callee explains it (0 = no topology).
    explain : float
        A callee explains its caller fully when its intrinsic score reaches this share of the caller's.
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(W))
    floors: Mapping[str, float] = field(default_factory=lambda: dict(FLOOR))
    discount: float = TOPOLOGY_DISCOUNT
    explain: float = EXPLAIN_RATIO

    def __post_init__(self) -> None:
        for what, table in (("weights", self.weights), ("floors", self.floors)):
            for key, value in table.items():
                if key not in W:
                    raise ValueError(f"{what}: unknown modality {key!r}; expected some of {', '.join(W)}")
                if not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                    raise ValueError(f"{what}[{key!r}] must be a finite number >= 0, got {value!r}")
        object.__setattr__(self, "weights", {**W, **{k: float(v) for k, v in self.weights.items()}})
        object.__setattr__(self, "floors", {**FLOOR, **{k: float(v) for k, v in self.floors.items()}})
        if not isinstance(self.discount, (int, float)) or not 0 <= self.discount <= 1:
            raise ValueError(f"discount must be a number in [0, 1], got {self.discount!r}")
        if not isinstance(self.explain, (int, float)) or not self.explain > 0 or not math.isfinite(self.explain):
            raise ValueError(f"explain must be a finite number > 0, got {self.explain!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "floors": dict(self.floors), "discount": self.discount,
                "explain": self.explain}


#: The constants the product uses (chosen by ``benchmarks/nezha.py --cv`` on all shared cases).
DEFAULT_PARAMS = Params()


def param_grid() -> list[Params]:
    """The candidate constants cross-validation chooses from; ties go to the first, so the order
    states the prior preference (set before any result was seen): every modality heard, the
    floors at their documented noise levels, the topology rule on.

    Logs and spans floors span what each modality reaches on noise (a fifth to three fifths of an
    operation's executions changed; a 2.7x to 20x slower operation), the metric weight whether
    metrics speak and how loud, the topology pair whether a callee that explains its caller
    discounts it, fully from half the caller's score or from all of it.
    """
    out = []
    for discount, explain in ((0.5, 0.5), (0.5, 1.0), (0.0, 1.0)):
        for metrics in (0.25, 0.0, 0.5):
            for logs in (0.4, 0.3, 0.6, 0.2):
                for spans in (2.0, 1.5, 3.0, 1.0):
                    out.append(Params(weights={"metrics": metrics, "logs": 1.0, "spans": 1.0},
                                      floors={"metrics": FLOOR["metrics"], "logs": logs, "spans": spans},
                                      discount=discount, explain=explain))
    return out
