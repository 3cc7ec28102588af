"""Sources: one module per outside format, registered by URL scheme.

``open_source("nezha:../shared/data/nezha-trainticket")`` looks the scheme up in :data:`registry`
and returns a :class:`~workbench.telemetry.sources.base.Source`; a bare path means the ``files`` source.
Third-party sources register through the ``workbench.sources`` entry-point group.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from ...registry import Registry
from .base import RawFrame, Source, Telemetry

registry: Registry[type[Source]] = Registry("source", entry_point_group="workbench.sources")

#: Built-in source modules, imported on first lookup (not at package import).
_BUILTIN_MODULES = ("files", "otlp", "nezha")
_builtins_loaded = False


def register(scheme: str):
    """Class decorator: register a :class:`Source` subclass under ``scheme``."""

    def decorator(cls: type[Source]) -> type[Source]:
        cls.scheme = scheme
        return registry.register(scheme)(cls)

    return decorator


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for name in _BUILTIN_MODULES:
            importlib.import_module(f"{__name__}.{name}")
        _builtins_loaded = True


def get(scheme: str) -> type[Source]:
    """The source class registered as ``scheme`` (raises UnknownNameError with suggestions)."""
    _load_builtins()
    return registry.get(scheme)


def names() -> list[str]:
    """All registered schemes."""
    _load_builtins()
    return registry.names()


def open_source(url: str, **options: Any) -> Source:
    """Open a source from ``scheme:location``; a bare existing path is read by ``files``."""
    scheme, sep, location = url.partition(":")
    if not sep or (os.path.exists(url) and not scheme.isalpha()) or len(scheme) == 1 or "/" in scheme or "." in scheme:
        scheme, location = "files", url
    return get(scheme)(location, **options)


__all__ = ["RawFrame", "Source", "Telemetry", "get", "names", "open_source", "register", "registry"]
