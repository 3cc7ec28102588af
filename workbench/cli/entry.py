"""The ``workbench`` command's frame: the Typer app, shared options and the one error boundary.

Library errors (:class:`~workbench.errors.WorkbenchError`) become one-line messages with exit code
2 in exactly one place, :func:`main`. Commands that list or show things take ``--json``. The
commands live in the modules beside this one, one per command group.
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Optional

import typer
from typer.exceptions import TyperException

from .. import config
from ..errors import WorkbenchError
from ..formats import aware_time, key_value

app = typer.Typer(help="Postmortem workbench: evidence, hypotheses and follow-up for every incident.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

incident_app = typer.Typer(help="Create, list, show, export and import incidents.", no_args_is_help=True)
app.add_typer(incident_app, name="incident")

WorkspaceOpt = typer.Option(None, "--workspace", "-w", envvar=config.HOME_ENV,
                            help="Workspace folder (default: $WORKBENCH_HOME, then the current folder).")

JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str))


def option_time(value: Optional[str], name: str):
    """An aware UTC time from an option (None stays None); anything else is a usage error."""

    if value is None:
        return None
    try:
        return aware_time(value, name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{name}: "), param_hint=name) from None


def option_pair(text: str, param_hint: str = "--option") -> tuple[str, str]:
    return key_value(text, param_hint, typer.BadParameter, identifier=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every WorkbenchError, and every usage error, becomes one line
    ``workbench: error: …`` on stderr with exit code 2."""
    try:
        app(args=argv, prog_name="workbench", standalone_mode=False)
    except WorkbenchError as exc:
        typer.echo(f"workbench: error: {exc}", err=True)
        return 2
    except TyperException as exc:  # a usage error (typer's click): one line too, naming the option
        typer.echo(f"workbench: error: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    return 0


def reflow_help(group: typer.Typer = app) -> None:
    """Join the hard-wrapped lines of every command's docstring into paragraphs.

    Typer's Rich help keeps a docstring's single line breaks after its first paragraph, so text
    wrapped at 100 columns in the source broke mid-sentence in an 80-column terminal. A line that
    starts a list item (``-``) or is indented keeps its own line.
    """
    for info in group.registered_commands:
        if info.callback is not None and info.callback.__doc__:
            info.callback.__doc__ = _reflow(info.callback.__doc__)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            reflow_help(sub.typer_instance)


def _reflow(doc: str) -> str:
    paragraphs = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines: list[str] = []
        for line in para.split("\n"):
            if lines and line.strip() and not line.startswith((" ", "-", "\b")) and not lines[-1].startswith("\b"):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def percent(probability: float | None) -> str:
    """A confidence as a whole percentage (``-`` when the engine gave none)."""
    return "-" if probability is None else f"{100 * probability:.0f}%"
