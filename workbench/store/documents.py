"""Incident documents: one YAML file per incident, and the dict shape sources produce.

The same shape serves three purposes: ``KnowledgeBase.export_incident`` writes it,
``KnowledgeBase.import_incident`` reads it, and sources hand it over in ``Telemetry.incidents``
(a nezha case is just ``id``, ``title``, ``started``, ``services``, ``environment``, ``window``).

Shape
-----
A mapping. Unknown keys are refused (with the closest known key), so a typo never passes silently.
"Time" is an ISO 8601 string with ``Z`` or an offset (``2023-01-29T08:43:04Z``) or, in a dict, a
timezone-aware ``datetime``/``pandas.Timestamp``; naive times are refused. Export writes UTC with
``Z`` (microseconds only when non-zero). "Text" is a non-blank string without NUL characters.

Incident keys, in the order export writes them:

==============  =============================  ==============================================
key             type                           required / default
==============  =============================  ==============================================
id              id ``[A-Za-z0-9._-]{1,128}``   optional: generated as ``INC-YYYYMMDD-NNN``
title           text                           required
severity        ``SEV1`` … ``SEV5``            optional, ``SEV3``
status          open, mitigated, resolved,     optional, ``open``
                monitoring, in_review,
                recurred, closed
environment     text                           optional, ``production``
services        list of text (no duplicates)   required (may be empty)
started         time                           required
detected        time or null                   optional (each phase at or after ``started``)
mitigated       time or null                   optional
resolved        time or null                   optional (at or after ``mitigated``)
window          ``{start: time|null,           optional: the analysis window override
                end: time|null}`` or null      (end after start)
follow_up_of    incident id                    optional: the incident this one reviews again
                                               (it must already exist); exported only when set
labels          mapping with keys symptom,     optional, ``{}``; confidence in [0, 1]
                service, environment (text),
                confidence (number)
links           list of ``{title: text,        optional, ``[]``; url scheme http, https or
                url: text}``                   mailto
snapshot        mapping (JSON object) or null  optional: the enrichment snapshot the analysis
                                               attached (:mod:`workbench.analysis.snapshot`:
                                               neighbourhood, versions, changes, alerts);
                                               exported only when set
version         integer >= 1                   optional (see "Versions")
hypotheses      list of hypothesis mappings    optional
conclusions     list of conclusion mappings    optional
action_items    list of action-item mappings   optional
signoffs        list of sign-off mappings      optional
==============  =============================  ==============================================

Hypothesis: ``id`` (optional), ``service`` (text, required), ``cause`` (change, resource,
dependency, code, traffic, other; required), ``summary`` (text, required), ``status`` (proposed,
confirmed, rejected; default proposed), ``score`` (finite number, required), ``rank`` (integer >= 1
or null), ``evidence`` (list of JSON values, default ``[]``), ``similar`` (list of JSON values,
default ``[]``), ``reviewer`` and ``rationale`` (text or null; both required when the status is
confirmed or rejected), ``confidence`` (number in [0, 1] or null: the engine's calibrated
probability; exported only when set, so documents written before it existed round-trip
unchanged), ``version``.

Conclusion: ``id``, ``kind`` (summary, impact, contributing_factor, lesson, conclusion; required),
``text`` (required), ``author`` (text; default: the ``who`` of the import), ``version``.

Action item: ``id``, ``title`` (required), ``owner`` (required), ``kind`` (prevent, detect, mitigate,
process; required), ``status`` (open, in_progress, done, wont_do; default open), ``due`` (date
``YYYY-MM-DD`` or null), ``verification`` (any JSON value or null; the criterion the recheck loop
evaluates), ``ticket`` (text or null: the item's key in the team's tracker), ``applied_at`` (time or
null) and ``applied_change`` (JSON object or null: the change event that applied the fix; see
:mod:`workbench.inbound.remediation`), ``version``. ``ticket``, ``applied_at`` and
``applied_change`` are exported only when set, so documents written before they existed
round-trip unchanged.

Sign-off: ``id``, ``name``, ``role``, ``content_hash`` (``[A-Za-z0-9:._-]{1,128}``, see
:func:`content_hash`) and ``at`` (time), all but ``id`` required. Sign-offs are immutable.

Runs, recurrence checks and history are not part of a document.

Import semantics
----------------
- An incident is matched by ``id``; without one, by an equal ``title`` and ``started``.
- A child is matched by ``id``; without one, by its natural key within the incident: hypothesis
  (service, cause), conclusion (kind, text), action item (title), sign-off (name, role,
  content_hash, at). Unmatched children are created with generated ids.
- A missing key leaves the stored value alone (new records take the default); an explicit ``null``
  clears it. A missing child list leaves those children alone. Import never deletes anything.
- Only changed fields are written, each with a history row; re-importing a document changes nothing.

Versions
--------
Export writes each record's ``version``. On import, a record whose stored version differs from the
document's raises ``ConflictError`` when the document would change it (someone edited it since the
export); a record created by import keeps the document's version, so export → import into an empty
knowledge base → export is byte-identical. Documents without versions (sources) just apply.
"""
from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .. import yamlio
from ..errors import StoreError
from .records import (ActionItem, Conclusion, Hypothesis, Incident, SignOff, check_id, check_int,
                      check_review, check_timeline, clean, iso)

