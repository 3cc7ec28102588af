"""Ingest is all or nothing: every malformed input class is refused with an error naming the file
and the column, and the workspace (telemetry files and knowledge base) is left exactly as it was."""
from __future__ import annotations

import gzip
import json

import pytest

from workbench.errors import SchemaError, SourceError
from workbench.telemetry.ingest import ingest

HEADER = "timestamp,service,environment,name,value\n"
GOOD = "2026-11-01T00:00:00Z,checkout,production,cpu,0.5\n"


def _log_line(**overrides):
    rec = {"timestamp": "2026-11-01T00:00:00Z", "service": "checkout", "environment": "production",
           "severity": "INFO", "body": "served", "trace_id": "", "attributes": {}}
    rec.update(overrides)
    return json.dumps(rec) + "\n"


# name -> (file name, bytes, table, column the error must name)
MALFORMED = {
    "missing column": ("m.csv", ("timestamp,service,name,value\n2026-11-01T00:00:00Z,checkout,cpu,1\n").encode(), "metrics", "environment"),
    "wrong type": ("m.csv", (HEADER + GOOD + "2026-11-01T00:01:00Z,checkout,production,cpu,fast\n").encode(), "metrics", "value"),
    "naive time": ("m.csv", (HEADER + "2026-11-01 00:00:00,checkout,production,cpu,1\n").encode(), "metrics", "timestamp"),
    "NaN value": ("m.csv", (HEADER + GOOD + "2026-11-01T00:01:00Z,checkout,production,cpu,NaN\n").encode(), "metrics", "value"),
    "conflicting duplicate": ("m.csv", (HEADER + GOOD + "2026-11-01T00:00:00Z,checkout,production,cpu,0.9\n").encode(), "metrics", "timestamp"),
    "unknown event kind": ("e.csv", ("timestamp,service,environment,kind,summary\n2026-11-01T00:00:00Z,payments,production,deplyo,v2\n").encode(), "events", "kind"),
    "1 MB log line": ("l.jsonl", (_log_line() + _log_line(body="x" * 1_000_000)).encode(), "logs", "body"),
    "non-UTF-8 bytes": ("l.jsonl", _log_line().encode() + b'{"timestamp": "2026-11-01T00:00:01Z", "body": "caf\xe9"}\n', "logs", "byte"),
}


def _snapshot(ws):
    files = {p: p.read_bytes() for p in ws.telemetry_dir.rglob("*") if p.is_file()}
    kb = ws.knowledge_base()
    try:
        state = [i.to_dict() for i in kb.list_incidents()], len(kb.history())
    finally:
        kb.close()
    return files, state


@pytest.fixture
def seeded(workspace, tmp_path):
    """A workspace that already holds some telemetry and one incident."""
    seed = tmp_path / "seed.csv"
    seed.write_text(HEADER + GOOD)
    ingest(workspace, f"files:{seed}", table="metrics")
    kb = workspace.knowledge_base()
    kb.create_incident(title="Earlier", started="2026-10-01T00:00:00Z", services=["checkout"], who="test")
    kb.close()
    return workspace


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_is_named_and_changes_nothing(case, seeded, tmp_path):
    name, payload, table, column = MALFORMED[case]
    path = tmp_path / name
    path.write_bytes(payload)
    before = _snapshot(seeded)
    with pytest.raises((SchemaError, SourceError)) as exc:
        ingest(seeded, f"files:{path}", table=table)
    message = str(exc.value)
    assert name in message and column in message, message
    assert _snapshot(seeded) == before


