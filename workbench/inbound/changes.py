"""Change events (deploys, config changes, feature flags, scaling) from scripts and CI/CD systems.

The shape ``POST /api/v1/changes`` takes (one JSON object)::

    {"service": "payments",                       # required
     "kind": "deploy",                            # deploy | config_change | feature_flag | scale (default deploy)
     "environment": "production",                 # default receivers.default_environment
     "timestamp": "2026-11-02T14:30:00Z",         # default: when received
     "title": "Rolled back payments to v2.14.4",  # the event summary (made from the rest when absent)
     "version": "2.14.4", "previous_version": "2.15.0",
     "commit": "26934b4", "commit_message": "Roll back amount serialisation (PM-1242)",
     "author": "erin", "url": "https://ci.example.com/runs/4242",
     "key": "db.pool.max_size", "old": "5", "new": "50",      # config changes and flags
     "refs": ["PM-1242", "act-0123456789ab"],     # action items or tickets this change implements
     "attributes": {"strategy": "rolling"}}       # anything else, kept as given

Every field but ``service`` is optional; unknown top-level keys are refused naming the closest
known one. It is stored as one event (``events`` table: ``actor``, ``version``, ``previous_version``,
``commit``, ``url``, ``key``, ``old``, ``new``, ``refs``, ``source`` and the free attributes in its
attributes), and a change naming an action item or its ticket applies that item's fix
(:mod:`workbench.inbound.remediation`).

Adapters turn what CI/CD systems already send into this shape: :func:`from_github` (a GitHub
``deployment_status`` webhook event; only ``state: success`` is a change) and :func:`from_argocd`
(an Argo CD notification whose body is ``{"app": {{toJson .app}}, "argocdUrl": "..."}``; only a
``Succeeded`` sync operation is a change).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

import pandas as pd

from ..formats import iso_utc
from .limits import invalid, request_time
from .settings import ReceiverSettings

#: The event kinds a change may have (a subset of the events table's closed vocabulary).
CHANGE_KINDS = ("deploy", "config_change", "feature_flag", "scale")
TEXT_FIELDS = ("service", "kind", "environment", "title", "version", "previous_version", "commit", "commit_message",
               "author", "url", "key", "old", "new")
FIELDS = TEXT_FIELDS + ("timestamp", "refs", "attributes")
#: Longest ``refs`` list.
MAX_REFS = 100


@dataclass
class Change:
    """One change, whatever system sent it (see the module docstring for the fields)."""

    service: str
    kind: str
    environment: str
    timestamp: datetime
    title: str
    source: str
    version: str | None = None
    previous_version: str | None = None
    commit: str | None = None
    commit_message: str | None = None
    author: str | None = None
    url: str | None = None
    key: str | None = None
    old: str | None = None
    new: str | None = None
    refs: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)

    def event(self) -> pd.DataFrame:
        """The change as one raw ``events`` row."""
        attrs: dict[str, Any] = dict(self.attributes)
        for name, value in (("actor", self.author), ("version", self.version),
                            ("previous_version", self.previous_version), ("commit", self.commit),
                            ("commit_message", self.commit_message), ("url", self.url), ("key", self.key),
                            ("old", self.old), ("new", self.new)):
            if value is not None:
                attrs[name] = value
        if self.refs:
            attrs["refs"] = list(self.refs)
        attrs["source"] = self.source
        frame = pd.DataFrame([{"timestamp": self.timestamp, "service": self.service, "environment": self.environment,
                               "kind": self.kind, "summary": self.title, "attributes": attrs}])
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (what an applied action item records as its ``applied_change``)."""
        out = {"service": self.service, "kind": self.kind, "environment": self.environment,
               "timestamp": iso_utc(self.timestamp), "title": self.title, "source": self.source}
        for name in ("version", "previous_version", "commit", "author", "url"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.refs:
            out["refs"] = list(self.refs)
        return out


def parse(payload: Any, settings: ReceiverSettings, *, source: str = "api", now: datetime | None = None) -> Change:
    """Check the documented change shape; refuse anything else naming the field (400)."""
    if not isinstance(payload, Mapping):
        raise invalid(None, "expected a change event JSON object")
    for key in payload:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise invalid(str(key), f"unknown field{hint}; known: {', '.join(FIELDS)}")
    values: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name in ("version", "previous_version",
                                                                                       "old", "new", "commit"):
            value = str(value)  # a version typed as a number is still a version
        if not isinstance(value, str):
            raise invalid(name, f"expected a string, got {type(value).__name__}")
        if not value.strip():
            raise invalid(name, "expected non-empty text")
        values[name] = value
    if "service" not in values:
        raise invalid("service", "required: the service that changed")
    kind = values.pop("kind", "deploy")
    if kind not in CHANGE_KINDS:
        raise invalid("kind", f"expected one of {', '.join(CHANGE_KINDS)}, got {kind!r}")
    when = _when(payload.get("timestamp"), "timestamp", now)
    refs = _refs(payload.get("refs"), "refs")
    attributes = payload.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise invalid("attributes", "expected a JSON object")
    values.setdefault("environment", settings.default_environment)
    title = values.pop("title", None) or _title(kind, values)
    return Change(kind=kind, timestamp=when, title=title, source=source, refs=refs, attributes=dict(attributes),
                  **values)


def from_github(payload: Any, event: str | None, settings: ReceiverSettings, *,
                now: datetime | None = None) -> Change | None:
    """A GitHub ``deployment_status`` event as a change, or None when it is not one (another event,
    a state other than ``success``).

    Mapping: service = ``deployment.payload.service`` or the repository's name; environment =
    ``deployment_status.environment`` (or the deployment's); version = ``deployment.payload.version``
    or ``deployment.ref``; commit = ``deployment.sha``; title = ``deployment.description``; author =
    the deployment's creator; url = the status's ``log_url``/``target_url``/``environment_url``;
    refs = ``deployment.payload.refs``, and keys named in the description; time = the status's
    ``created_at``.
    """
    if event is not None and event != "deployment_status":
        return None
    if not isinstance(payload, Mapping):
        raise invalid(None, "expected a GitHub webhook JSON object")
    status, deployment = payload.get("deployment_status"), payload.get("deployment")
    if not isinstance(status, Mapping) or not isinstance(deployment, Mapping):
        raise invalid("deployment_status", "expected a deployment_status event (deployment_status and deployment)")
    if status.get("state") != "success":
        return None
    extra = deployment.get("payload") if isinstance(deployment.get("payload"), Mapping) else {}
    repo = payload.get("repository") if isinstance(payload.get("repository"), Mapping) else {}
    creator = deployment.get("creator") if isinstance(deployment.get("creator"), Mapping) else {}
    sender = payload.get("sender") if isinstance(payload.get("sender"), Mapping) else {}
    shape: dict[str, Any] = {
        "service": extra.get("service") or repo.get("name"),
        "kind": "deploy",
        "environment": status.get("environment") or deployment.get("environment"),
        "timestamp": status.get("created_at") or status.get("updated_at"),
        "version": extra.get("version") or deployment.get("ref"),
        "previous_version": extra.get("previous_version"),
        "commit": deployment.get("sha"),
        "commit_message": extra.get("commit_message"),
        "title": deployment.get("description") or None,
        "author": creator.get("login") or sender.get("login"),
        "url": status.get("log_url") or status.get("target_url") or status.get("environment_url"),
        "refs": extra.get("refs"),
        "attributes": {"repository": repo.get("full_name"), "deployment_id": deployment.get("id"),
                       "task": deployment.get("task")},
    }
    return parse(_clean(shape), settings, source="github", now=now)


def from_argocd(payload: Any, settings: ReceiverSettings, *, now: datetime | None = None) -> Change | None:
    """An Argo CD notification (``{"app": <Application>, "argocdUrl": ...}``) as a change, or None
    when its sync operation did not succeed.

    Mapping: service = the app's ``workbench.io/service`` label, else its name; environment = its
    ``environment`` label, else the destination namespace; version and commit = the synced
    revision; previous version = the revision before it in ``status.history``; author = who
    started the operation (``automated`` for auto-sync); time = ``operationState.finishedAt``;
    refs = the ``workbench.io/refs`` annotation (comma or space separated) and a top-level
    ``refs`` list; ``commit_message`` may be added by the template.
    """
    if not isinstance(payload, Mapping) or not isinstance(payload.get("app"), Mapping):
        raise invalid("app", "expected an Argo CD notification body {\"app\": {{toJson .app}}, ...}")
    app = payload["app"]
    meta = _map(app.get("metadata"))
    spec, status = _map(app.get("spec")), _map(app.get("status"))
    operation = _map(status.get("operationState"))
    if operation.get("phase") != "Succeeded":
        return None
    labels, annotations = _map(meta.get("labels")), _map(meta.get("annotations"))
    revision = _map(operation.get("syncResult")).get("revision") or _map(status.get("sync")).get("revision")
    history = [h for h in status.get("history") or [] if isinstance(h, Mapping)]
    previous = history[-2].get("revision") if len(history) >= 2 else None
    initiated = _map(_map(operation.get("operation")).get("initiatedBy"))
    name = meta.get("name")
    base = payload.get("argocdUrl")
    refs = re.split(r"[\s,]+", str(annotations.get("workbench.io/refs") or "").strip())
    extra_refs = payload.get("refs") if isinstance(payload.get("refs"), list) else []
    shape = {
        "service": labels.get("workbench.io/service") or name,
        "kind": "deploy",
        "environment": labels.get("environment") or _map(spec.get("destination")).get("namespace"),
        "timestamp": operation.get("finishedAt"),
        "version": revision, "previous_version": previous, "commit": revision,
        "commit_message": payload.get("commit_message"),
        "title": f"Synced {name} to {str(revision)[:12]}" if name and revision else None,
        "author": initiated.get("username") or ("automated" if initiated.get("automated") else None),
        "url": f"{str(base).rstrip('/')}/applications/{name}" if isinstance(base, str) and base and name else None,
        "refs": [r for r in refs if r] + [r for r in extra_refs if isinstance(r, str)],
        "attributes": {"application": name, "namespace": meta.get("namespace"),
                       "repo_url": _map(spec.get("source")).get("repoURL")},
    }
    return parse(_clean(shape), settings, source="argocd", now=now)


# --------------------------------------------------------------------------- helpers

def _title(kind: str, values: Mapping[str, Any]) -> str:
    service = values["service"]
    if kind == "deploy":
        text = f"Deployed {service}" + (f" {values['version']}" if values.get("version") else "")
        return text + (f" (was {values['previous_version']})" if values.get("previous_version") else "")
    if kind in ("config_change", "feature_flag"):
        what = "Config" if kind == "config_change" else "Feature flag"
        key = values.get("key") or "(unnamed)"
        change = f": {values['old']} -> {values['new']}" if values.get("old") or values.get("new") else ""
        return f"{what} {service}: {key}{change}"
    return f"Scaled {service}" + (f" to {values['new']}" if values.get("new") else "")


def _when(value: Any, where: str, now: datetime | None) -> datetime:
    if value is None:
        return now or datetime.now(timezone.utc)
    return request_time(value, where)


def _refs(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise invalid(where, "expected a list of action item ids or ticket keys")
    if len(value) > MAX_REFS:
        raise invalid(where, f"at most {MAX_REFS} refs")
    out = []
    for i, ref in enumerate(value):
        if not isinstance(ref, str) or not ref.strip():
            raise invalid(f"{where}[{i}]", "expected non-empty text")
        out.append(ref)
    return out


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _clean(shape: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values; attributes without their empty entries."""
    out = {k: v for k, v in shape.items() if v not in (None, "", [], {})}
    if "attributes" in out:
        out["attributes"] = {k: v for k, v in out["attributes"].items() if v not in (None, "")}
    for key in ("version", "previous_version", "commit"):
        if key in out and not isinstance(out[key], str):
            out[key] = str(out[key])
    return out

