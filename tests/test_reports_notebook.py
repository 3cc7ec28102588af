"""The notebook's outputs as objects (no kernel, no browser): how values read, what each output
bundle carries, and that data stays data inside chart scripts and tables.

The executed notebook itself is checked in tests/test_notebook.py (papermill) and
tests/test_notebook_browser.py (JupyterLab and nbconvert in Chromium).
"""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import HOSTILE_STRINGS
from workbench.reports import text
from workbench.reports.embed import HTML, BokehJS, Charts, script_json
from workbench.reports.notebook import hypotheses_markup
from workbench.reports.safe import Markup, fmt


def test_values_read_like_the_report():
    assert text.clock_column(["2026-11-02T23:59:58Z", "2026-11-02T23:59:59Z", None, pd.NaT,
                              "2026-11-03T00:00:01Z"]) == \
        ["2026-11-02 23:59:58 UTC", "23:59:59 UTC", "—", "—", "2026-11-03 00:00:01 UTC"]
    assert [text.plain(v) for v in (None, float("nan"), pd.NaT, pd.NA, "", 1.23456, "x")] == \
        ["—", "—", "—", "—", "—", "1.23", "x"]
    assert (text.number(1.03712), text.number(0.000123), text.number(float("inf"))) == ("1.04", "0.00012", "—")
    assert text.duration("2026-11-02T14:03:00Z", "2026-11-02T14:08:48Z") == "5 min 48 s"
    assert (text.minutes_text(125.5), text.minutes_text(None), text.percent(0.834)) == ("2 h 5 min", "—", "83.4 %")
    assert text.when("2026-11-02T14:10:00Z", seconds=None) == "2026-11-02 14:10 UTC"


def _hypothesis(**kw):
    base = dict(id="h1", service="payments", cause="change", status="proposed", score=1.0371, rank=1,
                summary="Deploy broke it", evidence=(), similar=(), reviewer=None, rationale=None)
    return SimpleNamespace(**{**base, **kw})


def test_the_hypotheses_table_shows_a_calibrated_confidence_only_when_there_is_one():
    plain = hypotheses_markup([_hypothesis()])
    assert ">1.04<" in plain and "confidence" not in plain
    calibrated = hypotheses_markup([_hypothesis(confidence=0.834), _hypothesis(id="h2", rank=2, confidence=None)])
    assert "confidence" in calibrated and ">83.4 %<" in calibrated and ">—<" in calibrated


def test_chart_scripts_keep_data_inside_their_json():
    hostile = HOSTILE_STRINGS[3] + "</script><script>window.__pwned=1</script>\u2028"
    encoded = script_json({"summary": hostile})
    assert "<" not in encoded and ">" not in encoded and "\u2028" not in encoded
    assert json.loads(encoded) == {"summary": hostile}


def test_each_output_carries_a_view_for_every_viewer():
    pytest.importorskip("holoviews")
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 (the backend the charts render with)

    curve = hv.Curve(pd.DataFrame({"x": [1, 2, 3], "y": [1.0, 3.0, 2.0]}), "x", "y").opts(title=HOSTILE_STRINGS[3])
    table = Markup("<table><tr><td>") + HOSTILE_STRINGS[4] + Markup("</td></tr></table>")
    bundle = Charts([curve], "Key metrics", after=table)._repr_mimebundle_()
    assert set(bundle) == {"application/javascript", "text/html", "text/plain"}
    assert "embed_item" in bundle["application/javascript"] and "<script" not in bundle["application/javascript"]
    assert "not trusted" in bundle["text/html"] or "runs no scripts" in bundle["text/html"]  # where scripts do not run
    assert "&lt;img src=x" in bundle["text/html"] and "<img" not in bundle["text/html"]
    assert bundle["text/plain"].startswith("Key metrics: 1 chart(s)")
    empty = Charts([], "Heatmap")._repr_mimebundle_()
    assert "application/javascript" not in empty and empty["text/plain"].startswith("Heatmap: 0 chart(s)")

    loader = BokehJS()._repr_mimebundle_()
    assert loader["application/javascript"].count("/* BEGIN bokeh.min.js */") == 1  # BokehJS alone, once
    assert len(loader["application/javascript"]) < 2e6

    with pytest.raises(TypeError, match="Markup"):
        HTML("<b>not escaped</b>")
    with pytest.raises(TypeError, match="Markup"):
        Charts([], after="<b>not escaped</b>")
    shown = HTML(fmt("<b>{0}</b>", HOSTILE_STRINGS[3]), "plain")._repr_mimebundle_()
    assert re.search(r"&lt;script&gt;", shown["text/html"]) and shown["text/plain"] == "plain"
