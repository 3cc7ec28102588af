"""Alertmanager webhook notifications (payload version 4) open, update and resolve incidents.

Rules
-----
- A notification is one alert group: ``groupKey``, ``status`` (``firing`` while any alert fires),
  ``alerts`` (each with ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``).
  Firing alerts carry ``endsAt: 0001-01-01T00:00:00Z`` (no end yet).
- **Which incident**: the one this group (same group key, or an alert fingerprint it already
  brought) opened, if that incident is still open or mitigated, or was resolved less than
  ``merge_window`` ago (a flapping alert re-opens it). Otherwise a firing group opens a new one.
  Writers of one group are serialised (:meth:`KnowledgeBase.lock_alert_group`), so two
  Alertmanager replicas sending the same notification open one incident.
- **A new incident**: title ``<alertname>: <summary annotation>`` of the earliest alert (the
  alert name alone without a summary); services from the ``service_label`` of every alert, in
  order of appearance; severity the highest of the alerts' ``severity_label`` values mapped by
  ``severity_map`` (``default_severity`` otherwise); environment from ``environment_label``;
  ``started`` = ``detected`` = the earliest ``startsAt``; ``runbook_url`` annotations (http/https)
  as links. Analysis (then the notebook and the report) is queued at once.
- **An update** (firing again, or more alerts): services, links and a higher severity are added;
  ``detected`` moves earlier if an alert started earlier; a re-opened incident is ``open`` again
  with its ``mitigated``/``resolved`` cleared. Analysis is re-queued after ``debounce``.
- **Resolved** (every alert of the group resolved): ``resolved_status`` (``resolved`` or
  ``mitigated``) and its time, the latest ``endsAt``, unless a human already moved the incident
  further (in review, monitoring, closed). Analysis is re-queued after ``debounce`` (the window
  now ends).
- Every alert is also an ``alert`` event in the telemetry store (summary ``[FIRING] alertname:
  summary`` or ``[RESOLVED] ...``; labels, annotations, fingerprint, group key, incident id and
  ``truncatedAlerts`` in the attributes), so the timeline and the analysis see it. A re-sent
  notification adds nothing (exact duplicates are dropped).
- Strings are data: stored byte-identically; what the workbench's text rule refuses (NUL, other
  control characters than tab/LF/CR, lone surrogates: :func:`workbench.formats.text_problem`) is
  refused naming the payload field. A ``runbook_url`` that is not http(s) is not made a link
  (links become ``<a href>``) but stays in the event's attributes as received.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import pandas as pd

from ..errors import StoreError
from ..store.inbound import key_hash
from ..store.records import SEVERITIES
from .limits import from_store_error, invalid, request_time
from .settings import ReceiverSettings

#: Incident statuses an alert group may still change.
OPEN_STATUSES = ("open", "mitigated")
#: ``endsAt`` of a firing alert (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"
#: What the knowledge base records as the writer of alert-driven changes.
WHO = "alertmanager"


@dataclass
class Alert:
    """One alert of a notification (times aware UTC; ``ends`` None while firing)."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts: datetime
    ends: datetime | None
    fingerprint: str
    generator_url: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname") or "alert"


@dataclass
class Notification:
    """A parsed Alertmanager notification (payload version 4)."""

    group_key: str
    status: str
    receiver: str
    alerts: list[Alert]
    truncated: int = 0
    external_url: str = ""
    group_labels: dict[str, str] = field(default_factory=dict)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]


@dataclass
class AlertReceipt:
    """What one notification did (the webhook's answer body)."""

    incident_id: str | None
    action: str
    alerts: int
    truncated: int = 0
    jobs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "action": self.action, "alerts": self.alerts,
                "truncated_alerts": self.truncated, "jobs": list(self.jobs), "warnings": list(self.warnings)}


# --------------------------------------------------------------------------- parsing

def parse(payload: Any) -> Notification:
    """Check an Alertmanager webhook payload; refuse anything else naming the field (400)."""
    if not isinstance(payload, Mapping):
        raise invalid(None, "expected an Alertmanager webhook JSON object")
    version = payload.get("version")
    if str(version) != "4":
        raise invalid("version", f"expected Alertmanager's webhook payload version \"4\", got {version!r}")
    group_key = _text(payload, "groupKey", required=True)
    status = payload.get("status")
    if status not in ("firing", "resolved"):
        raise invalid("status", f"expected firing or resolved, got {status!r}")
    items = payload.get("alerts")
    if not isinstance(items, list) or not items:
        raise invalid("alerts", "expected a non-empty list of alerts")
    truncated = payload.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise invalid("truncatedAlerts", f"expected a whole number >= 0, got {truncated!r}")
    alerts = [_alert(item, f"alerts[{i}]") for i, item in enumerate(items)]
    return Notification(group_key=group_key, status=status, receiver=_text(payload, "receiver") or "",
                        alerts=alerts, truncated=truncated, external_url=_text(payload, "externalURL") or "",
                        group_labels=_labels(payload.get("groupLabels"), "groupLabels"))


