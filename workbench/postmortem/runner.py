"""Run parameterised notebook templates with papermill, and record every run in the knowledge base.

``run(workspace, "INC-20261102-001")`` executes ``notebooks/templates/postmortem.ipynb`` into
``<workspace>/incidents/INC-20261102-001/postmortem.ipynb``; ``run_many`` does it for several
incidents and carries on past failures. Templates and their parameters are found, read and
checked by :mod:`workbench.postmortem.templates`; executed notebooks on disk are :mod:`workbench.postmortem.notebooks`'. This is the one core module that imports papermill, and it
does so lazily: without the ``notebook`` extra only running fails, with
:class:`~workbench.errors.MissingDependencyError` naming ``postmortem-workbench[notebook]``.

Guarantees
----------
- Parameters are checked against the template before anything else happens (no kernel, no
  knowledge-base write, no file): papermill pastes parameter *names* into code unescaped and turns
  values of types it does not know into code with ``str()``, so only names the template's
  ``parameters`` cell declares, that are identifiers and not keywords, are accepted, with values of
  exactly ``str``, ``int``, ``float`` (finite), ``bool``, ``None``, ``list`` and ``dict`` (string
  keys), nested; each value must also fit the kind and range the template declares for it
  (:func:`workbench.postmortem.templates.parameter_rules`: a time with a zone, hours in a range,
  a registered detector). Strings reach the notebook byte-identically, as data.
- ``incident_id`` and ``workspace`` are passed automatically; every template declares them.
- The kernel is the interpreter running this code (``sys.executable``), whatever kernelspec named
  ``python3`` a user or system folder holds; ``kernel="name"`` picks a kernelspec by name instead.
  It starts in the incident folder; its own console output goes to a temporary file whose tail is
  quoted when the kernel dies.
- Every run is recorded: ``running`` before the kernel starts, then ``succeeded`` or ``failed`` with
  the failing cell's index (in the executed notebook on disk, where that cell shows the error) and
  the output path relative to the workspace. A failed run never replaces the last good notebook:
  the kernel writes into a hidden partial file, which becomes ``<template>.ipynb`` only when every
  cell succeeded, else ``<template>.failed.ipynb`` (kept for the error) and
  :class:`NotebookExecutionError` is raised; nothing else in the knowledge base is changed by the runner.
- One run of a template per incident at a time (a lock file naming the process). A run killed with
  ``kill -9`` leaves its lock, its partial file and a ``running`` record; the next run sees the
  process is gone, marks that record ``failed`` and removes both files. Its kernel exits by itself
  when the runner dies (ipykernel watches its parent).
- Re-running keeps the previous executed notebook, renamed ``<template>.<UTC start>.ipynb``
  (``postmortem.20261127T031500Z.ipynb``) after the time its run started; its metadata
  (``workbench.run_id``) ties it to its run record (see :func:`notebook_for_run`).
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from ..errors import ConflictError, MissingDependencyError, StoreError, UnknownNameError, WorkbenchError
from ..processes import alive, token
from ..formats import iso_utc
from ..workspace import Workspace, open_workspace
from .notebooks import archive, error_cell, notebook_timings, stamp_metadata
from .templates import run_values, template_path

#: The pip extra that provides papermill, nbclient and ipykernel.
EXTRA = "postmortem-workbench[notebook]"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookExecutionError(WorkbenchError):
    """A notebook run failed: a cell raised, or the kernel could not start or died.

    Attributes
    ----------
    cell_index : int or None
        Index of the failing cell in the executed notebook on disk (None when no cell failed, e.g.
        the kernel did not start).
    execution_count : int or None
        The ``In [n]`` label of the failing cell.
    ename, evalue : str
        The exception's type name and message (as the kernel reported them).
    traceback : list of str
        The kernel's traceback lines without terminal colours.
    result : RunResult
        The recorded run (status ``failed``, the notebook's path, the run id).
    """

    def __init__(self, message: str, *, cell_index: int | None, ename: str, evalue: str,
                 execution_count: int | None = None, traceback: Iterable[str] = (), result: "RunResult | None" = None):
        super().__init__(message)
        self.cell_index = cell_index
        self.execution_count = execution_count
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback)
        self.result = result


@dataclass
class RunResult:
    """One notebook run.

    Attributes
    ----------
    incident_id, template : str
    output_path : str or None
        Absolute path of the executed notebook (None when nothing was executed).
    status : str
        ``succeeded`` or ``failed``.
    error : dict or None
        ``cell_index``, ``execution_count``, ``ename``, ``evalue`` of a failed run.
    seconds : float
        Wall time of the whole call.
    run_id : str or None
        The knowledge-base run record (None when the run could not be recorded, e.g. an unknown
        incident in :func:`run_many`).
    timings : dict
        Seconds: ``kernel_start`` (kernel start-up until the first cell ran), ``cells`` (sum of
        the cells' durations), ``total`` (as ``seconds``).
    archived : str or None
        Where the previous executed notebook of this template was moved.
    """

    incident_id: str
    template: str
    output_path: str | None
    status: str
    error: dict[str, Any] | None
    seconds: float
    run_id: str | None
    timings: dict[str, float] = field(default_factory=dict)
    archived: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the fields."""
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return data


# --------------------------------------------------------------------------- running

def run(workspace: Workspace | str | os.PathLike[str], incident_id: str,
        template: str | os.PathLike[str] = "postmortem", parameters: Mapping[str, Any] | None = None, *,
        kernel: str | None = None, who: str = "workbench", progress: bool = False,
        timeout: float | None = None) -> RunResult:
    """Execute ``template`` for one incident into ``incidents/<id>/<template>.ipynb`` and record the run.

    Parameters
    ----------
    workspace : Workspace or path
    incident_id : str
    template : str or path
        A bundled template's name (``postmortem``, ``recurrence``) or a notebook path.
    parameters : mapping, optional
        Values for parameters the template declares (``incident_id`` and ``workspace`` are set
        from the arguments).
    kernel : str, optional
        A kernelspec name; default: a kernel of the interpreter running this code.
    who : str
        Recorded as the author of the run record.
    progress : bool
        Show papermill's per-cell progress bar on stderr.
    timeout : float, optional
        Seconds a single cell may run (default: no limit).

    Returns
    -------
    RunResult
        Status ``succeeded``.

    Raises
    ------
    TemplateParameterError, UnknownNameError
        Bad parameters or template; nothing was started or recorded.
    NotFoundError
        No such incident; nothing was started or recorded.
    MissingDependencyError
        papermill (the ``notebook`` extra) is not installed.
    NotebookExecutionError
        A cell failed or the kernel died: the run is recorded ``failed`` with the cell index and
        the executed notebook stays on disk (``exc.result`` is the :class:`RunResult`).
    """
    t0 = time.perf_counter()
    ws = open_workspace(workspace)
    path = template_path(template)
    name = path.stem
    values = run_values(path, parameters, incident_id=incident_id, workspace=str(ws.root))
    kernel_class = _kernel_check(kernel)
    with ws.knowledge_base() as kb:
        kb.get_incident(incident_id)  # NotFoundError before anything is written
        out_dir = ws.incidents_dir / incident_id
        if out_dir.resolve().parent != ws.incidents_dir.resolve():
            raise StoreError(f"incident id {incident_id!r} cannot name a folder under {ws.incidents_dir}")
        papermill = _papermill()
        output = ws.incident_dir(incident_id) / f"{name}.ipynb"
        # The kernel writes into a hidden partial notebook: the last good notebook is replaced only
        # by a run that succeeded; a failed run is kept beside it as <template>.failed.ipynb.
        partial, failed_output = out_dir / f".{name}.running.ipynb", out_dir / f"{name}.failed.ipynb"
        with _run_lock(out_dir / f".{name}.lock", partial, kb, incident_id, name, who):
            started = datetime.now(timezone.utc)
            record = kb.start_run(incident_id, template=name, parameters=_storable(values), started=started, who=who)
            result = RunResult(incident_id, name, str(output), "failed", None, 0.0, record.id)
            failure: NotebookExecutionError | None = None
            try:
                failure = _execute(papermill, kernel_class, kernel, path, partial, values, out_dir, progress, timeout)
                stamp_metadata(partial, {"run_id": record.id, "incident_id": incident_id, "template": name,
                                         "template_path": str(path), "started": iso_utc(started), "who": who})
                result.timings = notebook_timings(partial) if partial.exists() else {}
                if failure is None:
                    archived = archive(output)
                    result.archived = None if archived is None else str(archived)
                    os.replace(partial, output)
                elif partial.exists():
                    os.replace(partial, failed_output)
            except Exception as exc:  # whatever broke, the run is recorded as failed
                failure = NotebookExecutionError(f"{type(exc).__name__}: {exc}", cell_index=None,
                                                 ename=type(exc).__name__, evalue=str(exc))
                failure.__cause__ = exc
                if partial.exists():
                    os.replace(partial, failed_output)
            except BaseException:
                # Interrupted: the record must not stay "running" for ever, nor the partial notebook stay.
                partial.unlink(missing_ok=True)
                kb.finish_run(record.id, "failed", who=who)
                raise
            result.seconds = time.perf_counter() - t0
            result.timings["total"] = result.seconds
            if failure is None:
                result.status = "succeeded"
                kb.finish_run(record.id, "succeeded", output_path=_relative(output, ws), who=who)
                return result
            result.error = {"cell_index": failure.cell_index, "execution_count": failure.execution_count,
                            "ename": failure.ename, "evalue": failure.evalue}
            result.output_path = str(failed_output) if failed_output.exists() else None
            kb.finish_run(record.id, "failed", error_cell=failure.cell_index,
                          output_path=_relative(failed_output, ws) if failed_output.exists() else None, who=who)
        failure.result = result
        where = "the kernel" if failure.cell_index is None else f"cell {failure.cell_index}"
        if failure.execution_count is not None:
            where += f" (In [{failure.execution_count}])"
        failure.args = (f"{incident_id}: {name} failed in {where}: {failure.ename}: {_first_line(failure.evalue)}"
                        + (f"; see {failed_output}" if failed_output.exists() else "")
                        + (f" (the last good notebook stays at {output})" if output.exists() else ""),)
        raise failure


def run_many(workspace: Workspace | str | os.PathLike[str], incident_ids: Iterable[str] | None = None, *,
             since: Any = None, template: str | os.PathLike[str] = "postmortem",
             parameters: Mapping[str, Any] | None = None, kernel: str | None = None, who: str = "workbench",
             progress: bool = True, timeout: float | None = None) -> list[RunResult]:
    """Run ``template`` for several incidents, one after the other, carrying on past failures.

    Parameters
    ----------
    incident_ids : iterable of str, optional
        The incidents; with ``since`` only those that started at or after it.
    since : str or datetime, optional
        Without ``incident_ids``: every incident that started at or after ``since``.
    progress : bool
        A progress bar over the incidents on stderr.

    Other parameters are those of :func:`run` (the same ``parameters`` for every incident).

    Returns
    -------
    list of RunResult
        One per incident, in order; failed ones carry ``error`` (an unknown incident has
        ``run_id`` None). :func:`summarize` turns the list into counts.

    Raises
    ------
    TemplateParameterError, UnknownNameError, MissingDependencyError
        Before any run: bad template or parameters, no papermill.
    """
    from tqdm import tqdm

    ws = open_workspace(workspace)
    path = template_path(template)
    run_values(path, parameters)
    _kernel_check(kernel)
    _papermill()
    with ws.knowledge_base() as kb:
        if incident_ids is None:
            if since is None:
                raise WorkbenchError("run_many needs incident ids or since= (a time); neither was given")
            ids = [i.id for i in kb.list_incidents(since=since)]
        else:
            ids = list(dict.fromkeys(incident_ids))
            if since is not None:
                recent = {i.id for i in kb.list_incidents(since=since)}
                ids = [i for i in ids if i in recent]
    results: list[RunResult] = []
    failed = 0
    with tqdm(ids, desc=f"run {path.stem}", unit="incident", file=sys.stderr, disable=not progress) as bar:
        for incident_id in bar:
            bar.set_postfix_str(f"{incident_id} ({failed} failed)")
            t0 = time.perf_counter()
            try:
                results.append(run(ws, incident_id, path, parameters, kernel=kernel, who=who, timeout=timeout))
            except NotebookExecutionError as exc:
                results.append(exc.result or _failed(incident_id, path.stem, exc, t0))
            except WorkbenchError as exc:  # unknown incident, store error: this incident only
                results.append(_failed(incident_id, path.stem, exc, t0))
            failed += results[-1].status == "failed"
    return results


def summarize(results: Iterable[RunResult]) -> dict[str, Any]:
    """Counts of a :func:`run_many` list: ``total``, ``succeeded``, ``failed``, ``seconds`` and
    ``failures`` (``incident_id``, ``ename``, ``evalue``, ``cell_index``, ``output_path``)."""
    results = list(results)
    failures = [{"incident_id": r.incident_id, "output_path": r.output_path, **(r.error or {})}
                for r in results if r.status != "succeeded"]
    return {"total": len(results), "succeeded": len(results) - len(failures), "failed": len(failures),
            "seconds": round(sum(r.seconds for r in results), 3), "failures": failures}


# --------------------------------------------------------------------------- internals

def _papermill() -> Any:
    try:
        import papermill
    except ImportError as exc:
        raise MissingDependencyError(f"running notebooks needs papermill ({exc.name} is missing): "
                                     f"pip install '{EXTRA}'") from None
    return papermill


def _kernel_check(kernel: str | None) -> Any:
    """Check the kernel before anything is recorded; return the kernel manager base class."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager
        if kernel is None:
            import ipykernel.kernelspec  # noqa: F401  (the kernel of this interpreter)
    except ImportError as exc:
        raise MissingDependencyError(f"running notebooks needs a Jupyter kernel ({exc.name} is missing): "
                                     f"pip install '{EXTRA}'") from None
    if kernel is not None:
        known = KernelSpecManager().find_kernel_specs()
        if kernel not in known:
            raise UnknownNameError("kernel", kernel, list(known))
    return AsyncKernelManager


def _kernel_manager_class(base: Any, kernel: str | None, log: IO[bytes], cwd: Path) -> Any:
    """A kernel manager that starts the kernel in ``cwd`` with its console output in ``log`` and,
    without a kernel name, runs ``sys.executable``.

    Why not the ``python3`` kernelspec: it is looked up in user and system folders first, and one
    there may point at another interpreter that lacks this workbench.
    """
    from jupyter_client.kernelspec import KernelSpec

    class WorkbenchKernelManager(base):  # type: ignore[misc, valid-type]
        if kernel is None:
            @property
            def kernel_spec(self) -> KernelSpec:
                if self._kernel_spec is None:
                    from ipykernel.kernelspec import RESOURCES, get_kernel_dict

                    self._kernel_spec = KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())
                return self._kernel_spec

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw.update(stdout=log, stderr=log, cwd=str(cwd))
            await super()._async_launch_kernel(kernel_cmd, **kw)

    return WorkbenchKernelManager


def _execute(papermill: Any, base: Any, kernel: str | None, path: Path, output: Path, values: dict[str, Any],
             cwd: Path, progress: bool, timeout: float | None) -> NotebookExecutionError | None:
    """Execute; return the failure (a cell error or a dead kernel) or None."""
    from papermill.exceptions import PapermillExecutionError

    with tempfile.TemporaryFile() as log:
        try:
            # papermill runs str.format(**parameters) on both paths: braces in a folder name must
            # stay braces.
            # shutdown_kernel="immediate": every output has arrived when the last cell ends, and a
            # graceful stop of a kernel holding pandas, DuckDB and scikit-learn took ~3 s per run.
            papermill.execute_notebook(_escape_braces(str(path)), _escape_braces(str(output)), parameters=values,
                                       engine_name=_engine(), kernel_name=kernel or "python3",
                                       progress_bar=progress, log_output=False,
                                       start_timeout=120, execution_timeout=timeout, shutdown_kernel="immediate",
                                       kernel_manager_class=_kernel_manager_class(base, kernel, log, cwd))
        except PapermillExecutionError as exc:
            index = error_cell(output)
            return NotebookExecutionError(str(exc), cell_index=exc.cell_index if index is None else index,
                                          execution_count=exc.exec_count, ename=exc.ename, evalue=exc.evalue,
                                          traceback=[_ANSI.sub("", line) for line in exc.traceback or []])
        except (RuntimeError, OSError, TimeoutError) as exc:
            # nbclient's DeadKernelError and CellTimeoutError are RuntimeErrors; a kernel that
            # cannot start raises RuntimeError or OSError. Quote what the kernel printed.
            log.seek(0)
            tail = _tail(log.read().decode("utf-8", "replace"))
            detail = f"{exc}" + (f" (kernel output: {tail})" if tail else "")
            return NotebookExecutionError(detail, cell_index=error_cell(output, last_started=True),
                                          ename=type(exc).__name__, evalue=detail)
    return None


#: Seconds between two saves of the partial notebook while cells run (papermill saves before and
#: after every cell: 2 x 45 writes of a notebook that holds 1.3 MB of BokehJS took ~0.7 s per run).
SAVE_EVERY = 2.0
_ENGINE = "workbench"


def _engine() -> str:
    """Register papermill's nbclient engine with throttled saves, and name it.

    The partial notebook is still written when the run starts (a killed run leaves it, for the
    next run to clean up), at most every :data:`SAVE_EVERY` seconds while cells run (progress for
    whoever watches), and always at the end, failed or not (papermill's ``notebook_complete``):
    the failing or hung cell's state is on disk for :func:`~workbench.postmortem.notebooks.error_cell`.
    """
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    class ThrottledManager(NotebookExecutionManager):
        _saved = float("-inf")  # the first save (notebook_start) writes

        def save(self, **kwargs: Any) -> None:
            if time.monotonic() - self._saved >= SAVE_EVERY:
                super().save(**kwargs)
                self._saved = time.monotonic()

        def notebook_complete(self, **kwargs: Any) -> None:
            self._saved = float("-inf")  # the final sync always writes
            super().notebook_complete(**kwargs)

    class ThrottledEngine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb: Any, kernel_name: Any, output_path: Any = None, progress_bar: bool = True,
                             log_output: bool = False, autosave_cell_every: int = 30, **kwargs: Any) -> Any:
            manager = ThrottledManager(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                                       autosave_cell_every=autosave_cell_every)
            manager.notebook_start()
            try:
                cls.execute_managed_notebook(manager, kernel_name, log_output=log_output, **kwargs)
            finally:
                manager.cleanup_pbar()
                manager.notebook_complete()
            return manager.nb

    papermill_engines.register(_ENGINE, ThrottledEngine)  # public API; registering again replaces it
    return _ENGINE


@contextmanager
def _run_lock(lock: Path, partial: Path, kb: Any, incident_id: str, template: str, who: str) -> Iterator[None]:
    """One run of a template per incident at a time. A lock left by a killed run (its process is
    gone) is taken over: that run's record becomes ``failed`` and its partial notebook is removed,
    so a ``kill -9`` leaves nothing behind once the next run starts."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            holder = lock.read_text(encoding="utf-8", errors="replace").strip() if lock.exists() else ""
            if holder and alive(holder):
                raise ConflictError(f"{incident_id}: a {template} run is already in progress (process "
                                    f"{holder.split()[0]}); wait for it to finish") from None
            for stale in kb.list_runs(incident_id, status="running"):
                if stale.template == template:
                    kb.finish_run(stale.id, "failed", who=who)
            partial.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
    else:
        raise ConflictError(f"{incident_id}: cannot take the {template} run lock {lock}")
    try:
        os.write(fd, token().encode("ascii"))
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _storable(value: Any) -> Any:
    """The parameters as the knowledge base can hold them: NUL, which PostgreSQL cannot store in
    text, becomes U+2400 (the notebook itself gets the exact value)."""
    if isinstance(value, str):
        return value.replace("\x00", "\u2400")
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def _failed(incident_id: str, template: str, exc: WorkbenchError, t0: float) -> RunResult:
    return RunResult(incident_id, template, None, "failed",
                     {"cell_index": getattr(exc, "cell_index", None), "execution_count": None,
                      "ename": type(exc).__name__, "evalue": str(exc)}, time.perf_counter() - t0, None)


def _relative(path: Path, ws: Workspace) -> str:
    # Relative to the workspace: the record stays valid when the folder moves or is shared.
    try:
        return path.resolve().relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _tail(text: str, lines: int = 5) -> str:
    kept = [line for line in text.strip().splitlines() if "without encryption" not in line]
    return " | ".join(kept[-lines:])
