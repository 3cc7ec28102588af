"""The confirmed-cause prior (workbench.evaluation.prior, run by benchmarks/prior.py) on the sample:
no leak, and no harm.

Ground truth comes from data/sample/labels.yaml, which only the benchmark's scoring reads.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.analysis.signature import PastIncident, Signature
from workbench.evaluation import prior

from conftest import REPO, SAMPLE

CONTROLS = ("shuffled", "shuffled_sig")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample part once: five permutations per control are enough for these checks."""
    return prior.sample_part(SAMPLE, tmp_path_factory.mktemp("prior"), seeds=5, sensitivity=())


def _entry(incident_id: str, started: str, ended: str):
    signature = Signature(incident_id=incident_id, source="document", origin="payments", cause="change",
                          services={"payments": 1.0})
    past = PastIncident(incident_id, "t", signature, [("payments", "change")])
    return prior.HistoryEntry(past, pd.Timestamp(started), pd.Timestamp(ended), signature)


# ------------------------------------------------------------------ the leak guard

def test_guard_refuses_the_incident_itself():
    with pytest.raises(prior.HistoryLeakError, match="INC-2 itself"):
        prior.check_history("INC-2", "2026-11-02T14:03:00Z", [_entry("INC-2", "2026-10-01T00:00Z", "2026-10-01T01:00Z")])


@pytest.mark.parametrize("started, ended", [
    ("2026-11-02T15:00:00Z", "2026-11-02T16:00:00Z"),   # a later incident
    ("2026-11-02T13:00:00Z", "2026-11-02T14:03:00Z"),   # ends exactly when this one starts
    ("2026-11-02T13:00:00Z", "2026-11-02T14:30:00Z"),   # still open when this one starts
])
def test_guard_refuses_an_incident_that_had_not_ended(started, ended):
    with pytest.raises(prior.HistoryLeakError, match="INC-1"):
        prior.check_history("INC-2", "2026-11-02T14:03:00Z", [_entry("INC-1", started, ended)])


def test_guard_accepts_an_earlier_incident_and_is_a_workbench_error():
    prior.check_history("INC-2", "2026-11-02T14:03:00Z", [_entry("INC-1", "2026-11-01T10:00Z", "2026-11-01T11:00Z")])
    assert issubclass(prior.HistoryLeakError, WorkbenchError)


# ------------------------------------------------------------------ the sample

def test_every_history_entry_ended_before_the_incident_started(sample):
    rows = sample["per_case"]
    assert [r["incident"] for r in rows] == sorted(r["incident"] for r in rows)  # chronological here
    for i, row in enumerate(rows):
        started = pd.Timestamp(row["started"])
        ids = [h["incident"] for h in row["history"]]
        assert row["history_size"] == len(ids) == 6 + i  # the six past incidents, then each one confirmed
        assert row["incident"] not in ids
        assert all(pd.Timestamp(h["ended"]) < started for h in row["history"])


def test_true_prior_keeps_every_true_cause_first_and_does_not_shrink_the_margin(sample):
    summary = sample["summary"]
    for row in sample["per_case"]:
        for condition in ("none", "prior"):
            assert row["conditions"][condition]["pair_rank"] == 1, (row["incident"], condition)
        # a reviewer confirms the true pair, and that is what enters the history
        assert row["confirmed"] == [row["truth"]["service"], row["truth"]["cause"]]
    assert summary["prior"]["AC@1"] == summary["none"]["AC@1"] == 1.0
    # measured: none +0.466, prior +0.506, shuffled labels +0.48-0.49 (mean log of score(true) / score(best other))
    gain = {c: summary[c]["mean_log_margin"] - summary["none"]["mean_log_margin"] for c in CONTROLS + ("prior",)}
    assert gain["prior"] > 0
    # what the prior adds comes from matching confirmed incidents, not from labels in general
    assert all(gain["prior"] > gain[c] for c in CONTROLS), gain


def test_the_recurrence_is_helped_by_its_confirmed_original(sample):
    row = next(r for r in sample["per_case"] if r["incident"] == "INC-20261106-001")
    assert row["conditions"]["prior"]["H_true"] > 0.5  # INC-20261102-001, confirmed as payments/change
    assert row["conditions"]["prior"]["margin"] > row["conditions"]["none"]["margin"]
    assert {"shuffled", "shuffled_sig"} <= set(row["conditions"])


def test_the_benchmark_runs_as_a_command(tmp_path):
    """``benchmarks/prior.py`` runs as a command (tests do not import benchmarks): the sample part,
    and a note instead of the Nezha part when its folder is absent."""
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "prior.py"), "--sample", str(SAMPLE), "--seeds", "0",
                           "--data", str(tmp_path / "none"), "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert {"command", "date", "history_bonus", "seeds", "sensitivity", "sample", "nezha"} <= set(result)
    assert result["sample"]["conditions"] == ["none", "prior", "prior@0.1", "prior@0.5"]  # no shuffled: 0 seeds
    assert result["sample"]["summary"]["prior"]["AC@1"] == 1.0
    assert "no Nezha data set here" in result["nezha"]["skipped"] and "== sample: summary" in done.stdout
