"""The postmortem chapters (workbench.postmortem.chapters) on a copy of the sample: each returns the
table its notebook cell shows, the analysis runs once per opened workspace, bad windows are refused."""
from __future__ import annotations

import pandas as pd
import pytest

from workbench.errors import TemplateParameterError
from workbench.postmortem import chapters as pm

INCIDENT = "INC-20261102-001"  # the sample's bad payments deploy


@pytest.fixture(scope="module")
def ws(sample_copy):
    return sample_copy("chapters")


def test_the_timeline_is_ordered_with_the_milestones_and_the_deploy(ws):
    tl = pm.timeline(ws, INCIDENT)
    assert list(tl.columns) == list(pm.TIMELINE_COLUMNS)
    assert tl["time"].is_monotonic_increasing
    assert {"started", "detected", "mitigated", "resolved"} <= set(tl.loc[tl["source"] == "incident", "kind"])
    deploys = tl[(tl["kind"] == "deploy") & (tl["service"] == "payments")]
    assert deploys["summary"].str.contains("2.15.0").any()


def test_the_analysis_runs_once_per_opened_workspace(ws):
    first = pm.analysis(ws, INCIDENT)
    assert pm.analysis(ws, INCIDENT) is first
    assert pm.analysis(ws, INCIDENT, refresh=True) is not first


def test_evidence_and_hypotheses_name_the_bad_deploy(ws):
    ev = pm.evidence(ws, INCIDENT)
    assert list(ev.columns) == list(pm.EVIDENCE_COLUMNS) and not ev.empty
    # The localiser's suspicion puts checkout (whose errors name payments) and payments first; the
    # hypotheses, which weigh the deploy, put payments first.
    assert "payments" in list(ev.drop_duplicates("service")["service"])[:2]
    hyps = pm.hypotheses(ws, INCIDENT)
    top = hyps.sort_values("rank").iloc[0]
    assert (top["service"], top["cause"], top["status"]) == ("payments", "change", "proposed")


def test_summary_shows_the_window_and_refuses_an_empty_or_naive_one(ws):
    summary = dict(pm.summary(ws, INCIDENT).itertuples(index=False))
    assert summary["id"] == INCIDENT and summary["services"]
    assert summary["analysis window"].startswith("2026-11-02T")
    with pytest.raises(TemplateParameterError, match="is empty"):
        pm.window(ws, INCIDENT, "2026-11-02T15:00:00Z", "2026-11-02T14:00:00Z")
    with pytest.raises(TemplateParameterError, match="window_start"):
        pm.window(ws, INCIDENT, "2026-11-02T15:00:00")
    start, end = pm.window(ws, INCIDENT, "2026-11-02T13:00:00Z", "2026-11-02T15:00:00Z")
    assert (start, end) == (pd.Timestamp("2026-11-02T13:00:00Z"), pd.Timestamp("2026-11-02T15:00:00Z"))
