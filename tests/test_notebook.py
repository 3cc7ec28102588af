"""The notebook runner: templates execute on the sample, parameters are refused before any kernel
starts, hostile values arrive as data, failures and re-runs leave an audit trail."""
from __future__ import annotations

import ast
import json
import math
import re
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from conftest import HOSTILE_STRINGS
import workbench
from workbench.postmortem import runner as notebook
from workbench.postmortem import notebooks, templates
from workbench.errors import MissingDependencyError, NotFoundError, TemplateParameterError, UnknownNameError
from workbench.postmortem.runner import NotebookExecutionError

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill")

INCIDENT = "INC-20261102-001"
CHAPTERS = ("Summary and impact", "Timeline", "Context at the time", "Detection", "Evidence", "Hypotheses", "Contributing factors",
            "Action items", "Lessons")
BANNED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.AsyncFor, ast.While)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def sample_ws(sample_copy):
    """A copy of the workspace with the committed sample ingested."""
    return sample_copy("notebook")


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory) -> Path:
    """A file that exists only if a hostile value was executed as code."""
    return tmp_path_factory.mktemp("sentinel") / "PWNED"


def _hostile(sentinel: Path) -> str:
    opener = f'open({str(sentinel)!r}, "w").close()'
    parts = [*HOSTILE_STRINGS, "nul \x00 inside", f'"); {opener}; ("', f"'); {opener}; ('",
             f'\\"); {opener}; ("', f'"""; {opener}; """', "ends with a backslash \\"]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def postmortem_run(sample_ws, sentinel):
    """One real run of postmortem.ipynb on the bad-deploy incident, with a hostile note."""
    note = _hostile(sentinel)
    result = notebook.run(sample_ws, INCIDENT, parameters={"note": note})
    # Read now: later tests re-run templates and archive this file.
    return result, nbformat.read(result.output_path, as_version=4), note


