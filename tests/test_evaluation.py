"""Evaluation of the ranking: CV folds, the choice of constants, calibration, top-k scores, references."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.analysis.confidence import Platt, probabilities
from workbench.analysis.evidence import TelemetryWindow
from workbench.telemetry import schema
from workbench.evaluation import cv, reference
from workbench.evaluation.calibration import brier, fit_platt, reliability
from workbench.evaluation.topk import inner_cause_matches, rank_of, summarize, topk_summary

BASE = pd.Timestamp("2026-03-01T08:00:00Z")
START = pd.Timestamp("2026-03-01T08:20:00Z")
END = pd.Timestamp("2026-03-01T08:30:00Z")


# --------------------------------------------------------------------------- folds and choice

def test_stratified_folds_never_test_what_they_train_on_and_cover_every_case_once_per_repeat():
    strata = ["return"] * 8 + ["exception"] * 9 + ["cpu"] * 5 + ["network"] * 10
    folds = cv.repeated_stratified_kfold(strata, k=4, repeats=3, seed=1)
    assert len(folds) == 12
    for fold in folds:
        assert not set(fold.train) & set(fold.test)
        assert sorted(fold.train + fold.test) == list(range(32))
        # each stratum is spread evenly: a fold holds 2 or 3 of 9 exceptions, never 0 or 5
        held = [strata[i] for i in fold.test]
        assert 2 <= held.count("exception") <= 3 and 1 <= held.count("cpu") <= 2
    for r in range(3):
        tested = sorted(i for f in folds if f.repeat == r for i in f.test)
        assert tested == list(range(32))
    assert folds[0].test != cv.repeated_stratified_kfold(strata, k=4, repeats=3, seed=2)[0].test


def test_leave_one_group_out_and_bad_folds():
    days = ["d1"] * 5 + ["d2"] * 3
    folds = cv.leave_one_group_out(days)
    assert [f.name for f in folds] == ["d1", "d2"] and folds[1].test == (5, 6, 7) and folds[1].train == tuple(range(5))
    with pytest.raises(ValueError, match="both trained on and tested"):
        cv.check_folds([cv.Fold("p", 0, 0, (0, 1), (1, 2))], 3)
    with pytest.raises(ValueError, match="cover each"):
        cv.check_folds([cv.Fold("p", 0, 0, (0,), (1,))], 3)
    with pytest.raises(ValueError, match="k must be"):
        cv.repeated_stratified_kfold(["a", "b"], k=4)


def test_a_fold_chooses_its_constants_without_reading_its_test_cases():
    """No constant is read from a held-out case's label: rewriting the test cases' ranks (what the
    labels decide) changes neither the configuration a fold chooses nor its confidence model."""
    rng = np.random.default_rng(3)
    ranks = rng.integers(1, 6, size=(24, 10)).astype(float)
    margins = rng.uniform(0, 2, size=(24, 10))
    folds = cv.repeated_stratified_kfold(["a", "b", "c"] * 8, k=4, repeats=2)
    before = cv.cross_validate(ranks, margins, folds)
    for fold in folds:
        tampered, tampered_m = ranks.copy(), margins.copy()
        tampered[list(fold.test)] = rng.integers(1, 6, size=(len(fold.test), 10))
        tampered_m[list(fold.test)] = rng.uniform(0, 9, size=(len(fold.test), 10))
        after = cv.cross_validate(tampered, tampered_m, [fold])
        chosen = next(c for f, c, _ in before.chosen if f == fold)
        platt = next(p for f, _, p in before.chosen if f == fold)
        assert after.chosen[0][1] == chosen and after.chosen[0][2] == platt


def test_the_choice_maximises_the_objective_and_ties_go_to_the_first_configuration():
    ranks = np.array([[1, 1, 2], [3, 1, 1], [1, 1, 9]], dtype=float)
    assert cv.choose(ranks, [0, 1, 2]) == 1  # all first beats the others
    assert cv.choose(np.ones((3, 4)), [0, 1]) == 0  # a tie: the grid's order decides
    result = cv.cross_validate(ranks, np.zeros_like(ranks), cv.leave_one_group_out(["x", "y", "y"]))
    assert {p.case for p in result.predictions} == {0, 1, 2}
    assert all(0 < p.probability < 1 for p in result.predictions)


# --------------------------------------------------------------------------- calibration

def test_platt_scaling_orders_margins_and_beats_a_constant_on_separable_data():
    rng = np.random.default_rng(0)
    margins = np.concatenate([rng.uniform(0.8, 2.0, 40), rng.uniform(0.0, 0.5, 20)])
    right = np.array([True] * 40 + [False] * 20)
    model = fit_platt(margins, right)
    p = [model(m) for m in margins]
    assert model.a > 0 and model(0.1) < 0.3 < 0.8 < model(1.5)
    assert brier(p, right) < brier([right.mean()] * len(right), right) / 2
    table = reliability(p, right, bins=5)
    assert [b["bin"] for b in table] == ["0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0"]
    assert sum(b["cases"] for b in table) == 60
    assert table[-1]["observed"] > 0.9 and table[0]["observed"] < 0.1
    # perfectly separated and empty inputs still give a finite model
    assert np.isfinite(fit_platt([2.0, 3.0, 0.0], [True, True, False]).a)
    assert fit_platt([], []) == Platt(0.0, 0.0)
    assert brier([], []) is None


def test_probabilities_fall_with_the_score_and_stay_in_range():
    probs = probabilities([3.0, 1.0, 0.5, 0.0], Platt(1.0, 1.0))
    assert probs == sorted(probs, reverse=True) and all(0 < p < 1 for p in probs)
    assert probabilities([1.0], Platt(1.0, 0.0)) == [0.5]  # nothing to compare with: the intercept alone


# --------------------------------------------------------------------------- top-k and inner causes

def test_rank_of_and_topk_summary():
    assert rank_of(["a", "b", "c"], "b") == 2
    assert rank_of(["a", "b"], "z", size=5) == 6 and rank_of([], "z", size=3) == 4
    s = topk_summary([1, 2, 4, 9])
    assert s == {"cases": 4, "AS@1": 0.25, "AS@3": 0.5, "AS@5": 0.75, "mean_rank": 4.0}
    rows = [{"rank": 1, "fault_type": "cpu"}, {"rank": 3, "fault_type": "cpu"}, {"rank": None, "fault_type": "x"}]
    out = summarize(rows)
    assert out["cases"] == 2 and out["by_fault_type"]["cpu"]["AS@3"] == 1.0 and "x" not in out["by_fault_type"]


@pytest.mark.parametrize("label,fault,named,expected", [
    ("CpuUsageRate(%)", "cpu_contention", ["metric cpu_usage_rate"], True),
    ("CpuUsageRate(%)", "cpu_contention", ["metric memory_usage"], False),
    ("NetworkP90(ms)", "network_delay", ["span ts-a→ts-b overhead p50"], True),  # no network column: latency
    ("NetworkP90(ms)", "network_delay", ["log template x"], False),
    ("c.s.ContactsServiceImpl#31_c.s.ContactsServiceImpl#34", "return", ["c.s.ContactsServiceImpl#33 <TS> INFO x"], True),
    ("c.s.ContactsServiceImpl#31_c.s.ContactsServiceImpl#34", "return", ["c.s.ContactsServiceImpl#40 <TS> INFO x"], False),
    ("c.s.ContactsServiceImpl#31_c.s.ContactsServiceImpl#34", "return", ["c.s.OtherImpl#33 <TS> INFO x"], False),
    ("PriceController.query start_p.c.PriceController#46", "exception", ["p.c.PriceController#46 <TS> INFO q"], True),
    ("Delivery service_Receive delivery object", "return", ["<TS> INFO [Receive delivery object][id <*>]"], True),
    ("Delivery service_Receive delivery object", "return", ["<TS> INFO [Send delivery object]"], False),
])
def test_inner_causes_match_the_fine_grained_labels(label, fault, named, expected):
    assert inner_cause_matches(label, fault, named) is expected


# --------------------------------------------------------------------------- reference methods

def _tiny(fault: str) -> TelemetryWindow:
    """front -> mid (-> leaf for every other request); from START the leaf is slow and erroring (and
    its CPU rises), or clean. Requests that skip the leaf stay normal (what a spectrum compares)."""
    rng = np.random.default_rng(5)
    metrics, logs, spans = [], [], []
    n = 0
    for minute in pd.date_range(BASE, END, freq="1min", inclusive="left"):
        bad = fault == "leaf" and minute >= START
        for service in ("front", "mid", "leaf"):
            cpu = 0.9 if bad and service == "leaf" else 0.2 + rng.normal(0, 0.01)
            metrics.append({"timestamp": minute, "service": service, "environment": "t", "name": "cpu_usage_rate",
                            "value": float(cpu), "unit": ""})
        for k in range(6):
            t = minute + pd.Timedelta(seconds=10 * k)
            trace = f"{minute:%H%M}{k:02d}".ljust(32, "0")
            ids = []
            path = ("front", "mid", "leaf") if k % 2 == 0 else ("front", "mid")
            for depth, service in enumerate(path):
                n += 1
                ids.append(f"{n:016x}")
                dur = (50 if bad and len(path) == 3 else 5) + 10 * (2 - depth)
                spans.append({"trace_id": trace, "span_id": ids[-1], "parent_span_id": ids[-2] if depth else "",
                              "service": service, "name": f"op-{service}", "start": t + pd.Timedelta(milliseconds=depth),
                              "duration_ms": float(dur), "status": "error" if bad and service == "leaf" else "ok"})
            if len(path) == 3:
                body = "query failed: timeout" if bad else f"query {k} done"
                logs.append({"timestamp": t, "service": "leaf", "environment": "t", "severity": "ERROR" if bad else "INFO",
                             "body": body, "trace_id": trace, "attributes": json.dumps({"span_id": ids[-1]})})
            logs.append({"timestamp": t, "service": "front", "environment": "t", "severity": "INFO",
                         "body": f"request {k} served", "trace_id": trace, "attributes": json.dumps({"span_id": ids[0]})})
    tables = {t: schema.validate(t, pd.DataFrame(rows), source="test").frame
              for t, rows in (("metrics", metrics), ("logs", logs), ("spans", spans))}
    tables["events"] = schema.empty("events")
    tables["topology"] = pd.DataFrame([("front", "mid"), ("mid", "leaf")], columns=["caller", "callee"])
    return TelemetryWindow.from_tables(tables, BASE, START, END)


@pytest.mark.parametrize("name", sorted(reference.METHODS))
def test_each_reference_method_finds_a_plain_fault_and_stays_flat_without_one(name):
    method = reference.METHODS[name]
    faulty = method(_tiny("leaf"))
    assert faulty.services()[0] == "leaf", faulty.scores
    assert set(faulty.scores.index) == {"front", "mid", "leaf"}
    assert faulty.inner.get("leaf")
    quiet = method(_tiny("none"))
    assert quiet.scores.max() < faulty.scores.max()


def test_reference_methods_on_an_empty_window_and_the_random_expectation():
    empty = TelemetryWindow.from_tables({}, BASE, START, END)
    for method in reference.METHODS.values():
        assert method(empty).scores.empty
    r = reference.random_expectation(10)
    assert r["rank"] == 5.5 and r["AS@1"] == 0.1 and r["AS@5"] == 0.5
    assert reference.random_expectation(2)["AS@3"] == 1.0
