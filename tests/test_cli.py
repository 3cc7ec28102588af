"""The ``workbench`` command: help everywhere, one-line errors with exit code 2, end to end on the sample."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from conftest import SAMPLE
import workbench
from workbench.cli import app, main


def _commands(command, path=()):
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, path + (name,))


def test_every_command_and_option_has_help():
    root = typer.main.get_command(app)
    missing = []
    for path, command in _commands(root):
        if not (command.help or "").strip():
            missing.append(" ".join(path) or "workbench")
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help" and not (getattr(param, "help", "") or "").strip():
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert not missing, f"commands or options without help: {missing}"


@pytest.mark.parametrize("argv", [["--help"], ["incident", "--help"], ["ingest", "--help"], ["incident", "new", "--help"]])
def test_help_exits_zero(argv, capsys):
    assert main(argv) == 0
    assert "Usage" in capsys.readouterr().out


def run(args, ws, capsys, code=0):
    rc = main([*args, "--workspace", str(ws)] if ws is not None else args)
    out = capsys.readouterr()
    assert rc == code, out.err
    return out


@pytest.fixture(scope="module")
def sample_ws(tmp_path_factory):
    """A workspace with the committed sample ingested once (about 10 s)."""
    from workbench.telemetry.ingest import ingest

    ws = workbench.init(tmp_path_factory.mktemp("cli") / "ws")
    result = ingest(ws, str(SAMPLE))
    return ws, result


def test_ingest_sample_and_list_incidents(sample_ws, capsys):
    ws, result = sample_ws
    assert result.rows_added["metrics"] > 100_000 and result.rows_added["logs"] > 10_000
    assert len(result.incidents_added) == 10
    listed = json.loads(run(["incident", "list", "--json"], ws.root, capsys).out)
    assert {i["id"] for i in listed} >= {"INC-20261102-001", "INC-20261103-001", "INC-20261105-001", "INC-20261106-001"}
    table = run(["incident", "list"], ws.root, capsys).out
    assert "INC-20261102-001" in table and "window (UTC)" in table


def test_second_ingest_adds_nothing(sample_ws, capsys):
    ws, _ = sample_ws
    data = json.loads(run(["ingest", str(SAMPLE), "--json"], ws.root, capsys).out)
    assert sum(data["rows_added"].values()) == 0
    assert data["incidents_added"] == [] and data["incidents_updated"] == [] and len(data["incidents_unchanged"]) == 10


def test_new_show_export_import_round_trip(sample_ws, tmp_path, capsys):
    ws, _ = sample_ws
    created = json.loads(run(["incident", "new", "--title", "Checkout <b>slow</b> 'again'", "--started", "2026-11-07T09:00:00Z",
                              "--services", "checkout,payments", "--severity", "SEV2", "--json"], ws.root, capsys).out)
    assert created["id"].startswith("INC-20261107-") and created["services"] == ["checkout", "payments"]
    shown = json.loads(run(["incident", "show", created["id"], "--json"], ws.root, capsys).out)
    assert shown["title"] == "Checkout <b>slow</b> 'again'" and shown["hypotheses"] == []
    out_dir = tmp_path / "pm"
    run(["incident", "export", created["id"], "--out", str(out_dir)], ws.root, capsys)
    exported = (out_dir / f"{created['id']}.yaml").read_text()
    again = json.loads(run(["incident", "import", str(out_dir / f"{created['id']}.yaml"), "--json"], ws.root, capsys).out)
    assert again == [{"id": created["id"], "action": "unchanged"}]
    run(["incident", "export", created["id"], "--out", str(tmp_path / "pm2")], ws.root, capsys)
    assert (tmp_path / "pm2" / f"{created['id']}.yaml").read_text() == exported


def test_library_errors_are_one_line_with_exit_code_2(sample_ws, capsys):
    ws, _ = sample_ws
    err = run(["incident", "show", "INC-NOPE"], ws.root, capsys, code=2).err
    assert err.startswith("workbench: error:") and err.count("\n") == 1 and "INC-NOPE" in err
    err = run(["ingest", "nezah:/tmp/x"], ws.root, capsys, code=2).err
    assert "did you mean 'nezha'" in err


def test_not_a_workspace(tmp_path, capsys):
    err = run(["incident", "list"], tmp_path, capsys, code=2).err
    assert "not a workspace" in err and "workbench init" in err


def test_naive_time_is_a_usage_error(sample_ws, capsys):
    ws, _ = sample_ws
    err = run(["incident", "new", "--title", "x", "--started", "2026-11-07 09:00", "--services", "a"], ws.root, capsys, code=2).err
    assert "time zone" in err


def test_bad_ingest_leaves_workspace_unchanged(sample_ws, tmp_path, capsys):
    ws, _ = sample_ws
    before = {p: p.stat().st_mtime_ns for p in ws.telemetry_dir.rglob("*.parquet")}
    kb = ws.knowledge_base()
    n_incidents = len(kb.list_incidents())
    kb.close()
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,service,environment,name,value\n2026-11-02T10:00:00Z,checkout,production,cpu,0.5\n"
                   "2026-11-02T10:01:00,checkout,production,cpu,oops\n")
    err = run(["ingest", str(bad), "-o", "table=metrics"], ws.root, capsys, code=2).err
    assert "bad.csv" in err and "timestamp" in err and "value" in err
    assert {p: p.stat().st_mtime_ns for p in ws.telemetry_dir.rglob("*.parquet")} == before
    kb = ws.knowledge_base()
    assert len(kb.list_incidents()) == n_incidents
    kb.close()


def test_console_script_runs(tmp_path):
    exe = Path(sys.executable).with_name("workbench")  # the installed entry point
    done = subprocess.run([str(exe), "init", str(tmp_path / "w2")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "workspace ready" in done.stdout
    assert (tmp_path / "w2" / "workbench.toml").is_file()
    done = subprocess.run([str(exe), "incident", "show", "X", "-w", str(tmp_path / "w2")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("workbench: error:")


def test_metrics_on_the_sample(sample_ws, capsys):
    ws, _ = sample_ws
    data = json.loads(run(["metrics", "--json", "--until", "2026-11-07T00:00:00Z"], ws.root, capsys).out)
    assert data["count"] == 10 and len(data["incidents"]) == 10
    assert data["durations"]["mttd"]["n_known"] == 10 and data["durations"]["mttd"]["median_s"] == 360.0
    table = run(["metrics", "--service", "payments"], ws.root, capsys).out
    assert "MTTD" in table and "MTTR" in table
    ledger = run(["metrics", "--accuracy"], ws.root, capsys).out
    assert "accuracy ledger" in ledger


def test_outbox_and_nudge_commands(sample_ws, capsys):
    ws, _ = sample_ws
    kb = ws.knowledge_base()
    inc = kb.list_incidents()[0]
    kb.add_action_item(inc.id, title="Add pool alert", owner="alice", kind="detect", due="2026-11-01", who="test")
    kb.close()
    report = json.loads(run(["nudge", "--as-of", "2026-11-10T00:00:00Z", "--json"], ws.root, capsys).out)
    assert json.dumps(report).count("alice") >= 1
    listed = json.loads(run(["outbox", "list", "--json"], ws.root, capsys).out)
    assert isinstance(listed, list)
    assert "delivered" in run(["outbox", "deliver"], ws.root, capsys).out
    assert "queued again" in run(["outbox", "resend"], ws.root, capsys).out


def test_analyze_run_report_signoff(sample_ws, capsys):
    ws, _ = sample_ws
    incident = "INC-20261103-001"
    out = run(["analyze", incident], ws.root, capsys).out
    assert "orders" in out and "change" in out
    ran = json.loads(run(["run", incident, "--json", "-p", "note=from the CLI"], ws.root, capsys).out)
    assert ran["status"] == "succeeded" and Path(ran["output_path"]).is_file()
    signed = json.loads(run(["signoff", incident, "--as", "carol", "--role", "incident-commander", "--json"], ws.root, capsys).out)
    assert signed["content_hash"].startswith("sha256:")
    report = json.loads(run(["report", incident, "--json"], ws.root, capsys).out)
    assert Path(report["path"]).is_file() and report["content_hash"] == signed["content_hash"]
    err = run(["run", incident, "-p", "x = 1; print(1); y=2"], ws.root, capsys, code=2).err
    assert "--parameter" in err and "identifier" in err
    err = run(["run", incident, "-p", "detectr=knn"], ws.root, capsys, code=2).err
    assert err.startswith("workbench: error:") and "detector" in err


def test_recheck_flags_the_recurrence(sample_ws, capsys):
    ws, _ = sample_ws
    out = json.loads(run(["recheck", "INC-20261102-001", "--until", "2026-11-06T16:30:00Z", "--window", "3h",
                          "--executor", "serial", "--json"], ws.root, capsys).out)
    text = json.dumps(out)
    assert "recurred" in text and "INC-20261102-001" in text
    kb = ws.knowledge_base()
    try:
        assert kb.get_incident("INC-20261102-001").status == "recurred"
        assert any(c.verdict == "recurred" for c in kb.list_checks(incident_id="INC-20261102-001"))
    finally:
        kb.close()


def test_incident_new_takes_labels_and_links_and_export_writes_under_the_workspace(workspace, capsys):
    w = ["-w", str(workspace.root)]
    assert main(["incident", "new", "--title", "Checkout slow", "--started", "2026-11-07T09:00:00Z",
                 "--services", "checkout", "--label", "symptom=latency", "--label", "confidence=0.8",
                 "--link", "runbook=https://wiki.example.com/checkout", "--link", "https://tickets.example.com/OPS-1",
                 "--json", *w]) == 0
    inc = json.loads(capsys.readouterr().out)
    assert inc["labels"] == {"symptom": "latency", "confidence": 0.8}
    assert inc["links"] == [{"title": "runbook", "url": "https://wiki.example.com/checkout"},
                            {"title": "https://tickets.example.com/OPS-1", "url": "https://tickets.example.com/OPS-1"}]
    assert main(["incident", "export", "--json", *w]) == 0
    (written,) = json.loads(capsys.readouterr().out)
    assert written["path"] == str(workspace.root / "postmortems" / f"{inc['id']}.yaml")
    assert written["content_hash"] and (workspace.root / "postmortems" / f"{inc['id']}.yaml").is_file()
    assert main(["incident", "new", "--title", "x", "--started", "2026-11-07T09:00:00Z", "--services", "a",
                 "--label", "symptom", *w]) == 2
    assert "--label" in capsys.readouterr().err


def test_init_takes_the_workspace_option_like_every_command(tmp_path, capsys):
    assert main(["init", "-w", str(tmp_path / "w3")]) == 0
    assert (tmp_path / "w3" / "workbench.toml").is_file()
    assert main(["init", str(tmp_path / "a"), "-w", str(tmp_path / "b")]) == 2


@pytest.mark.parametrize("argv, expected", [
    (["run", "INC-1", "-p", "note"], "--parameter: expected key=value"),
    (["analyze", "--nope"], "No such option: --nope"),
])
def test_usage_errors_are_one_line(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("workbench: error: ") and expected in err and err.count("\n") == 1


def test_titles_with_control_characters_cannot_forge_table_rows(workspace, capsys):
    w = ["-w", str(workspace.root)]
    forged = "Real title\nINC-99999999-999  SEV1  open       2026-01-01 00:00   fake row\r\u202etxet"
    with workspace.knowledge_base() as kb:
        kb.create_incident(title=forged, started="2026-11-02T14:00:00Z", services=["a"], who="test")
    assert main(["incident", "list", *w]) == 0
    out = capsys.readouterr().out
    rows = out.splitlines()
    assert len(rows) == 2  # the header and the one incident
    assert "fake row" in rows[1] and "\\u202e" in rows[1] and "\u202e" not in out and "\r" not in out


def test_help_paragraphs_are_reflowed_not_broken_mid_sentence(capsys):
    """issue 13: `ingest --help` and `analyze --help` broke lines mid-sentence (the docstrings' own wraps)."""
    from workbench.cli import app

    def callbacks(group):
        for info in group.registered_commands:
            yield info.callback
        for sub in group.registered_groups:
            yield from callbacks(sub.typer_instance)

    docs = [cb.__doc__ for cb in callbacks(app) if cb is not None and cb.__doc__]
    assert len(docs) > 30
    for doc in docs:
        for line in doc.split("\n")[1:]:
            assert not (line[:1].islower() and not line.startswith(" ")), (doc[:60], line)
    assert main(["ingest", "--help"]) == 0
    assert "Ingesting the same data twice adds nothing" in " ".join(capsys.readouterr().out.split())
