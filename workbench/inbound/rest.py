"""The REST API for scripts and chat-ops, as plain functions over the knowledge base.

The Tornado handlers (:mod:`workbench.reports.api`) authenticate, decode and call these; every
function takes parsed JSON and returns JSON-safe dicts, raising :class:`RequestError` (the
status, a code and the field) for anything refused. The OpenAPI description of the same API is
:mod:`workbench.inbound.openapi`.

Writes name the version they read (``version``): a stale one is a 409 whose body carries the
current record (``error.current``), and nothing is written, so two scripts cannot overwrite each
other's decision.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Mapping

from ..errors import ConflictError, NotFoundError, StoreError
from ..formats import iso_utc
from ..kpis.summary import summarize
from ..postmortem import review
from ..store.records import ACTION_STATUSES, INCIDENT_STATUSES, SEVERITIES
from .limits import RequestError, invalid
from .remediation import fix_status

#: Largest page of a list.
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
CREATE_FIELDS = ("title", "started", "services", "severity", "environment", "detected", "mitigated", "resolved",
                 "status", "labels", "links")


# --------------------------------------------------------------------------- JSON shapes

def plain(value: Any) -> Any:
    """A record's values JSON-safe: times ISO 8601 with ``Z``, dates ISO, tuples lists."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def job_state(jobs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The incident's job state from its newest job of each kind: ``none``, ``queued``, ``running``,
    ``done`` or ``failed`` (failed wins, then running, then queued), with the failed job's error."""
    if not jobs:
        return {"state": "none", "kind": None, "error": None, "jobs": {}}
    order = ("failed", "running", "queued", "done")
    worst = min(jobs.values(), key=lambda j: (order.index(j.status), -j.id))
    return {"state": worst.status, "kind": worst.kind, "error": worst.error if worst.status == "failed" else None,
            "jobs": {kind: {"id": j.id, "status": j.status, "attempts": j.attempts, "error": j.error,
                            "finished_at": iso_utc(j.finished_at)} for kind, j in jobs.items()}}


