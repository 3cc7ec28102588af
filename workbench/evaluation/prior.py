"""The confirmed-cause prior, measured online: the leak guard, the conditions, the measures.

Used by ``benchmarks/prior.py`` (which adds the command line and the tables) and the tests.

The ranking (:mod:`workbench.analysis.hypotheses`) multiplies a hypothesis' score by
``1 + HISTORY_BONUS * H(s, c)``, where ``H`` is the highest similarity of a past incident whose
confirmed cause is the same ``(service, cause)``. This measures whether that prior ranks the
true cause higher when the history holds what reviewers really confirmed, and whether it does so
without leaking labels.

Protocol
--------
1. Strictly chronological and online. Incidents are processed in ``started`` order. The history
   passed for incident *i* holds only incidents that *ended* (``resolved``; for Nezha that is the
   window end, inject time + 3 min) before *i*'s ``started``: never *i* itself, never a later one.
   :func:`check_history` enforces this before every ranking (it raises
   :class:`HistoryLeakError`, it is not an ``assert``), and the history size and latest end are
   reported per incident.
2. After incident *i* is scored it is confirmed the way a reviewer would (:func:`confirm`): the
   highest-ranked proposed hypothesis naming the true ``(service, cause)`` if there is one, else
   the highest-ranked naming the true service, else (true service, label cause mapped to our
   causes). It enters the history as ``with_cause(result.signature, service, cause)`` with that
   pair confirmed, which is what :func:`workbench.analysis.analyze` stores after a confirmation.
   The confirmation is made from the ``prior`` run (the system as shipped); the other conditions
   reuse the same history entries. Labels are read only by :func:`confirm` and for scoring.
3. Conditions (all rank the same cached localisation; only the history differs):

   - ``none``: empty history;
   - ``prior``: the history above;
   - ``shuffled``: control - the same history entries with the same signatures, but the
     confirmed ``(service, cause)`` pairs permuted among them (a seeded uniform permutation per
     incident and seed, ``seeds`` of them, 20 by default; results averaged per incident, then
     over incidents). A prior that helps only with true pairs learns from confirmations; one
     that helps with permuted pairs would mean something else leaks;
   - ``shuffled_sig``: a second control, the permuted pair also written into each signature
     (``with_cause`` of the signature before confirmation), i.e. the knowledge base a team of
     random reviewers would leave behind (origin and cause of the fingerprints permuted too);
   - ``prior@0.1``, ``prior@0.5``: sensitivity to :data:`workbench.analysis.hypotheses.model.HISTORY_BONUS`
     (0.25 is ``prior``), informational only: the same history ranked with ``rank(...,
     history_bonus=...)``.
4. Measures per incident and condition: the rank of the true ``(service, cause)`` among all
   hypotheses (the ranking is asked for every candidate, not only the 10 ``analyze`` keeps; a
   tie counts at its worst position; not proposed = number of hypotheses + 1), the rank of the
   true service (each service at its first hypothesis), and the margin
   ``log(score(true pair) / score(best other hypothesis))`` (> 0: the true pair is first; larger
   is a clearer first place). The history only multiplies scores, it never adds or drops a
   candidate, so every condition has the same candidates and the margin is defined for the same
   incidents (those where the true pair is proposed). Per condition: AC@1, AC@3 and mean rank of
   the pair, AS@1, AS@3 and mean rank of the service, the mean log margin, and how many incidents
   the condition moved up or down against ``none`` (pair rank, margin).
5. Sample part (:func:`sample_part`, ``data/sample``): ingested into a temp workspace. Its six
   past incidents (no telemetry, a confirmed hypothesis in their documents) are history from the
   start, their signatures built as :func:`workbench.analysis.pipeline.load_history` builds them
   for an incident without a stored signature
   (:func:`workbench.analysis.signature.signature_from_incident`). The four
   evaluation incidents (no confirmed cause) have their window read once like ``analyze`` does
   (``analysis_window``/``baseline_window``/``TelemetryWindow.from_store``), are localised once,
   then ranked per condition. Ground truth: ``labels.yaml`` (``root_cause_service``, ``cause``,
   already our causes).
6. Nezha part (:func:`nezha_part`; the benchmark skips it with a note when the data is absent):
   each case cut exactly as ``benchmarks/nezha.py`` cuts it (the same
   :func:`workbench.evaluation.nezha.case_window`: lead 60 s, the construct window's logs and spans
   added to the baseline), localised once, ranked per condition. Ground truth:
   :func:`workbench.evaluation.nezha.load_labels`, the fault type mapped by :data:`FAULT_CAUSES`.

Reading the controls
--------------------
A permutation keeps the set of confirmed pairs, so ``shuffled`` still boosts a pair that was
confirmed *somewhere* before (a base rate: ``H`` is then the similarity of a random entry, and a
uniform permutation leaves about one entry with its own pair). ``prior - shuffled`` is what
matching the *similar* incident adds. ``shuffled_sig`` also moves the origin into the signatures;
since :func:`workbench.analysis.signature.similarity` gives the origin aspect 0.25 of its weight
and the ranking compares against a preliminary signature whose origin is the localiser's top service, an
entry whose (permuted) pair names that service becomes similar whatever its telemetry: when
``shuffled_sig`` gets as much as ``prior``, the gain comes from the label's service agreeing with
the localiser, not from the fingerprint.

Nothing is tuned here: the engine runs with its shipped settings.
"""
from __future__ import annotations

