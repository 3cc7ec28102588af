"""The ``nezha`` source: the shared Nezha TrainTicket data set, and small data sets written here."""
from __future__ import annotations

import csv
import gzip
import json
import logging
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from workbench.telemetry import schema
from workbench.errors import ConfigError, SourceError, UnknownNameError
from workbench.telemetry.sources import open_source
from workbench.evaluation.nezha import load_labels
from workbench.telemetry.sources.nezha import service_of

NEZHA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nezha-trainticket"
LABEL_KEYS = {"inject_pod", "inject_type", "inject_time", "inject_timestamp", "labels", "fault_type", "pod"}
INCIDENT_KEYS = {"id", "title", "severity", "status", "environment", "services", "started", "resolved", "window"}
#: A code fault in ts-basic-service whose window holds zone-less ERROR timestamps (README trap 3).
CASE = "nezha-20230129-0921"


@pytest.fixture(scope="module")
def nezha():
    if not NEZHA.is_dir():
        pytest.skip("../shared/data/nezha-trainticket is not beside the repo")
    return open_source(f"nezha:{NEZHA}")


@pytest.fixture(scope="module")
def incidents(nezha):
    return {doc["id"]: doc for doc in nezha.incidents()}


@pytest.fixture(scope="module")
def case_window(nezha, incidents):
    window = incidents[CASE]["window"]
    start, end = pd.Timestamp(window["start"]), pd.Timestamp(window["end"])
    return start, end, nezha.read(start, end)


# --------------------------------------------------------------------------- shared data

@pytest.mark.shared
def test_a_case_window_has_metrics_logs_and_spans_of_its_pods(case_window):
    start, end, tel = case_window
    labels = load_labels(NEZHA)[CASE]
    for table in ("metrics", "logs", "spans"):
        frame = tel.tables()[table]
        assert len(frame) > 1000, table
        times = frame[schema.TIME_COLUMN[table]]
        assert times.min() >= start and times.max() < end
        assert (times.dt.year == 2023).all()  # no 1677 overflow
        assert labels["service"] in set(frame["service"])
    pods = {json.loads(a).get("pod") for a in tel.metrics["attributes"]}
    assert labels["pod"] in pods
    assert len(tel.topology) > 10
    assert ("ts-gateway-service" in set(tel.topology["caller"]))


@pytest.mark.shared
def test_the_tables_are_valid_and_services_come_from_pod_names(case_window):
    _, _, tel = case_window
    for table in ("metrics", "logs", "spans", "topology"):
        again = schema.validate(table, tel.tables()[table])
        assert again.report.duplicates_dropped == 0 and len(again.frame) == len(tel.tables()[table])
    for table in ("metrics", "logs", "spans"):
        frame = tel.tables()[table]
        pods = frame["attributes"].map(lambda a: json.loads(a).get("pod"))
        has_pod = pods.notna()
        assert (frame.loc[has_pod, "service"] == pods[has_pod].map(service_of)).all()
        assert frame["service"].str.fullmatch(r"ts-[a-z0-9-]+-service|ts-ui-dashboard|Frontend").all()
    assert service_of("ts-basic-service-5dc8d4f9fd-46997") == "ts-basic-service"
    assert service_of("ts-verification-code-service-7b6dc75c45-2z9p2") == "ts-verification-code-service"


@pytest.mark.shared
def test_metric_names_units_and_skipped_columns(case_window):
    _, _, tel = case_window
    units = dict(zip(tel.metrics["name"], tel.metrics["unit"]))
    assert units["cpu_usage_rate"] == "%"
    assert units["server_latency_p90"] == "s"
    assert units["memory_usage"] == "MiB"
    assert units["latency_p90"] == "s"  # front_service
    assert not any("success" in name for name in units)
    assert tel.metrics["environment"].eq("trainticket").all()
    # one row per (pod, metric, minute)
    assert not tel.metrics.duplicated(["timestamp", "name", "attributes"]).any()