def incident_json(incident: Any, jobs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out = plain(incident.to_dict())
    out["job"] = job_state(jobs)
    return out


# --------------------------------------------------------------------------- reads

def list_incidents(kb: Any, query: Mapping[str, str]) -> dict[str, Any]:
    """``GET /api/v1/incidents``: filters ``status``, ``severity``, ``service``, ``label``
    (``key=value``), ``since``; pages of ``limit`` (≤ 200) from ``offset``, newest first."""
    status = _enum(query.get("status"), "status", INCIDENT_STATUSES)
    severity = _enum(query.get("severity"), "severity", SEVERITIES)
    limit = _int(query.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int(query.get("offset"), "offset", 0, 0, None)
    try:
        incidents = kb.list_incidents(status=status, severity=severity, service=query.get("service") or None,
                                      since=query.get("since") or None, label=query.get("label") or None)
    except StoreError as exc:
        raise invalid(_field_of(exc, ("since", "label")), str(exc)) from None
    incidents.sort(key=lambda i: (i.started, i.id), reverse=True)
    page = incidents[offset:offset + limit]
    jobs = kb.latest_jobs([i.id for i in page])
    return {"items": [incident_json(i, jobs.get(i.id)) for i in page], "total": len(incidents), "limit": limit,
            "offset": offset, "next_offset": offset + limit if offset + limit < len(incidents) else None}


def get_incident(kb: Any, incident_id: str) -> dict[str, Any]:
    """``GET /api/v1/incidents/{id}``: the incident with its hypotheses, conclusions, action items
    (each with its ``fix`` status text), checks and job state."""
    incident = _found(lambda: kb.get_incident(incident_id))
    checks = kb.list_checks(incident_id)
    out = incident_json(incident, kb.latest_jobs([incident_id]).get(incident_id))
    out["hypotheses"] = [plain(h.to_dict()) for h in kb.list_hypotheses(incident_id)]
    out["conclusions"] = [plain(c.to_dict()) for c in kb.list_conclusions(incident_id)]
    items = []
    for item in kb.list_action_items(incident_id):
        record = plain(item.to_dict())
        record["fix"] = fix_status(item, [c for c in checks if c.action_item_id == item.id])
        items.append(record)
    out["action_items"] = items
    out["checks"] = [plain(c.to_dict()) for c in checks]
    return out


def metrics(kb: Any, query: Mapping[str, str]) -> dict[str, Any]:
    """``GET /api/v1/metrics``: MTTD/MTTM/MTTR, recurrence and action items (:func:`workbench.kpis.summary.summarize`)."""
    try:
        return plain(summarize(kb, since=query.get("since") or None, until=query.get("until") or None,
                               service=query.get("service") or None).to_dict())
    except (StoreError, ValueError) as exc:
        raise invalid(_field_of(exc, ("since", "until", "service")), str(exc)) from None


def list_jobs(kb: Any, query: Mapping[str, str]) -> dict[str, Any]:
    """``GET /api/v1/jobs``: newest first, ``status`` (``failed`` for the ones that gave up), ``incident_id``."""
    status = _enum(query.get("status"), "status", ("queued", "running", "done", "failed"))
    limit = _int(query.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    jobs = kb.list_jobs(status=status, incident_id=query.get("incident_id") or None, limit=limit)
    return {"items": [plain(j.to_dict()) for j in jobs], "limit": limit}


# --------------------------------------------------------------------------- writes

def create_incident(kb: Any, body: Any, who: str) -> dict[str, Any]:
    """``POST /api/v1/incidents``: title, started and services required (see the OpenAPI schema)."""
    body = _object(body)
    unknown = [k for k in body if k not in CREATE_FIELDS]
    if unknown:
        raise invalid(unknown[0], f"unknown field; known: {', '.join(CREATE_FIELDS)}")
    for key in ("title", "started", "services"):
        if key not in body:
            raise invalid(key, "required")
    try:
        incident = kb.create_incident(**body, who=who)
    except ConflictError as exc:
        raise RequestError(409, "conflict", str(exc)) from None
    except StoreError as exc:
        raise invalid(_field_of(exc, CREATE_FIELDS), str(exc)) from None
    return incident_json(incident)


def decide(kb: Any, incident_id: str, body: Any) -> dict[str, Any]:
    """``POST /api/v1/incidents/{id}/review``: confirm or reject a hypothesis, exactly as ``workbench
    review`` does (:func:`workbench.postmortem.review.decide`).

    ``version`` is the hypothesis version the reviewer read (required unless ``add`` records a cause
    the engine did not propose); a newer one in the store is a 409 with the current hypothesis.
    """
    body = _object(body)
    known = ("service", "cause", "decision", "reviewer", "rationale", "version", "add")
    unknown = [k for k in body if k not in known]
    if unknown:
        raise invalid(unknown[0], f"unknown field; known: {', '.join(known)}")
    for key in ("service", "cause", "decision", "reviewer", "rationale"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            raise invalid(key, "required text")
    add = body.get("add", False)
    if not isinstance(add, bool):
        raise invalid("add", "expected true or false")
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise invalid("version", "expected the integer version of the hypothesis you read")
    _found(lambda: kb.get_incident(incident_id))
    current = next((h for h in kb.list_hypotheses(incident_id)
                    if (h.service, h.cause) == (body["service"], body["cause"])), None)
    if current is not None and version is None:
        raise invalid("version", "required: the version of the hypothesis you read (GET the incident first)")
    try:
        # The version goes to the store's versioned update: a newer one there refuses the write.
        stored = review.decide(kb, incident_id, body["service"], body["cause"], body["decision"],
                               reviewer=body["reviewer"], rationale=body["rationale"], add=add, version=version)
    except ConflictError as exc:
        latest = next((h for h in kb.list_hypotheses(incident_id) if current is not None and h.id == current.id), None)
        raise RequestError(409, "conflict", f"{exc}; nothing was written", field="version",
                           details={"current": None if latest is None else plain(latest.to_dict())}) from None
    except review.ReviewError as exc:
        raise invalid("decision", str(exc)) from None
    except NotFoundError as exc:
        raise RequestError(404, "not_found", str(exc), field="service") from None
    except StoreError as exc:
        raise invalid(_field_of(exc, ("reviewer", "rationale", "cause", "service")), str(exc)) from None
    return plain(stored.to_dict())


def update_action_item(kb: Any, item_id: str, body: Any, who: str) -> dict[str, Any]:
    """``PATCH /api/v1/action-items/{id}``: ``status`` (and/or ``ticket``) at the ``version`` read."""
    body = _object(body)
    known = ("status", "ticket", "version", "who")
    unknown = [k for k in body if k not in known]
    if unknown:
        raise invalid(unknown[0], f"unknown field; known: {', '.join(known)}")
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise invalid("version", "required: the integer version of the action item you read")
    changes = {k: body[k] for k in ("status", "ticket") if k in body}
    if not changes:
        raise invalid("status", "nothing to change: give status and/or ticket")
    if "status" in changes:
        _enum(changes["status"], "status", ACTION_STATUSES)
    author = body.get("who") if body.get("who") is not None else who
    if not isinstance(author, str) or not author.strip():
        raise invalid("who", "expected the name of whoever made the change")
    try:
        item = kb.update_action_item(item_id, version, author, **changes)
    except NotFoundError as exc:
        raise RequestError(404, "not_found", str(exc)) from None
    except ConflictError as exc:
        current = next((a for a in kb.list_action_items() if a.id == item_id), None)
        raise RequestError(409, "conflict", f"{exc}", field="version",
                           details={"current": None if current is None else plain(current.to_dict())}) from None
    except StoreError as exc:
        raise invalid(_field_of(exc, ("status", "ticket", "who")), str(exc)) from None
    return plain(item.to_dict())


# --------------------------------------------------------------------------- helpers

def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid(None, "expected a JSON object")
    return body


def _found(read: Any) -> Any:
    try:
        return read()
    except NotFoundError as exc:
        raise RequestError(404, "not_found", str(exc)) from None
    except StoreError as exc:  # an id the store refuses (e.g. characters outside [A-Za-z0-9._-])
        raise RequestError(404, "not_found", str(exc)) from None


def _enum(value: Any, field: str, allowed: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise invalid(field, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _int(value: Any, field: str, default: int, lo: int, hi: int | None) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(field, f"expected a whole number, got {value!r}") from None
    if number < lo or (hi is not None and number > hi):
        raise invalid(field, f"expected a number from {lo}" + (f" to {hi}" if hi is not None else "") +
                      f", got {number}")
    return number


def _field_of(exc: Exception, fields: tuple[str, ...]) -> str | None:
    """The field a store error names (``field 'links[0].url': ...``), when it is one of ``fields``."""
    text = str(exc)
    marker = "field '"
    if marker in text:
        name = text.split(marker, 1)[1].split("'", 1)[0]
        if name.split("[")[0].split(".")[0] in fields:
            return name
    return None
