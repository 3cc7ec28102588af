"""Workspaces: one folder holding the settings, the knowledge base, the telemetry and the outputs.

A workspace is ``workbench.toml`` (settings, :mod:`workbench.config`), the knowledge base (SQLite
by default, :mod:`workbench.store`), ``telemetry/`` (validated Parquet queried through DuckDB,
:mod:`workbench.telemetry`) and ``incidents/<id>/`` (executed notebooks and reports).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import CONFIG_FILE, HOME_ENV, Settings, load_settings, write_settings
from .errors import ConfigError
from .store import KnowledgeBase
from .telemetry.store import TelemetryStore


@dataclass(frozen=True)
class Workspace:
    """An opened workspace folder and its settings.

    ``cache`` holds what one opened workspace computes once and reuses (a notebook's analysis of
    its incident); it lives and dies with this object, never in a module global.
    """

    root: Path
    settings: Settings
    cache: dict = field(default_factory=dict, compare=False, repr=False)

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

    def knowledge_base(self) -> KnowledgeBase:
        """Open the workspace's knowledge base (migrated to the current schema)."""
        return KnowledgeBase(self.database_url)

    def telemetry(self) -> TelemetryStore:
        """The workspace's telemetry store."""
        return TelemetryStore(self.telemetry_dir)


def init(path: str | os.PathLike[str] | None = None, database_url: str | None = None) -> Workspace:
    """Create (or re-open) a workspace at ``path`` and migrate its knowledge base.

    Idempotent: an existing ``workbench.toml`` is kept as it is.
    """
    root = Path(path if path is not None else os.environ.get(HOME_ENV, ".")).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / CONFIG_FILE
    if not cfg.exists():
        write_settings(cfg, database_url)
    ws = open_workspace(root)
    (ws.telemetry_dir).mkdir(exist_ok=True)
    (ws.incidents_dir).mkdir(exist_ok=True)
    ws.knowledge_base().close()
    return ws


def open_workspace(path: Workspace | str | os.PathLike[str] | None = None) -> Workspace:
    """Open the workspace at ``path`` (default ``$WORKBENCH_HOME``, then the current folder).

    An opened :class:`Workspace` is returned as it is, so every function taking "a workspace or
    its folder" calls this once. An empty string means the default too (a notebook template run
    by hand leaves its ``workspace`` parameter empty).

    Raises
    ------
    ConfigError
        When the folder has no ``workbench.toml`` or a setting is invalid.
    """
    if isinstance(path, Workspace):
        return path
    root = Path(path if path not in (None, "") else os.environ.get(HOME_ENV, ".")).expanduser().resolve()
    cfg = root / CONFIG_FILE
    if not cfg.is_file():
        raise ConfigError(f"{root} is not a workspace (no {CONFIG_FILE}); create one with `workbench init {root}`")
    return Workspace(root=root, settings=load_settings(cfg))


