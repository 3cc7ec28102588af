"""Sources: one module per outside format, registered by URL scheme.

``open_source("nezha:../shared/data/nezha-trainticket")`` looks the scheme up in :data:`registry`
and returns a :class:`~workbench.telemetry.sources.base.Source`; a bare path means the ``files`` source.
Third-party sources register through the ``workbench.sources`` entry-point group.

A workspace names the systems it pulls from once, in ``workbench.toml``::

    [sources.prod]                                  # the name: [A-Za-z0-9._-]
    url = "prometheus:https://prometheus.example.com"   # or url = "https://..." with type = "prometheus"
    selectors = ['{namespace="shop"}']              # every other key is an option of the source
    step = "30s"
    bearer_token_env = "PROM_TOKEN"                 # secrets only through *_env / *_file keys

    [sources.alerts]
    url = "alertmanager:http://alertmanager:9093"

``WORKBENCH_SOURCE_<NAME>_URL`` overrides ``url`` (``<NAME>`` upper-cased, other characters than
letters and digits as ``_``). :func:`open_configured` opens one by name; ``workbench ingest prod
--start ... --end ...`` does the same from the command line.
"""
from __future__ import annotations

import importlib
import os
import re
from typing import Any, Mapping

from ...errors import ConfigError, SourceError, UnknownNameError
from ...registry import Registry
from .base import RawFrame, Source, Telemetry

registry: Registry[type[Source]] = Registry("source", entry_point_group="workbench.sources")

#: Built-in source modules, imported on first lookup (not at package import).
_BUILTIN_MODULES = ("files", "otlp", "nezha", "prometheus", "alertmanager")
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
    if scheme in _BUILTIN_MODULES:  # a built-in scheme is its module's name: import only that one
        importlib.import_module(f"{__name__}.{scheme}")
    else:
        _load_builtins()
    return registry.get(scheme)


def names() -> list[str]:
    """All registered schemes."""
    _load_builtins()
    return registry.names()


def open_source(url: str, **options: Any) -> Source:
    """Open a source from ``scheme:location``; a bare existing path is read by ``files``."""
    scheme, location = split_url(url)
    return get(scheme)(location, **options)


def split_url(url: str) -> tuple[str, str]:
    """``(scheme, location)`` of a source URL; a bare path (or ``C:\\...``) is the ``files`` scheme."""
    scheme, sep, location = url.partition(":")
    if not sep or (os.path.exists(url) and not scheme.isalpha()) or len(scheme) == 1 or "/" in scheme or "." in scheme:
        return "files", url
    return scheme, location


_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


def configured(settings: Any, environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """The ``[sources.<name>]`` tables of ``workbench.toml``: name -> (source URL, options).

    Parameters
    ----------
    settings : Settings or mapping
        :class:`workbench.config.Settings` (its ``extra`` holds the tables) or that mapping.
    environ : mapping, optional
        Where ``WORKBENCH_SOURCE_<NAME>_URL`` overrides are read (default ``os.environ``).

    Raises
    ------
    ConfigError
        A table without ``url``, an unknown ``type``, a malformed name.
    """
    environ = os.environ if environ is None else environ
    extra = settings.extra if hasattr(settings, "extra") else settings
    section = (extra or {}).get("sources", {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"sources: expected tables [sources.<name>] with a url, got {section!r}")
    out = {}
    for name, table in section.items():
        where = f"sources.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{where}: a source name is 1-128 characters from [A-Za-z0-9._-]")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table with a url, got {table!r}")
        options = dict(table)
        kind = options.pop("type", None)
        url = environ.get(env_prefix(name) + "URL") or options.pop("url", None)
        options.pop("url", None)
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"{where}.url: required, e.g. \"prometheus:http://prometheus:9090\"")
        url = url.strip()
        if kind is not None:
            if not isinstance(kind, str):
                raise ConfigError(f"{where}.type: expected a source scheme such as prometheus, got {kind!r}")
            if not url.startswith(f"{kind}:"):
                url = f"{kind}:{url}"
        scheme, _ = split_url(url)
        if scheme not in names():
            raise UnknownNameError("source", scheme, names(), where=f"{where}.url")
        out[name] = (url, options)
    return out


def env_prefix(name: str) -> str:
    """``WORKBENCH_SOURCE_<NAME>_`` for a configured source name (``prod-eu`` -> ``WORKBENCH_SOURCE_PROD_EU_``)."""
    return "WORKBENCH_SOURCE_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_"


def open_configured(settings: Any, name: str, environ: Mapping[str, str] | None = None, **overrides: Any) -> Source:
    """Open the source ``[sources.<name>]`` names; ``overrides`` replace its options (e.g. ``match``).

    Raises
    ------
    UnknownNameError
        No such table (the message lists the configured names).
    SourceError
        The table's options are invalid (the message starts with ``sources.<name>``).
    """
    table = configured(settings, environ)
    if name not in table:
        raise UnknownNameError("configured source", name, list(table), where="workbench.toml [sources]")
    url, options = table[name]
    options.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return open_source(url, **options)
    except SourceError as exc:
        raise SourceError(f"sources.{name}: {exc}") from None


def live_sources(settings: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of the configured sources that query a live system (Prometheus, Alertmanager ...)."""
    return [name for name, (url, _) in configured(settings, environ).items() if get(split_url(url)[0]).live]


__all__ = ["RawFrame", "Source", "Telemetry", "configured", "get", "live_sources", "names", "open_configured",
           "open_source", "register", "registry", "split_url"]