import math
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from .. import yamlio
from ..analysis import correlate
from ..analysis.evidence import ServiceSuspicion, TelemetryWindow
from ..analysis.hypotheses import HISTORY_BONUS, rank
from ..analysis.pipeline import analyze_window
from ..analysis.signature import PastIncident, Signature, signature_from_incident, with_cause
from ..errors import SourceError, WorkbenchError
from ..formats import as_utc, iso_utc
from ..telemetry.ingest import ingest
from ..telemetry.sources import open_source
from ..telemetry.windows import analysis_window, baseline_window
from ..workspace import init
from .nezha import DEFAULT_LEAD, case_window, construct_windows, load_labels

#: Nezha fault type -> our cause (:data:`workbench.store.CAUSES`). CPU contention saturates the
#: pod's own CPU (``resource``); a thrown exception or a wrong return value is a code defect whose
#: trace is in the logs (``code``); a delayed pod network degrades the service with nothing of its
#: own (no change, resource or error) to explain it, which is our ``dependency`` (the hypotheses
#: module measures exactly this case: the CPU of such a pod moves z 2.5-9, below a resource cause).
FAULT_CAUSES: dict[str, str] = {"cpu_contention": "resource", "exception": "code", "return": "code",
                                "network_delay": "dependency"}
#: Permutations of the ``shuffled`` controls.
DEFAULT_SEEDS = 20
#: ``HISTORY_BONUS`` values of the sensitivity rows (the shipped 0.25 is the ``prior`` row).
SENSITIVITY = (0.1, 0.5)
#: Ask the ranking for every candidate (``analyze`` keeps 10): ranks below 10 stay measurable.
ALL = 10_000
#: The conditions every part measures (plus one ``prior@<bonus>`` per sensitivity value).
CONDITIONS = ("none", "prior", "shuffled", "shuffled_sig")


class HistoryLeakError(WorkbenchError):
    """A history handed to the ranking holds the incident itself or one that had not ended yet."""


@dataclass
class HistoryEntry:
    """One confirmed incident as history, with the times the leak guard checks.

    Attributes
    ----------
    past : PastIncident
        What the ranking sees (signature with the confirmed pair applied, ``confirmed``).
    started, ended : pandas.Timestamp
        UTC; ``ended`` is ``resolved`` (Nezha: window end).
    raw : Signature
        The signature before the confirmation was applied (for the ``shuffled_sig`` control).
    """

    past: PastIncident
    started: pd.Timestamp
    ended: pd.Timestamp
    raw: Signature

    @property
    def incident_id(self) -> str:
        return self.past.incident_id


