"""Postmortem: the per-incident notebook and the review decisions taken in it.

:mod:`.chapters` gathers each chapter's data (summary, timeline, evidence, hypotheses, action
items, checks) for the notebook, the report and the served app; :mod:`.review` records a
reviewer's confirm/reject decision; :mod:`.templates` inspects the parameterized templates and
checks parameters; :mod:`.runner` executes them with papermill (the one module importing it).
"""
from .review import ReviewError, decide
from .runner import NotebookExecutionError, RunResult, run, run_many

__all__ = ["NotebookExecutionError", "ReviewError", "RunResult", "decide", "run", "run_many"]
