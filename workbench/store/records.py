"""What the knowledge base returns (frozen dataclasses) and how it checks what it is given.

Every record the API returns is a plain frozen dataclass with ``to_dict()``, never a live ORM
object, so callers cannot write around the version check. Every value handed to the API passes
through :func:`clean` once, which raises :class:`~workbench.errors.StoreError` naming the field,
what was expected and what was received.

Value rules (the same for SQLite and PostgreSQL)
------------------------------------------------
- Times are timezone-aware ``datetime`` (or ``pandas.Timestamp``) or ISO 8601 strings with ``Z`` or
  an offset; naive times are refused. They are stored and returned as UTC, microsecond precision.
- Text follows the rules of :mod:`workbench.formats` (the telemetry edge's): no NUL, no lone
  surrogate, no other control character but tab, LF and CR; names (services, environment, people)
  are one line of at most 256 characters, titles at most 500. Such text is refused, never altered.
- JSON fields (evidence, similar, parameters, verification) take dicts with string keys, lists,
  strings, finite numbers, booleans and ``None``; numpy scalars become numbers, aware datetimes
  become ISO strings ending in ``Z``. Key order is kept.
"""
from __future__ import annotations

import copy
import difflib
import json
import math
import operator
import re
import warnings
from dataclasses import dataclass, fields
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from ..errors import StoreError
from ..formats import MAX_NAME_CHARS, MAX_TITLE_CHARS, text_problem
from .models import ID_LENGTH

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4", "SEV5")
INCIDENT_STATUSES = ("open", "mitigated", "resolved", "monitoring", "in_review", "recurred", "closed")
CAUSES = ("change", "resource", "dependency", "code", "traffic", "other")
HYPOTHESIS_STATUSES = ("proposed", "confirmed", "rejected")
CONCLUSION_KINDS = ("summary", "impact", "contributing_factor", "lesson", "conclusion")
ACTION_KINDS = ("prevent", "detect", "mitigate", "process")
ACTION_STATUSES = ("open", "in_progress", "done", "wont_do")
RUN_STATUSES = ("running", "succeeded", "failed")
#: ``recurred``/``clear``: the incident's signature came back or not; ``holds``/``violated``: an
#: action item's verification criterion; ``no_data``: no telemetry to judge (never reported as
#: holding); ``inconclusive``: telemetry present but not enough to say.
CHECK_VERDICTS = ("clear", "recurred", "holds", "violated", "no_data", "inconclusive")
LABEL_KEYS = ("symptom", "service", "environment", "confidence")
LINK_SCHEMES = ("http", "https", "mailto")
#: How each entity is named in messages.
LABELS = {"incident": "incident", "hypothesis": "hypothesis", "conclusion": "conclusion",
          "action_item": "action item", "signoff": "sign-off", "run": "run", "check": "recurrence check"}
#: Incident fields whose order is checked together (:func:`check_timeline`).
TIMELINE = ("started", "detected", "mitigated", "resolved", "window_start", "window_end")

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
_HASH_PATTERN = re.compile(r"[A-Za-z0-9:._-]+")


# --------------------------------------------------------------------------- value checks

def fail(field: str, expected: str, value: Any) -> StoreError:
    """The error for one bad value: names the field, what was expected and what was received."""
    shown = repr(value)
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return StoreError(f"field {field!r}: expected {expected}, got {shown}")


def check_id(value: Any, field: str) -> str:
    # Ids name folders (incidents/<id>/): "." and ".." would point outside them; an id starting
    # with "-" would be read as an option by every command that takes it.
    if (not isinstance(value, str) or not ID_PATTERN.fullmatch(value) or len(value) > ID_LENGTH
            or value in (".", "..") or value.startswith("-")):
        raise fail(field, f"an id of 1-{ID_LENGTH} characters from [A-Za-z0-9._-], not starting with '-', "
                          f"not '.' or '..'", value)
    return value


