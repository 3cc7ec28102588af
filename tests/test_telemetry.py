"""The workspace telemetry store: day partitions, idempotent merges, all-or-nothing writes, window queries."""
from __future__ import annotations

import pandas as pd
import pytest

from workbench.telemetry import schema
from workbench.errors import SchemaError
from workbench.telemetry.store import TelemetryStore


def metric_rows(start="2026-11-01T22:00:00Z", periods=240, service="checkout", value=1.0):
    ts = pd.date_range(start, periods=periods, freq="1min")
    df = pd.DataFrame({"timestamp": ts, "service": service, "environment": "production",
                       "name": "latency_p99_ms", "value": value + pd.Series(range(periods), dtype=float)})
    return schema.validate("metrics", df).frame


def test_write_partitions_by_day_and_queries_a_window(tmp_path):
    store = TelemetryStore(tmp_path)
    stats = store.write({"metrics": metric_rows()})
    assert stats.rows_added["metrics"] == 240 and stats.files == 2  # 22:00 .. 02:00 crosses midnight
    assert sorted(p.parent.name for p in tmp_path.glob("metrics/day=*/part.parquet")) == ["day=2026-11-01", "day=2026-11-02"]
    got = store.query("metrics", "2026-11-01T23:30:00Z", "2026-11-02T00:30:00Z")
    assert len(got) == 60
    assert got["timestamp"].min() == pd.Timestamp("2026-11-01T23:30:00Z")
    assert got["timestamp"].max() == pd.Timestamp("2026-11-02T00:29:00Z")
    assert str(got["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_query_filters_services_and_names(tmp_path):
    store = TelemetryStore(tmp_path)
    store.write({"metrics": pd.concat([metric_rows(service="a"), metric_rows(service="b")], ignore_index=True)})
    got = store.query("metrics", services=["b"], names=["latency_p99_ms"])
    assert set(got["service"]) == {"b"} and len(got) == 240
    assert store.query("metrics", services=["nope"]).empty
    assert store.services() == ["a", "b"]


def test_a_session_reads_the_same_rows_on_one_connection(tmp_path):
    store = TelemetryStore(tmp_path)
    store.write({"metrics": pd.concat([metric_rows(service="a"), metric_rows(service="b")], ignore_index=True)})
    alone = store.query("metrics", "2026-11-01T23:30:00Z", "2026-11-02T00:30:00Z", services=["b"])
    with store.session():
        con = store._local.con
        with store.session():  # nested: the outer connection is kept
            assert store._local.con is con
        inside = store.query("metrics", "2026-11-01T23:30:00Z", "2026-11-02T00:30:00Z", services=["b"])
        assert store.query("topology").empty
    assert store._local.con is None
    pd.testing.assert_frame_equal(inside, alone)


def test_second_ingest_adds_nothing(tmp_path):
    store = TelemetryStore(tmp_path)
    store.write({"metrics": metric_rows()})
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")}
    stats = store.write({"metrics": metric_rows()})
    assert stats.rows_added["metrics"] == 0 and stats.rows_present["metrics"] == 240 and stats.files == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")} == before
    assert store.counts()["metrics"] == 240


def test_overlapping_ingest_adds_only_new_rows(tmp_path):
    store = TelemetryStore(tmp_path)
    store.write({"metrics": metric_rows(periods=100)})
    stats = store.write({"metrics": metric_rows(periods=150)})
    assert stats.rows_added["metrics"] == 50 and stats.rows_present["metrics"] == 100
    assert store.counts()["metrics"] == 150


def test_conflicting_rewrite_fails_and_leaves_store_unchanged(tmp_path):
    store = TelemetryStore(tmp_path)
    store.write({"metrics": metric_rows()})
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    changed = metric_rows(value=100.0)  # same series and times, other values
    with pytest.raises(SchemaError, match="unique key"):
        store.write({"metrics": changed})
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot


def test_staged_write_is_invisible_until_commit_and_rollback_restores(tmp_path):
    store = TelemetryStore(tmp_path)
    staged = store.stage({"metrics": metric_rows()})
    assert store.counts()["metrics"] == 0
    staged.rollback()
    assert list(tmp_path.rglob("*.parquet")) == [] and not list(tmp_path.rglob("*.tmp"))
    store.write({"metrics": metric_rows(periods=10)})
    staged = store.stage({"metrics": metric_rows(periods=60)})
    staged.commit()
    assert store.counts()["metrics"] == 60


def test_failed_commit_restores_previous_files(tmp_path, monkeypatch):
    store = TelemetryStore(tmp_path)
    store.write({"metrics": metric_rows(periods=10)})
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    staged = store.stage({"metrics": metric_rows()})  # touches two day files
    import os

    real_replace, calls = os.replace, []

    def flaky_replace(src, dst):  # the disk fills up on the third rename
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError):
        staged.commit()
    monkeypatch.setattr(os, "replace", real_replace)
    staged.rollback()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")} == snapshot
    assert store.counts()["metrics"] == 10


def test_topology_and_time_range(tmp_path):
    store = TelemetryStore(tmp_path)
    topo = schema.validate("topology", pd.DataFrame({"caller": ["frontend", "checkout"], "callee": ["checkout", "payments"]})).frame
    store.write({"topology": topo, "metrics": metric_rows()})
    store.write({"topology": topo})
    assert len(store.query("topology")) == 2
    lo, hi = store.time_range("metrics")
    assert lo == pd.Timestamp("2026-11-01T22:00:00Z") and hi == pd.Timestamp("2026-11-02T01:59:00Z")


def test_naive_window_bound_is_refused(tmp_path):
    store = TelemetryStore(tmp_path)
    store.write({"metrics": metric_rows()})
    with pytest.raises(ValueError, match="time zone"):
        store.query("metrics", "2026-11-01 23:00")


def test_hostile_strings_round_trip(tmp_path):
    from conftest import HOSTILE_STRINGS

    n = len(HOSTILE_STRINGS)
    logs = pd.DataFrame({"timestamp": pd.date_range("2026-11-01", periods=n, freq="1s", tz="UTC"),
                         "service": "svc", "environment": "production", "severity": "INFO",
                         "body": HOSTILE_STRINGS, "trace_id": "", "attributes": [{"k": s} for s in HOSTILE_STRINGS]})
    store = TelemetryStore(tmp_path)
    store.write({"logs": schema.validate("logs", logs).frame})
    got = store.query("logs", services=["svc"])
    assert got["body"].tolist() == HOSTILE_STRINGS
    assert [schema.parse_attributes(a)["k"] for a in got["attributes"]] == HOSTILE_STRINGS


def test_an_ingest_killed_mid_write_leaves_nothing_after_the_next_write(workspace):
    """kill -9 during staging leaves .tmp files and empty day folders, during a commit a moved-aside
    backup: the next write removes the first two and puts a lost file back (issue 13, item 5)."""
    import pandas as pd

    store = workspace.telemetry()
    frame = pd.DataFrame({"timestamp": pd.to_datetime(["2026-11-02T10:00:00Z", "2026-11-03T10:00:00Z"]),
                          "service": "a", "environment": "production", "name": "m", "value": [1.0, 2.0],
                          "unit": "", "attributes": "{}"})
    store.write({"metrics": frame})
    day2 = next((store.root / "metrics").glob("day=2026-11-03"))
    target = next(day2.glob("*.parquet"))
    dead = "999999_1"  # no such process
    (day2 / f".{target.name}.{dead}-abc.tmp").write_bytes(b"half a parquet file")
    (store.root / "metrics" / "day=2026-11-09").mkdir()
    target.rename(day2 / f".{target.name}.{dead}-def.bak")  # killed between the two renames of a commit
    live = day2 / f".{target.name}.{__import__('workbench.processes', fromlist=['token']).token().replace(' ', '_')}-x.tmp"
    live.write_bytes(b"another ingest, still running")
    assert len(store.query("metrics")) == 1  # the file is missing until recovery
    store.write({"metrics": frame})  # the next ingest (adds nothing) recovers first
    assert sorted(p.name for p in day2.iterdir()) == sorted([target.name, live.name])
    assert not (store.root / "metrics" / "day=2026-11-09").exists()
    assert len(store.query("metrics")) == 2


def test_two_processes_writing_one_store_take_turns_and_lose_no_row(tmp_path, monkeypatch):
    """A CLI ingest, a live fetch and the OTLP receiver may write the same workspace at once: each
    merged the same day file and the last rename dropped the other's rows. The store's writer lock
    (flock) makes the second wait, and gives up with a ConflictError naming the holder."""
    import subprocess
    import sys

    from workbench.errors import ConflictError
    from workbench.telemetry import store as store_module

    def rows(minute):  # one row at 10:<minute> on the same day file as the other process's row
        return {"metrics": pd.DataFrame({"timestamp": [pd.Timestamp(f"2026-11-02T10:{minute:02d}:00Z")],
                                         "service": "a", "environment": "production", "name": "m",
                                         "value": [float(minute)], "unit": "", "attributes": "{}"})}

    other = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, pandas as pd\n"
            "from workbench.telemetry.store import TelemetryStore\n"
            f"s = TelemetryStore({str(tmp_path)!r})\n"
            "f = pd.DataFrame({'timestamp': pd.to_datetime(['2026-11-02T10:00:00Z']), 'service': 'a',"
            " 'environment': 'production', 'name': 'm', 'value': [0.0], 'unit': '', 'attributes': '{}'})\n"
            "staged = s.stage({'metrics': f})\n"
            "print('staged', flush=True)\n"
            "sys.stdin.readline()\n"
            "staged.commit()\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "staged"
        store = TelemetryStore(tmp_path)
        monkeypatch.setattr(store_module, "WRITE_WAIT", 0.3)
        with pytest.raises(ConflictError, match=rf"telemetry store .*another writer holds it \(process {other.pid} "):
            store.write(rows(1))
        assert store.query("metrics").empty  # nothing written, and the other's rows not yet visible
        monkeypatch.setattr(store_module, "WRITE_WAIT", 30.0)
        other.stdin.write("commit\n")
        other.stdin.flush()
        store.write(rows(1))  # waits for the other process's commit, then merges with its rows
    finally:
        other.stdin.close()
        assert other.wait(timeout=30) == 0
    assert sorted(store.query("metrics")["value"]) == [0.0, 1.0]
