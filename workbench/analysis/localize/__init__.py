"""Root-cause localisation: which service most likely started the incident, with the evidence.

:func:`localize` compares the incident window ``[start, end)`` of a
:class:`~workbench.analysis.evidence.TelemetryWindow` with its baseline in three modalities —
:mod:`.logs` (code paths and errors per operation execution), :mod:`.spans` (self time, call
overhead, traffic) and :mod:`.metrics` (a service's own metrics, robust and sustained) — and
:mod:`.combination` puts them together: each modality divided by its reference (the runner-up or
its noise floor), the strongest deciding. The constants of the combination are chosen under
cross-validation (:class:`~.base.Params`, :func:`~.base.param_grid`). The derivation and the
measured accuracy are in ``docs/ranking.md``.
"""
from .base import (CAP, DEFAULT_PARAMS, EXPLAIN_RATIO, FLOOR, MODALITIES, SHARED_PREFIXES, TOPOLOGY_DISCOUNT, W,
                   Localization, ModalityResult, Params, param_grid)
from .combination import (callee_matrix, combine, combined_scores, localization, localize, modalities, score_arrays,
                      topology_of)
from .logs import MIN_BASE_UNITS, log_modality
from .metrics import MIN_METRIC_BASE, metric_modality
from .spans import span_modality

__all__ = ["CAP", "DEFAULT_PARAMS", "EXPLAIN_RATIO", "FLOOR", "MIN_BASE_UNITS", "MIN_METRIC_BASE", "MODALITIES",
           "SHARED_PREFIXES", "TOPOLOGY_DISCOUNT", "W", "Localization", "ModalityResult", "Params", "callee_matrix",
           "combine", "combined_scores", "localization", "localize", "log_modality", "metric_modality", "modalities",
           "param_grid", "score_arrays", "span_modality", "topology_of"]
