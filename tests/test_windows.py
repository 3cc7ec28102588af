"""Where an incident's analysis looks and what it takes as normal (workbench/windows.py).

The rule pinned here: an override that starts well before ``started`` holds a quiet lead-in,
which becomes the baseline (extended back to at least an hour); without an override the
baseline is the 24 h before the analysis window.
"""
from __future__ import annotations

import pandas as pd
import pytest

from workbench.analysis.pipeline import analyze
from workbench.telemetry.windows import (BASELINE, LEAD, LEAD_GUARD, LEAD_IN_BASELINE, TAIL, analysis_window,
                                         baseline_window, lead_in_span)


STARTED = pd.Timestamp("2026-11-02T14:03:00Z")
RESOLVED = pd.Timestamp("2026-11-02T14:55:00Z")
END = RESOLVED + TAIL


def _incident(**override) -> dict:
    return {"started": STARTED.isoformat(), "resolved": RESOLVED.isoformat(), **override}


def test_an_override_starting_2h_before_started_gets_the_lead_in_as_baseline():
    incident = _incident(window_start=STARTED - pd.Timedelta(hours=2), window_end=END)
    assert analysis_window(incident) == (STARTED - LEAD_GUARD, END)
    assert baseline_window(incident) == (STARTED - pd.Timedelta(hours=2), STARTED - LEAD_GUARD)
    assert lead_in_span(incident) == (STARTED - pd.Timedelta(hours=2), STARTED - LEAD_GUARD)
    # a document's nested window (sources, import) is read the same way
    nested = _incident(window={"start": (STARTED - pd.Timedelta(hours=2)).isoformat(), "end": END.isoformat()})
    assert baseline_window(nested) == baseline_window(incident)


def test_without_an_override_the_baseline_is_the_24h_before_the_window():
    incident = _incident()
    assert lead_in_span(incident) is None
    assert analysis_window(incident) == (STARTED - LEAD, END)
    assert baseline_window(incident) == (STARTED - LEAD - BASELINE, STARTED - LEAD)


def test_a_short_lead_in_is_extended_back_to_an_hour():
    incident = _incident(window_start=STARTED - pd.Timedelta(minutes=10), window_end=END)
    start, end = analysis_window(incident)
    assert (start, end) == (STARTED - LEAD_GUARD, END)
    assert baseline_window(incident) == (start - LEAD_IN_BASELINE, start)


@pytest.mark.parametrize("window_start", [STARTED, STARTED - LEAD_GUARD, STARTED + pd.Timedelta(minutes=5)])
def test_an_override_without_a_lead_in_is_taken_as_it_is(window_start):
    incident = _incident(window_start=window_start, window_end=END)
    assert lead_in_span(incident) is None
    assert analysis_window(incident) == (window_start, END)
    assert baseline_window(incident) == (window_start - BASELINE, window_start)


def test_an_override_ending_before_the_start_has_no_lead_in():
    early_end = STARTED - pd.Timedelta(minutes=30)
    incident = _incident(window_start=STARTED - pd.Timedelta(hours=2), window_end=early_end)
    assert analysis_window(incident) == (STARTED - pd.Timedelta(hours=2), early_end)


def test_a_reader_can_take_the_override_as_it_is():
    incident = _incident(window_start=STARTED - pd.Timedelta(hours=2), window_end=END)
    assert analysis_window(incident, lead_in=False) == (STARTED - pd.Timedelta(hours=2), END)
    assert baseline_window(incident, lead_in=False) == (STARTED - pd.Timedelta(hours=26), STARTED - pd.Timedelta(hours=2))


def test_analyze_scores_against_the_lead_in_and_still_finds_the_bad_deploy(sample_copy):
    """The sample's bad deploy, with a 2 h override before it: the engine's baseline is the lead-in."""
    ws = sample_copy("windows")
    with ws.knowledge_base() as kb:
        original = kb.get_incident("INC-20261102-001")
        started = pd.Timestamp(original.started)
        copy = kb.create_incident(title="Bad deploy, windowed", started=original.started, resolved=original.resolved,
                                  services=original.services, window_start=started - pd.Timedelta(hours=2),
                                  window_end=pd.Timestamp(original.resolved) + TAIL, who="test")
    result = analyze(ws, copy.id, store=False)
    assert result.baseline == (started - pd.Timedelta(hours=2), started - LEAD_GUARD)
    assert result.window == (started - LEAD_GUARD, pd.Timestamp(original.resolved) + TAIL)
    assert (result.hypotheses[0].service, result.hypotheses[0].cause) == ("payments", "change")
    plain = analyze(ws, original.id, store=False)  # no override: the 24 h rule
    assert plain.baseline == (started - LEAD - BASELINE, started - LEAD)
    # A notebook's own window parameter is a reader's choice: taken as given, no lead-in rule.
    from workbench.postmortem import chapters as postmortem

    given = started - pd.Timedelta(hours=2)
    assert postmortem.window(ws, original.id, window_start=given.isoformat()) == (
        given, pd.Timestamp(original.resolved) + TAIL)
    assert postmortem.window(ws, copy.id) == result.window  # the stored override: the rule applies
