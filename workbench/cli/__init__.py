"""The ``workbench`` command: a thin layer over the library, one module per command group.

:mod:`.entry` holds the Typer app and the one place where library errors become one-line messages
(:func:`main`, the console script); :mod:`.data` (workspaces, ingest, sample, demo),
:mod:`.incidents`, :mod:`.actions`, :mod:`.postmortem` (analyze, run, review, report, signoff), :mod:`.loop`
(recheck, outbox, nudge, metrics), :mod:`.review` (review-pack, review-signoff, suggestion), :mod:`.serve`,
:mod:`.tokens` (token new/list/revoke), :mod:`.jobs` (jobs list/retry) and :mod:`.worker` register their commands
on import.
"""
from . import actions, data, incidents, jobs, loop, postmortem, review, serve, tokens, worker  # noqa: F401  (each registers its commands)
from .entry import app, main, reflow_help

reflow_help()

__all__ = ["app", "main"]