@pytest.mark.shared
def test_logs_use_the_timestamp_text_and_the_level_token(case_window):
    _, _, tel = case_window
    logs = tel.logs
    assert set(logs["severity"]) <= {"INFO", "WARN", "ERROR", "DEBUG"}
    errors = logs[logs["severity"] == "ERROR"]
    assert len(errors) > 10 and errors["body"].str.contains(" ERROR ").all()
    # Zone-less texts (whole milliseconds, TimeUnixNano overflowed) are read as UTC, not dropped.
    zoneless = errors[errors["timestamp"].dt.nanosecond.eq(0) & errors["timestamp"].dt.microsecond.mod(1000).eq(0)]
    assert len(zoneless) > 0
    assert not logs["body"].str.endswith("\n").any()
    # The line's own clock is UTC+8: 17:20 in the line is 09:20 UTC.
    first = logs.iloc[len(logs) // 2]
    clock = pd.Timestamp(f"{first['timestamp']:%Y-%m-%d} {first['body'][:12]}", tz="Asia/Shanghai")
    assert abs((clock.tz_convert("UTC") - first["timestamp"]).total_seconds()) < 1


@pytest.mark.shared
def test_span_status_marks_only_error_handlers(case_window):
    _, _, tel = case_window
    spans = tel.spans
    assert (spans["duration_ms"] >= 0).all()
    errors = spans[spans["status"] == "error"]
    assert len(errors) > 0 and set(errors["name"]) == {"BasicErrorController.error"}
    assert (spans["parent_span_id"] != "root").all()
    assert spans["parent_span_id"].eq("").sum() > 0


@pytest.mark.shared
def test_construct_overlap_duplicates_are_counted_not_kept(nezha):
    # The 2023-01-29 construct window (to 08:51:04) overlaps the first case's 08_52 files.
    start, end = pd.Timestamp("2023-01-29T08:50:20Z"), pd.Timestamp("2023-01-29T08:51:05Z")
    raws = {r.table: r for r in nezha.frames(start, end)}
    tel = nezha.read(start, end)
    reports = {r.table: r for r in tel.reports}
    # Log lines read twice are left out by the source before their bodies are built (and counted).
    assert raws["logs"].duplicates > 0 and not raws["logs"].frame.duplicated().any()
    for table in ("logs", "spans"):
        raw = raws[table]
        doubled = int(raw.frame.duplicated().sum()) + raw.duplicates
        assert doubled > 0
        assert reports[table].duplicates_dropped == doubled and reports[table].rows_in == len(raw.frame) + raw.duplicates
        assert len(tel.tables()[table]) == len(raw.frame) + raw.duplicates - doubled
        assert not tel.tables()[table].duplicated().any()


@pytest.mark.shared
def test_incidents_carry_no_label_and_follow_the_protocol(incidents):
    assert len(incidents) == 32
    docs = sorted(incidents.values(), key=lambda d: d["started"])
    previous_end = {}
    for doc in docs:
        assert set(doc) == INCIDENT_KEYS and not set(doc) & LABEL_KEYS
        assert doc["services"] == [] and doc["environment"] == "trainticket"
        started = pd.Timestamp(doc["started"])
        assert doc["started"].endswith("Z") and started.tzinfo is not None
        assert doc["id"] == f"nezha-{started:%Y%m%d-%H%M}"
        assert pd.Timestamp(doc["resolved"]) == started + pd.Timedelta(minutes=3)
        assert pd.Timestamp(doc["window"]["end"]) == started + pd.Timedelta(minutes=3)
        day = doc["started"][:10]
        if day in previous_end:
            assert pd.Timestamp(doc["window"]["start"]) == previous_end[day]
        previous_end[day] = pd.Timestamp(doc["window"]["end"])
    assert incidents["nezha-20230129-0852"]["window"]["start"] == "2023-01-29T08:41:09Z"


@pytest.mark.shared
def test_load_labels_gives_the_32_cases_of_incidents(incidents):
    labels = load_labels(NEZHA)
    assert set(labels) == set(incidents)
    assert Counter(v["fault_type"] for v in labels.values()) == {
        "return": 8, "exception": 9, "cpu_contention": 5, "network_delay": 10}
    assert labels[CASE] == {"service": "ts-basic-service", "pod": "ts-basic-service-5dc8d4f9fd-46997",
                            "fault_type": "return"}


@pytest.mark.shared
def test_cases_option_opens_only_their_files(incidents):
    source = open_source(f"nezha:{NEZHA}", cases=[CASE])
    names = [p.name for p in source.files("log") if "rca_data" in str(p)]
    assert names == ["09_21_log.csv.gz", "09_22_log.csv.gz", "09_23_log.csv.gz"]
    assert source.incidents() == [incidents[CASE]]  # same window: the day's other faults still count
    with pytest.raises(UnknownNameError, match="did you mean"):
        open_source(f"nezha:{NEZHA}", cases=["nezha-20230129-0922"])


# --------------------------------------------------------------------------- small data sets

LOG_HEADER = ["Timestamp", "TimeUnixNano", "Node", "PodName", "Container", "TraceID", "SpanID", "Log"]
TRACE_HEADER = ["TraceID", "SpanID", "ParentID", "PodName", "OperationName", "StartTimeUnixNano",
                "EndTimeUnixNano", "Duration"]
METRIC_HEADER = ["Time", "TimeStamp", "PodName", "CpuUsage(m)", "CpuUsageRate(%)", "PodServerLatencyP90(s)",
                 "PodSuccessRate(%)"]
POD = "ts-food-service-f5756978c-k8vqf"


def _write(path: Path, rows: list[list[str]] | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="", encoding="utf-8") as handle:
        if isinstance(rows, str):
            handle.write(rows)
        else:
            csv.writer(handle).writerows(rows)


def _log(line: str) -> str:
    return json.dumps({"log": line, "stream": "stdout", "time": "x"})


def _dataset(root: Path, faults: list[str] | None = None) -> Path:
    day = root / "rca_data" / "2023-01-29"
    (day).mkdir(parents=True)
    times = faults or ["2023-01-29 10:00:30"]
    (day / "2023-01-29-fault_list.json").write_text(json.dumps({"10": [
        {"inject_time": t, "inject_timestamp": "1", "inject_pod": POD, "inject_type": "return"} for t in times]}))
    _write(day / "metric" / f"{POD}_metric.csv.gz", [
        METRIC_HEADER,
        ["t", "1674986409", POD, "4.5", "0.9", "NaN", "0"],
        ["t", "1674986469", POD, "5.5", "1.1", "0.25", "0"],
        ["t", "1674986529", POD, "oops", "1.2", "", "0"],
    ])
    _write(day / "metric" / "front_service.csv.gz", [
        ["Time", "TimeStamp", "ServiceName", "SuccessRate(%)", "LatencyP50(s)", "LatencyP90(s)", "LatencyP95(s)", "LatencyP99(s)"],
        ["t", "1674986409", "Frontend", "0", "0.1", "0.2", "0.3", "0.4"],
    ])
    _write(day / "log" / "10_00_log.csv.gz", [
        LOG_HEADER,
        ["2023-01-29T09:59:30.123456789Z", "1674986370123456789", "10.0.0.1", POD, "server", "t1", "s1",
         _log("17:59:30.123 INFO  f.s.FoodServiceImpl#10 TraceID: t1 SpanID: s1 hello\n")],
        ["2023-01-29T09:59:31.500", "-6795364578871345152", "10.0.0.1", POD, "server", "t1", "s1",
         _log("17:59:31.504 ERROR o.a.c.c.C.[dispatcherServlet]#175 boom with root cause\n")],
        ["2023-01-29T09:59:32Z", "0", "10.0.0.1", POD, "server", "", "", _log("no level here\n")],
        ["2023-01-29T09:59:33Z", "0", "10.0.0.1", POD, "server", "t2", "s2", _log("17:59:33.000 WARN  cut " + "x" * 50)],
        ["2023-01-29T09:59:34Z", "0", "10.0.0.1"],  # malformed: too few fields
        ["not a time", "0", "10.0.0.1", POD, "server", "", "", _log("bad time\n")],
    ])
    start = 1674986370_000_000_000
    _write(day / "trace" / "10_00_trace.csv.gz", [
        TRACE_HEADER,
        ["t1", "a", "root", "ts-gateway-service-6f6cfc45b-h5m2n", "/*", str(start), str(start + 5_000_500), "5000"],
        ["t1", "b", "a", POD, "FoodController.getAllFood", str(start + 1000), str(start + 2_000_000), "1999"],
        ["t1", "c", "b", POD, "BasicErrorController.error", str(start + 2000), str(start + 3000), "1"],
        ["t1", "d", "b", POD, "broken", "-1", "x", "x"],
    ])
    return root


def test_small_data_set_maps_every_table(tmp_path, caplog):
    source = open_source(f"nezha:{_dataset(tmp_path)}")
    with caplog.at_level(logging.WARNING, logger="workbench.telemetry.sources.nezha"):
        tel = source.read()
    logs = tel.logs.set_index(tel.logs["timestamp"].dt.strftime("%H:%M:%S.%f"))
    assert list(logs["severity"]) == ["INFO", "ERROR", "INFO", "WARN"]
    assert logs.loc["09:59:31.500000", "severity"] == "ERROR"  # zone-less text read as UTC
    assert logs.loc["09:59:30.123456", "body"].endswith("hello")
    cut = json.loads(logs.loc["09:59:33.000000", "attributes"])
    assert cut == {"container": "server", "node": "10.0.0.1", "pod": POD, "span_id": "s2", "truncated": True}
    assert json.loads(logs.loc["09:59:30.123456", "attributes"]) == {
        "container": "server", "node": "10.0.0.1", "pod": POD, "span_id": "s1"}
    assert set(tel.logs["service"]) == {"ts-food-service"}
    # the malformed row, the bad time, the unparseable metric value, the broken span
    assert source.skipped == {"rca_data/2023-01-29/log/10_00_log.csv.gz": 2,
                              "rca_data/2023-01-29/metric/ts-food-service-f5756978c-k8vqf_metric.csv.gz": 1,
                              "rca_data/2023-01-29/trace/10_00_trace.csv.gz": 1}
    assert "malformed CSV row" in caplog.text and "10_00_log.csv.gz" in caplog.text

    metrics = tel.metrics
    assert not metrics["name"].str.contains("success").any()
    assert len(metrics[metrics["name"] == "server_latency_p90"]) == 1  # NaN and empty are missing
    assert len(metrics[metrics["name"] == "cpu_usage"]) == 2  # "oops" skipped
    assert set(metrics.loc[metrics["service"] == "Frontend", "name"]) == {"latency_p50", "latency_p90", "latency_p95", "latency_p99"}

    spans = tel.spans.set_index("span_id")
    assert spans.loc["a", "parent_span_id"] == "" and spans.loc["b", "parent_span_id"] == "a"
    assert spans.loc["a", "duration_ms"] == pytest.approx(5.0005)  # end - start, finer than Duration
    assert spans.loc["c", "status"] == "error" and spans.loc["b", "status"] == "ok"
    assert tel.topology.to_dict("records") == [{"caller": "ts-gateway-service", "callee": "ts-food-service"}]
    assert tel.events.empty


def test_an_ingest_says_which_files_it_is_reading(tmp_path):
    """issue 13, item 10: the 39 s ingest of the data set showed nothing until a whole table was read."""
    from workbench.telemetry.ingest import ingest
    from workbench.workspace import init

    said: list[str] = []
    ingest(init(tmp_path / "ws"), f"nezha:{_dataset(tmp_path)}", progress=said.append)
    # A table's "read" line comes once it validated, which happens while the next table is read.
    assert said[0] == "metrics of 2023-01-29" and said.index("trace file 1 of 1") < said.index("log file 1 of 1")
    assert [text.split()[1] for text in said if text.startswith("read ")] == ["metrics", "spans", "topology", "logs"]
    assert "trace file 1 of 1" in said and any(text.startswith("write ") for text in said)


def test_window_is_pushed_down_to_file_names(tmp_path):
    root = _dataset(tmp_path)
    _write(root / "rca_data" / "2023-01-29" / "log" / "12_00_log.csv.gz", "not even csv\x00")
    source = open_source(f"nezha:{root}")
    start, end = pd.Timestamp("2023-01-29T09:59:31Z"), pd.Timestamp("2023-01-29T09:59:33Z")
    assert [p.name for p in source.files("log", start, end)] == ["10_00_log.csv.gz"]
    tel = source.read(start, end)
    assert len(tel.logs) == 2 and len(tel.metrics) == 0
    assert tel.logs["timestamp"].dt.tz is not None


def test_incidents_get_unique_ids_and_no_labels(tmp_path):
    source = open_source(f"nezha:{_dataset(tmp_path, ['2023-01-29 10:00:30', '2023-01-29 10:00:50'])}")
    docs = source.incidents()
    assert [d["id"] for d in docs] == ["nezha-20230129-1000", "nezha-20230129-1000-2"]
    assert docs[0]["window"] == {"start": "2023-01-29T10:00:09Z", "end": "2023-01-29T10:03:30Z"}
    assert docs[1]["window"]["start"] == "2023-01-29T10:03:30Z"
    assert all(not set(d) & LABEL_KEYS for d in docs)
    assert set(load_labels(tmp_path)) == {d["id"] for d in docs}


def test_bad_options_and_folders_are_refused(tmp_path):
    root = _dataset(tmp_path / "set")
    with pytest.raises(ConfigError, match="load_labels"):
        open_source(f"nezha:{root}", labels=True)
    with pytest.raises(ConfigError, match="unknown option"):
        open_source(f"nezha:{root}", day="2023-01-29")
    with pytest.raises(UnknownNameError):
        open_source(f"nezha:{root}", days=["2023-01-31"])
    with pytest.raises(SourceError, match="rca_data"):
        open_source(f"nezha:{tmp_path / 'missing'}")


def test_undecodable_bytes_are_replaced_and_multiline_fields_kept(tmp_path):
    root = _dataset(tmp_path)
    path = root / "rca_data" / "2023-01-29" / "log" / "10_00_log.csv.gz"
    text = ",".join(LOG_HEADER) + "\n" + ",".join(
        ["2023-01-29T09:59:30Z", "0", "10.0.0.1", POD, "server", "t1", "s1", "PLACEHOLDER"]) + "\n"
    raw = text.encode().replace(b"PLACEHOLDER", b'"caf\xe9 line\nand more"')
    path.write_bytes(gzip.compress(raw))
    tel = open_source(f"nezha:{root}").read()
    assert tel.logs["body"].tolist() == ["caf\ufffd line\nand more"]


@pytest.mark.shared
def test_inner_service_labels_name_a_metric_or_a_code_region():
    if not NEZHA.is_dir():
        pytest.skip("../shared/data/nezha-trainticket is not beside the repo")
    from workbench.evaluation.nezha import load_inner_labels
    from workbench.evaluation.topk import inner_cause_matches

    inner = load_inner_labels(NEZHA)
    assert inner["ts-basic-service"]["cpu_contention"] == "CpuUsageRate(%)"
    region = inner["ts-basic-service"]["exception"]
    assert inner_cause_matches(region, "exception", ["<TS> INFO f.m.s.BasicServiceImpl#110 TraceID: <HEX>"])
    assert not inner_cause_matches(region, "exception", ["<TS> INFO f.m.s.BasicServiceImpl#405 TraceID: <HEX>"])
    every = {service for service in inner} | {fault for faults in inner.values() for fault in faults}
    assert {"return", "exception", "cpu_contention", "network_delay"} <= every
    assert load_inner_labels("/nonexistent") == {}


def test_the_benchmark_runs_unchanged_on_another_folder_of_the_layout(tmp_path):
    """``benchmarks/nezha.py --cv`` on a tiny folder of the same layout (one day, four faults, one pod):
    it runs as a command (tests do not import benchmarks) and writes every documented key."""
    import subprocess
    import sys

    root = _dataset(tmp_path / "tiny", faults=["2023-01-29 10:00:30", "2023-01-29 10:06:30",
                                                "2023-01-29 10:12:30", "2023-01-29 10:18:30"])
    out = tmp_path / "out.json"
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "nezha.py"
    done = subprocess.run([sys.executable, str(bench), "--data", str(root), "--cv", "--repeats", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert {"cases", "AS@1", "AS@3", "AS@5", "mean_rank", "by_fault_type", "seconds_per_case", "cv", "AIS@1",
            "AIS@3", "brier", "baselines"} <= set(result)
    assert result["cases"] == 4 and set(result["baselines"]) == {"trace_spectrum", "metric_robust_z", "log_templates",
                                                                   "random"}
    assert "leave_one_day_out" not in result["cv"]  # one day: nothing to leave out
    assert result["cv"]["stratified_4fold"]["cases"] == 4


def test_rows_taken_chunk_by_chunk_equal_arrows_take():
    import numpy as np
    import pyarrow as pa

    from workbench.telemetry.sources.nezha_rows import take_rows

    rng = np.random.default_rng(3)
    texts = [f"line {i} " + "x" * int(rng.integers(0, 40)) for i in range(500)]
    texts[17] = None
    for cuts in ([], [250], [0, 1, 1, 120, 499], list(range(0, 500, 7))):
        edges = [0, *cuts, 500]
        column = pa.chunked_array([pa.array(texts[a:b], type=pa.string()) for a, b in zip(edges[:-1], edges[1:])],
                                  type=pa.string())
        for rows in (rng.integers(0, 500, 300), np.arange(500)[::-1], np.array([17, 17, 0]), np.array([], dtype=int)):
            got = take_rows(column, rows)
            assert got.type == pa.string() and got.to_pylist() == [texts[i] for i in rows]


def test_log_bodies_cut_from_the_common_shape_equal_json_decoding():
    """The Arrow cut (no json.loads for the runtime's usual line) gives what json.loads gives, in
    any row order, over several files, for short (inline) and long bodies, cut and escaped lines."""
    import numpy as np
    import pyarrow as pa

    from workbench.telemetry.sources.nezha_rows import body, bodies

    def doc(line: str, compact: bool = True, time: str = "2023-01-29T08:48:42.424871735Z") -> str:
        return json.dumps({"log": line, "stream": "stdout", "time": time}, ensure_ascii=False,
                          separators=(",", ":") if compact else None)

    cells = [
        doc("16:48:42.424 INFO  t.s.TravelServiceImpl#532 TraceID: abc [getRouteByRouteId]\n"),
        doc("x\n"), doc("x"), doc("twelve chars\n"), doc("thirteen char\n"), doc("é ünïcödé ✓ 😀\n"),
        doc("cut in the middle of a line " + "y" * 300), doc('a "quoted" word\n'), doc("tab\there\n"),
        doc("   \n"), doc("\n"), doc(""), doc("line\r\n"), doc("spaces in the document\n", compact=False),
        doc("a long time field\n", time="t" * 120), doc("ends with a backslash \\\n"), "not json at all",
        "", '{"log":"no newline field"}', doc("<script>alert(1)</script>\n"), doc("a\\nb\n"),
    ]
    cells += ['{"log":"lone \\ud800 surrogate\\n","stream":"stdout","time":"x"}', '{"log":"big","n":1e999}',
              '{"log":"first","log":"second\\n"}', '{"log":NaN}', '{"log":"ctrl \x01 raw"}']
    chunks = [pa.array(cells[:7]), pa.array(cells[7:15]), pa.array(cells[15:])]
    log = pa.chunked_array(chunks)
    order = np.random.default_rng(7).permutation(len(cells))
    got, partial = bodies(log, order)
    expected = [body(cells[i]) for i in order]
    # orjson decodes first: what it gives is what json gives, and what it refuses json decides
    for cell in cells:
        try:
            doc = json.loads(cell)
            line = doc.get("log") if isinstance(doc, dict) else None
        except ValueError:
            line = None
        if isinstance(line, str) and "\ud800" not in line:
            assert body(cell) == ((line.rstrip("\r\n") if line.strip() else "(empty)"), not line.endswith("\n"))
    assert body(cells[-5]) == (cells[-5], False)  # a lone surrogate is kept as written, never a crash
    assert got.to_pylist() == [b for b, _ in expected]
    assert partial.tolist() == [p for _, p in expected]
    assert bodies(log, np.array([], dtype=np.int64))[0].to_pylist() == []


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "crc", "not gzip"])
def test_a_damaged_gzip_file_is_named(tmp_path, damage):
    """Whatever inflates the files (ISA-L or zlib), a damaged one is a SourceError naming it."""
    from workbench.telemetry.sources.gzcsv import read_csv

    good = gzip.compress(("a,b\n" + "1,2\n" * 5000).encode())
    blob = {"truncated": good[:-20], "corrupt": good[:30] + b"\xff" * 20 + good[50:],
            "crc": good[:-8] + b"\x00\x00\x00\x00" + good[-4:], "not gzip": b"not even csv\x00"}[damage]
    path = tmp_path / "10_00_log.csv.gz"
    path.write_bytes(blob)
    with pytest.raises(SourceError, match=r"10_00_log\.csv\.gz: cannot read this gzip CSV file"):
        read_csv(path, ["a"])


def test_a_log_line_read_from_two_files_is_kept_once_and_counted(tmp_path):
    root = _dataset(tmp_path)
    rows = [LOG_HEADER,
            ["2023-01-29T09:59:30.123456789Z", "0", "10.0.0.1", POD, "server", "t1", "s1", _log("same time, one\n")],
            ["2023-01-29T09:59:30.123456789Z", "0", "10.0.0.1", POD, "server", "t1", "s1", _log("same time, two\n")]]
    _write(root / "rca_data" / "2023-01-29" / "log" / "10_01_log.csv.gz", rows)
    _write(root / "construct_data" / "2023-01-29" / "log" / "10_01_log.csv.gz", rows)
    tel = open_source(f"nezha:{root}").read()
    bodies = tel.logs["body"].tolist()
    assert bodies.count("same time, one") == 1 and bodies.count("same time, two") == 1
    report = next(r for r in tel.reports if r.table == "logs")
    assert report.duplicates_dropped == 2 and report.rows_in == report.rows_out + 2 == len(tel.logs) + 2


def test_files_taken_out_of_order_or_twice_never_wait_on_the_read_ahead(tmp_path):
    """The reader stays a gzip budget ahead; a caller that asks for a later file first (or for an
    unplanned one) reads it itself instead of waiting for a budget that only it can free."""
    from workbench.telemetry.sources.gzcsv import ReadAhead

    paths = []
    for i in range(6):
        path = tmp_path / f"{i:02d}_00_log.csv.gz"
        _write(path, [["a", "b"], *[[str(i), "x" * 50]] * 200])
        paths.append(path)
    stray = tmp_path / "stray.csv.gz"
    _write(stray, [["a", "b"], ["9", "y"]])
    with ReadAhead([(p, ["a"]) for p in paths], budget=1) as ahead:  # one file ahead at most
        order = [5, 0, 3, 1, 2, 4]
        got = [ahead.take(paths[i])[0]["a"][0].as_py() for i in order]
        assert got == [str(i) for i in order]
        assert ahead.take(stray, ["a"])[0]["a"].to_pylist() == ["9"]
        assert ahead.take(paths[0])[0]["a"][0].as_py() == "0"  # taken twice: read again
