"""Settings of the receivers, the REST API and the job queue: ``[receivers]`` in ``workbench.toml``.

::

    [receivers]
    merge_window = "30m"          # a firing group updates the incident its group opened within this time
    service_label = "service"     # alert label naming the service
    severity_label = "severity"   # alert label mapped to SEV1..SEV5 (severity_map)
    environment_label = "environment"
    resolved_status = "resolved"  # what a resolved notification sets: "resolved" or "mitigated"
    max_body = "5MiB"             # largest request body (after decompression)
    max_depth = 32                # deepest JSON nesting accepted
    max_items = 100000            # spans + log records + metric points in one OTLP request
    rate = 20                     # requests per second per token (sustained) ...
    burst = 200                   # ... and in a burst
    queue = 64                    # OTLP/ingest requests waiting for the store before 503
    debounce = "30s"              # new telemetry / a resolved notification re-queues analysis after this
    job_attempts = 4              # attempts of a job before it is marked failed
    job_backoff = "30s"           # wait after the first failed attempt (doubles each time, at most 1h)
    job_lease = "10m"             # a running job whose worker stopped is taken again after this

    [receivers.severity_map]      # label value (lower case) -> severity; merged over the defaults
    critical = "SEV1"

Every key can also be set with ``WORKBENCH_RECEIVERS_<KEY>`` (e.g. ``WORKBENCH_RECEIVERS_RATE=50``).
The GitHub/any change webhook signature secret is read from ``WORKBENCH_CHANGES_SECRET`` (never
from the file): when it is set, ``POST /api/v1/changes*`` also needs a valid
``X-Hub-Signature-256``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any, Mapping

import pandas as pd

from ..errors import ConfigError

ENV_PREFIX = "WORKBENCH_RECEIVERS_"
SECRET_ENV = "WORKBENCH_CHANGES_SECRET"
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4", "SEV5")
#: Label values (lower case) -> severity; ``P1``..``P5`` and ``SEV1``..``SEV5`` map to themselves.
DEFAULT_SEVERITY_MAP = {
    "critical": "SEV1", "page": "SEV1", "emergency": "SEV1", "high": "SEV2", "error": "SEV2", "major": "SEV2",
    "warning": "SEV3", "warn": "SEV3", "medium": "SEV3", "minor": "SEV4", "low": "SEV4", "info": "SEV4",
    "none": "SEV5",
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.I)
_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000 ** 2, "mib": 1024 ** 2, "gb": 1000 ** 3, "gib": 1024 ** 3}


@dataclass(frozen=True)
class ReceiverSettings:
    """The ``[receivers]`` settings (see the module docstring for the meaning of each)."""

    merge_window: timedelta = timedelta(minutes=30)
    service_label: str = "service"
    severity_label: str = "severity"
    environment_label: str = "environment"
    default_environment: str = "production"
    default_severity: str = "SEV3"
    resolved_status: str = "resolved"
    max_body: int = 5 * 1024 * 1024
    max_depth: int = 32
    max_items: int = 100_000
    rate: float = 20.0
    burst: int = 200
    queue: int = 64
    debounce: timedelta = timedelta(seconds=30)
    job_attempts: int = 4
    job_backoff: timedelta = timedelta(seconds=30)
    job_lease: timedelta = timedelta(minutes=10)
    severity_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SEVERITY_MAP))

    def severity(self, value: Any) -> str:
        """The severity a label value maps to (:attr:`default_severity` when unknown or absent)."""
        if not isinstance(value, str) or not value.strip():
            return self.default_severity
        text = value.strip().lower()
        if text in self.severity_map:
            return self.severity_map[text]
        match = re.fullmatch(r"(?:sev|p)([1-5])", text)
        return f"SEV{match.group(1)}" if match else self.default_severity


def receiver_settings(extra: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                      **overrides: Any) -> ReceiverSettings:
    """Settings from the ``[receivers]`` table of ``workbench.toml`` (``Settings.extra``), the
    environment, then ``overrides`` (tests, benchmarks).

    Raises
    ------
    ConfigError
        Naming ``receivers.<key>``, what was expected and what was given.
    """
    environ = os.environ if environ is None else environ
    table = dict((extra or {}).get("receivers") or {})
    if not isinstance((extra or {}).get("receivers", {}), Mapping):
        raise ConfigError("[receivers] in workbench.toml must be a table")
    names = {f.name: f for f in fields(ReceiverSettings)}
    for key in names:
        env = environ.get(ENV_PREFIX + key.upper())
        if env is not None and key != "severity_map":
            table[key] = env
    table.update(overrides)
    out = ReceiverSettings()
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            raise ConfigError(f"receivers.{key}: unknown setting; known: {', '.join(names)}")
        values[key] = _convert(key, value, getattr(out, key))
    if "severity_map" in values:
        values["severity_map"] = {**DEFAULT_SEVERITY_MAP, **values["severity_map"]}
    return replace(out, **values)


def _convert(key: str, value: Any, default: Any) -> Any:
    where = f"receivers.{key}"
    if isinstance(default, timedelta):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{value}s"
        try:
            span = pd.Timedelta(str(value)).to_pytimedelta()
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a duration such as '30s' or '10m', got {value!r}") from None
        if span < timedelta(0):
            raise ConfigError(f"{where}: expected a positive duration, got {value!r}")
        return span
    if key == "max_body":
        return _size(where, value)
    if isinstance(default, bool) or isinstance(default, int):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
        if number < 1:
            raise ConfigError(f"{where}: expected a number >= 1, got {value!r}")
        return number
    if isinstance(default, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not number > 0:
            raise ConfigError(f"{where}: expected a number > 0, got {value!r}")
        return number
    if key == "severity_map":
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table of label value = \"SEVn\"")
        out = {}
        for label, sev in value.items():
            if sev not in SEVERITIES:
                raise ConfigError(f"{where}.{label}: expected one of {', '.join(SEVERITIES)}, got {sev!r}")
            out[str(label).lower()] = sev
        return out
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected text, got {value!r}")
    if key == "resolved_status" and value not in ("resolved", "mitigated"):
        raise ConfigError(f"{where}: expected 'resolved' or 'mitigated', got {value!r}")
    if key == "default_severity" and value not in SEVERITIES:
        raise ConfigError(f"{where}: expected one of {', '.join(SEVERITIES)}, got {value!r}")
    return value


def _size(where: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ConfigError(f"{where}: expected a size such as '5MiB' or 1048576, got {value!r}")
        number = int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])
    if number < 1024:
        raise ConfigError(f"{where}: expected at least 1 KiB, got {value!r}")
    return number
