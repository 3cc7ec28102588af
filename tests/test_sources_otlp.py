"""The otlp source: collector file-exporter OTLP/JSON lines into metrics, logs, spans, topology."""
from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from workbench.telemetry import schema, sources
from workbench.errors import SourceError
from workbench.telemetry.sources.otlp import OtlpSource, histogram_quantile, severity

T0_NS = 1_793_491_200_000_000_000  # 2026-11-01T00:00:00Z
T0 = pd.Timestamp("2026-11-01T00:00:00Z")
TRACE = "5b8efff798038103d269b633813fc60c"


def kv(key, value):
    if isinstance(value, bool):
        v = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def resource(service, **extra):
    attrs = [kv("service.name", service), kv("deployment.environment", "production"), kv("host.name", "node-1")]
    attrs += [kv(k, v) for k, v in extra.items()]
    return {"attributes": attrs}


def ns(seconds):
    return str(T0_NS + int(seconds * 1e9))


METRICS = {"resourceMetrics": [{
    "resource": resource("cart"),
    "scopeMetrics": [{"scope": {"name": "io.opentelemetry.runtime", "version": "1.2"}, "metrics": [
        {"name": "process.cpu.utilization", "unit": "1",
         "gauge": {"dataPoints": [{"timeUnixNano": ns(0), "asDouble": 0.42, "attributes": [kv("cpu", 0)]}]}},
        {"name": "http.server.requests", "unit": "{request}",
         "sum": {"aggregationTemporality": 2, "isMonotonic": True,
                 "dataPoints": [{"timeUnixNano": ns(0), "asInt": "1234", "attributes": [kv("http.route", "/cart")]},
                                {"timeUnixNano": ns(60), "asInt": "1300", "attributes": [kv("http.route", "/cart")]}]}},
        {"name": "http.server.duration", "unit": "ms",
         "histogram": {"aggregationTemporality": 2, "dataPoints": [{
             "timeUnixNano": ns(0), "count": "100", "sum": 2500.0,
             "bucketCounts": ["10", "40", "40", "10"], "explicitBounds": [10.0, 25.0, 50.0],
             "min": 1.0, "max": 80.0}]}},
        {"name": "rpc.latency", "unit": "ms",
         "summary": {"dataPoints": [{"timeUnixNano": ns(0), "count": "10", "sum": 55.0,
                                     "quantileValues": [{"quantile": 0.5, "value": 4.0}, {"quantile": 0.99, "value": 12.0}]}]}},
    ]}],
}]}

LOGS = {"resourceLogs": [{
    "resource": resource("cart"),
    "scopeLogs": [{"scope": {"name": "cart.logger"}, "logRecords": [
        {"timeUnixNano": ns(1), "severityNumber": 17, "body": {"stringValue": "payment failed"},
         "traceId": TRACE, "spanId": "eee19b7ec3c1b174", "attributes": [kv("order", "o-1")]},
        {"timeUnixNano": "0", "observedTimeUnixNano": ns(2), "severityNumber": 13,
         "body": {"kvlistValue": {"values": [kv("msg", "slow"), kv("ms", 900)]}}},
        {"timeUnixNano": ns(3), "severityNumber": 6, "body": {"stringValue": "cache miss"}},
        {"timeUnixNano": ns(4), "severityText": "Warning", "severityNumber": 9, "body": {"stringValue": "text wins"}},
        {"timeUnixNano": ns(5), "body": {"stringValue": "no severity at all"}},
    ]}],
}]}

SPANS = {"resourceSpans": [
    {"resource": resource("frontend"), "scopeSpans": [{"scope": {"name": "http"}, "spans": [
        {"traceId": TRACE, "spanId": "eee19b7ec3c1b173", "parentSpanId": "", "name": "GET /cart", "kind": 2,
         "startTimeUnixNano": ns(0), "endTimeUnixNano": ns(0.25), "status": {},
         "attributes": [kv("http.status_code", 500)]},
        {"traceId": TRACE, "spanId": "aaa19b7ec3c1b170", "parentSpanId": "eee19b7ec3c1b173", "name": "render",
         "kind": "SPAN_KIND_INTERNAL", "startTimeUnixNano": ns(0.2), "endTimeUnixNano": ns(0.21)},
    ]}]},
    {"resource": resource("cart"), "scopeSpans": [{"scope": {"name": "grpc"}, "spans": [
        {"traceId": TRACE, "spanId": "eee19b7ec3c1b174", "parentSpanId": "eee19b7ec3c1b173", "name": "GetCart",
         "kind": 2, "startTimeUnixNano": ns(0.01), "endTimeUnixNano": ns(0.2125),
         "status": {"code": "STATUS_CODE_ERROR", "message": "redis timeout"}},
    ]}]},
]}


def write_lines(path, *docs):
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


@pytest.fixture
def export(tmp_path):
    return write_lines(tmp_path / "export.jsonl", METRICS, LOGS, SPANS)