@dataclass
class Case:
    """One evaluation incident: its window, read once, and its cached localisation."""

    incident_id: str
    title: str
    started: pd.Timestamp
    ended: pd.Timestamp | None
    incident: Any
    window: TelemetryWindow
    truth: dict[str, str]
    suspicions: list[ServiceSuspicion] = field(default_factory=list)
    changes: pd.DataFrame | None = None


# --------------------------------------------------------------------------- the guard and the confirmation

def check_history(incident_id: str, started: Any, history: Sequence[Any]) -> None:
    """Refuse a history that could leak incident ``incident_id``'s outcome into its own ranking.

    Parameters
    ----------
    incident_id : str
    started : timestamp
        The incident's start.
    history : list of HistoryEntry
        Anything with ``incident_id`` and ``ended``.

    Raises
    ------
    HistoryLeakError
        An entry is the incident itself, has no end, or ended at or after ``started`` (which
        every later incident does).
    """
    start = as_utc(started)
    for entry in history:
        if entry.incident_id == incident_id:
            raise HistoryLeakError(f"history for {incident_id} holds {incident_id} itself")
        ended = None if entry.ended is None else as_utc(entry.ended)
        if ended is None or pd.isna(ended):
            raise HistoryLeakError(f"history for {incident_id} holds {entry.incident_id}, which has not ended")
        if ended >= start:
            raise HistoryLeakError(f"history for {incident_id} (started {start.isoformat()}) holds "
                                   f"{entry.incident_id}, which ended {ended.isoformat()}, not before it")


def confirm(hypotheses: Sequence[Any], truth: dict[str, str]) -> tuple[str, str]:
    """The ``(service, cause)`` a reviewer who knows the truth would confirm (protocol step 2)."""
    for h in hypotheses:
        if (h.service, h.cause) == (truth["service"], truth["cause"]):
            return h.service, h.cause
    for h in hypotheses:
        if h.service == truth["service"]:
            return h.service, h.cause
    return truth["service"], truth["cause"]


# --------------------------------------------------------------------------- measures

def measure(hypotheses: Sequence[Any], truth: dict[str, str]) -> dict[str, Any]:
    """Rank of the true pair and service, log margin, and the true pair's ``H`` in one ranking."""
    pair = (truth["service"], truth["cause"])
    true = next((h for h in hypotheses if (h.service, h.cause) == pair), None)
    others = [h.score for h in hypotheses if (h.service, h.cause) != pair]
    best: dict[str, float] = {}
    for h in hypotheses:
        best[h.service] = max(best.get(h.service, 0.0), float(h.score))
    if true is None:
        pair_rank, margin, h_true = len(hypotheses) + 1, None, None
    else:
        pair_rank = sum(1 for h in hypotheses if h.score >= true.score)  # a tie counts at its worst
        margin = (math.log(true.score / max(others)) if others and max(others) > 0 and true.score > 0 else None)
        h_true = true.parts.get("H")
    service_rank = (sum(1 for s in best.values() if s >= best[pair[0]]) if pair[0] in best else len(best) + 1)
    service_cause = next((h.cause for h in hypotheses if h.service == pair[0]), None)
    return {"pair_rank": pair_rank, "service_rank": service_rank, "margin": margin, "H_true": h_true,
            "top": f"{hypotheses[0].service}/{hypotheses[0].cause}" if hypotheses else None,
            "service_cause": service_cause}


