"""The workbench's errors: one base class, one subclass per kind of failure.

The CLI turns every :class:`WorkbenchError` into a one-line message with exit code 2 (in one
place, ``workbench.cli``); notebooks let them propagate so papermill marks the failing cell.
"""
from __future__ import annotations

from typing import Any


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class ConfigError(WorkbenchError):
    """A setting in ``workbench.toml`` or the environment is missing or invalid."""


class SourceError(WorkbenchError):
    """A source could not be read (missing file, unreadable format, bad mapping)."""


class SchemaError(WorkbenchError):
    """Telemetry failed validation against the unified schema.

    Attributes
    ----------
    table : str
        The unified table being validated (``metrics``, ``logs`` ...).
    source : str
        Where the rows came from (a file path or a source URL).
    failures : list of dict
        One dict per failed check: ``column``, ``check`` (what was expected), ``count`` (how many
        rows failed) and ``rows`` (the first offending rows, as dicts with their index).
    """

    def __init__(self, table: str, source: str, failures: list[dict[str, Any]]):
        self.table = table
        self.source = source
        self.failures = failures
        super().__init__(self._message())

    def _message(self) -> str:
        parts = []
        for f in self.failures:
            rows = f.get("rows") or []
            shown = "; ".join(_short(r) for r in rows[:3])
            more = f" (first rows: {shown})" if shown else ""
            parts.append(f"column {f['column']!r}: expected {f['check']}, {f['count']} row(s) failed{more}")
        return f"{self.source}: {self.table} table is invalid: " + " | ".join(parts)


def _short(row: Any, limit: int = 160) -> str:
    text = repr(row)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UnknownNameError(WorkbenchError, KeyError):
    """A registry lookup failed; the message suggests the closest known names."""

    def __init__(self, kind: str, name: str, known: list[str], where: str | None = None):
        import difflib

        self.kind, self.name, self.known, self.where = kind, name, sorted(known), where
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}unknown {kind} {name!r} (known: {', '.join(self.known) or 'none'}){hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ParameterError(WorkbenchError, ValueError):
    """An argument of a library call is outside what it accepts (the message names the argument,
    the allowed values and the value received)."""


class DetectionError(WorkbenchError, ValueError):
    """Data a detector cannot work with (too few baseline rows, NaN, wrong shape, not fitted).

    Also a :class:`ValueError`, like PyOD's own input errors.
    """


class MetricsError(WorkbenchError, ValueError):
    """An argument of a metrics function is out of range (the message names it and the value)."""


class CriterionError(WorkbenchError, ValueError):
    """A verification criterion is malformed; the message names the field and the allowed values."""


class StoreError(WorkbenchError):
    """The knowledge base could not be opened, migrated or written."""


class NotFoundError(StoreError):
    """A record (incident, hypothesis, action item ...) does not exist."""


class ConflictError(StoreError):
    """A write was based on a stale version of a record; nothing was changed."""


class NotebookError(WorkbenchError):
    """A notebook file cannot be read (not JSON, not nbformat 4)."""


class TemplateParameterError(WorkbenchError):
    """A notebook parameter is not declared by the template, or has an unsafe name or type."""


class MissingDependencyError(WorkbenchError, ImportError):
    """An optional dependency is missing; the message names the pip extra that provides it."""