def by_name(frame):
    return {r["name"]: r for r in frame.to_dict("records")}


def test_registered_as_otlp(export):
    assert sources.get("otlp") is OtlpSource
    assert isinstance(sources.open_source(f"otlp:{export}"), OtlpSource)


def test_gauge_and_sum_points(export):
    m = OtlpSource(str(export)).read().metrics
    gauge = m[m["name"] == "process.cpu.utilization"].iloc[0]
    assert gauge["value"] == 0.42 and gauge["unit"] == "1" and gauge["timestamp"] == T0
    assert gauge["service"] == "cart" and gauge["environment"] == "production"
    attrs = schema.parse_attributes(gauge["attributes"])
    assert attrs == {"cpu": 0, "host.name": "node-1", "otel.scope.name": "io.opentelemetry.runtime",
                     "otel.scope.version": "1.2"}
    sums = m[m["name"] == "http.server.requests"]
    assert sums["value"].tolist() == [1234.0, 1300.0]
    assert sums["timestamp"].tolist() == [T0, T0 + pd.Timedelta(minutes=1)]
    assert schema.parse_attributes(sums["attributes"].iloc[0])["http.route"] == "/cart"


def test_histogram_rows_and_quantiles(export):
    m = by_name(OtlpSource(str(export)).read().metrics)
    assert m["http.server.duration.count"]["value"] == 100
    assert m["http.server.duration.sum"]["value"] == 2500.0
    assert m["http.server.duration.sum"]["unit"] == "ms"
    # rank 50 ends bucket (10, 25]: p50 = 25; rank 95 is half into (50, max=80]: 65; p99 -> 77
    assert m["http.server.duration.p50"]["value"] == pytest.approx(25.0)
    assert m["http.server.duration.p95"]["value"] == pytest.approx(65.0)
    assert m["http.server.duration.p99"]["value"] == pytest.approx(77.0)


def test_summary_quantile_rows(export):
    m = by_name(OtlpSource(str(export)).read().metrics)
    assert m["rpc.latency.p50"]["value"] == 4.0 and m["rpc.latency.p99"]["value"] == 12.0
    assert m["rpc.latency.count"]["value"] == 10 and m["rpc.latency.sum"]["value"] == 55.0


def test_histogram_quantile_edges():
    # first bucket starts at 0 for positive bounds, or at the reported min
    assert histogram_quantile(0.5, [10.0], [4, 0]) == pytest.approx(5.0)
    assert histogram_quantile(0.5, [10.0], [4, 0], lo=6.0) == pytest.approx(8.0)
    # overflow bucket without max: the highest finite bound
    assert histogram_quantile(0.99, [10.0], [1, 9]) == 10.0
    # estimates stay inside [min, max]
    assert 1.0 <= histogram_quantile(0.01, [10.0, 20.0], [0, 5, 0], lo=1.0, hi=30.0) <= 30.0


def test_logs_severity_time_body_trace(export):
    logs = OtlpSource(str(export)).read().logs
    assert logs["severity"].tolist() == ["ERROR", "WARN", "DEBUG", "WARN", "INFO"]
    assert logs["timestamp"].tolist() == [T0 + pd.Timedelta(seconds=s) for s in range(1, 6)]  # 2nd: observed time
    assert logs["body"].iloc[0] == "payment failed"
    assert json.loads(logs["body"].iloc[1]) == {"msg": "slow", "ms": 900}
    assert logs["trace_id"].tolist() == [TRACE, "", "", "", ""]
    first = schema.parse_attributes(logs["attributes"].iloc[0])
    assert first["span_id"] == "eee19b7ec3c1b174" and first["order"] == "o-1" and first["otel.scope.name"] == "cart.logger"


@pytest.mark.parametrize("number,expected", [(0, "INFO"), (None, "INFO"), (1, "TRACE"), (4, "TRACE"), (5, "DEBUG"),
                                             (12, "INFO"), (16, "WARN"), (20, "ERROR"), (24, "FATAL"),
                                             ("SEVERITY_NUMBER_WARN2", "WARN")])
def test_severity_number_ranges(number, expected):
    assert severity(None, number) == expected


def test_spans_and_topology(export):
    tel = OtlpSource(str(export)).read()
    spans = tel.spans.set_index("span_id")
    root = spans.loc["eee19b7ec3c1b173"]
    assert root["parent_span_id"] == "" and root["service"] == "frontend" and root["status"] == "ok"
    assert root["duration_ms"] == pytest.approx(250.0) and root["start"] == T0
    child = spans.loc["eee19b7ec3c1b174"]
    assert child["parent_span_id"] == "eee19b7ec3c1b173" and child["service"] == "cart"
    assert child["status"] == "error" and child["duration_ms"] == pytest.approx(202.5)
    attrs = schema.parse_attributes(child["attributes"])
    assert attrs["span.kind"] == "server" and attrs["status.message"] == "redis timeout"
    assert schema.parse_attributes(spans.loc["aaa19b7ec3c1b170", "attributes"])["span.kind"] == "internal"
    # the same-service child (render) adds no edge
    assert tel.topology.to_dict("records") == [{"caller": "frontend", "callee": "cart"}]


