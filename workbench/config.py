"""Settings: ``workbench.toml`` and its ``WORKBENCH_*`` environment overrides.

Every setting in ``workbench.toml`` can be overridden by an environment variable
``WORKBENCH_<NAME>`` (upper case); ``WORKBENCH_HOME`` selects the workspace itself
(:mod:`workbench.workspace` opens it).

``workbench.toml``::

    [workbench]
    database_url = "sqlite:///workbench.sqlite"   # relative SQLite paths are inside the workspace
    step = "1min"                                  # alignment step of the analysis
    detector = "knn"                               # default metric detector
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG_FILE = "workbench.toml"
ENV_PREFIX = "WORKBENCH_"
HOME_ENV = "WORKBENCH_HOME"


@dataclass(frozen=True)
class Settings:
    """Settings of one workspace (file values, then environment overrides).

    Attributes
    ----------
    database_url : str
        SQLAlchemy URL of the knowledge base; ``sqlite:///relative.sqlite`` is resolved inside
        the workspace.
    step : str
        Alignment step of metrics, log counts and span statistics (a pandas offset alias).
    detector : str
        Default metric detector name (see ``workbench.signals.detect``).
    """

    database_url: str = "sqlite:///workbench.sqlite"
    step: str = "1min"
    detector: str = "knn"
    extra: dict[str, Any] = field(default_factory=dict)


def load_settings(path: Path, environ: dict[str, str] | None = None) -> Settings:
    """Read ``[workbench]`` from ``path`` and apply ``WORKBENCH_*`` environment overrides."""
    environ = os.environ if environ is None else environ
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    section = data.get("workbench", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [workbench] must be a table")
    known = {f.name for f in fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in section.items():
        if key in known:
            if not isinstance(value, str):
                raise ConfigError(f"{path}: workbench.{key} must be a string, got {type(value).__name__}")
            values[key] = value
        else:
            extra[key] = value
    for key in known:
        env = environ.get(ENV_PREFIX + key.upper())
        if env is not None:
            values[key] = env
    extra.update({k: v for k, v in data.items() if k != "workbench"})
    return Settings(**values, extra=extra)


def write_settings(path: Path, database_url: str | None = None) -> None:
    """Write a new ``workbench.toml`` with the default settings (and ``database_url`` if given)."""
    url = database_url or Settings.database_url
    path.write_text(
        "# Postmortem workbench workspace. Every key can be overridden by WORKBENCH_<KEY>.\n"
        "[workbench]\n"
        f"database_url = {_toml_string(url)}\n"
        f"step = {_toml_string(Settings.step)}\n"
        f"detector = {_toml_string(Settings.detector)}\n",
        encoding="utf-8",
    )


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
