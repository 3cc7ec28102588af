"""Incident signatures: a compact, JSON-safe fingerprint of what moved, and how similar two are.

A :class:`Signature` says which services were involved (and how strongly), which metrics moved
in which direction, which log templates appeared or moved, which changes preceded the onset, the
origin service, the cause and the symptom. It is built either

- from an analysis (:func:`signature_from_analysis`): suspicions and their evidence, the ranked
  hypotheses, the correlated changes — ``source="telemetry"``; or
- from an incident document or knowledge-base records (:func:`signature_from_document`,
  :func:`signature_from_incident`): the confirmed hypothesis, its evidence signals
  (``metric payments/error_rate``, ``log payments: InvalidFormatException``,
  ``event deploy payments v2.9.0``) and the taxonomy labels — ``source="document"``. Past
  incidents without telemetry are known only this way.

Both kinds compare with :func:`similarity`; :func:`similar_incidents` ranks a history of
:class:`PastIncident` (signature + confirmed causes) against one signature, :func:`rank_similar`
any list of signatures. Building and comparing are pure Python over a few dozen keys
(microseconds), deterministic (sorted keys, rounded weights), so a recurrence check can compare
thousands of signatures.

Similarity
----------
``similarity(a, b)`` is a weighted mean of per-aspect similarities, each in [0, 1]:

=========  ======  =======================================================================
aspect     weight  similarity
=========  ======  =======================================================================
origin     0.25    1 when both name the same origin service, else 0
cause      0.15    1 when both name the same cause, else 0
services   0.15    weighted Jaccard of the service weights (Σ min / Σ max)
metrics    0.20    weighted Jaccard of ``service/metric:direction`` features (|strength|)
templates  0.15    soft matching of templates of the same service by their words (overlap
                   coefficient, so the words of a document's ``InvalidFormatException``
                   match a mined template that contains them), weighted, both directions
symptom    0.05    1 when the symptoms agree (errors, latency, saturation, traffic)
changes    0.05    weighted Jaccard of ``service/kind`` of the changes before the onset
=========  ======  =======================================================================

Only the aspects *both* signatures know are averaged (weights renormalised): a document that
names no log template says nothing about templates. Between two telemetry signatures an aspect
empty on one side and not the other is known to differ and counts as 0. The origin and the
cause carry the most weight because they are what a responder acts on; the metric and template
sets separate two incidents with the same origin and cause (a recurrence shares them, a different
fault of the same service does not).
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence
from ..errors import ParameterError
from ..formats import finite

#: Aspect -> weight in :func:`similarity` (sums to 1).
WEIGHTS: dict[str, float] = {"origin": 0.25, "cause": 0.15, "services": 0.15, "metrics": 0.20,
                             "templates": 0.15, "symptom": 0.05, "changes": 0.05}
SYMPTOMS = ("errors", "latency", "saturation", "traffic")
#: Least similarity for a past incident to be called similar.
SIMILAR_MIN = 0.15
SOURCES = ("telemetry", "document")
VERSION = 1

#: Metric-name words -> symptom (first match wins, in this order).
_SYMPTOM_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("errors", ("error", "fail", "exception", "5xx", "success")),
    ("latency", ("latency", "duration", "p50", "p90", "p95", "p99", "response_time", "rt")),
    ("traffic", ("request_rate", "requests", "rps", "qps", "throughput", "workload")),
    ("saturation", ("cpu", "memory", "mem", "pool", "queue", "disk", "thread", "connection", "gc", "fd",
                    "saturation", "network")),
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MASK = re.compile(r"<[^<>\s]*>")
#: Words too common in log lines to tell two templates apart.
_STOP = frozenset({"the", "and", "for", "with", "from", "after", "while", "was", "not", "has", "are", "this",
                   "that", "request", "call", "calls", "service"})
_EVENT_KINDS = ("deploy", "config_change", "feature_flag", "scale")
_ROUND = 4


@dataclass
class Signature:
    """The fingerprint of one incident.

    Attributes
    ----------
    incident_id : str or None
    source : str
        ``telemetry`` (built from an analysis) or ``document`` (from a confirmed hypothesis).
    origin : str or None
        The most likely origin service (the confirmed or top-ranked hypothesis' service).
    cause : str or None
        Its cause (one of :data:`workbench.store.CAUSES`).
    symptom : str or None
        One of :data:`SYMPTOMS`.
    services : dict
        Service -> weight in (0, 1] (1 = the most suspicious).
    metrics : dict
        ``service/metric`` -> signed strength in [-1, 1] (sign = direction, up positive).
    templates : dict
        ``service: template text`` -> weight in (0, 1].
    changes : dict
        ``service/kind`` of a change before the onset -> strength in (0, 1].
    """

    incident_id: str | None = None
    source: str = "telemetry"
    origin: str | None = None
    cause: str | None = None
    symptom: str | None = None
    services: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    templates: dict[str, float] = field(default_factory=dict)
    changes: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ParameterError(f"signature source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        # Sorted keys and rounded values: the same inputs give byte-identical JSON.
        self.services = _clean_weights(self.services, signed=False)
        self.metrics = _clean_weights(self.metrics, signed=True)
        self.templates = _clean_weights(self.templates, signed=False)
        self.changes = _clean_weights(self.changes, signed=False)

    @property
    def empty(self) -> bool:
        """True when the signature knows nothing to compare."""
        return not (self.origin or self.services or self.metrics or self.templates)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (round-trips through :meth:`from_dict`)."""
        return {"version": VERSION, "incident_id": self.incident_id, "source": self.source, "origin": self.origin,
                "cause": self.cause, "symptom": self.symptom, "services": dict(self.services),
                "metrics": dict(self.metrics), "templates": dict(self.templates), "changes": dict(self.changes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Signature":
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming a malformed field."""
        if not isinstance(data, Mapping):
            raise ParameterError(f"a signature must be a mapping, got {type(data).__name__}")
        version = data.get("version", VERSION)
        if version != VERSION:
            raise ParameterError(f"signature version {version!r} is not supported (expected {VERSION})")
        values: dict[str, Any] = {}
        for key in ("incident_id", "origin", "cause", "symptom"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ParameterError(f"signature field {key!r}: expected text or null, got {value!r}")
            values[key] = value
        values["source"] = data.get("source", "telemetry")
        for key in ("services", "metrics", "templates", "changes"):
            value = data.get(key) or {}
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise ParameterError(f"signature field {key!r}: expected a mapping of text to numbers, got {value!r}")
            try:
                values[key] = {k: float(v) for k, v in value.items()}
            except (TypeError, ValueError):
                raise ParameterError(f"signature field {key!r}: every value must be a number, got {value!r}") from None
        return cls(**values)


# --------------------------------------------------------------------------- similarity

def similarity(a: Signature, b: Signature, weights: Mapping[str, float] | None = None) -> float:
    """How alike two incidents are, in [0, 1] (1 = same fingerprint); see the module docstring.

    Symmetric and deterministic. Two signatures with no aspect in common give 0.
    """
    return similarity_parts(a, b, weights)["similarity"]


def similarity_parts(a: Signature, b: Signature, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """:func:`similarity` with the per-aspect similarities that went into it.

    Returns
    -------
    dict
        ``similarity`` plus one key per aspect both signatures know (value in [0, 1]).
    """
    weights = WEIGHTS if weights is None else weights
    both_telemetry = a.source == "telemetry" and b.source == "telemetry"
    parts: dict[str, float] = {}
    for aspect in WEIGHTS:
        left, right = getattr(a, aspect), getattr(b, aspect)
        known = (bool(left) and bool(right)) or (both_telemetry and aspect not in ("cause", "symptom", "origin")
                                                   and (bool(left) or bool(right)))
        if not known:
            continue
        if aspect in ("origin", "cause", "symptom"):
            parts[aspect] = 1.0 if left == right else 0.0
        elif aspect == "metrics":
            parts[aspect] = _weighted_jaccard(_directional(left), _directional(right))
        elif aspect == "templates":
            parts[aspect] = _template_similarity(left, right)
        else:
            parts[aspect] = _weighted_jaccard(left, right)
    total = sum(weights.get(k, 0.0) for k in parts)
    score = sum(weights.get(k, 0.0) * v for k, v in parts.items()) / total if total > 0 else 0.0
    out = {"similarity": round(min(1.0, max(0.0, score)), _ROUND)}
    out.update({k: round(v, _ROUND) for k, v in parts.items()})
    return out


def rank_similar(target: Signature, others: Iterable[Signature], limit: int | None = None,
                 min_similarity: float = 0.0) -> list[tuple[Signature, float]]:
    """``others`` by similarity to ``target`` (highest first, ties by incident id), without ``target`` itself."""
    scored = [(s, similarity(target, s)) for s in others
              if s.incident_id is None or s.incident_id != target.incident_id]
    scored = [item for item in scored if item[1] >= min_similarity]
    scored.sort(key=lambda item: (-item[1], item[0].incident_id or ""))
    return scored[:limit] if limit is not None else scored


# --------------------------------------------------------------------------- history

@dataclass
class PastIncident:
    """Another incident, as the similar-incident search and the ranking see it.

    Attributes
    ----------
    incident_id, title : str
    signature : Signature
    confirmed : list of (service, cause)
        Its confirmed hypotheses (empty when nobody confirmed one yet).
    """

    incident_id: str
    title: str
    signature: Signature
    confirmed: list[tuple[str, str]] = field(default_factory=list)


def similar_incidents(signature: Signature, history: Sequence[PastIncident], limit: int = 5,
                      min_similarity: float = SIMILAR_MIN) -> list[dict[str, Any]]:
    """The past incidents most similar to ``signature``, one entry per confirmed hypothesis.

    Returns
    -------
    list of dict
        ``incident_id``, ``title``, ``cause``, ``service`` (the confirmed hypothesis; both None
        when none is confirmed yet), ``similarity``; most similar first, at most ``limit``
        incidents.
    """
    scored = [(past, similarity(signature, past.signature)) for past in history
              if past.incident_id != signature.incident_id]
    scored = [item for item in scored if item[1] >= min_similarity]
    scored.sort(key=lambda item: (-item[1], item[0].incident_id))
    out = []
    for past, sim in scored[:limit]:
        for service, cause in (past.confirmed or [(None, None)]):
            out.append({"incident_id": past.incident_id, "title": past.title, "cause": cause, "service": service,
                        "similarity": round(sim, 4)})
    return out


# --------------------------------------------------------------------------- builders

def signature_from_analysis(suspicions: Sequence[Any], hypotheses: Sequence[Any] = (), *,
                            incident_id: str | None = None, changes: Any = None, max_services: int = 6,
                            max_metrics: int = 16, max_templates: int = 8, min_weight: float = 0.1) -> Signature:
    """The signature of an analysed incident.

    Parameters
    ----------
    suspicions : list of ServiceSuspicion
        Per-service suspicion with evidence (most suspicious first or not: they are sorted).
    hypotheses : list of Hypothesis
        The ranking (:class:`workbench.analysis.hypotheses.Hypothesis` or anything with ``service``,
        ``cause``, ``score`` attributes); the first gives ``origin`` and ``cause``.
    incident_id : str, optional
    changes : pandas.DataFrame, optional
        :func:`workbench.analysis.correlate.changes_for` output (``service``, ``kind``, ``lag_minutes``);
        only changes of the ``max_services`` most suspicious services are kept.
    max_services, max_metrics, max_templates : int
        How many of each to keep (strongest first).
    min_weight : float
        Services, metrics and templates weaker than this share of the strongest are dropped.

    Notes
    -----
    Metric strengths come from ``kind="metric"`` evidence (``magnitude`` with ``direction``),
    divided by the strongest metric magnitude of the incident; template weights likewise from
    ``kind="log"`` evidence. Service weights are suspicion scores divided by the highest.
    """
    ranked = sorted(suspicions, key=lambda s: (-float(s.score), s.service))
    top = float(ranked[0].score) if ranked else 0.0
    services: dict[str, float] = {}
    if top > 0:
        for s in ranked[:max_services]:
            weight = float(s.score) / top
            if weight >= min_weight:
                services[s.service] = weight
    metrics: dict[str, float] = {}
    templates: dict[str, float] = {}
    for s in ranked:
        if s.service not in services:
            continue
        for ev in s.evidence:
            kind, service, name = parse_signal(getattr(ev, "kind", None), getattr(ev, "service", None) or s.service,
                                               getattr(ev, "signal", ""))
            magnitude = finite(getattr(ev, "magnitude", 0.0))
            if magnitude is None or magnitude <= 0 or not name:
                continue
            if kind == "metric":
                sign = -1.0 if getattr(ev, "direction", None) == "down" else 1.0
                key = f"{service}/{name}"
                if abs(metrics.get(key, 0.0)) < magnitude:
                    metrics[key] = sign * magnitude
            elif kind == "log":
                text = template_text(ev)
                if text:
                    key = f"{service}: {text}"
                    templates[key] = max(templates.get(key, 0.0), magnitude)
    metrics = _top_normalised(metrics, max_metrics, min_weight)
    templates = _top_normalised(templates, max_templates, min_weight)
    change_weights: dict[str, float] = {}
    if changes is not None and len(changes):
        for row in changes.itertuples(index=False):
            if row.service in services and not getattr(row, "rollback", False):
                key = f"{row.service}/{row.kind}"
                lag = max(0.0, float(row.lag_minutes))
                change_weights[key] = max(change_weights.get(key, 0.0), math.exp(-lag / 10.0))
    origin = cause = None
    if hypotheses:
        origin, cause = hypotheses[0].service, hypotheses[0].cause
    elif ranked and top > 0:
        origin = ranked[0].service
    symptom = symptom_of(metrics, origin)
    return Signature(incident_id=incident_id, source="telemetry", origin=origin, cause=cause, symptom=symptom,
                     services=services, metrics=metrics, templates=templates, changes=change_weights)


def signature_from_document(document: Mapping[str, Any]) -> Signature:
    """The signature of an incident document (the YAML/dict shape of :mod:`workbench.store.documents`).

    Uses the confirmed hypothesis (the highest-scored confirmed one; the highest-scored proposed
    one when none is confirmed), its evidence signals, ``labels`` (``service``, ``symptom``) and
    ``services``. Evidence may be written by hand (``signal: metric payments/error_rate``) or by
    the engine (:meth:`workbench.analysis.evidence.Evidence.to_dict`, with ``kind`` and ``service``).
    """
    if not isinstance(document, Mapping):
        raise ParameterError(f"an incident document must be a mapping, got {type(document).__name__}")
    hypotheses = [h for h in document.get("hypotheses") or [] if isinstance(h, Mapping)]
    chosen = _choose(hypotheses)
    labels = document.get("labels") or {}
    origin = (chosen or {}).get("service") or labels.get("service")
    cause = (chosen or {}).get("cause")
    services: dict[str, float] = {}
    if origin:
        services[origin] = 1.0
    for name in document.get("services") or []:
        if isinstance(name, str) and name not in services:
            services[name] = 0.5
    metrics: dict[str, float] = {}
    templates: dict[str, float] = {}
    changes: dict[str, float] = {}
    for ev in (chosen or {}).get("evidence") or []:
        if not isinstance(ev, Mapping):
            continue
        kind, service, name = parse_signal(ev.get("kind"), ev.get("service") or origin, str(ev.get("signal") or ""))
        if not name or not service:
            continue
        magnitude = finite(ev.get("magnitude"))
        magnitude = 1.0 if magnitude is None or magnitude <= 0 else magnitude
        services.setdefault(service, 0.5)
        if kind == "metric":
            direction = ev.get("direction") or _direction_from_text(str(ev.get("explanation") or ""))
            key = f"{service}/{name}"
            metrics[key] = (-1.0 if direction == "down" else 1.0) * max(abs(metrics.get(key, 0.0)), magnitude)
        elif kind == "log":
            key = f"{service}: {name}"
            templates[key] = max(templates.get(key, 0.0), magnitude)
        elif kind == "change":
            changes[f"{service}/{name}"] = 1.0
    metrics = _top_normalised(metrics, None, 0.0)
    templates = _top_normalised(templates, None, 0.0)
    symptom = labels.get("symptom") if labels.get("symptom") in SYMPTOMS else symptom_of(metrics, origin)
    return Signature(incident_id=document.get("id"), source="document", origin=origin, cause=cause, symptom=symptom,
                     services=services, metrics=metrics, templates=templates, changes=changes)


def signature_from_incident(incident: Any, hypotheses: Iterable[Any]) -> Signature:
    """:func:`signature_from_document` for knowledge-base records (:class:`workbench.store.Incident`
    and its :class:`workbench.store.Hypothesis` list)."""
    doc = {
        "id": incident.id, "services": list(incident.services), "labels": dict(incident.labels or {}),
        "hypotheses": [{"service": h.service, "cause": h.cause, "status": h.status, "score": h.score,
                        "evidence": list(h.evidence)} for h in hypotheses],
    }
    return signature_from_document(doc)


def with_cause(signature: Signature, origin: str, cause: str) -> Signature:
    """A copy of ``signature`` whose origin and cause are a human's confirmed decision."""
    data = signature.to_dict()
    data["origin"], data["cause"] = origin, cause
    services = dict(data["services"])
    services[origin] = 1.0
    data["services"] = services
    return Signature.from_dict(data)


# --------------------------------------------------------------------------- signals

def parse_signal(kind: str | None, service: str | None, signal: str) -> tuple[str | None, str | None, str]:
    """Split an evidence signal into ``(kind, service, name)``.

    Understands the engine's signals (``metric error_rate`` with the service given separately,
    ``log template payments:3f2a``, ``deploy v2.15.0``) and hand-written ones
    (``metric payments/error_rate``, ``log payments: InvalidFormatException``,
    ``event deploy payments v2.9.0``). ``name`` is the metric name, the template text, or the
    change kind. Unknown shapes give ``(kind, service, signal)``.
    """
    text = (signal or "").strip()
    head, _, rest = text.partition(" ")
    head_l = head.lower()
    if kind is None:
        if head_l in ("metric", "log", "span"):
            kind = head_l
        elif head_l in ("event", "change") or head_l in _EVENT_KINDS:
            kind = "change"
    if kind == "metric":
        name = rest if head_l == "metric" else text
        if "/" in name:
            svc, _, name = name.partition("/")
            service = svc.strip() or service
        return kind, service, name.strip()
    if kind == "log":
        name = rest if head_l == "log" else text
        if name.lower().startswith("template "):
            name = name[len("template "):]
        svc, sep, tail = name.partition(": ")
        if sep and " " not in svc.strip():
            return kind, svc.strip() or service, tail.strip()
        return kind, service, name.strip()
    if kind == "change":
        words = text.split()
        if words and words[0].lower() in ("event", "change"):
            words = words[1:]
        change_kind = next((w for w in words if w in _EVENT_KINDS), None)
        if change_kind is not None:
            after = words[words.index(change_kind) + 1:]
            if after and service is None:
                service = after[0]
            return kind, service, change_kind
        return kind, service, text
    return kind, service, text


def template_text(evidence: Any) -> str:
    """The words of a log evidence item's template.

    The signal's text (``log payments: InvalidFormatException``) or, when the signal only names
    a template id (``log template payments:4bd79d06``), the first quoted string of the
    explanation (``ERROR 'charge <*> failed: …' new: …``, a Python literal).
    """
    signal = str(getattr(evidence, "signal", "") or "")
    _, _, name = parse_signal("log", getattr(evidence, "service", None), signal)
    if " " in name.strip():
        return name
    explanation = str(getattr(evidence, "explanation", "") or "")
    match = _QUOTED.search(explanation)
    if match:
        try:
            text = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            text = match.group(0)[1:-1]
        if isinstance(text, str) and text.strip():
            return text.strip()
    return name


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def symptom_of(metrics: Mapping[str, float], origin: str | None = None) -> str | None:
    """The symptom the strongest moved metrics point at (the origin's metrics when it has any)."""
    if not metrics:
        return None
    own = {k: v for k, v in metrics.items() if origin and k.split("/", 1)[0] == origin}
    pool = own or metrics
    totals: dict[str, float] = {}
    for key, value in pool.items():
        name = key.split("/", 1)[-1].lower()
        symptom = _symptom_of_name(name)
        if symptom == "traffic" and value < 0:
            continue  # a drop in traffic is a consequence (users give up), not a symptom class
        if symptom is not None:
            totals[symptom] = totals.get(symptom, 0.0) + abs(value)
    if not totals:
        return None
    return max(SYMPTOMS, key=lambda s: (totals.get(s, 0.0), -SYMPTOMS.index(s)))


def _symptom_of_name(name: str) -> str | None:
    tokens = set(re.split(r"[^a-z0-9]+", name))
    for symptom, words in _SYMPTOM_WORDS:
        for word in words:
            if ("_" in word and word in name) or word in tokens or (len(word) > 3 and word in name):
                return symptom
    return None


# --------------------------------------------------------------------------- helpers

def _choose(hypotheses: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for status in ("confirmed", "proposed"):
        pool = [h for h in hypotheses if h.get("status", "proposed") == status]
        if pool:
            return max(pool, key=lambda h: (finite(h.get("score")) or 0.0, -(h.get("rank") or 0)))
    return None


_VS = re.compile(r"(-?\d+(?:\.\d+)?)\s*(%|ms|s\b)?[^0-9]{0,20}?\bvs\.?\s*(-?\d+(?:\.\d+)?)\s*(%|ms|s\b)?")
_UNITS = {"s": 1000.0, "ms": 1.0}


def _direction_from_text(text: str) -> str:
    """``up`` unless the explanation reads ``A vs B`` with A below B (a hand-written drop)."""
    match = _VS.search(text)
    if not match:
        return "up"
    now = float(match.group(1)) * _UNITS.get(match.group(2) or "", 1.0)
    before = float(match.group(3)) * _UNITS.get(match.group(4) or "", 1.0)
    return "down" if now < before else "up"


def _directional(values: Mapping[str, float]) -> dict[str, float]:
    return {f"{k}:{'down' if v < 0 else 'up'}": abs(v) for k, v in values.items()}


def _weighted_jaccard(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    keys = set(a) | set(b)
    if not keys:
        return 0.0
    num = sum(min(abs(a.get(k, 0.0)), abs(b.get(k, 0.0))) for k in keys)
    den = sum(max(abs(a.get(k, 0.0)), abs(b.get(k, 0.0))) for k in keys)
    return num / den if den > 0 else 0.0


def _words(text: str) -> frozenset[str]:
    text = _MASK.sub(" ", text)
    words = set()
    for word in _WORD.findall(text):
        for part in word.split("."):
            part = part.lower()
            if len(part) >= 3 and part not in _STOP:
                words.add(part)
    return frozenset(words)


def _template_similarity(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    parsed_a = [(k.split(": ", 1)[0], _words(k.split(": ", 1)[-1]), w) for k, w in a.items()]
    parsed_b = [(k.split(": ", 1)[0], _words(k.split(": ", 1)[-1]), w) for k, w in b.items()]

    def best(item: tuple[str, frozenset[str], float], pool: list[tuple[str, frozenset[str], float]]) -> float:
        service, words, _ = item
        out = 0.0
        for other_service, other_words, _ in pool:
            if other_service != service or not words or not other_words:
                continue
            out = max(out, len(words & other_words) / min(len(words), len(other_words)))
        return out

    num = sum(w * best(item, parsed_b) for item in parsed_a for w in [item[2]])
    num += sum(w * best(item, parsed_a) for item in parsed_b for w in [item[2]])
    den = sum(w for *_, w in parsed_a) + sum(w for *_, w in parsed_b)
    return num / den if den > 0 else 0.0


def _top_normalised(values: Mapping[str, float], limit: int | None, min_weight: float) -> dict[str, float]:
    if not values:
        return {}
    top = max(abs(v) for v in values.values())
    if top <= 0:
        return {}
    ordered = sorted(values.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    kept = [(k, v / top) for k, v in ordered if abs(v) / top >= min_weight]
    return dict(kept[:limit] if limit is not None else kept)


def _clean_weights(values: Mapping[str, Any] | None, signed: bool) -> dict[str, float]:
    out = {}
    for key in sorted(values or {}):
        value = finite(values[key])
        if value is None:
            continue
        value = max(-1.0, min(1.0, value)) if signed else max(0.0, min(1.0, value))
        if value != 0.0:
            out[str(key)] = round(value, _ROUND)
    return out
