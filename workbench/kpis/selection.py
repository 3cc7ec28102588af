"""Which incidents a cross-incident figure covers: the filters every figure shares.

An incident is selected when ``since <= started < until`` (either bound optional), it lists
``service`` among its services, its severity equals ``severity`` and every given taxonomy label
equals the given value (``label={"symptom": "latency"}`` or ``"symptom=latency"``). Definitions of
every figure: ``docs/metrics.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Any, Mapping

from ..errors import MetricsError
from ..formats import key_value
from ..store.records import LABEL_KEYS, SEVERITIES, Incident, check_enum, check_text, check_time, iso

#: Taxonomy labels counted per value (``confidence`` is a number, not a category).
COUNTED_LABELS = tuple(k for k in LABEL_KEYS if k != "confidence")

PHASES = (("mttd", "detected"), ("mttm", "mitigated"), ("mttr", "resolved"))

PHASE_NAMES = {"mttd": "MTTD (detect)", "mttm": "MTTM (mitigate)", "mttr": "MTTR (resolve)"}


@dataclass(frozen=True)
class Selection:
    """Which incidents a result covers (see "Selection" in the module docstring)."""

    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    severity: str | None = None
    label: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, since: Any = None, until: Any = None, service: str | None = None, severity: str | None = None,
           label: Mapping[str, Any] | str | None = None) -> "Selection":
        """Check and normalise the filters (times to aware UTC, ``"k=v"`` labels to a dict)."""
        since = None if since is None else check_time(since, "since")
        until = None if until is None else check_time(until, "until")
        if since is not None and until is not None and until <= since:
            raise MetricsError(f"until: expected a time after since ({iso(since)}), got {iso(until)}")
        if severity is not None:
            severity = check_enum(severity, "severity", SEVERITIES)
        return cls(since, until, None if service is None else check_text(service, "service"), severity,
                   label_filter(label))

    def contains(self, incident: Incident) -> bool:
        """Whether ``incident`` passes every filter."""
        return ((self.since is None or incident.started >= self.since)
                and (self.until is None or incident.started < self.until)
                and (self.service is None or self.service in incident.services)
                and (self.severity is None or incident.severity == self.severity)
                and all(incident.labels.get(k) == v for k, v in self.label.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"since": iso_or_none(self.since), "until": iso_or_none(self.until), "service": self.service,
                "severity": self.severity, "label": dict(self.label)}


def label_filter(label: Mapping[str, Any] | str | None) -> dict[str, str]:
    if label is None:
        return {}
    if isinstance(label, str):
        key, value = key_value(label, "label (e.g. symptom=latency)", MetricsError)
        label = {key: value}
    if not isinstance(label, Mapping):
        raise MetricsError(f"label: expected key=value or a mapping, got {label!r}")
    for key in label:
        if key not in COUNTED_LABELS:
            raise MetricsError(f"label: expected a key among {', '.join(COUNTED_LABELS)}, got {key!r}")
    return {k: str(v) for k, v in label.items()}


def select(kb: Any, selection: Selection) -> list[Incident]:
    incidents = kb.list_incidents(service=selection.service, severity=selection.severity,
                                  since=selection.since, label=selection.label or None)
    return [i for i in incidents if selection.contains(i)]


def as_of_time(value: Any) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=timezone.utc)
    return check_time(value, "as_of")


def iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)
