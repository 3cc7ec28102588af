"""Root-cause hypotheses: (service, cause) candidates ranked by a documented score.

A hypothesis says "the incident started in SERVICE because of CAUSE" (change, resource, code,
traffic, dependency), with the evidence behind it, the similar past incidents whose causes a
human confirmed, and a calibrated confidence. The tool only proposes; a reviewer confirms.
:mod:`.scoring` computes the score and the ranking, :mod:`.wording` what each hypothesis says,
:mod:`.model` the record and the shared constants; the formula is derived in
``docs/ranking.md``.
"""
from ..signature import PastIncident, similar_incidents
from .model import CAUSE_WEIGHTS, CHANGE_WEIGHTS, DEFAULT_LIMIT, HISTORY_BONUS, Hypothesis
from .scoring import onsets, rank, thin_baseline
from .wording import restate_similar

__all__ = ["CAUSE_WEIGHTS", "CHANGE_WEIGHTS", "DEFAULT_LIMIT", "HISTORY_BONUS", "Hypothesis", "PastIncident", "onsets",
           "rank", "restate_similar", "similar_incidents", "thin_baseline"]
