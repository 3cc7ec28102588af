"""Postmortem workbench: the public API for notebooks and scripts.

::

    import workbench
    ws = workbench.init("my-workspace")              # or workbench.open_workspace(path)
    workbench.telemetry.ingest(ws, "data/sample")               # validate + store telemetry, import incidents
    result = workbench.analyze(ws, "INC-20261102-001")
    workbench.run(ws, "INC-20261102-001")             # the executed postmortem notebook
    workbench.recheck(ws)                             # the scheduled recurrence check

The names are loaded on first use, so ``import workbench`` (and every ``workbench.<layer>``
import, which runs this file first) stays cheap. The layers, lowest first: ``errors``,
``config``/``registry``/``formats`` → ``store``, ``telemetry`` → ``workspace`` → ``signals`` →
``analysis`` → ``postmortem``, ``kpis``, ``evaluation`` → ``loop`` → ``reports``/``widgets``
(UI) → ``cli``; each imports only from below (an import-linter contract in the tests).
"""
from __future__ import annotations

import importlib
from typing import Any

#: Public name -> "module:attribute" it is loaded from.
_API = {
    "Workspace": "workbench.workspace:Workspace",
    "init": "workbench.workspace:init",
    "open_workspace": "workbench.workspace:open_workspace",
    "ingest": "workbench.telemetry.ingest:ingest",
    "analyze": "workbench.analysis.pipeline:analyze",
    "run": "workbench.postmortem.runner:run",
    "recheck": "workbench.loop.rechecks:recheck",
    "report": "workbench.reports.export:export_report",
    "WorkbenchError": "workbench.errors:WorkbenchError",
    "errors": "workbench.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    try:
        target = _API[name]
    except KeyError:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}") from None
    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
