"""One contract for every registered source: validated tables in schema order, UTC times,
deterministic reads, incident documents the knowledge base accepts.

A new source must add a fixture builder to ``BUILDERS``; the first test fails until it does.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.telemetry import schema, sources
from workbench.store import validate_document


def _files(tmp_path, shared, request):
    path = tmp_path / "metrics.csv"
    path.write_text("timestamp,service,environment,name,value\n"
                    "2026-11-01T00:00:00Z,checkout,production,cpu,0.5\n"
                    "2026-11-01T00:01:00Z,checkout,production,cpu,0.7\n")
    return f"files:{path}", {"table": "metrics"}, None


def _otlp(tmp_path, shared, request):
    line = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                               "scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
                                                          "name": "GET /cart", "startTimeUnixNano": "1793491200000000000",
                                                          "endTimeUnixNano": "1793491200250000000", "status": {}}]}]}]}
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps(line) + "\n")
    return f"otlp:{path}", {}, None


def _nezha(tmp_path, shared, request):
    if shared is None:
        pytest.skip("../shared/data is not beside the repo")
    start = pd.Timestamp("2023-01-30T13:14:00Z")
    return f"nezha:{shared / 'nezha-trainticket'}", {"days": ["2023-01-30"]}, (start, start + pd.Timedelta(minutes=3))


def _prometheus(tmp_path, shared, request):
    server = request.getfixturevalue("prometheus")  # skipped without the binaries
    start = pd.Timestamp("2026-11-02T14:00:00Z")
    return f"prometheus:{server.url}", {"match": ['{service="payments"}']}, (start, start + pd.Timedelta(minutes=30))


def _alertmanager(tmp_path, shared, request):
    server = request.getfixturevalue("alertmanager")
    server.request("/api/v2/alerts", [{"labels": {"alertname": "Contract", "service": "checkout"},
                                       "annotations": {"summary": "contract"}, "startsAt": "2026-11-02T14:05:00Z"}],
                   method="POST")
    start = pd.Timestamp("2026-11-02T14:00:00Z")
    return (f"alertmanager:{server.url}", {"filter": 'alertname="Contract"'},
            (start, start + pd.Timedelta(minutes=30)))


BUILDERS = {"files": _files, "otlp": _otlp, "nezha": _nezha, "prometheus": _prometheus, "alertmanager": _alertmanager}


def test_every_registered_source_has_a_contract_fixture():
    assert set(sources.names()) == set(BUILDERS)


@pytest.fixture
def shared_or_none():
    from conftest import SHARED_DATA

    return SHARED_DATA if SHARED_DATA.is_dir() else None


@pytest.mark.parametrize("scheme", sorted(BUILDERS))
def test_source_contract(scheme, tmp_path, shared_or_none, request):
    url, options, window = BUILDERS[scheme](tmp_path, shared_or_none, request)
    src = sources.open_source(url, **options)
    assert src.scheme == scheme and src.url.startswith(f"{scheme}:")
    start, end = window or (None, None)
    first = src.read(start, end)
    produced = 0
    for table, frame in first.tables().items():
        assert list(frame.columns) == schema.columns(table), table
        again = schema.validate(table, frame, source="contract")
        assert again.report.duplicates_dropped == 0 and len(again.frame) == len(frame)
        time_col = schema.TIME_COLUMN[table]
        if time_col and len(frame):
            assert str(frame[time_col].dtype) == "datetime64[ns, UTC]"
            if window:
                assert frame[time_col].min() >= start and frame[time_col].max() < end
        produced += len(frame)
    assert produced > 0
    second = sources.open_source(url, **options).read(start, end)
    for table in schema.TABLES:
        pd.testing.assert_frame_equal(first.tables()[table], second.tables()[table])
    for doc in first.incidents:
        validate_document(doc, url)


def test_unknown_scheme_suggests():
    from workbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="did you mean 'otlp'"):
        sources.open_source("otpl:/tmp/x")
