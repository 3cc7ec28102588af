"""The sample data generator and the committed sample in data/sample."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from workbench.telemetry import schema
from workbench.telemetry.sample import FILES, generate

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
EVAL_KEYS = {"id", "title", "severity", "status", "environment", "services", "started", "detected", "mitigated",
             "resolved", "links"}
DOC_KEYS = EVAL_KEYS | {"labels", "hypotheses"}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _read(folder: Path, table: str) -> pd.DataFrame:
    """Read one table file the plain way (no workbench reader), as a user would."""
    path = folder / FILES[table]
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.name.endswith(".jsonl.gz"):
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def sample() -> dict[str, pd.DataFrame]:
    if not (SAMPLE / "manifest.yaml").exists():
        pytest.fail(f"{SAMPLE} holds no sample; run `workbench sample --out data/sample --seed 7`")
    return {t: schema.validate(t, _read(SAMPLE, t), source=str(SAMPLE)).frame for t in FILES}


@pytest.fixture(scope="module")
def labels() -> list[dict]:
    return yaml.safe_load((SAMPLE / "labels.yaml").read_text())["incidents"]


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def _series(metrics: pd.DataFrame, service: str, name: str) -> pd.Series:
    rows = metrics[(metrics.service == service) & (metrics.name == name)]
    return rows.set_index("timestamp")["value"].sort_index()


# --------------------------------------------------------------------------- generator

def test_same_seed_gives_byte_identical_files_and_short_windows_keep_what_fits(tmp_path):
    a = generate(tmp_path / "a", seed=7, days=2)
    b = generate(tmp_path / "b", seed=7, days=2)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert a["rows"] == b["rows"] and a["rows"]["metrics"] == 2 * 1440 * 61
    assert a["bytes"] == sum(a["files"].values())
    assert a["end"] == "2026-11-03T00:00:00Z"
    # only the first evaluation incident fits in two days; the past incidents are always written
    assert a["incidents"] == ["INC-20261102-001"]
    docs = {p.stem for p in (tmp_path / "a" / "incidents").glob("*.yaml")}
    assert docs == {"INC-20261102-001", *a["past_incidents"]}


@pytest.mark.parametrize("days", [0, 29, 1.5, "7"])
def test_bad_days_are_refused(tmp_path, days):
    with pytest.raises(ValueError, match="days must be an integer from 1 to 28"):
        generate(tmp_path, days=days)


def test_committed_sample_is_what_seed_7_generates(tmp_path):
    summary = generate(tmp_path, seed=7)
    committed, fresh = _files(SAMPLE), _files(tmp_path)
    assert sorted(committed) == sorted(fresh)
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert not changed, f"data/sample is stale ({changed}); regenerate with `workbench sample --out data/sample --seed 7`"
    assert summary["bytes"] < 10_000_000


# --------------------------------------------------------------------------- committed files

def test_manifest_names_every_table_and_the_incidents():
    manifest = yaml.safe_load((SAMPLE / "manifest.yaml").read_text())
    assert manifest["tables"] == {t: {"path": p} for t, p in FILES.items()}
    assert manifest["incidents"] == "incidents/"
    assert "--seed 7" in manifest["name"]


@pytest.mark.parametrize("table", list(FILES))
def test_every_file_holds_exactly_the_unified_columns(table):
    raw = _read(SAMPLE, table)
    assert list(raw.columns) == schema.columns(table)
    report = schema.validate(table, raw, source=FILES[table]).report
    assert report.duplicates_dropped == 0 and report.rows_out == len(raw) > 0
    time_col = schema.TIME_COLUMN[table]
    if time_col and FILES[table].endswith(".parquet"):
        assert str(raw[time_col].dt.tz) == "UTC"
    elif time_col:
        assert raw[time_col].str.endswith("Z").all()


def test_tables_cover_the_window_and_the_topology(sample):
    metrics = sample["metrics"]
    assert metrics.timestamp.min() == _ts("2026-11-01T00:00Z")
    assert metrics.timestamp.max() == _ts("2026-11-07T23:59Z")
    for table, col in (("logs", "timestamp"), ("spans", "start"), ("events", "timestamp")):
        assert sample[table][col].between(_ts("2026-11-01T00:00Z"), _ts("2026-11-08T00:00Z")).all(), table
    services = set(metrics.service)
    assert len(services) == 8
    edges = set(map(tuple, sample["topology"].to_numpy()))
    assert {("frontend", "checkout"), ("checkout", "payments"), ("checkout", "orders")} <= edges
    assert set(sample["spans"].service) == services == set(sample["logs"].service)
    # every span's parent is in its trace, and roots have no parent
    spans = sample["spans"]
    known = set(zip(spans.trace_id, spans.span_id))
    children = spans[spans.parent_span_id != ""]
    assert all((t, p) in known for t, p in zip(children.trace_id, children.parent_span_id))
    assert (spans[spans.parent_span_id == ""].service == "frontend").all()


def test_request_rates_follow_the_topology(sample):
    metrics = sample["metrics"]
    rate = {s: _series(metrics, s, "request_rate") for s in ("frontend", "cart", "checkout", "catalog", "payments")}
    # catalog serves the product pages (70 % of frontend requests) and every cart request
    ratio = (rate["catalog"] / (0.7 * rate["frontend"] + rate["cart"])).median()
    assert 0.97 < ratio < 1.03
    assert 0.95 < (rate["payments"] / rate["checkout"]).median() < 1.05


# --------------------------------------------------------------------------- ground truth

def test_labels_match_the_incident_documents_and_events(sample, labels):
    events = sample["events"]
    metrics = sample["metrics"]
    assert len(labels) >= 4
    for lab in labels:
        doc = yaml.safe_load((SAMPLE / "incidents" / f"{lab['id']}.yaml").read_text())
        assert set(doc) <= EVAL_KEYS, "evaluation incidents carry no cause"
        assert doc["status"] in ("resolved", "monitoring")
        onset, detected = _ts(lab["onset"]), _ts(doc["detected"])
        assert metrics.timestamp.min() < onset < metrics.timestamp.max()
        assert pd.Timedelta(minutes=3) <= detected - onset <= pd.Timedelta(minutes=10), lab["id"]
        assert _ts(doc["started"]) <= detected < _ts(doc["mitigated"]) < _ts(doc["resolved"])
        mine = events[events.attributes.str.contains(lab["id"])]
        assert {"incident_declared", "mitigation", "resolved"} <= set(mine.kind), lab["id"]
        alerts = events[(events.kind == "alert") & (events.timestamp == detected)]
        assert len(alerts) == 1 and alerts.service.iloc[0] in doc["services"]
        if lab["trigger"]:
            t = lab["trigger"]
            hit = events[(events.timestamp == _ts(t["time"])) & (events.kind == t["kind"])
                         & (events.service == t["service"]) & (events.summary == t["summary"])]
            assert len(hit) == 1, lab["id"]
    recurrences = [lab for lab in labels if lab["recurrence_of"]]
    assert recurrences and all(r["recurrence_of"] in {lab["id"] for lab in labels} for r in recurrences)


def test_past_incidents_have_confirmed_causes():
    labelled = {lab["id"] for lab in yaml.safe_load((SAMPLE / "labels.yaml").read_text())["incidents"]}
    past = [yaml.safe_load(p.read_text()) for p in sorted((SAMPLE / "incidents").glob("*.yaml"))]
    past = [d for d in past if d["id"] not in labelled]
    assert 4 <= len(past) <= 6
    for doc in past:
        assert set(doc) <= DOC_KEYS
        assert _ts(doc["resolved"]) < _ts("2026-11-01T00:00Z")
        assert doc["labels"]["confidence"] >= 0.9 and doc["labels"]["service"] == doc["hypotheses"][0]["service"]
        (hyp,) = doc["hypotheses"]
        assert hyp["status"] == "confirmed" and hyp["cause"] in ("change", "resource", "dependency", "code", "traffic", "other")
        assert hyp["evidence"]
    assert {d["hypotheses"][0]["service"] for d in past} >= {"payments", "orders", "frontend"}


def test_incident_documents_pass_the_store_validation():
    documents = pytest.importorskip("workbench.store.documents")
    for path in sorted((SAMPLE / "incidents").glob("*.yaml")):
        doc = documents.validate_document(documents.read_document(path), str(path))
        assert doc is not None


def test_files_source_reads_the_sample_through_its_manifest(sample):
    sources = pytest.importorskip("workbench.telemetry.sources")
    telemetry = sources.open_source(str(SAMPLE)).read()
    assert {t: len(f) for t, f in telemetry.tables().items()} == {t: len(f) for t, f in sample.items()}
    assert len(telemetry.incidents) == len(list((SAMPLE / "incidents").glob("*.yaml")))


def _label(labels, root, cause, recurrence=False):
    return next(lab for lab in labels if lab["root_cause_service"] == root and lab["cause"] == cause
                and bool(lab["recurrence_of"]) == recurrence)


def test_bad_payments_deploys_show_in_errors_logs_and_upstream(sample, labels):
    metrics, logs = sample["metrics"], sample["logs"]
    for lab in (_label(labels, "payments", "change"), _label(labels, "payments", "change", recurrence=True)):
        onset, mitigated = _ts(lab["onset"]), _ts(lab["mitigated"])
        err = _series(metrics, "payments", "error_rate")
        before = err[onset - pd.Timedelta(hours=2): onset - pd.Timedelta(minutes=5)].mean()
        during = err[onset + pd.Timedelta(minutes=3): mitigated].mean()
        assert during > 0.08 and during > 10 * max(before, 0.002)
        checkout = _series(metrics, "checkout", "error_rate")
        first = lambda s: s[(s.index >= onset) & (s > 0.05)].index.min()  # noqa: E731
        assert first(checkout) > first(err), "the caller's symptom starts later"
        fe = _series(metrics, "frontend", "error_rate")[onset + pd.Timedelta(minutes=3): mitigated].mean()
        assert fe < during / 3, "and smaller"
        new = logs[(logs.service == "payments") & logs.body.str.contains("InvalidFormatException")]
        assert len(new[new.timestamp.between(onset, mitigated)]) >= 20
    # the template is new: it appears only while a bad version runs
    windows = [(_ts(lab["trigger"]["time"]), _ts(lab["mitigated"]) + pd.Timedelta(minutes=5))
               for lab in labels if lab["root_cause_service"] == "payments"]
    assert all(any(a <= t <= b for a, b in windows) for t in new.timestamp)


def test_orders_pool_exhaustion(sample, labels):
    lab = _label(labels, "orders", "change")
    metrics, logs = sample["metrics"], sample["logs"]
    onset, mitigated = _ts(lab["onset"]), _ts(lab["mitigated"])
    pool = _series(metrics, "orders", "db_pool_usage")
    assert pool[onset: mitigated].median() > 0.97
    assert pool[onset - pd.Timedelta(hours=1): onset - pd.Timedelta(minutes=2)].max() < 0.6
    p99 = _series(metrics, "orders", "latency_p99_ms")
    assert p99[onset: mitigated].median() > 5 * p99[: onset - pd.Timedelta(minutes=2)].median()
    exhausted = logs[logs.body.str.contains("connection pool exhausted")]
    assert (exhausted.service == "orders").all()
    assert exhausted.timestamp.between(onset, mitigated + pd.Timedelta(minutes=2)).all() and len(exhausted) > 20


def test_traffic_surge_without_a_change_before_it(sample, labels):
    lab = _label(labels, "frontend", "traffic")
    assert lab["trigger"] is None
    metrics, events = sample["metrics"], sample["events"]
    onset = _ts(lab["onset"])
    for svc in ("frontend", "catalog", "payments"):
        rate = _series(metrics, svc, "request_rate")
        ratio = rate[onset + pd.Timedelta(minutes=5): onset + pd.Timedelta(minutes=35)].mean() / \
            rate[onset - pd.Timedelta(minutes=30): onset - pd.Timedelta(minutes=1)].mean()
        assert 2.5 < ratio < 3.5, svc
    changes = events[events.kind.isin(["deploy", "config_change", "feature_flag"])
                     & events.timestamp.between(onset - pd.Timedelta(minutes=30), onset + pd.Timedelta(minutes=30))]
    assert changes.empty
    scaled = events[(events.kind == "scale") & (events.service == "frontend")
                    & events.timestamp.between(onset, onset + pd.Timedelta(minutes=15))]
    assert not scaled.empty
    cpu = _series(metrics, "frontend", "cpu_utilization")
    assert cpu[onset: onset + pd.Timedelta(minutes=8)].max() > 0.9