def test_exact_duplicates_are_counted_not_refused(workspace, tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text(HEADER + GOOD + GOOD + GOOD)
    result = ingest(workspace, f"files:{path}", table="metrics")
    assert result.rows_read["metrics"] == 1 and result.duplicates_dropped == 2


def test_a_source_without_rows_is_ingested_with_a_warning(workspace, tmp_path, capsys):
    """issue 13, item 10: a header-only CSV or an empty OTLP export said "ingested" and nothing else."""
    from workbench.cli import main

    header_only = tmp_path / "empty.csv"
    header_only.write_text(HEADER)
    empty_otlp = tmp_path / "empty.otlp.json"
    empty_otlp.write_text('{"resourceLogs": []}\n')
    for url, options in ((f"files:{header_only}", {"table": "metrics"}), (f"otlp:{empty_otlp}", {})):
        result = ingest(workspace, url, **options)
        assert not any(result.rows_read.values())
        assert result.warnings == [f"{url}: 0 telemetry rows read (only headers, an empty export, or nothing "
                                   f"in the time range)"]
    good = tmp_path / "good.csv"
    good.write_text(HEADER + GOOD)
    assert ingest(workspace, f"files:{good}", table="metrics").warnings == []
    assert main(["ingest", f"files:{header_only}", "-o", "table=metrics", "-w", str(workspace.root)]) in (0, None)
    assert "warning: files:" in capsys.readouterr().err


def test_bad_incident_document_changes_nothing(seeded, tmp_path):
    folder = tmp_path / "src"
    (folder / "incidents").mkdir(parents=True)
    (folder / "m.csv").write_text(HEADER + "2026-11-02T00:00:00Z,checkout,production,cpu,0.5\n")
    (folder / "manifest.yaml").write_text("tables:\n  metrics: {path: m.csv}\nincidents: incidents/\n")
    (folder / "incidents" / "a.yaml").write_text("id: INC-1\ntitle: ok\nstarted: '2026-11-02T00:00:00Z'\nservices: [checkout]\nseverity: SEV9\n")
    before = _snapshot(seeded)
    with pytest.raises(Exception) as exc:
        ingest(seeded, str(folder))
    assert "severity" in str(exc.value) and "SEV9" in str(exc.value)
    assert _snapshot(seeded) == before


def test_gzip_and_progress(workspace, tmp_path):
    path = tmp_path / "m.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(HEADER + GOOD)
    seen = []
    result = ingest(workspace, str(path), table="metrics", progress=seen.append)
    assert result.rows_added["metrics"] == 1
    assert any("read metrics" in s for s in seen) and any("write metrics" in s for s in seen)


# name -> (file name, text, table, column the error must name): NUL in every kind of text column,
# and the other C0 control characters where they do not belong (workbench.formats.text_problem).
CONTROL = {
    "NUL in a log body": ("l.jsonl", _log_line(body="served \x00 then"), "logs", "body"),
    "NUL in a service name": ("m.csv", HEADER + "2026-11-01T00:00:00Z,check\x00out,production,cpu,0.5\n", "metrics", "service"),
    "NUL in a metric name": ("m.csv", HEADER + "2026-11-01T00:00:00Z,checkout,production,cp\x00u,0.5\n", "metrics", "name"),
    "NUL in an event summary": ("e.csv", "timestamp,service,environment,kind,summary\n"
                                "2026-11-01T00:00:00Z,payments,production,deploy,v2\x00\n", "events", "summary"),
    "NUL in an attribute key": ("l.jsonl", _log_line(attributes={"po\x00d": "a"}), "logs", "attributes"),
    "NUL in an attribute value": ("l.jsonl", _log_line(attributes={"pod": "a\x00"}), "logs", "attributes"),
    "escape in a log body": ("l.jsonl", _log_line(body="\x1b[31mred"), "logs", "body"),
    "newline in a service name": ("l.jsonl", _log_line(service="check\nout"), "logs", "service"),
    "tab in an attribute key": ("l.jsonl", _log_line(attributes={"k\tey": "a"}), "logs", "attributes"),
}


@pytest.mark.parametrize("case", sorted(CONTROL))
def test_control_characters_are_refused_naming_file_and_column(workspace, tmp_path, case):
    name, text, table, column = CONTROL[case]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    before = _snapshot(workspace)
    with pytest.raises(SchemaError) as err:
        ingest(workspace, str(path), table=table)
    message = str(err.value)
    assert str(path) in message and f"column '{column}'" in message and "control character" in message
    assert _snapshot(workspace) == before


def test_multi_line_text_keeps_tabs_and_line_breaks(workspace, tmp_path):
    path = tmp_path / "l.jsonl"
    body = "Traceback:\r\n\tat Foo.bar(Foo.java:10)\n"
    path.write_text(_log_line(body=body, attributes={"note": "two\nlines"}), encoding="utf-8")
    ingest(workspace, str(path), table="logs")
    stored = workspace.telemetry().query("logs")
    assert stored["body"].tolist() == [body] and json.loads(stored["attributes"][0]) == {"note": "two\nlines"}