def test_window_filters_rows_but_not_topology(export):
    tel = OtlpSource(str(export)).read(T0 + pd.Timedelta(seconds=2), T0 + pd.Timedelta(seconds=4))
    assert tel.logs["timestamp"].tolist() == [T0 + pd.Timedelta(seconds=2), T0 + pd.Timedelta(seconds=3)]
    assert tel.metrics.empty and tel.spans.empty
    assert len(tel.topology) == 1
    tel = OtlpSource(str(export)).read(T0 + pd.Timedelta(seconds=0.005), T0 + pd.Timedelta(seconds=0.015))
    assert tel.spans["span_id"].tolist() == ["eee19b7ec3c1b174"]


def test_folder_of_gz_and_json_files_and_defaults(tmp_path):
    folder = tmp_path / "otel"
    folder.mkdir()
    with gzip.open(folder / "a.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(SPANS) + "\n")
    bare = {"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [{"logRecords": [
        {"timeUnixNano": ns(0), "severityText": "error"}]}]}]}
    # one pretty-printed object, as in the OTLP examples
    (folder / "b.json").write_text(json.dumps(bare, indent=2))
    (folder / "notes.txt").write_text("ignored")
    tel = sources.registry.get("otlp")(str(folder)).read()
    assert len(tel.spans) == 3 and len(tel.topology) == 1
    log = tel.logs.iloc[0]
    assert (log["service"], log["environment"], log["severity"], log["body"]) == ("unknown_service", "unknown", "ERROR", "(empty)")


def test_base64_ids_are_converted_to_hex(tmp_path):
    import base64

    doc = json.loads(json.dumps(SPANS))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["traceId"] = base64.b64encode(bytes.fromhex(TRACE)).decode()
    span["spanId"] = base64.b64encode(bytes.fromhex("eee19b7ec3c1b173")).decode()
    tel = OtlpSource(str(write_lines(tmp_path / "x.jsonl", doc))).read()
    assert "eee19b7ec3c1b173" in tel.spans["span_id"].tolist()
    assert set(tel.spans["trace_id"]) == {TRACE}


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(METRICS) + "\n" + '{"resourceLogs": [\n')
    with pytest.raises(SourceError, match=r"bad\.jsonl: line 2: malformed JSON"):
        OtlpSource(str(path)).read()


def test_not_otlp_and_wrong_shapes(tmp_path):
    with pytest.raises(SourceError, match=r"x\.jsonl: line 1: not an OTLP export line"):
        OtlpSource(str(write_lines(tmp_path / "x.jsonl", {"timestamp": 1, "body": "hi"}))).read()
    broken = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [
        {"timeUnixNano": ns(0), "asDouble": "fast"}]}}]}]}]}
    with pytest.raises(SourceError, match=r"y\.jsonl: line 1: not valid OTLP/JSON"):
        OtlpSource(str(write_lines(tmp_path / "y.jsonl", broken))).read()


def test_missing_path_empty_folder_and_options(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        OtlpSource(str(tmp_path / "nope.jsonl"))
    with pytest.raises(SourceError, match="no OTLP files"):
        OtlpSource(str(tmp_path))
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(SourceError, match="unknown option"):
        OtlpSource(str(tmp_path), table="metrics")


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"resourceLogs": []}\n{"resourceLogs": "\xff"}\n')
    with pytest.raises(SourceError, match=r"x\.jsonl: bytes that are not UTF-8 at byte offset 39, line 2"):
        OtlpSource(str(path)).read()


def test_unfinished_span_is_refused_naming_the_missing_field(tmp_path):
    doc = json.loads(json.dumps(SPANS))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["endTimeUnixNano"] = "0"
    with pytest.raises(SourceError, match=r"x\.jsonl: line 1: span '.*' of service '.*': missing endTimeUnixNano"):
        OtlpSource(str(write_lines(tmp_path / "x.jsonl", doc))).read()


def test_a_log_record_without_a_time_names_the_missing_field(tmp_path):
    """issue 13, item 10: it said "expected a timezone-aware time"; the observed time stands in when
    only the event time is missing."""
    doc = json.loads(json.dumps(LOGS))
    record = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record.pop("timeUnixNano", None)
    record["observedTimeUnixNano"] = "1793491200000000000"
    frame = OtlpSource(str(write_lines(tmp_path / "ok.jsonl", doc))).read().logs
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2026-11-01T00:00:00Z")
    record.pop("observedTimeUnixNano")
    with pytest.raises(SourceError, match=r"x\.jsonl: line 1: log record 0 of service '.*': missing timeUnixNano "
                                          r"\(and observedTimeUnixNano\)"):
        OtlpSource(str(write_lines(tmp_path / "x.jsonl", doc))).read()