def _alert(item: Any, where: str) -> Alert:
    if not isinstance(item, Mapping):
        raise invalid(where, "expected an alert object")
    status = item.get("status")
    if status not in ("firing", "resolved"):
        raise invalid(f"{where}.status", f"expected firing or resolved, got {status!r}")
    labels = _labels(item.get("labels"), f"{where}.labels")
    starts = request_time(item.get("startsAt"), f"{where}.startsAt")
    raw_end = item.get("endsAt")
    ends = None if raw_end in (None, "", ZERO_TIME) or str(raw_end).startswith("0001-") else request_time(raw_end, f"{where}.endsAt")
    if status == "firing":
        ends = None  # a firing alert's endsAt is Alertmanager's resolve-timeout estimate, not an end
    elif ends is None:
        raise invalid(f"{where}.endsAt", "a resolved alert needs its end time")
    elif ends < starts:
        raise invalid(f"{where}.endsAt", f"expected a time at or after startsAt ({starts.isoformat()})")
    fingerprint = _text(item, "fingerprint", where=where) or key_hash(json.dumps(labels, sort_keys=True))[:16]
    return Alert(status=status, labels=labels, annotations=_labels(item.get("annotations"), f"{where}.annotations"),
                 starts=starts, ends=ends, fingerprint=fingerprint,
                 generator_url=_text(item, "generatorURL", where=where) or "")