INCIDENT_KEYS = ("id", "title", "severity", "status", "environment", "services", "started", "detected",
                 "mitigated", "resolved", "window", "follow_up_of", "labels", "links", "snapshot", "version", "hypotheses",
                 "conclusions", "action_items", "signoffs")
CHILD_KEYS = {
    "hypothesis": ("id", "service", "cause", "summary", "status", "score", "rank", "confidence", "evidence",
                   "similar", "reviewer", "rationale", "version"),
    "conclusion": ("id", "kind", "text", "author", "version"),
    "action_item": ("id", "title", "owner", "kind", "status", "due", "verification", "ticket", "applied_at",
                    "applied_change", "version"),
    "signoff": ("id", "name", "role", "content_hash", "at"),
}
#: document list key -> entity
CHILD_LISTS = {"hypotheses": "hypothesis", "conclusions": "conclusion", "action_items": "action_item",
               "signoffs": "signoff"}
REQUIRED = {
    "incident": ("title", "started", "services"),
    "hypothesis": ("service", "cause", "summary", "score"),
    "conclusion": ("kind", "text"),
    "action_item": ("title", "owner", "kind"),
    "signoff": ("name", "role", "content_hash", "at"),
}
#: Natural keys that match a child without an id on import.
NATURAL_KEYS = {
    "hypothesis": ("service", "cause"),
    "conclusion": ("kind", "text"),
    "action_item": ("title",),
    "signoff": ("name", "role", "content_hash", "at"),
}


@dataclass
class Part:
    """One validated record of a document: its id and version if given, and its checked fields
    (only the keys the document has)."""

    id: str | None
    version: int | None
    fields: dict[str, Any]


@dataclass
class Document:
    """A validated incident document. ``children[entity]`` is ``None`` when the list was absent."""

    incident: Part
    children: dict[str, list[Part] | None] = field(default_factory=dict)
    origin: str = "<document>"


# --------------------------------------------------------------------------- validation

def validate_document(doc: Any, origin: str = "<document>") -> Document:
    """Check an incident document (a dict from YAML or from a source).

    Raises
    ------
    StoreError
        Naming ``origin`` (the file) and the field, e.g.
        ``incidents/x.yaml: field 'hypotheses[1].cause': expected one of change, ... got 'dns'``.
    """
    try:
        return _validate(doc, origin)
    except StoreError as exc:
        raise StoreError(f"{origin}: {exc}") from None