def _mean(values: Sequence[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _case_means(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-incident values averaged over the runs of a condition (one run, or one per seed)."""
    return {"pair_rank": _mean([r["pair_rank"] for r in runs]),
            "service_rank": _mean([r["service_rank"] for r in runs]),
            "AC@1": _mean([float(r["pair_rank"] <= 1) for r in runs]),
            "AC@3": _mean([float(r["pair_rank"] <= 3) for r in runs]),
            "AS@1": _mean([float(r["service_rank"] <= 1) for r in runs]),
            "AS@3": _mean([float(r["service_rank"] <= 3) for r in runs]),
            "margin": _mean([r["margin"] for r in runs]),
            "H_true": _mean([r["H_true"] for r in runs]),
            "top": runs[0]["top"] if len(runs) == 1 else None,
            "service_cause": runs[0]["service_cause"] if len(runs) == 1 else None}


def summarize(rows: Sequence[dict[str, Any]], condition: str) -> dict[str, Any]:
    """One condition over the incidents of a part (each incident weighs the same)."""
    per = [r["conditions"][condition] for r in rows if condition in r["conditions"]]
    base = [r["conditions"]["none"] for r in rows if condition in r["conditions"]]
    if not per:
        return {"cases": 0}

    def r4(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    eps = 1e-9
    moved = {"rank_up": sum(p["pair_rank"] < b["pair_rank"] - eps for p, b in zip(per, base)),
             "rank_down": sum(p["pair_rank"] > b["pair_rank"] + eps for p, b in zip(per, base)),
             "margin_up": sum(p["margin"] is not None and p["margin"] > b["margin"] + eps for p, b in zip(per, base)),
             "margin_down": sum(p["margin"] is not None and p["margin"] < b["margin"] - eps for p, b in zip(per, base))}
    return {"cases": len(per), **{k: r4(_mean([p[k] for p in per])) for k in ("AC@1", "AC@3", "AS@1", "AS@3")},
            "mean_rank": r4(_mean([p["pair_rank"] for p in per])),
            "mean_service_rank": r4(_mean([p["service_rank"] for p in per])),
            "mean_log_margin": r4(_mean([p["margin"] for p in per])),
            "margin_cases": sum(p["margin"] is not None for p in per), **moved}


# --------------------------------------------------------------------------- the online loop

def _ranker(case: Case) -> Callable[..., list[Any]]:
    """Rank ``case`` against a history (and a history bonus): guarded, on the cached localisation
    and changes."""

    def run(entries: Sequence[HistoryEntry], bonus: float = HISTORY_BONUS) -> list[Any]:
        check_history(case.incident_id, case.started, entries)
        return rank(case.window, case.suspicions, case.incident, [e.past for e in entries],
                    changes=case.changes, limit=ALL, history_bonus=bonus)

    return run


def _permuted(entries: Sequence[HistoryEntry], rng: random.Random, into_signature: bool) -> list[HistoryEntry]:
    """The same entries with their confirmed pairs permuted among them."""
    pairs = [list(e.past.confirmed) for e in entries]
    order = rng.sample(range(len(entries)), len(entries))
    out = []
    for entry, k in zip(entries, order):
        confirmed = pairs[k]
        signature = entry.past.signature
        if into_signature and confirmed:
            signature = with_cause(entry.raw, *confirmed[0])
        past = PastIncident(entry.past.incident_id, entry.past.title, signature, confirmed)
        out.append(HistoryEntry(past, entry.started, entry.ended, entry.raw))
    return out


def evaluate(cases: Sequence[Case], history: Sequence[HistoryEntry], *, seeds: int = DEFAULT_SEEDS,
             sensitivity: Sequence[float] = SENSITIVITY, detector: Any = None) -> dict[str, Any]:
    """Process ``cases`` online in ``started`` order under every condition (module docstring).

    Parameters
    ----------
    cases : list of Case
        Windows read; ``suspicions`` is filled here (one localisation per case).
    history : list of HistoryEntry
        Confirmed incidents known before the first case (they still pass the guard per case).
    seeds : int
        Permutations of each shuffled control (0 skips both).
    sensitivity : list of float
        ``HISTORY_BONUS`` values of the sensitivity rows.
    detector : str, optional
        Metric detector passed to the localiser.

    Returns
    -------
    dict
        ``per_case`` (list of dict: ``incident``, ``truth``, ``history_size``,
        ``history`` (id and end of each entry), ``confirmed``, ``conditions`` -> per-incident
        means, ``runs`` -> raw measures) and ``summary`` (condition -> :func:`summarize`), and
        ``timings`` (seconds).
    """
    entries = list(history)
    rows: list[dict[str, Any]] = []
    t_detect, t_rank, n_rank = [], 0.0, 0
    conditions = ["none", "prior"] + (["shuffled", "shuffled_sig"] if seeds > 0 else []) \
        + [f"prior@{b:g}" for b in sensitivity]
    for index, case in enumerate(sorted(cases, key=lambda c: (c.started, c.incident_id))):
        # the full analysis once, with no history: the localisation it ran is reused below
        base = analyze_window(case.window, case.incident, [], detector=detector, limit=ALL)
        t_detect.append(base.timings.get("detect", 0.0))
        case.suspicions = list(base.suspicions)
        case.changes = correlate.change_events(case.window.events)
        rank_case = _ranker(case)
        visible = [e for e in entries if e.ended is not None and e.ended < case.started]
        check_history(case.incident_id, case.started, visible)
        runs: dict[str, list[dict[str, Any]]] = {}
        t0 = time.perf_counter()
        calls = 0
        runs["none"] = [measure(base.hypotheses, case.truth)]
        # the prior run goes through analyze_window: its signature is what gets confirmed
        prior = analyze_window(case.window, case.incident, [e.past for e in visible], detector=detector, limit=ALL,
                               localizer=lambda window, detector=None: list(case.suspicions))
        runs["prior"] = [measure(prior.hypotheses, case.truth)]
        calls += 1
        if seeds > 0:
            for name, into in (("shuffled", False), ("shuffled_sig", True)):
                runs[name] = []
                for seed in range(seeds):
                    rng = random.Random(1_000_003 * seed + index)
                    runs[name].append(measure(rank_case(_permuted(visible, rng, into)), case.truth))
                    calls += 1
        for bonus in sensitivity:
            runs[f"prior@{bonus:g}"] = [measure(rank_case(visible, bonus), case.truth)]
            calls += 1
        t_rank += time.perf_counter() - t0
        n_rank += calls
        rows.append({"incident": case.incident_id, "started": iso_utc(case.started),
                     "ended": None if case.ended is None else iso_utc(case.ended),
                     "truth": dict(case.truth), "history_size": len(visible),
                     "history_latest_end": iso_utc(max(e.ended for e in visible)) if visible else None,
                     "history": [{"incident": e.incident_id, "ended": iso_utc(e.ended)} for e in visible],
                     "hypotheses": len(prior.hypotheses),
                     "conditions": {k: _case_means(v) for k, v in runs.items()}, "runs": runs})
        if prior.signature is not None and case.ended is not None:
            pair = confirm(prior.hypotheses, case.truth)
            rows[-1]["confirmed"] = list(pair)
            past = PastIncident(case.incident_id, case.title, with_cause(prior.signature, *pair), [pair])
            entries.append(HistoryEntry(past, case.started, case.ended, prior.signature))
        else:
            rows[-1]["confirmed"] = None  # no telemetry or never ended: nothing a reviewer could confirm
    summary = {name: summarize(rows, name) for name in conditions}
    # what the engine calls the true service's fault (its first hypothesis, no history), per label:
    # the check of the label -> cause mapping
    causes: dict[str, dict[str, int]] = {}
    for r in rows:
        label = r["truth"].get("fault_type") or r["truth"]["cause"]
        found = r["conditions"]["none"]["service_cause"] or "not proposed"
        causes.setdefault(label, {})
        causes[label][found] = causes[label].get(found, 0) + 1
    return {"per_case": rows, "summary": summary, "conditions": conditions, "true_service_causes": causes,
            "timings": {"detect_per_case_s": round(_mean(t_detect) or 0.0, 4),
                        "rank_per_call_s": round(t_rank / n_rank, 4) if n_rank else None, "rank_calls": n_rank}}


# --------------------------------------------------------------------------- the sample

def sample_part(sample: Path, workdir: Path | None = None, *, seeds: int = DEFAULT_SEEDS,
                sensitivity: Sequence[float] = SENSITIVITY) -> dict[str, Any]:
    """The sample: ingest into a workspace under ``workdir`` (a temp folder when None), then
    :func:`evaluate` its evaluation incidents with its past incidents as the starting history."""
    path = Path(sample) / "labels.yaml"
    labels = {item["id"]: item for item in yamlio.load(path.read_text(encoding="utf-8"), str(path))["incidents"]}
    with tempfile.TemporaryDirectory(prefix="wb-prior-") as tmp:
        t0 = time.perf_counter()
        ws = init(Path(workdir or tmp) / "ws")
        ingest(ws, str(sample), who="benchmark")
        ingest_s = time.perf_counter() - t0
        kb = ws.knowledge_base()
        history, cases = [], []
        t0 = time.perf_counter()
        try:
            for incident in kb.list_incidents():
                decided = kb.list_hypotheses(incident.id, status="confirmed")
                ended = None if incident.resolved is None else as_utc(incident.resolved)
                if decided:  # a past incident: history from the start, as load_history builds it
                    signature = signature_from_incident(incident, decided)
                    past = PastIncident(incident.id, incident.title, signature, [(h.service, h.cause) for h in decided])
                    if ended is not None:
                        history.append(HistoryEntry(past, as_utc(incident.started), ended, signature))
                    continue
                if incident.id not in labels:
                    continue
                start, end = analysis_window(incident)
                base_start, _ = baseline_window(incident)
                window = TelemetryWindow.from_store(ws.telemetry(), base_start, start, end, step=ws.settings.step)
                label = labels[incident.id]
                cases.append(Case(incident.id, incident.title, as_utc(incident.started), ended, incident, window,
                                  {"service": label["root_cause_service"], "cause": label["cause"]}))
        finally:
            kb.close()
        read_s = time.perf_counter() - t0
        out = evaluate(cases, history, seeds=seeds, sensitivity=sensitivity, detector=ws.settings.detector)
    out["timings"].update({"ingest_s": round(ingest_s, 2), "read_s": round(read_s, 2)})
    out["starting_history"] = [{"incident": e.incident_id, "confirmed": [list(p) for p in e.past.confirmed],
                                "ended": iso_utc(e.ended)} for e in history]
    return out


# --------------------------------------------------------------------------- nezha

def nezha_part(data: Path, *, seeds: int = DEFAULT_SEEDS,
               sensitivity: Sequence[float] = SENSITIVITY) -> dict[str, Any]:
    """Every Nezha case cut as ``benchmarks/nezha.py`` cuts it, then :func:`evaluate` (empty start)."""
    t0 = time.perf_counter()
    telemetry = open_source(f"nezha:{data}").read()
    refs = construct_windows(Path(data))
    tables = telemetry.tables()
    lead = pd.Timedelta(seconds=DEFAULT_LEAD)
    labels = load_labels(data)
    cases = []
    for inc in telemetry.incidents:
        started = as_utc(inc["started"])
        window = case_window(tables, inc, lead, refs.get(started.strftime("%Y-%m-%d")))
        label = labels[inc["id"]]
        if label["fault_type"] not in FAULT_CAUSES:
            raise SourceError(f"{data}: case {inc['id']} has fault type {label['fault_type']!r}, which "
                              f"FAULT_CAUSES does not map (known: {', '.join(FAULT_CAUSES)})")
        cases.append(Case(inc["id"], inc["title"], started, as_utc(inc["resolved"]), inc, window,
                          {"service": label["service"], "cause": FAULT_CAUSES[label["fault_type"]],
                           "fault_type": label["fault_type"]}))
    read_s = time.perf_counter() - t0
    out = evaluate(cases, [], seeds=seeds, sensitivity=sensitivity)
    out["timings"]["read_s"] = round(read_s, 2)
    out["fault_causes"] = dict(FAULT_CAUSES)
    return out