def _labels(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid(where, "expected an object of string values")
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid(f"{where}.{key}", f"expected a string, got {type(item).__name__}")
    return dict(value)


def _text(payload: Mapping, key: str, required: bool = False, where: str = "") -> str | None:
    value = payload.get(key)
    name = f"{where}.{key}" if where else key
    if value is None or value == "":
        if required:
            raise invalid(name, "required")
        return None
    if not isinstance(value, str):
        raise invalid(name, f"expected a string, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- the incident it makes

def incident_fields(note: Notification, settings: ReceiverSettings) -> dict[str, Any]:
    """What the alerts say about the incident: title, services, severity, environment, times, links."""
    alerts = sorted(note.alerts, key=lambda a: a.starts)
    first = alerts[0]
    summary = first.annotations.get("summary") or first.annotations.get("description") or ""
    title = f"{first.name}: {summary}" if summary.strip() else first.name
    services = list(dict.fromkeys(a.labels[settings.service_label] for a in alerts
                                  if (a.labels.get(settings.service_label) or "").strip()))
    severity = min((settings.severity(a.labels.get(settings.severity_label)) for a in alerts), key=SEVERITIES.index)
    environment = next((a.labels[k] for a in alerts for k in (settings.environment_label, "env")
                        if (a.labels.get(k) or "").strip()), settings.default_environment)
    return {"title": title, "services": services, "severity": severity, "environment": environment,
            "started": first.starts, "detected": first.starts, "links": runbooks(alerts)}


def runbooks(alerts: list[Alert]) -> list[dict[str, str]]:
    """``runbook_url`` annotations (http/https only) as incident links, one per URL."""
    out: dict[str, dict[str, str]] = {}
    for a in alerts:
        url = (a.annotations.get("runbook_url") or a.annotations.get("runbook") or "").strip()
        if url.split(":", 1)[0].lower() in ("http", "https") and url not in out:
            out[url] = {"title": f"Runbook: {a.name}", "url": url}
    return list(out.values())


def events(note: Notification, incident_id: str | None, settings: ReceiverSettings) -> pd.DataFrame:
    """One ``alert`` event per alert (raw frame with the unified events columns)."""
    rows = []
    for a in note.alerts:
        state = "FIRING" if a.status == "firing" else "RESOLVED"
        summary = a.annotations.get("summary") or a.annotations.get("description") or ""
        rows.append({
            "timestamp": a.starts if a.status == "firing" else a.ends,
            "service": a.labels.get(settings.service_label) or "unknown_service",
            "environment": next((a.labels[k] for k in (settings.environment_label, "env") if a.labels.get(k)),
                                settings.default_environment),
            "kind": "alert",
            "summary": f"[{state}] {a.name}" + (f": {summary}" if summary else ""),
            "attributes": {"alertname": a.name, "state": a.status, "labels": a.labels, "annotations": a.annotations,
                           "fingerprint": a.fingerprint, "active_since": a.starts.isoformat().replace("+00:00", "Z"),
                           "generator_url": a.generator_url, "group_key": note.group_key, "receiver": note.receiver,
                           "incident_id": incident_id, "truncated_alerts": note.truncated},
        })
    frame = pd.DataFrame(rows)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


# --------------------------------------------------------------------------- applying it

def apply(kb: Any, note: Notification, settings: ReceiverSettings, *, now: datetime | None = None) -> AlertReceipt:
    """Open, update or resolve the incident of ``note`` in one knowledge-base transaction, and queue
    its analysis. The alert events are written by the caller (:func:`events`), with the id."""
    now = now or datetime.now(timezone.utc)
    fingerprints = [a.fingerprint for a in note.alerts]
    receipt = AlertReceipt(incident_id=None, action="ignored", alerts=len(note.alerts), truncated=note.truncated)
    if note.truncated:
        receipt.warnings.append(f"Alertmanager left out {note.truncated} alert(s) of this group (max_alerts)")
    try:
        with kb.transaction():
            kb.lock_alert_group(note.group_key)
            incident, reopen = _match(kb, note, fingerprints, settings, now)
            if incident is None and note.status == "resolved":
                receipt.warnings.append("a resolved notification for a group that opened no incident: nothing to do")
                return receipt
            if incident is None:
                values = incident_fields(note, settings)
                incident = kb.create_incident(**values, status="open", who=WHO)
                receipt.action, delay, reason = "opened", timedelta(0), "alertmanager: new incident"
            elif note.status == "firing":
                incident = _update_firing(kb, incident, note, settings, reopen)
                receipt.action, delay, reason = "updated", settings.debounce, "alertmanager: firing again"
            else:
                incident = _resolve(kb, incident, note, settings)
                receipt.action, delay, reason = "resolved", settings.debounce, "alertmanager: resolved"
            receipt.incident_id = incident.id
            kb.record_alert_group(note.group_key, note.receiver, incident.id, fingerprints,
                                  "firing" if note.status == "firing" else "resolved", at=now)
            job, created = kb.enqueue_job(incident.id, "analysis", reason=reason, delay=delay,
                                          max_attempts=settings.job_attempts)
            receipt.jobs.append(f"{job.kind} #{job.id} ({'queued' if created else job.status})")
    except StoreError as exc:
        # a refused value (400, the field named) or a write that raced a human's edit (503: retried)
        raise from_store_error(exc) from None
    return receipt


def _match(kb: Any, note: Notification, fingerprints: list[str], settings: ReceiverSettings,
           now: datetime) -> tuple[Any, bool]:
    """(the incident this group updates or None, whether a firing group re-opens it)."""
    for group in kb.find_alert_groups(note.group_key, fingerprints):
        incident = kb.get_incident(group.incident_id)
        if incident.status in OPEN_STATUSES:
            return incident, group.status == "resolved"
        ended = incident.resolved or incident.mitigated
        if incident.status == "resolved" and ended is not None and group.last_seen >= now - settings.merge_window:
            return incident, True
    return None, False


def _update_firing(kb: Any, incident: Any, note: Notification, settings: ReceiverSettings, reopen: bool) -> Any:
    values = incident_fields(note, settings)
    changes: dict[str, Any] = {}
    services = list(dict.fromkeys([*incident.services, *values["services"]]))
    if services != list(incident.services):
        changes["services"] = services
    if SEVERITIES.index(values["severity"]) < SEVERITIES.index(incident.severity):
        changes["severity"] = values["severity"]
    urls = {link["url"] for link in incident.links}
    new_links = [link for link in values["links"] if link["url"] not in urls]
    if new_links:
        changes["links"] = [*incident.links, *new_links]
    earliest = values["detected"]
    if incident.detected is None or earliest < incident.detected:
        changes["detected"] = earliest
        if earliest < incident.started:
            changes["started"] = earliest
    if reopen and incident.status in ("resolved", "mitigated"):
        # the group had resolved and fires again: the incident is not over. A re-sent firing group
        # (repeat_interval) never re-opens what a human marked mitigated while it kept firing.
        changes.update(status="open", mitigated=None, resolved=None)
    if not changes:
        return incident
    return kb.update_incident(incident.id, incident.version, who=WHO, **changes)


def _resolve(kb: Any, incident: Any, note: Notification, settings: ReceiverSettings) -> Any:
    if incident.status not in OPEN_STATUSES:
        return incident
    end = max(a.ends for a in note.alerts if a.ends is not None)
    end = max(end, incident.started)
    if settings.resolved_status == "mitigated":
        if incident.status == "mitigated":
            return incident
        return kb.update_incident(incident.id, incident.version, who=WHO, status="mitigated", mitigated=end)
    changes: dict[str, Any] = {"status": "resolved", "resolved": end}
    if incident.mitigated is not None and incident.mitigated > end:
        changes["mitigated"] = end
    return kb.update_incident(incident.id, incident.version, who=WHO, **changes)