def _validate(doc: Any, origin: str) -> Document:
    if not isinstance(doc, Mapping):
        raise StoreError(f"expected a mapping of incident fields, got {type(doc).__name__}")
    _known_keys(doc, INCIDENT_KEYS, "")
    _required(doc, "incident", "")
    values = {k: v for k, v in doc.items() if k not in ("id", "version", "window") and k not in CHILD_LISTS}
    if "window" in doc:
        window = doc["window"]
        if window is None:
            window = {"start": None, "end": None}
        if not isinstance(window, Mapping) or not set(window) <= {"start", "end"}:
            raise StoreError(f"field 'window': expected a mapping with keys start and end, got {window!r}")
        values["window_start"], values["window_end"] = window.get("start"), window.get("end")
    checked = clean("incident", values)
    check_timeline(checked)
    incident = Part(_opt_id(doc, ""), _opt_version(doc, ""), checked)
    children: dict[str, list[Part] | None] = {}
    for list_key, entity in CHILD_LISTS.items():
        items = doc.get(list_key)
        if items is None:
            children[entity] = None if list_key not in doc else []
            continue
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
            raise StoreError(f"field {list_key!r}: expected a list, got {items!r}")
        parts, seen = [], set()
        for i, item in enumerate(items):
            part = _child(entity, item, f"{list_key}[{i}].")
            if part.id is not None:
                if part.id in seen:
                    raise StoreError(f"field '{list_key}[{i}].id': {part.id!r} appears twice")
                seen.add(part.id)
            parts.append(part)
        children[entity] = parts
    return Document(incident, children, origin)


def _child(entity: str, item: Any, where: str) -> Part:
    if not isinstance(item, Mapping):
        raise StoreError(f"field {where[:-1]!r}: expected a mapping, got {item!r}")
    _known_keys(item, CHILD_KEYS[entity], where)
    _required(item, entity, where)
    values = {k: v for k, v in item.items() if k not in ("id", "version")}
    checked = clean(entity, values, where)
    if entity == "hypothesis":
        check_review(checked, where)
    return Part(_opt_id(item, where), _opt_version(item, where), checked)


def _known_keys(doc: Mapping, known: tuple[str, ...], where: str) -> None:
    for key in doc:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StoreError(f"field {where}{key!r}: unknown key{hint}; known: {', '.join(known)}")


def _required(doc: Mapping, entity: str, where: str) -> None:
    for key in REQUIRED[entity]:
        if doc.get(key) is None:
            raise StoreError(f"field '{where}{key}': required")


def _opt_id(doc: Mapping, where: str) -> str | None:
    value = doc.get("id")
    return None if value is None else check_id(value, f"{where}id")


def _opt_version(doc: Mapping, where: str) -> int | None:
    value = doc.get("version")
    return None if value is None else check_int(value, f"{where}version", 1)


# --------------------------------------------------------------------------- building

def to_document(incident: Incident, hypotheses: Sequence[Hypothesis] = (), conclusions: Sequence[Conclusion] = (),
                action_items: Sequence[ActionItem] = (), signoffs: Sequence[SignOff] = ()) -> dict[str, Any]:
    """The document of an incident and its children: plain YAML-safe values in the export order."""
    doc: dict[str, Any] = {
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "environment": incident.environment,
        "services": list(incident.services),
        "started": iso(incident.started),
        "detected": _time(incident.detected),
        "mitigated": _time(incident.mitigated),
        "resolved": _time(incident.resolved),
        "window": None if incident.window_start is None and incident.window_end is None else
        {"start": _time(incident.window_start), "end": _time(incident.window_end)},
    }
    if incident.follow_up_of is not None:  # only follow-up reviews carry the key: other documents stay as they were
        doc["follow_up_of"] = incident.follow_up_of
    doc.update(labels=dict(incident.labels), links=[dict(link) for link in incident.links])
    if incident.snapshot is not None:  # only analysed incidents carry it: older documents stay byte-identical
        doc["snapshot"] = incident.snapshot
    doc["version"] = incident.version
    doc["hypotheses"] = [_hypothesis_doc(h) for h in hypotheses]
    doc["conclusions"] = [{"id": c.id, "kind": c.kind, "text": c.text, "author": c.author, "version": c.version}
                          for c in conclusions]
    doc["action_items"] = [_action_item_doc(a) for a in action_items]
    doc["signoffs"] = [{"id": s.id, "name": s.name, "role": s.role, "content_hash": s.content_hash,
                        "at": iso(s.at)} for s in signoffs]
    return doc


