"""Executed notebooks on disk: reading them, their per-cell timings, the run they belong to, and
keeping the previous one when a run replaces it.

Plain JSON (no nbformat or papermill needed; only signing a run's notebook, :mod:`.outputs`, uses
nbformat, which comes with papermill). An unreadable file raises :class:`~workbench.errors.NotebookError`.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ..errors import NotebookError
from ..workspace import Workspace, open_workspace
from .outputs import sign_file, static_outputs

#: How an archived notebook's start time is written into its name.
STAMP = "%Y%m%dT%H%M%SZ"


def read_notebook(path: Path) -> dict[str, Any]:
    """A notebook file as a dict (plain JSON), or :class:`~workbench.errors.NotebookError`."""
    # Plain JSON: validation must work before (and without) nbformat/papermill.
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotebookError(f"{path}: not a readable notebook: {exc}") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise NotebookError(f"{path}: not a Jupyter notebook (nbformat 4 JSON with a 'cells' list)")
    return nb


def cell_source(cell: Mapping[str, Any]) -> str:
    """A cell's source as one string."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cell_timings(notebook_path: str | os.PathLike[str]) -> list[tuple[int, str, float | None]]:
    """Per-cell execution times papermill recorded in an executed notebook.

    Returns
    -------
    list of (int, str, float or None)
        ``(index, first line of the source, seconds)`` for every code cell, in notebook order;
        seconds is None for a cell that did not run.
    """
    out = []
    for i, cell in enumerate(read_notebook(Path(notebook_path))["cells"]):
        if cell.get("cell_type") == "code":
            duration = cell.get("metadata", {}).get("papermill", {}).get("duration")
            lines = cell_source(cell).strip().splitlines()
            out.append((i, lines[0] if lines else "", None if duration is None else float(duration)))
    return out


def notebook_timings(notebook_path: str | os.PathLike[str]) -> dict[str, float]:
    """Seconds of an executed notebook: ``kernel_start`` (from papermill's start until the first
    cell started: kernel launch and start-up), ``cells`` (sum of cell durations) and ``notebook``
    (papermill's whole duration, including kernel shutdown)."""
    nb = read_notebook(Path(notebook_path))
    meta = nb.get("metadata", {}).get("papermill", {})
    starts = [c["metadata"]["papermill"]["start_time"] for c in nb["cells"]
              if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    out: dict[str, float] = {"cells": sum(d for _, _, d in cell_timings(notebook_path) if d is not None)}
    if meta.get("start_time") and starts:
        out["kernel_start"] = (parse_time(min(starts)) - parse_time(meta["start_time"])).total_seconds()
    if meta.get("duration") is not None:
        out["notebook"] = float(meta["duration"])
    return out


def archived_notebooks(workspace: Workspace | str | os.PathLike[str], incident_id: str,
                       template: str = "postmortem") -> list[Path]:
    """Earlier executed notebooks of ``template`` for the incident, oldest first."""
    ws = open_workspace(workspace)
    folder = ws.incidents_dir / incident_id
    pattern = re.compile(re.escape(template) + r"\.\d{8}T\d{6}Z(-\d+)?\.ipynb")
    return sorted(p for p in folder.glob(f"{template}.*.ipynb") if pattern.fullmatch(p.name))


def notebook_for_run(workspace: Workspace | str | os.PathLike[str], run: Any) -> Path | None:
    """The executed notebook of a run record (``kb.list_runs()`` item): the current one, the last
    failed one or an archived one whose metadata carries the run's id; None when it is gone."""
    ws = open_workspace(workspace)
    folder = ws.incidents_dir / run.incident_id
    current, failed = folder / f"{run.template}.ipynb", folder / f"{run.template}.failed.ipynb"
    for path in [current, failed, *reversed(archived_notebooks(ws, run.incident_id, run.template))]:
        if path.is_file() and read_metadata(path).get("run_id") == run.id:
            return path
    return None


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        return read_notebook(path).get("metadata", {}).get("workbench", {}) or {}
    except NotebookError:
        return {}


def stamp_metadata(output: Path, values: dict[str, Any]) -> None:
    """Tie the executed notebook to its run record (``metadata.workbench``), make its widget outputs
    static and sign it, so it displays when opened (:mod:`.outputs` says why)."""
    if not output.exists():
        return
    nb = read_notebook(output)
    nb.setdefault("metadata", {})["workbench"] = values
    static_outputs(nb)
    tmp = output.with_name(f".{output.name}.tmp")
    # nbformat's own layout (so diffs stay small), without its schema validation pass.
    tmp.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, output)
    sign_file(output)


def archive(output: Path) -> Path | None:
    """Move the previous executed notebook aside, named after the time its run started."""
    if not output.exists():
        return None
    started = read_metadata(output).get("started")
    if not started:
        try:
            started = read_notebook(output).get("metadata", {}).get("papermill", {}).get("start_time")
        except NotebookError:
            started = None
    when = parse_time(started) if started else datetime.fromtimestamp(output.stat().st_mtime, timezone.utc)
    stem = f"{output.stem}.{when.astimezone(timezone.utc).strftime(STAMP)}"
    target, n = output.with_name(f"{stem}.ipynb"), 1
    while target.exists():  # two runs started within one second
        n += 1
        target = output.with_name(f"{stem}-{n}.ipynb")
    os.replace(output, target)
    return target


def error_cell(output: Path, last_started: bool = False) -> int | None:
    """Index of the first cell with an error output in the notebook on disk; with
    ``last_started``, else the last cell that started (a timeout or a dead kernel leaves no error
    output, and cells run one after the other)."""
    try:
        cells = read_notebook(output)["cells"] if output.exists() else []
    except NotebookError:
        return None
    for i, cell in enumerate(cells):
        if any(o.get("output_type") == "error" for o in cell.get("outputs") or []):
            return i
    started = [i for i, c in enumerate(cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    return started[-1] if last_started and started else None


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
