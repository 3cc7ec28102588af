"""The unified schema: every malformed input class gives a SchemaError naming column and rows."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.telemetry import schema
from workbench.errors import SchemaError, UnknownNameError


def metrics(n=3, **overrides):
    data = {
        "timestamp": [f"2026-11-01T00:0{i}:00Z" for i in range(n)],
        "service": ["checkout"] * n,
        "environment": ["production"] * n,
        "name": ["latency_p99_ms"] * n,
        "value": [float(i) for i in range(n)],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def test_valid_metrics_are_normalised():
    out = schema.validate("metrics", metrics(), source="m.csv")
    f = out.frame
    assert list(f.columns) == schema.columns("metrics")
    assert str(f["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert f["attributes"].tolist() == ["{}"] * 3
    assert out.report.rows_in == 3 and out.report.rows_out == 3


def test_offsets_are_converted_to_utc():
    f = schema.validate("metrics", metrics(1, timestamp=["2026-11-01T02:00:00+02:00"])).frame
    assert f["timestamp"].iloc[0] == pd.Timestamp("2026-11-01T00:00:00Z")


def test_missing_column_is_named():
    with pytest.raises(SchemaError) as exc:
        schema.validate("metrics", metrics().drop(columns=["service", "value"]), source="m.csv")
    msg = str(exc.value)
    assert "m.csv" in msg and "service" in msg and "value" in msg and "missing" in msg


def test_unmapped_extra_column_is_refused():
    with pytest.raises(SchemaError, match="host"):
        schema.validate("metrics", metrics(host=["a", "b", "c"]))


def test_wrong_type_names_column_and_rows():
    with pytest.raises(SchemaError) as exc:
        schema.validate("metrics", metrics(value=[1.0, "fast", 3.0]), source="m.csv")
    err = exc.value
    assert err.table == "metrics" and err.source == "m.csv"
    (failure,) = err.failures
    assert failure["column"] == "value" and failure["count"] == 1
    assert failure["rows"][0]["row"] == 1 and failure["rows"][0]["value"] == "fast"


def test_naive_time_refused_unless_zone_declared():
    naive = metrics(2, timestamp=["2026-11-01 00:00:00", "2026-11-01 00:01:00"])
    with pytest.raises(SchemaError, match="timezone-aware"):
        schema.validate("metrics", naive, source="naive.csv")
    f = schema.validate("metrics", naive, tz="Europe/Berlin").frame
    assert f["timestamp"].iloc[0] == pd.Timestamp("2026-10-31T23:00:00Z")


def test_naive_datetime_dtype_refused():
    naive = metrics(2, timestamp=pd.to_datetime(["2026-11-01", "2026-11-02"]))
    with pytest.raises(SchemaError, match="timestamp"):
        schema.validate("metrics", naive)


def test_unknown_event_kind_lists_vocabulary():
    ev = pd.DataFrame({"timestamp": ["2026-11-01T00:00:00Z"], "service": ["payments"], "environment": ["prod"],
                       "kind": ["deplyo"], "summary": ["v2"]})
    with pytest.raises(SchemaError) as exc:
        schema.validate("events", ev, source="events.csv")
    assert "deplyo" in str(exc.value) and "config_change" in str(exc.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_refused(bad):
    with pytest.raises(SchemaError, match="finite"):
        schema.validate("metrics", metrics(value=[1.0, bad, 2.0]))


def test_every_failure_reported_at_once():
    df = metrics(value=[1.0, None, 2.0], service=["a", "", "b"], timestamp=["x", "2026-11-01T00:00:00Z", "2026-11-01T00:01:00Z"])
    with pytest.raises(SchemaError) as exc:
        schema.validate("metrics", df)
    assert {f["column"] for f in exc.value.failures} == {"value", "service", "timestamp"}


def test_exact_duplicates_dropped_and_counted():
    df = pd.concat([metrics(), metrics().iloc[:2]], ignore_index=True)
    out = schema.validate("metrics", df)
    assert len(out.frame) == 3 and out.report.duplicates_dropped == 2


def test_log_rows_differing_only_in_body_are_both_kept():
    """Bodies are compared only among rows equal elsewhere; that shortcut must not drop a line."""
    row = {"timestamp": "2026-11-01T00:00:00Z", "service": "a", "environment": "p", "severity": "INFO"}
    logs = pd.DataFrame([{**row, "body": "one"}, {**row, "body": "two"}, {**row, "body": "one"},
                         {**row, "severity": "WARN", "body": "one"}, {**row, "body": "two"}])
    out = schema.validate("logs", logs)
    assert out.frame["body"].tolist() == ["one", "two", "one"] and out.report.duplicates_dropped == 2
    assert out.frame["severity"].tolist() == ["INFO", "INFO", "WARN"]


def test_categorical_text_is_checked_per_category_and_stored_as_text():
    """Sources with a small vocabulary hand categories in; the rules and the output are those of text."""
    cat = lambda values: pd.Series(pd.Categorical(values, categories=["checkout", "pay\x00ments", "unused", ""]))
    df = metrics(4, service=cat(["checkout", "checkout", "checkout", "checkout"]),
                 unit=pd.Series(pd.Categorical(["ms", None, "ms", None])))
    df = pd.concat([df, df.iloc[:1]], ignore_index=True)
    out = schema.validate("metrics", df)
    assert out.frame["service"].dtype == "str" and out.frame["unit"].tolist() == ["ms", "", "ms", ""]
    assert out.report.duplicates_dropped == 1 and len(out.frame) == 4
    with pytest.raises(SchemaError, match=r"service.*control characters.*row.: 1"):
        schema.validate("metrics", metrics(2, service=cat(["checkout", "pay\x00ments"])))
    with pytest.raises(SchemaError, match=r"service.*non-empty"):
        schema.validate("metrics", metrics(2, service=cat(["checkout", ""])))


def test_conflicting_duplicates_refused():
    df = pd.concat([metrics(), metrics().iloc[:1].assign(value=99.0)], ignore_index=True)
    with pytest.raises(SchemaError, match="unique key"):
        schema.validate("metrics", df)


def test_megabyte_log_line_refused():
    logs = pd.DataFrame({"timestamp": ["2026-11-01T00:00:00Z"], "service": ["a"], "environment": ["p"],
                         "severity": ["INFO"], "body": ["x" * 1_000_000]})
    with pytest.raises(SchemaError, match="at most 65536"):
        schema.validate("logs", logs, source="big.jsonl")


def test_a_service_name_longer_than_the_knowledge_base_takes_is_refused_at_the_edge():
    """issue 13, item 10: a 100,000-character service made the report 1.7 million pixels wide."""
    from workbench.formats import MAX_NAME_CHARS

    ok = "s" * MAX_NAME_CHARS
    assert schema.validate("metrics", metrics(service=[ok] * 3), source="m.csv").frame["service"].iloc[0] == ok
    with pytest.raises(SchemaError, match=rf"m\.csv.*column 'service'.*at most {MAX_NAME_CHARS} characters"):
        schema.validate("metrics", metrics(service=["s" * 100_000] * 3), source="m.csv")


def test_non_utf8_text_refused():
    # What a reader decoding with errors="surrogateescape" hands over (pandas' own str dtype
    # cannot even hold it, so the column is object).
    body = b"bad \xff\xfe bytes".decode("utf-8", errors="surrogateescape")
    logs = pd.DataFrame({"timestamp": ["2026-11-01T00:00:00Z"], "service": ["a"], "environment": ["p"],
                         "severity": ["INFO"], "body": pd.Series([body], dtype=object)})
    with pytest.raises(SchemaError, match="UTF-8"):
        schema.validate("logs", logs)


def test_bytes_value_refused():
    logs = pd.DataFrame({"timestamp": ["2026-11-01T00:00:00Z"], "service": [b"a"], "environment": ["p"],
                         "severity": ["INFO"], "body": ["ok"]})
    with pytest.raises(SchemaError, match="service"):
        schema.validate("logs", logs)


def test_attributes_dicts_become_sorted_json():
    df = metrics(2, attributes=[{"b": 1, "a": "x"}, '{"z": [1, 2]}'])
    f = schema.validate("metrics", df).frame
    assert f["attributes"].tolist() == ['{"a":"x","b":1}', '{"z":[1,2]}']
    assert schema.parse_attributes(f["attributes"].iloc[0]) == {"a": "x", "b": 1}


def test_attributes_must_be_objects():
    with pytest.raises(SchemaError, match="JSON object"):
        schema.validate("metrics", metrics(1, attributes=["[1, 2]"]))


def test_spans_status_and_duration_checked():
    spans = pd.DataFrame({"trace_id": ["t", "t"], "span_id": ["1", "2"], "parent_span_id": ["", "1"],
                          "service": ["a", "b"], "name": ["GET /", "SELECT"],
                          "start": ["2026-11-01T00:00:00Z"] * 2, "duration_ms": [5.0, -1.0],
                          "status": ["ok", "unset"]})
    with pytest.raises(SchemaError) as exc:
        schema.validate("spans", spans)
    assert {f["column"] for f in exc.value.failures} == {"duration_ms", "status"}


@pytest.mark.parametrize("text,expected", [("warning", "WARN"), ("CRITICAL", "FATAL"), ("Info", "INFO"),
                                           ("ERROR2", "ERROR"), ("err", "ERROR")])
def test_normalize_severity(text, expected):
    assert schema.normalize_severity(text) == expected


def test_unknown_table_suggests_name():
    with pytest.raises(UnknownNameError, match="did you mean 'metrics'"):
        schema.columns("metric")


@pytest.mark.parametrize("table", schema.TABLES)
def test_empty_frames_are_valid(table):
    out = schema.validate(table, schema.empty(table))
    assert out.frame.empty and list(out.frame.columns) == schema.columns(table)


def test_error_message_is_one_readable_line_with_rows():
    with pytest.raises(SchemaError) as exc:
        schema.validate("metrics", metrics(value=[1.0, "x", 3.0]), source="/data/m.csv")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("/data/m.csv: metrics table is invalid")
    assert "'row': 1" in msg
    json.dumps(exc.value.failures, default=str)  # failures are plain data for --json output