def check_text(value: Any, field: str, max_chars: int | None = None, multiline: bool = True) -> str:
    """Non-blank text, stored exactly as given (no stripping); at most ``max_chars`` characters;
    without tab or line break unless ``multiline`` (:func:`workbench.formats.text_problem`)."""
    value = _string(value, field, multiline)
    if not value.strip():
        raise fail(field, "non-empty text", value)
    if max_chars is not None and len(value) > max_chars:
        raise StoreError(f"field {field!r}: expected at most {max_chars:,} characters, got {len(value):,}")
    return value


def check_name(value: Any, field: str) -> str:
    """A service, environment or person's name: one line of at most
    :data:`workbench.formats.MAX_NAME_CHARS` characters (the telemetry edge's rule for names)."""
    return check_text(value, field, MAX_NAME_CHARS, multiline=False)


def check_title(value: Any, field: str) -> str:
    """An incident's, action item's or link's title (:data:`workbench.formats.MAX_TITLE_CHARS`)."""
    return check_text(value, field, MAX_TITLE_CHARS)


def _string(value: Any, field: str, multiline: bool = True) -> str:
    if not isinstance(value, str):
        raise fail(field, "a string", value)
    problem = text_problem(value, multiline=multiline)
    if problem is not None:
        why = {"a NUL character (\\x00)": ", which the database cannot store in text; remove it",
               "a lone surrogate (not UTF-8)": ", which is not valid UTF-8"}.get(problem, "; remove it")
        raise StoreError(f"field {field!r}: contains {problem}{why}")
    return value


