"""The files source: CSV/Parquet/JSON lines mapped to the unified tables by a declared manifest."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import HOSTILE_STRINGS
from workbench.telemetry import schema, sources
from workbench.errors import SchemaError, SourceError, UnknownNameError
from workbench.telemetry.sources.files import FilesSource

T0 = pd.Timestamp("2026-11-01T00:00:00Z")


def metrics_frame(n=6):
    return pd.DataFrame({
        "timestamp": [T0 + pd.Timedelta(minutes=i) for i in range(n)],
        "service": ["checkout" if i % 2 else "cart" for i in range(n)],
        "environment": ["production"] * n,
        "name": ["latency_p99_ms"] * n,
        "value": [10.0 + i for i in range(n)],
        "unit": ["ms"] * n,
    })


def write_manifest(folder, doc):
    (folder / "manifest.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")


def test_registered_as_files_and_opened_by_url_or_bare_path(tmp_path):
    assert sources.get("files") is FilesSource
    metrics_frame().to_parquet(tmp_path / "m.parquet")
    for url in (f"files:{tmp_path / 'm.parquet'}", str(tmp_path / "m.parquet")):
        src = sources.open_source(url, table="metrics")
        assert isinstance(src, FilesSource) and len(src.read().metrics) == 6


# --------------------------------------------------------------------------- round trips

def test_csv_parquet_jsonl_round_trip_the_same_values(tmp_path):
    frame = metrics_frame()
    text = frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat()))
    text.to_csv(tmp_path / "m.csv", index=False)
    with gzip.open(tmp_path / "m.csv.gz", "wt", encoding="utf-8") as fh:
        text.to_csv(fh, index=False)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "m.parquet")
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in text.to_dict("records")))
    with gzip.open(tmp_path / "m.ndjson.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in text.to_dict("records")))
    expected = schema.validate("metrics", frame).frame
    for name in ("m.csv", "m.csv.gz", "m.parquet", "m.jsonl", "m.ndjson.gz"):
        got = FilesSource(str(tmp_path / name), table="metrics").read().metrics
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, obj=name)
        assert str(got["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_manifest_reads_every_table_and_incidents(tmp_path):
    metrics_frame().to_parquet(tmp_path / "metrics.parquet")
    (tmp_path / "logs").mkdir()
    for part in range(2):
        with gzip.open(tmp_path / "logs" / f"part-{part}.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.write(json.dumps({"timestamp": f"2026-11-01T00:0{part}:00Z", "service": "cart",
                                 "environment": "production", "severity": "warning",
                                 "body": f"slow query {part}", "trace_id": "00ab"}) + "\n")
    (tmp_path / "spans.csv").write_text(
        "trace_id,span_id,parent_span_id,service,name,start,duration_ms,status\n"
        "t1,s1,,frontend,GET /,2026-11-01T00:00:00Z,12.5,ok\n"
        "t1,s2,s1,cart,GetCart,2026-11-01T00:00:00.001Z,9,error\n")
    (tmp_path / "topology.csv").write_text("caller,callee\nfrontend,cart\n")
    (tmp_path / "incidents").mkdir()
    (tmp_path / "incidents" / "b.yaml").write_text("id: INC-2\ntitle: second\n")
    (tmp_path / "incidents" / "a.yaml").write_text("id: INC-1\ntitle: first\nservices: [cart]\n")
    write_manifest(tmp_path, {
        "name": "online-shop sample",
        "tables": {"metrics": {"path": "metrics.parquet"}, "logs": {"path": "logs/*.jsonl.gz"},
                   "spans": "spans.csv", "topology": [{"path": "topology.csv"}]},
        "incidents": "incidents/",
    })
    tel = sources.registry.get("files")(str(tmp_path)).read()
    assert len(tel.metrics) == 6
    assert tel.logs["severity"].tolist() == ["WARN", "WARN"]
    assert tel.logs["trace_id"].tolist() == ["00ab", "00ab"]  # ids keep their leading zeros
    assert tel.spans.set_index("span_id").loc["s1", "parent_span_id"] == ""
    assert tel.spans.set_index("span_id").loc["s2", "status"] == "error"
    assert tel.topology.to_dict("records") == [{"caller": "frontend", "callee": "cart"}]
    assert [d["id"] for d in tel.incidents] == ["INC-1", "INC-2"]
    assert tel.incidents[0] == {"id": "INC-1", "title": "first", "services": ["cart"]}


def test_hostile_strings_survive_csv_and_jsonl_byte_identical(tmp_path):
    n = len(HOSTILE_STRINGS)
    frame = pd.DataFrame({
        "timestamp": [f"2026-11-01T00:00:{i:02d}Z" for i in range(n)], "service": ["api"] * n,
        "environment": ["prod"] * n, "severity": ["INFO"] * n, "body": HOSTILE_STRINGS,
    })
    frame.to_csv(tmp_path / "l.csv", index=False)
    (tmp_path / "l.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in frame.to_dict("records")),
                                      encoding="utf-8")
    for name in ("l.csv", "l.jsonl"):
        got = FilesSource(str(tmp_path / name), table="logs").read().logs
        assert got["body"].tolist() == HOSTILE_STRINGS, name


def test_unicode_line_separator_inside_a_json_string_is_not_a_line_break(tmp_path):
    body = "before\u2028after\x85end"
    (tmp_path / "l.jsonl").write_text(json.dumps({"timestamp": "2026-11-01T00:00:00Z", "service": "a",
                                                  "environment": "p", "severity": "INFO", "body": body},
                                                 ensure_ascii=False) + "\n", encoding="utf-8")
    assert FilesSource(str(tmp_path / "l.jsonl"), table="logs").read().logs["body"].tolist() == [body]


# --------------------------------------------------------------------------- mapping

def test_mapping_columns_constants_attributes_and_time_unit(tmp_path):
    (tmp_path / "changes.csv").write_text(
        "when,svc,text,type,version,previous_version\n"
        "1793491200,cart,deploy 1.4.2,deploy,1.4.2,1.4.1\n"
        "1793491260,checkout,flag on,feature_flag,,\n")
    write_manifest(tmp_path, {"tables": {"events": {
        "path": "changes.csv", "format": "csv", "time_unit": "s",
        "columns": {"timestamp": "when", "service": "svc", "summary": "text", "kind": "type"},
        "constants": {"environment": "production"},
        "attributes_from": ["version", "previous_version"],
    }}})
    events = FilesSource(str(tmp_path)).read().events
    assert events["timestamp"].tolist() == [pd.Timestamp("2026-11-01T00:00:00Z"), pd.Timestamp("2026-11-01T00:01:00Z")]
    assert events["environment"].tolist() == ["production", "production"]
    assert events["summary"].tolist() == ["deploy 1.4.2", "flag on"]
    assert schema.parse_attributes(events["attributes"].iloc[0]) == {"version": "1.4.2", "previous_version": "1.4.1"}
    assert schema.parse_attributes(events["attributes"].iloc[1]) == {}  # empty cells are left out


@pytest.mark.parametrize("unit,scale", [("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
def test_time_units(tmp_path, unit, scale):
    pd.DataFrame({"t": [1793491200 * scale], "service": ["a"], "environment": ["p"], "name": ["x"],
                  "value": [1.0]}).to_parquet(tmp_path / "m.parquet")
    got = FilesSource(str(tmp_path / "m.parquet"), table="metrics", time_unit=unit,
                      columns={"timestamp": "t"}).read().metrics
    assert got["timestamp"].tolist() == [pd.Timestamp("2026-11-01T00:00:00Z")]


def test_naive_times_need_tz_and_are_converted_from_it(tmp_path):
    (tmp_path / "m.csv").write_text("timestamp,service,environment,name,value\n2026-11-01 08:00:00,a,p,x,1\n")
    with pytest.raises(SchemaError, match="timestamp"):
        FilesSource(str(tmp_path / "m.csv"), table="metrics").read()
    got = FilesSource(str(tmp_path / "m.csv"), table="metrics", tz="Asia/Shanghai").read().metrics
    assert got["timestamp"].iloc[0] == pd.Timestamp("2026-11-01T00:00:00Z")


def test_options_as_yaml_text_from_a_url_query(tmp_path):
    (tmp_path / "m.csv").write_text("when,service,environment,name,value,host\n2026-11-01T00:00:00Z,a,p,x,1,h1\n")
    got = FilesSource(str(tmp_path / "m.csv"), table="metrics", columns="{timestamp: when}",
                      attributes_from="[host]").read().metrics
    assert schema.parse_attributes(got["attributes"].iloc[0]) == {"host": "h1"}


def test_severity_map_then_normalisation(tmp_path):
    (tmp_path / "l.jsonl").write_text("".join(json.dumps(
        {"timestamp": "2026-11-01T00:00:00Z", "service": "a", "environment": "p", "severity": s, "body": f"b{i}"}) + "\n"
        for i, s in enumerate((3, 4, "warning", "notice"))))
    got = FilesSource(str(tmp_path / "l.jsonl"), table="logs", severity_map={3: "ERROR", 4: "warning"}).read().logs
    assert got["severity"].tolist() == ["ERROR", "WARN", "WARN", "INFO"]


def test_file_attributes_column_is_merged_with_folded_columns(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps(
        {"timestamp": "2026-11-01T00:00:00Z", "service": "a", "environment": "p", "name": "x", "value": 1,
         "attributes": {"pod": "a-1", "zone": "old"}, "zone": "eu-1", "replicas": 3}) + "\n")
    got = FilesSource(str(tmp_path / "m.jsonl"), table="metrics", attributes_from=["zone", "replicas"]).read().metrics
    assert schema.parse_attributes(got["attributes"].iloc[0]) == {"pod": "a-1", "zone": "eu-1", "replicas": 3}


# --------------------------------------------------------------------------- window

@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "parquet-epoch", "parquet-naive"])
def test_window_is_half_open_and_pushed_down(tmp_path, fmt):
    frame = metrics_frame(10)
    options = {}
    if fmt == "csv":
        path = tmp_path / "m.csv"
        frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat())).to_csv(path, index=False)
    elif fmt == "jsonl":
        path = tmp_path / "m.jsonl"
        path.write_text(frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat()))
                        .to_json(orient="records", lines=True))
    elif fmt == "parquet-epoch":
        path = tmp_path / "m.parquet"
        frame.assign(timestamp=frame["timestamp"].map(lambda t: t.value // 10**6)).to_parquet(path)
        options = {"time_unit": "ms"}
    elif fmt == "parquet-naive":
        path = tmp_path / "m.parquet"
        frame.assign(timestamp=frame["timestamp"].dt.tz_convert("Europe/Berlin").dt.tz_localize(None)).to_parquet(path)
        options = {"tz": "Europe/Berlin"}
    else:
        path = tmp_path / "m.parquet"
        # Several row groups, so the pushed-down filter has something to skip.
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=2)
    src = FilesSource(str(path), table="metrics", **options)
    got = src.read(T0 + pd.Timedelta(minutes=3), T0 + pd.Timedelta(minutes=6)).metrics
    assert got["timestamp"].tolist() == [T0 + pd.Timedelta(minutes=m) for m in (3, 4, 5)]
    assert len(src.read(end=T0).metrics) == 0
    assert len(src.read(start=T0 + pd.Timedelta(minutes=9)).metrics) == 1


def test_window_uses_span_start_and_leaves_topology_alone(tmp_path):
    (tmp_path / "spans.csv").write_text(
        "trace_id,span_id,service,name,start,duration_ms,status\n"
        "t1,s1,a,op,2026-11-01T00:00:00Z,1,ok\nt2,s2,a,op,2026-11-01T01:00:00Z,1,ok\n")
    (tmp_path / "topo.csv").write_text("caller,callee\na,b\n")
    write_manifest(tmp_path, {"tables": {"spans": {"path": "spans.csv"}, "topology": {"path": "topo.csv"}}})
    tel = FilesSource(str(tmp_path)).read(T0 + pd.Timedelta(minutes=30), T0 + pd.Timedelta(hours=2))
    assert tel.spans["span_id"].tolist() == ["s2"]
    assert len(tel.topology) == 1


def test_naive_window_bound_is_refused(tmp_path):
    metrics_frame().to_parquet(tmp_path / "m.parquet")
    with pytest.raises(ValueError, match="time zone"):
        FilesSource(str(tmp_path / "m.parquet"), table="metrics").read(pd.Timestamp("2026-11-01"))


# --------------------------------------------------------------------------- errors

def test_unmapped_columns_name_file_and_columns(tmp_path):
    (tmp_path / "m.csv").write_text("timestamp,service,environment,name,value,host,pod\n2026-11-01T00:00:00Z,a,p,x,1,h,q\n")
    with pytest.raises(SourceError) as err:
        FilesSource(str(tmp_path / "m.csv"), table="metrics").read()
    msg = str(err.value)
    assert "m.csv" in msg and "'host'" in msg and "'pod'" in msg and "attributes_from" in msg


def test_missing_required_column_suggests_mapping(tmp_path):
    (tmp_path / "m.csv").write_text("timestamp,service,name,value\n2026-11-01T00:00:00Z,a,x,1\n")
    with pytest.raises(SourceError, match=r"m\.csv.*environment.*constants"):
        FilesSource(str(tmp_path / "m.csv"), table="metrics").read()


def test_mapped_column_absent_from_file(tmp_path):
    (tmp_path / "m.csv").write_text("event_time,service,environment,name,value\n2026-11-01T00:00:00Z,a,p,x,1\n")
    with pytest.raises(SourceError, match=r"m\.csv.*'event_tim'.*did you mean 'event_time'"):
        FilesSource(str(tmp_path / "m.csv"), table="metrics", columns={"timestamp": "event_tim"}).read()


def test_epoch_numbers_without_time_unit_are_refused(tmp_path):
    (tmp_path / "m.csv").write_text("timestamp,service,environment,name,value\n1793491200,a,p,x,1\n")
    with pytest.raises(SourceError, match=r"m\.csv.*'timestamp'.*line 2.*time_unit"):
        FilesSource(str(tmp_path / "m.csv"), table="metrics").read()


def test_missing_file_and_glob_without_match(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        FilesSource(str(tmp_path / "nope.csv"), table="metrics")
    write_manifest(tmp_path, {"tables": {"metrics": {"path": "gone.parquet"}}})
    with pytest.raises(SourceError, match=r"gone\.parquet.*not found"):
        FilesSource(str(tmp_path))
    write_manifest(tmp_path, {"tables": {"logs": {"path": "logs/*.jsonl"}}})
    with pytest.raises(SourceError, match=r"no file matches 'logs/\*\.jsonl'"):
        FilesSource(str(tmp_path))


def test_unreadable_parquet_and_unknown_extension(tmp_path):
    (tmp_path / "m.parquet").write_text("not parquet at all")
    with pytest.raises(SourceError, match=r"m\.parquet.*Parquet"):
        FilesSource(str(tmp_path / "m.parquet"), table="metrics").read()
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(SourceError, match=r"m\.txt.*format"):
        FilesSource(str(tmp_path / "m.txt"), table="metrics").read()
    (tmp_path / "m.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(SourceError, match=r"m\.csv\.gz.*gzip"):
        FilesSource(str(tmp_path / "m.csv.gz"), table="metrics").read()


@pytest.mark.parametrize("bad_row,line", [("2026-11-01T00:01:00Z,a,p,x,1,EXTRA", 3), ("2026-11-01T00:01:00Z,a,p", 3)])
def test_malformed_csv_row_names_its_line(tmp_path, bad_row, line):
    (tmp_path / "m.csv").write_text("timestamp,service,environment,name,value\n"
                                    f"2026-11-01T00:00:00Z,a,p,x,1\n{bad_row}\n2026-11-01T00:02:00Z,a,p,x,1\n")
    with pytest.raises(SourceError, match=rf"m\.csv: line {line}: expected 5 fields"):
        FilesSource(str(tmp_path / "m.csv"), table="metrics").read()


def test_line_numbers_count_multi_line_fields(tmp_path):
    (tmp_path / "l.csv").write_text('timestamp,service,environment,severity,body\n'
                                    '2026-11-01T00:00:00Z,a,p,INFO,"two\nlines"\n'
                                    '2026-11-01T00:01:00Z,a,p\n')
    with pytest.raises(SourceError, match=r"line 4"):
        FilesSource(str(tmp_path / "l.csv"), table="logs").read()


def test_non_utf8_bytes_name_file_and_offset(tmp_path):
    data = "timestamp,service,environment,severity,body\n2026-11-01T00:00:00Z,a,p,INFO,caf".encode() + b"\xe9\n"
    (tmp_path / "l.csv").write_bytes(data)
    with pytest.raises(SourceError, match=rf"l\.csv: bytes that are not UTF-8 at byte offset {len(data) - 2}.*line 2"):
        FilesSource(str(tmp_path / "l.csv"), table="logs").read()
    (tmp_path / "l.jsonl.gz").write_bytes(gzip.compress(b'{"body": "ok"}\n{"body": "\xff"}\n'))
    with pytest.raises(SourceError, match=r"l\.jsonl\.gz: bytes that are not UTF-8 at byte offset 25 \(after decompression\), line 2"):
        FilesSource(str(tmp_path / "l.jsonl.gz"), table="logs").read()


def test_malformed_json_line(tmp_path):
    (tmp_path / "l.jsonl").write_text('{"body": "ok"}\n\n{"body": \n')
    with pytest.raises(SourceError, match=r"l\.jsonl: line 3: malformed JSON"):
        FilesSource(str(tmp_path / "l.jsonl"), table="logs").read()


def test_unknown_table_in_manifest_suggests(tmp_path):
    write_manifest(tmp_path, {"tables": {"metric": {"path": "m.csv"}}})
    with pytest.raises(UnknownNameError) as err:
        FilesSource(str(tmp_path))
    assert "manifest.yaml" in str(err.value) and "did you mean 'metrics'" in str(err.value)


def test_unknown_manifest_and_entry_keys_are_named(tmp_path):
    (tmp_path / "m.csv").write_text("timestamp\n")
    write_manifest(tmp_path, {"tables": {}, "incident": "x/"})
    with pytest.raises(SourceError, match=r"unknown key\(s\) 'incident'.*did you mean 'incidents'"):
        FilesSource(str(tmp_path))
    write_manifest(tmp_path, {"tables": {"metrics": {"path": "m.csv", "timezone": "UTC"}}})
    with pytest.raises(SourceError, match=r"tables\.metrics: unknown key\(s\) 'timezone'"):
        FilesSource(str(tmp_path))
    write_manifest(tmp_path, {"tables": {"metrics": {"path": "m.csv", "columns": {"time": "t"}}}})
    with pytest.raises(SourceError, match=r"'time', not a column of metrics"):
        FilesSource(str(tmp_path))
    write_manifest(tmp_path, {"tables": {"metrics": {"path": "m.csv", "time_unit": "sec"}}})
    with pytest.raises(SourceError, match=r"time_unit 'sec'"):
        FilesSource(str(tmp_path))


def test_folder_without_manifest_shows_example(tmp_path):
    with pytest.raises(SourceError, match=r"manifest\.yaml(.|\n)*tables:\n  metrics:\n    path:"):
        FilesSource(str(tmp_path))


def test_single_file_needs_table(tmp_path):
    (tmp_path / "m.csv").write_text("timestamp\n")
    with pytest.raises(SourceError, match="table="):
        FilesSource(str(tmp_path / "m.csv"))
    with pytest.raises(UnknownNameError, match="did you mean 'logs'"):
        FilesSource(str(tmp_path / "m.csv"), table="log")


def test_malformed_incident_yaml_names_file_and_line(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "a.yaml").write_text("id: INC-1\ntitle: [unclosed\nseverity: 2\n")
    write_manifest(tmp_path, {"tables": {}, "incidents": "inc"})
    with pytest.raises(SourceError, match=r"a\.yaml: malformed YAML at line \d"):
        FilesSource(str(tmp_path)).incidents()


def test_schema_errors_name_the_file(tmp_path):
    (tmp_path / "m.csv").write_text("timestamp,service,environment,name,value\n2026-11-01T00:00:00Z,a,p,x,lots\n")
    with pytest.raises(SchemaError, match=r"m\.csv.*'value'"):
        FilesSource(str(tmp_path / "m.csv"), table="metrics").read()


def test_csv_cells_folded_into_attributes_stay_text(tmp_path):
    (tmp_path / "m.csv").write_text("timestamp,service,environment,name,value,version,pod\n"
                                    "2026-11-01T00:00:00Z,a,p,x,1,1.10,007\n")
    got = FilesSource(str(tmp_path / "m.csv"), table="metrics", attributes_from=["version", "pod"]).read().metrics
    assert schema.parse_attributes(got["attributes"].iloc[0]) == {"version": "1.10", "pod": "007"}
    assert got["value"].iloc[0] == 1.0


@pytest.mark.parametrize("gz", [False, True])
def test_a_line_longer_than_the_limit_is_refused_by_number_before_the_rest_is_read(tmp_path, gz):
    """issue 13, item 10: a 200 MB single-line file peaked at 1.4 GB before being refused; the reader
    now stops at the limit (MAX_LINE_BYTES, 64 MiB; a small limit here to keep the test fast)."""
    from workbench.telemetry.sources.base import MAX_LINE_BYTES, _CHUNK, read_text

    assert _CHUNK < MAX_LINE_BYTES
    good = "timestamp,service\n" + "2026-11-01T00:00:00Z,a\n" * 3
    long_line = "x" * 10_000
    path = tmp_path / ("f.csv.gz" if gz else "f.csv")
    write = (lambda p, t: p.write_bytes(gzip.compress(t.encode()))) if gz else (lambda p, t: p.write_text(t))
    write(path, good + long_line + "\n" + good)
    with pytest.raises(SourceError, match=r"f\.csv(\.gz)?: line 5 is longer than 4,096 bytes"):
        read_text(path, max_line_bytes=4096)
    assert read_text(path, max_line_bytes=10_000) == good + long_line + "\n" + good  # exactly at the limit: fine
    write(path, long_line)  # one line, no newline at all
    with pytest.raises(SourceError, match="line 1 is longer"):
        read_text(path, max_line_bytes=4096)