def _hypothesis_doc(h: Hypothesis) -> dict[str, Any]:
    doc = {"id": h.id, "service": h.service, "cause": h.cause, "summary": h.summary, "status": h.status,
           "score": h.score, "rank": h.rank}
    if h.confidence is not None:  # only when the engine gave one: older documents stay byte-identical
        doc["confidence"] = h.confidence
    doc.update(evidence=list(h.evidence), similar=list(h.similar), reviewer=h.reviewer, rationale=h.rationale,
               version=h.version)
    return doc


def _action_item_doc(a: ActionItem) -> dict[str, Any]:
    doc = {"id": a.id, "title": a.title, "owner": a.owner, "kind": a.kind, "status": a.status,
           "due": None if a.due is None else a.due.isoformat(), "verification": a.verification}
    # Only when set: documents of items without a ticket or an applied fix stay byte-identical.
    if a.ticket is not None:
        doc["ticket"] = a.ticket
    if a.applied_at is not None:
        doc["applied_at"] = iso(a.applied_at)
    if a.applied_change is not None:
        doc["applied_change"] = a.applied_change
    doc["version"] = a.version
    return doc


def _time(value: Any) -> str | None:
    return None if value is None else iso(value)


def content_hash(doc: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a document's reviewable content: everything but sign-offs and versions.

    A sign-off records this hash, so a later edit of the postmortem shows as a different hash.
    """
    content = {k: v for k, v in doc.items() if k not in ("signoffs", "version")}
    for list_key in CHILD_LISTS:
        if list_key in content:
            content[list_key] = [{k: v for k, v in item.items() if k != "version"} for item in content[list_key]]
    return "sha256:" + hashlib.sha256(dump_document(content).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- YAML

class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line text as literal blocks (readable, and still exact)."""


#: Characters YAML reads as line breaks besides \n. PyYAML writes them raw in plain, single-quoted
#: and literal scalars, where the loader then folds them into "\n" or " ": force double quotes,
#: in which they are escaped (\N, \L, \P, \r).
_OTHER_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if any(ch in value for ch in _OTHER_BREAKS):
        style = '"'
    elif "\n" in value:
        # The emitter falls back to a quoted style whenever a literal block could not reproduce
        # the string exactly (trailing spaces, special characters), so this never loses data.
        style = "|"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_document(doc: Mapping[str, Any]) -> str:
    """YAML text of a document: block style, keys in the given order, Unicode kept as is."""
    return yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=1 << 30)


def load_document(text: str, origin: str = "<document>") -> dict[str, Any]:
    """Parse YAML text with :func:`workbench.yamlio.load` (no anchors or aliases, no duplicate keys,
    size and depth capped); the top level must be a mapping."""
    doc = yamlio.load(text, origin, StoreError)
    if not isinstance(doc, dict):
        raise StoreError(f"{origin}: expected a mapping of incident fields, got {type(doc).__name__}")
    return doc


def read_document(path: str | Path) -> dict[str, Any]:
    """Load the YAML document at ``path`` (UTF-8)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: cannot read incident document: {exc}") from None
    return load_document(text, str(path))


def write_document(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` as YAML to ``path`` (UTF-8, ``\\n`` line ends) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(dump_document(doc))
    return path