def check_enum(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise fail(field, f"one of {', '.join(allowed)}", value)
    return value


def check_time(value: Any, field: str) -> datetime:
    """An aware datetime (or ISO string with a zone) as a UTC ``datetime``."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise fail(field, "an ISO 8601 time such as 2024-01-31T08:43:00Z", value) from None
        value = parsed
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp: drop nanoseconds without a warning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise fail(field, "a timezone-aware datetime or an ISO 8601 string with Z or an offset", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise fail(field, "a timezone-aware time (naive times are ambiguous; add Z or an offset)", value)
    return value.astimezone(timezone.utc)


def check_date(value: Any, field: str) -> date:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise fail(field, "a date such as 2024-03-31", value) from None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise fail(field, "a date (not a datetime), e.g. 2024-03-31", value)
    return value


def check_float(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise fail(field, "a finite number", value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise fail(field, "a finite number", value) from None
    if not math.isfinite(number):
        raise fail(field, "a finite number", value)
    return number


def check_probability(value: Any, field: str) -> float:
    """A finite number in [0, 1] (a calibrated probability)."""
    number = check_float(value, field)
    if not 0.0 <= number <= 1.0:
        raise fail(field, "a number between 0 and 1", value)
    return number


def check_int(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise fail(field, f"an integer >= {minimum}", value)
    try:
        number = operator.index(value)
    except TypeError:
        raise fail(field, f"an integer >= {minimum}", value) from None
    if number < minimum:
        raise fail(field, f"an integer >= {minimum}", value)
    return number


def check_json(value: Any, field: str) -> Any:
    """A JSON-compatible copy of ``value`` (see the module docstring for what is accepted)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _string(value, field)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return check_float(value, field)
    if isinstance(value, (datetime, date)) or hasattr(value, "to_pydatetime"):
        if isinstance(value, date) and not isinstance(value, datetime):
            return value.isoformat()
        return iso(check_time(value, field))
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise fail(f"{field} key", "string keys (JSON objects)", key)
            out[_string(key, f"{field} key")] = check_json(item, f"{field}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [check_json(item, f"{field}[{i}]") for i, item in enumerate(value)]
    if hasattr(value, "item"):  # numpy scalar
        return check_json(value.item(), field)
    raise fail(field, "a JSON value (dict, list, string, number, boolean or null)", value)


def check_json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object (a mapping with string keys; nested values as :func:`check_json`)."""
    return check_json(dict(_mapping(value, field)), field)


def as_list(value: Any) -> Any:
    """Any iterable (a generator, a tuple) as a list; a string or mapping is left for a check to refuse."""
    return value if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable) else list(value)


def check_json_list(value: Any, field: str) -> list:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise fail(field, "a list", value)
    return check_json(list(value), field)


def check_services(value: Any, field: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise fail(field, "a list of service names", value)
    out: list[str] = []
    for i, name in enumerate(value):
        name = check_name(name, f"{field}[{i}]")
        if name in out:
            raise fail(f"{field}[{i}]", "each service once", name)
        out.append(name)
    return out


def check_labels(value: Any, field: str) -> dict[str, Any]:
    """Taxonomy labels in the fixed key order; unset (``None``) labels are dropped."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(field, f"a mapping with keys {', '.join(LABEL_KEYS)}", value)
    unknown = [k for k in value if k not in LABEL_KEYS]
    if unknown:
        raise fail(f"{field}.{unknown[0]}", f"a label key ({', '.join(LABEL_KEYS)})", unknown[0])
    out: dict[str, Any] = {}
    for key in LABEL_KEYS:
        item = value.get(key)
        if item is None:
            continue
        if key == "confidence":
            number = check_float(item, f"{field}.confidence")
            if not 0.0 <= number <= 1.0:
                raise fail(f"{field}.confidence", "a number between 0 and 1", item)
            out[key] = number
        else:
            out[key] = check_text(item, f"{field}.{key}")
    return out


def check_links(value: Any, field: str) -> list[dict[str, str]]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise fail(field, "a list of {title, url} mappings", value)
    out = []
    for i, link in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(link, Mapping) or set(link) != {"title", "url"}:
            raise fail(where, "a mapping with exactly the keys title and url", link)
        url = check_text(link["url"], f"{where}.url")
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        # Links end up as <a href> in reports: javascript:/data: URLs would run there.
        if scheme not in LINK_SCHEMES:
            raise fail(f"{where}.url", f"a URL with scheme {', '.join(LINK_SCHEMES)}", url)
        out.append({"title": check_title(link["title"], f"{where}.title"), "url": url})
    return out


def check_hash(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _HASH_PATTERN.fullmatch(value) or len(value) > ID_LENGTH:
        raise fail(field, f"a content hash of 1-{ID_LENGTH} characters from [A-Za-z0-9:._-]", value)
    return value


def optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    def checked(value: Any, field: str) -> Any:
        return None if value is None else check(value, field)

    return checked


def _enum(allowed: tuple[str, ...]) -> Callable[[Any, str], str]:
    return lambda value, field: check_enum(value, field, allowed)


_text = check_text
_time = check_time
_opt_text = optional(check_text)
_name = check_name
_opt_name = optional(check_name)
_opt_time = optional(check_time)

#: entity -> field -> check(value, field) returning the stored value.
FIELDS: dict[str, dict[str, Callable[[Any, str], Any]]] = {
    "incident": {
        "title": check_title, "severity": _enum(SEVERITIES), "status": _enum(INCIDENT_STATUSES),
        "environment": _name, "services": check_services, "started": _time, "detected": _opt_time,
        "mitigated": _opt_time, "resolved": _opt_time, "window_start": _opt_time,
        "window_end": _opt_time, "labels": check_labels, "links": check_links,
        "follow_up_of": optional(check_id), "snapshot": optional(check_json_object),
    },
    "hypothesis": {
        "service": _name, "cause": _enum(CAUSES), "summary": _text,
        "status": _enum(HYPOTHESIS_STATUSES), "score": check_float,
        "rank": optional(lambda v, f: check_int(v, f, 1)), "evidence": check_json_list,
        "similar": check_json_list, "reviewer": _opt_name, "rationale": _opt_text,
        "confidence": optional(check_probability),
    },
    "conclusion": {"kind": _enum(CONCLUSION_KINDS), "text": _text, "author": _name},
    "action_item": {
        "title": check_title, "owner": _name, "due": optional(check_date), "kind": _enum(ACTION_KINDS),
        "status": _enum(ACTION_STATUSES), "verification": optional(check_json),
        "ticket": optional(check_title), "applied_at": _opt_time,
        "applied_change": optional(lambda v, f: check_json(dict(_mapping(v, f)), f)),
    },
    "signoff": {"name": _name, "role": _name, "content_hash": check_hash, "at": _time},
    "run": {
        "template": _text, "parameters": lambda v, f: check_json(dict(_mapping(v, f)), f),
        "started": _time, "ended": _opt_time, "status": _enum(RUN_STATUSES),
        "error_cell": optional(lambda v, f: check_int(v, f, 0)), "output_path": _opt_text,
    },
    "check": {
        "at": _time, "window_start": _time, "window_end": _time, "score": optional(check_float),
        "verdict": _enum(CHECK_VERDICTS), "evidence": check_json_list,
        "action_item_id": optional(check_id),
    },
}


def _mapping(value: Any, field: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise fail(field, "a mapping", value)
    return value


def clean(entity: str, values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Check ``values`` field by field; unknown fields are refused with the closest known name.

    ``where`` prefixes field names in errors (``hypotheses[2].`` for a document).
    """
    spec = FIELDS[entity]
    out = {}
    for key, value in values.items():
        check = spec.get(key)
        if check is None:
            close = difflib.get_close_matches(str(key), list(spec), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StoreError(f"field {where}{key!r}: unknown {LABELS[entity]} field{hint}; "
                             f"known: {', '.join(spec)}")
        out[key] = check(value, f"{where}{key}")
    return out


def check_who(who: Any) -> str:
    return check_name(who, "who")


def check_timeline(values: Mapping[str, Any], where: str = "") -> None:
    """Cross-field rules of an incident: the phases follow ``started``, the window is ordered."""
    started = values.get("started")
    for key in ("detected", "mitigated", "resolved"):
        if started is not None and values.get(key) is not None and values[key] < started:
            raise fail(f"{where}{key}", f"a time at or after started ({iso(started)})", iso(values[key]))
    mitigated, resolved = values.get("mitigated"), values.get("resolved")
    if mitigated is not None and resolved is not None and resolved < mitigated:
        raise fail(f"{where}resolved", f"a time at or after mitigated ({iso(mitigated)})", iso(resolved))
    start, end = values.get("window_start"), values.get("window_end")
    if start is not None and end is not None and end <= start:
        raise fail(f"{where}window_end", f"a time after the window start ({iso(start)})", iso(end))


def check_review(values: Mapping[str, Any], where: str = "") -> None:
    """A confirmed or rejected hypothesis names its reviewer and the rationale (a human decides)."""
    status = values.get("status")
    if status in ("confirmed", "rejected"):
        for key in ("reviewer", "rationale"):
            if not values.get(key):
                raise fail(f"{where}{key}", f"the {key} of a {status} hypothesis", values.get(key))


def check_window(start: datetime, end: datetime, where: str = "") -> None:
    if end <= start:
        raise fail(f"{where}window_end", f"a time after window_start ({iso(start)})", iso(end))


# --------------------------------------------------------------------------- JSON-safe values

def canonical(value: Any) -> str:
    """A strict comparison key: 1, 1.0 and True differ (``==`` says equal), dict order does not."""
    return json.dumps(jsonable(value), sort_keys=True, ensure_ascii=False)


def iso(value: datetime) -> str:
    """ISO 8601 UTC with a ``Z``: seconds, plus microseconds when there are any."""
    value = value.astimezone(timezone.utc)
    spec = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return value.strftime(spec)


def jsonable(value: Any) -> Any:
    """``value`` with datetimes/dates as ISO strings and tuples as lists (for history rows)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- records

class _Record:
    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (tuples become lists; nested values are copies)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


@dataclass(frozen=True)
class Incident(_Record):
    """An incident. Times are aware UTC; ``labels`` has keys from :data:`LABEL_KEYS`; ``snapshot`` is
    the enrichment snapshot the analysis attached (:mod:`workbench.analysis.snapshot`), or None."""

    id: str
    title: str
    severity: str
    environment: str
    services: tuple[str, ...]
    started: datetime
    detected: datetime | None
    mitigated: datetime | None
    resolved: datetime | None
    status: str
    labels: dict[str, Any]
    links: tuple[dict[str, str], ...]
    window_start: datetime | None
    window_end: datetime | None
    follow_up_of: str | None
    snapshot: dict[str, Any] | None
    created: datetime
    updated: datetime
    version: int


@dataclass(frozen=True)
class Hypothesis(_Record):
    """A root-cause candidate: ``service`` × ``cause``, with its evidence and similar incidents."""

    id: str
    incident_id: str
    service: str
    cause: str
    summary: str
    status: str
    score: float
    rank: int | None
    evidence: tuple[Any, ...]
    similar: tuple[Any, ...]
    reviewer: str | None
    rationale: str | None
    confidence: float | None
    created: datetime
    updated: datetime
    version: int


@dataclass(frozen=True)
class Conclusion(_Record):
    id: str
    incident_id: str
    kind: str
    text: str
    author: str
    created: datetime
    updated: datetime
    version: int


@dataclass(frozen=True)
class ActionItem(_Record):
    """A follow-up; ``verification`` is the JSON criterion the recheck loop evaluates.

    ``ticket`` is its key in the team's tracker; ``applied_at``/``applied_change`` say when and by
    which change its fix was applied (a change event naming the item or its ticket sets them, and
    the criterion is evaluated from that time on).
    """

    id: str
    incident_id: str
    title: str
    owner: str
    due: date | None
    kind: str
    status: str
    verification: Any
    ticket: str | None
    applied_at: datetime | None
    applied_change: dict[str, Any] | None
    created: datetime
    updated: datetime
    version: int


@dataclass(frozen=True)
class SignOff(_Record):
    """A reviewer's sign-off on the postmortem content whose hash is ``content_hash``."""

    id: str
    incident_id: str
    name: str
    role: str
    content_hash: str
    at: datetime


@dataclass(frozen=True)
class Run(_Record):
    """One notebook run (papermill) for an incident."""

    id: str
    incident_id: str
    template: str
    parameters: dict[str, Any]
    started: datetime
    ended: datetime | None
    status: str
    error_cell: int | None
    output_path: str | None


@dataclass(frozen=True)
class Check(_Record):
    """One recurrence or verification check (see :data:`CHECK_VERDICTS`)."""

    id: str
    incident_id: str
    at: datetime
    window_start: datetime
    window_end: datetime
    score: float | None
    verdict: str
    evidence: tuple[Any, ...]
    action_item_id: str | None


@dataclass(frozen=True)
class HistoryEntry(_Record):
    """One audited change. ``field`` is ``"*"`` for a whole record created (``old`` is ``None``,
    ``new`` the record) or deleted (``new`` is ``None``); ``old``/``new`` are JSON values."""

    id: int
    entity: str
    entity_id: str
    incident_id: str | None
    field: str
    old: Any
    new: Any
    who: str
    at: datetime


#: entity -> record class
RECORDS = {
    "incident": Incident, "hypothesis": Hypothesis, "conclusion": Conclusion,
    "action_item": ActionItem, "signoff": SignOff, "run": Run, "check": Check,
}
_TUPLES = {"services", "links", "evidence", "similar"}


def to_record(entity: str, row: Any) -> Any:
    """A frozen record from an ORM row (JSON lists become tuples; values are copies).

    ``entity`` is a key of :data:`RECORDS` or ``"history"``.
    """
    cls = HistoryEntry if entity == "history" else RECORDS[entity]
    values = {}
    for f in fields(cls):
        value = copy.deepcopy(getattr(row, f.name))
        values[f.name] = tuple(value) if f.name in _TUPLES else value
    return cls(**values)