@pytest.fixture(scope="module")
def tiny_template(tmp_path_factory) -> Path:
    """A minimal template that reports its interpreter and echoes a parameter as JSON."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell('incident_id = ""\nworkspace = ""\nvalues = []')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import json, sys\nprint(json.dumps({'python': sys.executable, 'values': values, 'incident': incident_id}))")]
    path = tmp_path_factory.mktemp("templates") / "tiny.ipynb"
    nbformat.write(nb, str(path))
    return path


def _errors(nb) -> list:
    return [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _runs(ws, incident_id=None):
    with ws.knowledge_base() as kb:
        return kb.list_runs(incident_id)


# --------------------------------------------------------------------------- templates

@pytest.mark.parametrize("name", ["postmortem", "recurrence"])
def test_templates_follow_the_notebook_rules(name):
    raw = json.loads(templates.template_path(name).read_text(encoding="utf-8"))
    tagged = [c for c in raw["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            assert not [n for n in ast.walk(ast.parse(source)) if isinstance(n, BANNED)], source
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert templates.lint_template(name) == []


def test_template_parameters_are_the_declared_defaults():
    assert templates.template_parameters("postmortem") == {
        "incident_id": "", "workspace": "", "window_start": None, "window_end": None, "baseline_hours": 24,
        "detector": None, "output_dir": None, "note": ""}
    assert templates.template_parameters("recurrence") == {
        "incident_id": "", "workspace": "", "since": None, "window_hours": 24}


def test_lint_names_every_broken_rule(tmp_path):
    nb = nbformat.v4.new_notebook()
    first, second = nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("y = 2")
    first.metadata["tags"] = second.metadata["tags"] = ["parameters"]
    nb.cells = [first, second]
    path = tmp_path / "two.ipynb"
    nbformat.write(nb, str(path))
    assert "exactly one cell tagged 'parameters', found 2" in templates.lint_template(path)[0]

    params = nbformat.v4.new_code_cell('incident_id = ""\nworkspace = ""')
    params.metadata["tags"] = ["parameters"]
    looped = nbformat.v4.new_code_cell("for i in range(3):\n    print(i)", execution_count=3)
    looped.outputs = [nbformat.v4.new_output("stream", name="stdout", text="0\n")]
    nb.cells = [params, nbformat.v4.new_code_cell("def f():\n    return [x for x in ()]"), looped]
    nbformat.write(nb, str(path))
    problems = "\n".join(templates.lint_template(path))
    assert "FunctionDef" in problems and "ListComp" in problems and "For" in problems
    assert "stored outputs" in problems and "execution count" in problems


def test_unknown_template_suggests_the_close_name():
    with pytest.raises(UnknownNameError, match="did you mean 'postmortem'"):
        templates.template_path("postmortm")


# --------------------------------------------------------------------------- parameters (no kernel)

@pytest.mark.parametrize("params, message", [
    ({"x = 1; print(1); y": 2}, "not allowed: names must be Python identifiers"),
    ({"class": 1}, "not allowed"),
    ({"None": 1}, "not allowed"),
    ({1: 2}, "not allowed"),
    ({"notee": "x"}, r"'notee' is not declared by template postmortem.ipynb \(declared: incident_id, workspace, "
                     r".*\); did you mean 'note'\?"),
    ({"note": ("a", "b")}, "note: values of type tuple are not allowed .*; use a list"),
    ({"note": {"a", "b"}}, "type set"),
    ({"note": b"bytes"}, "decode it to str"),
    ({"note": math.nan}, "expected a finite float"),
    ({"note": math.inf}, "expected a finite float"),
    ({"note": -math.inf}, "expected a finite float"),
    ({"note": datetime(2026, 11, 2, tzinfo=timezone.utc)}, "type datetime .*ISO 8601"),
    ({"note": date(2026, 11, 2)}, "type date"),
    ({"output_dir": {"a": [1, ("b",)]}}, r"output_dir\['a'\]\[1\]: values of type tuple"),
    ({"output_dir": {"a": {2: "x"}}}, r"output_dir\['a'\]: dict keys must be str"),
    ({"note": "lone \ud800 surrogate"}, "lone surrogate"),
    ({"note": type("Sneaky", (str,), {})("x")}, "type Sneaky"),
    ({"baseline_hours": __import__("numpy").float64(2.0)}, "type float64"),
])
def test_unsafe_parameters_are_refused(params, message):
    with pytest.raises(TemplateParameterError, match=message):
        templates.validate_parameters("postmortem", params)


def test_allowed_values_come_back_as_copies(tiny_template):
    # a template whose parameters declare no kind: only the value types are checked
    value = {"k": [1, 2.5, None, True, "t", {"n": []}]}
    checked = templates.validate_parameters(tiny_template, {"values": value})
    assert checked == {"values": value}
    assert checked["values"] is not value and checked["values"]["k"] is not value["k"]


def test_bad_parameters_start_nothing_and_record_nothing(sample_ws):
    incident = "INC-20261105-001"
    before = len(_runs(sample_ws))
    for params in ({"x = 1; print(1); y": 2}, {"note": ("a",)}, {"incident_id": "INC-20261103-001"}):
        with pytest.raises(TemplateParameterError):
            notebook.run(sample_ws, incident, parameters=params)
    with pytest.raises(NotFoundError):
        notebook.run(sample_ws, "INC-29990101-001")
    assert len(_runs(sample_ws)) == before
    assert not (sample_ws.incidents_dir / incident).exists()
    assert not (sample_ws.incidents_dir / "INC-29990101-001").exists()


def test_missing_papermill_names_the_extra(sample_ws, monkeypatch):
    monkeypatch.setitem(sys.modules, "papermill", None)  # what an environment without it looks like
    with pytest.raises(MissingDependencyError, match=r"postmortem-workbench\[notebook\]"):
        notebook.run(sample_ws, INCIDENT)


# --------------------------------------------------------------------------- real executions

def test_postmortem_executes_every_chapter_and_is_recorded(sample_ws, postmortem_run):
    result, nb, _ = postmortem_run
    assert result.status == "succeeded" and result.error is None and result.run_id
    assert Path(result.output_path) == sample_ws.incidents_dir / INCIDENT / "postmortem.ipynb"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for chapter in CHAPTERS:
        assert f"## {chapter}" in markdown
    assert _errors(nb) == []
    assert nb.metadata["workbench"]["run_id"] == result.run_id
    (run,) = [r for r in _runs(sample_ws, INCIDENT) if r.id == result.run_id]
    assert run.status == "succeeded" and run.error_cell is None and run.ended is not None
    assert run.output_path == f"incidents/{INCIDENT}/postmortem.ipynb"
    assert run.parameters["incident_id"] == INCIDENT and run.parameters["workspace"] == str(sample_ws.root)
    # The summary chapter shows the incident; the timeline the bad deploy.
    shown = "\n".join(o.get("data", {}).get("text/plain", "") for c in nb.cells for o in c.get("outputs", []))
    assert "Checkout failures and slow order placement" in shown and "Deployed payments v2.15.0" in shown


def test_hostile_note_arrives_as_data_and_runs_nothing(postmortem_run, sentinel):
    _, nb, note = postmortem_run
    (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assigned = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(injected.source).body}
    assert assigned["note"] == note  # byte-identical, NUL and newlines included
    (printed,) = [c for c in nb.cells if c.source == "print(note)"]
    assert "".join(o["text"] for o in printed.outputs if o.output_type == "stream") == note + "\n"
    assert not sentinel.exists()
    lines = [line for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream"
             for line in o["text"].splitlines()]
    assert "pwned" not in lines


def test_the_executed_notebook_displays_without_a_kernel(postmortem_run):
    from nbformat.sign import NotebookNotary

    result, nb, _ = postmortem_run
    outputs = [(c, o) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    data = [o.get("data", {}) for _, o in outputs]
    # no widget view and no saved widget state: nothing that opens as a repr, "Loading widget..."
    # or "model not found"; every widget cell carries its static rendering instead
    assert not [d for d in data if "application/vnd.jupyter.widget-view+json" in d]
    assert "widgets" not in nb.metadata
    assert not [d for d in data if d.get("text/plain", "").startswith(("VBox(", "Tab(", "HBox(", "HTML("))]
    widget_cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("wbw.")]
    assert len(widget_cells) >= 4
    for cell in widget_cells:
        assert [o for o in cell.outputs if "text/html" in o.get("data", {})], cell.source
    # BokehJS inline once, and the charts (timeline, key metrics, heatmap, the hypotheses' series)
    scripts = [d["application/javascript"] for d in data if "application/javascript" in d]
    assert sum("/* BEGIN bokeh.min.js */" in s for s in scripts) == 1
    charts = sum(s.count('"target_id"') for s in scripts)  # one json_item per chart
    assert charts >= 5
    chart_cells = [c.source.split("(")[0] for c, o in outputs if "application/javascript" in o.get("data", {})]
    assert chart_cells == ["show.charts_setup", "show.timeline", "show.metrics", "show.heatmap",
                           "show.hypothesis_evidence"]
    # no NaT/None/nan in what the tables show
    shown = "\n".join(d.get("text/html", "") for d in data)
    assert not re.search(r">\s*(NaT|None|nan|NaN)\s*<", shown)
    # evidence grouped per suspicious service, most suspicious first, the weaker items folded
    (evidence,) = [o.data["text/html"] for c, o in outputs if c.source.startswith("show.evidence(")]
    assert "<details>" in evidence
    shown = [float(x) for x in re.findall(r"<h3>[^<]*<span class=\"muted\">suspicion ([\d.]+)", evidence)]
    assert len(shown) >= 2 and shown == sorted(shown, reverse=True)
    assert Path(result.output_path).stat().st_size < 5_000_000
    # trusted for the user who ran it, so JupyterLab runs the chart scripts
    assert NotebookNotary().check_signature(nbformat.read(result.output_path, as_version=4))


def test_timings_are_in_the_executed_notebook(postmortem_run):
    result, _, _ = postmortem_run
    cells = notebooks.cell_timings(result.output_path)
    assert all(isinstance(i, int) and isinstance(first, str) for i, first, _ in cells)
    assert any(first.startswith("show.evidence(") and seconds is not None for _, first, seconds in cells)
    assert result.timings["kernel_start"] > 0 and result.timings["cells"] > 0
    assert result.timings["total"] >= result.timings["cells"]


def test_recurrence_executes(sample_ws, postmortem_run):
    result = notebook.run(sample_ws, INCIDENT, "recurrence", {"since": "2026-11-01T00:00:00Z", "window_hours": 6})
    nb = nbformat.read(result.output_path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in ("Follow-up status", "Recheck history", "Verification criteria"):
        assert f"## {heading}" in markdown
    assert _errors(nb) == [] and result.status == "succeeded"
    shown = {c.source.split("(")[0]: o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs}
    assert "signature of" in shown["show.signatures"]["text/plain"]  # the incident's own, beside the last check's
    assert shown["show.verdicts"]["text/plain"].startswith("Verdicts over time")
    (run,) = [r for r in _runs(sample_ws, INCIDENT) if r.id == result.run_id]
    assert run.status == "succeeded" and run.template == "recurrence"
    assert run.output_path == f"incidents/{INCIDENT}/recurrence.ipynb"


def test_failing_cell_keeps_the_notebook_and_marks_the_run(sample_ws):
    incident = "INC-20261103-001"
    with sample_ws.knowledge_base() as kb:
        history_before = [h for h in kb.history(incident_id=incident) if h.entity != "run"]
        hypotheses_before = kb.list_hypotheses(incident)
    with pytest.raises(NotebookExecutionError) as info:  # an empty window: each bound is valid, the pair is not
        notebook.run(sample_ws, incident, parameters={"window_start": "2026-11-03T12:00:00Z",
                                                      "window_end": "2026-11-03T11:00:00Z"})
    exc = info.value
    assert exc.ename == "TemplateParameterError" and "is empty" in exc.evalue
    assert exc.result.status == "failed" and exc.result.error["cell_index"] == exc.cell_index
    assert Path(exc.result.output_path) == sample_ws.incidents_dir / incident / "postmortem.failed.ipynb"
    nb = nbformat.read(exc.result.output_path, as_version=4)
    failing = nb.cells[exc.cell_index]
    assert failing.source.startswith("show.summary(")
    assert [o.ename for o in failing.outputs if o.output_type == "error"] == ["TemplateParameterError"]
    (run,) = _runs(sample_ws, incident)
    assert run.status == "failed" and run.error_cell == exc.cell_index
    assert run.output_path == f"incidents/{incident}/postmortem.failed.ipynb"
    assert not (sample_ws.incidents_dir / incident / "postmortem.ipynb").exists()
    with sample_ws.knowledge_base() as kb:
        assert [h for h in kb.history(incident_id=incident) if h.entity != "run"] == history_before
        assert kb.list_hypotheses(incident) == hypotheses_before


@pytest.mark.parametrize("params, message", [
    ({"baseline_hours": -5}, "baseline_hours': expected a number from 0.25 to 720"),
    ({"baseline_hours": 1e308}, "baseline_hours': expected a number from 0.25 to 720"),
    ({"window_start": "x"}, "window_start': expected a time"),
    ({"window_start": "2026-11-02T13:00:00"}, "has no time zone"),
    ({"detector": "<script>"}, "unknown detector '<script>'"),
    ({"note": "x" * 10_001}, "note': expected text of at most 10,000 characters"),
])
def test_parameters_outside_their_declared_range_are_refused_before_any_kernel(sample_ws, params, message):
    before = len(_runs(sample_ws))
    with pytest.raises((TemplateParameterError, UnknownNameError), match=message):
        notebook.run(sample_ws, "INC-20261105-001", parameters=params)
    assert len(_runs(sample_ws)) == before


def test_a_failed_run_never_replaces_the_last_good_notebook(sample_ws, tmp_path):
    incident = "INC-20261106-001"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell('incident_id = ""\nworkspace = ""\nfail = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("assert not fail, 'asked to fail'")]
    template = tmp_path / "flaky.ipynb"
    nbformat.write(nb, str(template))
    good = notebook.run(sample_ws, incident, template)
    good_bytes = Path(good.output_path).read_bytes()
    with pytest.raises(NotebookExecutionError, match="the last good notebook stays at"):
        notebook.run(sample_ws, incident, template, {"fail": True})
    folder = sample_ws.incidents_dir / incident
    assert (folder / "flaky.ipynb").read_bytes() == good_bytes
    assert (folder / "flaky.failed.ipynb").is_file()
    assert not list(folder.glob(".flaky.*"))  # no partial notebook, no lock


def test_kill_9_of_a_run_leaves_nothing_once_the_next_run_starts(sample_ws, tmp_path):
    import signal
    import subprocess
    import time

    incident = "INC-20261106-001"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell('incident_id = ""\nworkspace = ""\nwait = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import time\ntime.sleep(wait)")]
    template = tmp_path / "slow.ipynb"
    nbformat.write(nb, str(template))
    folder = sample_ws.incidents_dir / incident
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", incident, "--template", str(template),
                             "-p", "wait=60", "-w", str(sample_ws.root)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (folder / ".slow.running.ipynb").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (folder / ".slow.lock").exists()
        with pytest.raises(Exception, match="already in progress"):  # a live run is not taken over
            notebook.run(sample_ws, incident, template)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    result = notebook.run(sample_ws, incident, template)  # the next run takes over the dead one's lock
    assert result.status == "succeeded"
    assert not list(folder.glob(".slow.*"))
    runs = [r for r in _runs(sample_ws, incident) if r.template == "slow"]
    assert [r.status for r in runs] == ["failed", "succeeded"]


def test_cell_timeout_marks_the_cell_that_hung(sample_ws, tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell('incident_id = ""\nworkspace = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import time\ntime.sleep(30)"), nbformat.v4.new_code_cell("1")]
    nbformat.write(nb, str(tmp_path / "hang.ipynb"))
    with pytest.raises(NotebookExecutionError, match="failed in cell 2") as info:
        notebook.run(sample_ws, "INC-20261105-001", tmp_path / "hang.ipynb", timeout=1)
    assert info.value.ename == "CellTimeoutError"
    (run,) = [r for r in _runs(sample_ws, "INC-20261105-001") if r.template == "hang"]
    assert run.status == "failed" and run.error_cell == 2


def test_kernel_is_this_interpreter_and_values_round_trip(sample_ws, tiny_template, tmp_path, monkeypatch):
    # A "python3" kernelspec that wins the name lookup and points nowhere must not matter.
    decoy = tmp_path / "jupyter" / "kernels" / "python3"
    decoy.mkdir(parents=True)
    (decoy / "kernel.json").write_text(json.dumps({"argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f",
                                                            "{connection_file}"], "display_name": "decoy",
                                                   "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    values = [*HOSTILE_STRINGS, "nul \x00", {"k\"ey\n": [1, 2.5, None, True, "ü"]}]
    result = notebook.run(sample_ws, "INC-20261106-001", tiny_template, {"values": values})
    nb = nbformat.read(result.output_path, as_version=4)
    printed = json.loads(nb.cells[-1].outputs[0]["text"])
    assert printed["python"] == sys.executable
    assert printed["values"] == values and printed["incident"] == "INC-20261106-001"


def test_rerun_keeps_the_previous_notebook_timestamped(sample_ws, tiny_template):
    incident = "INC-20261105-001"
    first = notebook.run(sample_ws, incident, tiny_template)
    second = notebook.run(sample_ws, incident, tiny_template)
    (archived,) = notebooks.archived_notebooks(sample_ws, incident, "tiny")
    assert second.archived == str(archived)
    assert archived.name.startswith("tiny.") and archived.name.endswith("Z.ipynb")
    runs = {r.id: r for r in _runs(sample_ws, incident)}
    assert notebooks.notebook_for_run(sample_ws, runs[first.run_id]) == archived
    assert notebooks.notebook_for_run(sample_ws, runs[second.run_id]) == Path(second.output_path)
    stamp = runs[first.run_id].started.strftime("%Y%m%dT%H%M%SZ")
    assert archived.name == f"tiny.{stamp}.ipynb"


def test_run_many_carries_on_past_failures(sample_ws, tiny_template):
    results = notebook.run_many(sample_ws, ["INC-20261106-001", "INC-29990101-001"], template=tiny_template,
                                progress=False)
    assert [r.status for r in results] == ["succeeded", "failed"]
    assert results[1].error["ename"] == "NotFoundError" and results[1].run_id is None
    summary = notebook.summarize(results)
    assert summary["total"] == 2 and summary["failed"] == 1
    assert summary["failures"][0]["incident_id"] == "INC-29990101-001"
    assert json.loads(json.dumps([r.to_dict() for r in results]))


def test_workspace_folder_with_braces(tmp_path, tiny_template):
    # papermill formats paths with the parameters: braces in a folder name must stay braces.

    ws = workbench.init(tmp_path / "ws{incident_id}")
    with ws.knowledge_base() as kb:
        kb.create_incident(id="INC-1", title="t", started="2026-11-02T14:03:00Z", services=["a"], who="test")
    result = notebook.run(ws, "INC-1", tiny_template)
    assert result.status == "succeeded" and Path(result.output_path).is_file()
    assert Path(result.output_path).parent == ws.root / "incidents" / "INC-1"
