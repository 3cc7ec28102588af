"""Workspaces and settings.

A workspace is one folder: ``workbench.toml`` (settings), the knowledge base (SQLite by default),
``telemetry/`` (validated Parquet, queried through DuckDB) and ``incidents/<id>/`` (executed
notebooks and reports). Every setting in ``workbench.toml`` can be overridden by an environment
variable ``WORKBENCH_<NAME>`` (upper case); ``WORKBENCH_HOME`` selects the workspace itself.

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
        Default metric detector name (see ``workbench.detect``).
    """

    database_url: str = "sqlite:///workbench.sqlite"
    step: str = "1min"
    detector: str = "knn"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Workspace:
    """An opened workspace folder and its settings."""

    root: Path
    settings: Settings

    @property
    def telemetry_dir(self) -> Path:
        return self.root / "telemetry"

    @property
    def incidents_dir(self) -> Path:
        return self.root / "incidents"

    @property
    def database_url(self) -> str:
        url = self.settings.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + str((self.root / url[len(prefix):]).resolve())
        return url

    def incident_dir(self, incident_id: str) -> Path:
        """``incidents/<id>/``, created on demand (ids are validated by the store)."""
        path = self.incidents_dir / incident_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def knowledge_base(self):
        """Open the workspace's knowledge base (migrated to the current schema)."""
        from .store import KnowledgeBase

        return KnowledgeBase(self.database_url)

    def telemetry(self):
        """The workspace's telemetry store."""
        from .telemetry import TelemetryStore

        return TelemetryStore(self.telemetry_dir)


def init(path: str | os.PathLike[str] | None = None, database_url: str | None = None) -> Workspace:
    """Create (or re-open) a workspace at ``path`` and migrate its knowledge base.

    Idempotent: an existing ``workbench.toml`` is kept as it is.
    """
    root = Path(path if path is not None else os.environ.get(HOME_ENV, ".")).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / CONFIG_FILE
    if not cfg.exists():
        url = database_url or Settings.database_url
        cfg.write_text(
            "# Postmortem workbench workspace. Every key can be overridden by WORKBENCH_<KEY>.\n"
            "[workbench]\n"
            f"database_url = {_toml_string(url)}\n"
            f"step = {_toml_string(Settings.step)}\n"
            f"detector = {_toml_string(Settings.detector)}\n",
            encoding="utf-8",
        )
    ws = open_workspace(root)
    (ws.telemetry_dir).mkdir(exist_ok=True)
    (ws.incidents_dir).mkdir(exist_ok=True)
    ws.knowledge_base().close()
    return ws


def open_workspace(path: str | os.PathLike[str] | None = None) -> Workspace:
    """Open the workspace at ``path`` (default ``$WORKBENCH_HOME``, then the current folder).

    Raises
    ------
    ConfigError
        When the folder has no ``workbench.toml`` or a setting is invalid.
    """
    root = Path(path if path is not None else os.environ.get(HOME_ENV, ".")).expanduser().resolve()
    cfg = root / CONFIG_FILE
    if not cfg.is_file():
        raise ConfigError(f"{root} is not a workspace (no {CONFIG_FILE}); create one with `workbench init {root}`")
    return Workspace(root=root, settings=load_settings(cfg))


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


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
