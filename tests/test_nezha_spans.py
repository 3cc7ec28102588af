"""Nezha trace rows to spans and topology (workbench/telemetry/sources/nezha_spans.py): the edges
of the old file-by-file reading that the shared data set does not hold."""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from workbench.telemetry.sources import nezha_spans, open_source

HEADER = ["TraceID", "SpanID", "ParentID", "PodName", "OperationName", "StartTimeUnixNano", "EndTimeUnixNano",
          "Duration"]
A, B, C = "ts-a-service-5dc8d4f9fd-46997", "ts-b-service-7b6dc75c45-2z9p2", "ts-c-service-6f6cfc45b-h5m2n"
T0 = 1674986400_000_000_000  # 2023-01-29T10:00:00Z
DAY = "2023-01-29"


def _trace(root: Path, name: str, rows: list[list[str]], part: str = "rca_data") -> None:
    path = root / part / DAY / "trace" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([HEADER, *rows])


def _span(span: str, start: str, end: str, duration: str = "0", parent: str = "root", pod: str = A,
          trace: str = "t1") -> list[str]:
    return [trace, span, parent, pod, "GET", start, end, duration]


def test_odd_times_are_read_as_before(tmp_path):
    # A file of plain 19-digit times is read by Arrow's cast; a file with anything else value by
    # value, as before: what that reading refuses is skipped, an unusable end falls back to Duration.
    _trace(tmp_path, "10_00_trace.csv.gz", [_span("plain", str(T0), str(T0 + 2_000_000))])
    _trace(tmp_path, "10_01_trace.csv.gz", [
        _span("over", "9223372036854775808", str(T0)),  # 19 digits above int64's largest
        _span("float", "1.6749864e18", str(T0)),  # not an integer
        _span("hex", hex(T0), str(T0)),  # Arrow's cast would read it, int() does not
        _span("early-end", str(T0 + 1000), str(T0), "1500"),  # end before start: Duration (µs)
        _span("bad-end", str(T0 + 2000), "x", "2500"),
        _span("spaced", f" {T0 + 3000} ", str(T0 + 3000 + 1_000_000)),
        _span("largest", "9223372036854775807", "9223372036854775807"),  # 2262-04-11: a time too
    ])
    _trace(tmp_path, "10_02_trace.csv.gz", [_span("short", "980000000000000000", "980000000005000000")])  # 2001
    source = open_source(f"nezha:{tmp_path}")
    spans = source.read().spans.set_index("span_id")
    assert source.skipped == {f"rca_data/{DAY}/trace/10_01_trace.csv.gz": 3}
    assert spans["duration_ms"].to_dict() == {"short": 5.0, "plain": 2.0, "early-end": 1.5, "bad-end": 2.5,
                                              "spaced": 1.0, "largest": 0.0}
    assert spans.loc["largest", "start"].year == 2262 and spans.loc["short", "start"].year == 2001


def test_a_parent_is_the_first_span_of_its_id_in_the_opened_files(tmp_path):
    # The parent's span started before the window, in a construct file the window's margin opens;
    # a later span with the same id (another pod) does not replace it.
    _trace(tmp_path, "09_58_trace.csv.gz", [_span("a" * 16, str(T0 - 90 * 10**9), str(T0), trace="t0")],
           part="construct_data")
    _trace(tmp_path, "10_00_trace.csv.gz", [
        _span("a" * 16, str(T0 + 10**9), str(T0 + 2 * 10**9), pod=B),
        _span("b" * 16, str(T0 + 2 * 10**9), str(T0 + 3 * 10**9), parent="a" * 16, pod=C),
        _span("c" * 16, str(T0 + 3 * 10**9), str(T0 + 4 * 10**9), parent="b" * 16),
        _span("d" * 16, str(T0 + 4 * 10**9), str(T0 + 5 * 10**9), parent="e" * 16, pod=B),  # parent not read
    ])
    source = open_source(f"nezha:{tmp_path}")
    tel = source.read("2023-01-29T10:00:00Z", "2023-01-29T10:01:00Z")
    assert sorted(tel.spans["span_id"]) == ["a" * 16, "b" * 16, "c" * 16, "d" * 16]
    assert tel.spans.set_index("span_id").loc["a" * 16, "parent_span_id"] == ""
    assert tel.topology.to_dict("records") == [{"caller": "ts-a-service", "callee": "ts-c-service"},
                                               {"caller": "ts-c-service", "callee": "ts-a-service"}]


def _ids(width: int, count: int, rng: np.random.Generator) -> list[str]:
    return ["".join(rng.choice(list("0123456789abcdef"), width)) for _ in range(count)]


@pytest.mark.parametrize("widths", [[16], [8], [24], [5], [16, 8]])
@pytest.mark.parametrize("clash", [False, True])
def test_first_rows_agree_with_arrows_hash(widths, clash, monkeypatch):
    if clash:  # every id folds to one number: the check finds the clash and Arrow's hash answers
        monkeypatch.setattr(nezha_spans, "_fold", lambda words: np.zeros(len(words[0]), dtype=np.uint64))
    rng = np.random.default_rng(len(widths) * 100 + widths[0])
    ids = [i for w in widths for i in _ids(w, 40, rng)]
    ids += list(rng.choice(ids, 20))  # repeated span ids: the first row counts
    parents = list(rng.choice(ids, 50)) + ["", "root", "e" * 16, "root" + "0" * 12] + _ids(widths[0], 5, rng)
    span_id = pa.chunked_array([pa.array(ids[:30]), pa.array(ids[30:])])
    parent = pa.chunked_array([pa.array(parents[:25], pa.large_string()), pa.array(parents[25:], pa.large_string())])
    expected = pc.index_in(parent, value_set=span_id).fill_null(-1).to_numpy()
    assert (expected >= 0).sum() >= 50
    np.testing.assert_array_equal(nezha_spans._first_rows(span_id, parent), expected)
