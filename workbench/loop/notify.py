"""Signed webhooks from the notification outbox: nothing lost, every send carries a fixed delivery id.

The knowledge base queues notifications in the same transaction as the change that causes them
(:meth:`KnowledgeBase.enqueue_notification`, rows described in :mod:`workbench.store.outbox`).
:func:`deliver` POSTs the due ones to their webhooks and records the outcome.

Configuration (``workbench.toml``)
----------------------------------
::

    [webhooks.ops]                                 # the target name ("ops"): [A-Za-z0-9._-]
    url = "https://hooks.example.com/workbench"    # http or https only
    secret_env = "WORKBENCH_WEBHOOK_OPS_SECRET"    # default: WORKBENCH_WEBHOOK_<NAME>_SECRET
    format = "generic"                             # or "ticket"; default generic
    kinds = ["recurrence", "escalation"]           # optional: only these kinds; default all
    timeout = 10                                   # seconds per request; default 10

The signing secret is read from the environment variable ``secret_env`` names, never from the file
and never stored in the knowledge base or a payload; a ``secret`` key in the file is refused.
``WORKBENCH_WEBHOOK_<NAME>_URL`` overrides ``url`` (``<NAME>``: the name upper-cased, other
characters than letters and digits as ``_``).

Wire formats (the request body, UTF-8 JSON, keys sorted, no spaces)
-------------------------------------------------------------------
``generic``::

    {"delivery_id": "4b0c...-uuid", "kind": "criterion_violated", "created_at": "2026-03-01T06:00:00Z",
     "incident": {"id": "INC-20260220-001", "title": "...", "severity": "SEV2", "status": "monitoring",
                  "services": ["checkout"]} | null,
     "summary": "one line", "details": {...kind-specific JSON...},
     "links": [{"title": "...", "url": "https://..."}], "recipients": ["alice"]}

``ticket`` (for issue trackers)::

    {"title": "[workbench] criterion violated: INC-20260220-001: one line",
     "body": "plain text / Markdown: summary, incident, recipients, details, links, delivery id",
     "labels": ["workbench", "criterion_violated", "sev2", "service:checkout"],
     "link": "first link's URL" | null}

``incident`` is a snapshot taken when the notification was queued. The body of a notification is
the same bytes on every attempt.

Headers and signature
---------------------
Every request carries ``Content-Type: application/json``, ``X-Workbench-Delivery: <delivery_id>``,
``X-Workbench-Event: <kind>``, ``X-Workbench-Timestamp: <Unix seconds when sent>`` and
``X-Workbench-Signature: sha256=<hex>``, where ``<hex>`` is the HMAC-SHA256, keyed with the
webhook's secret (UTF-8), of exactly these bytes::

    <timestamp> "." <delivery_id> "." <body bytes>

(the two header values as ASCII, then the raw request body). Signing the timestamp lets a receiver
refuse replays older than a tolerance; signing the delivery id stops a captured request from being
re-labelled to slip past deduplication. :func:`verify_signature` is the receiver's check.

Delivery guarantees
-------------------
- At least once, deduplicable: a row is marked delivered only after a 2xx answer. A crash (or a
  failed database write) between the answer and the mark leaves it pending, and it is sent again
  with the SAME delivery id: receivers must deduplicate on ``X-Workbench-Delivery``.
- Nothing lost: the row is committed with the state change, so a crash before delivery only
  delays it; a crash mid-send is retried when the row's lease (``lease``) has run out.
- Failures (non-2xx, redirects, which are never followed, timeouts, network errors) are retried
  with exponential backoff (:class:`Backoff`); after ``max_attempts`` the row is ``dead``, stays
  visible (``list_outbox(kb, status="dead")``) and :func:`resend` queues it again, same id.
- Rows for a target that is no longer configured stay pending and are counted in
  :attr:`DeliveryReport.unconfigured`.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..formats import clip
from ..errors import ConfigError, ParameterError
from ..store.outbox import NOTIFICATION_KINDS, Notification
from ..store.records import ID_PATTERN, iso

FORMATS = ("generic", "ticket")
SCHEMES = ("http", "https")
WEBHOOK_KEYS = ("url", "secret_env", "format", "kinds", "timeout")
DEFAULT_TIMEOUT = 10.0
#: Seconds a receiver accepts between the signed timestamp and its own clock (:func:`verify_signature`).
SIGNATURE_TOLERANCE = 300
HEADER_DELIVERY = "X-Workbench-Delivery"
HEADER_EVENT = "X-Workbench-Event"
HEADER_TIMESTAMP = "X-Workbench-Timestamp"
HEADER_SIGNATURE = "X-Workbench-Signature"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Characters of a failed answer's body kept in ``last_error``.
_ERROR_BODY = 300


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Webhook:
    """One configured webhook target (``[webhooks.<name>]``).

    ``secret`` is ``None`` only when loaded with ``require_secret=False`` (queueing needs names and
    kinds, sending needs the secret); it never appears in ``repr``.
    """

    name: str
    url: str
    secret: str | None = field(repr=False, default=None)
    format: str = "generic"
    kinds: tuple[str, ...] | None = None
    timeout: float = DEFAULT_TIMEOUT

    def takes(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


def env_prefix(name: str) -> str:
    """``WORKBENCH_WEBHOOK_<NAME>_`` for a webhook name (``ops-eu`` -> ``WORKBENCH_WEBHOOK_OPS_EU_``)."""
    return "WORKBENCH_WEBHOOK_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_"


def load_webhooks(settings: Any, environ: Mapping[str, str] | None = None, *,
                  require_secret: bool = True) -> list[Webhook]:
    """The ``[webhooks.<name>]`` tables of ``workbench.toml``, checked, in file order.

    Parameters
    ----------
    settings : Settings or mapping
        :class:`workbench.config.Settings` (its ``extra`` holds the tables) or that mapping.
    environ : mapping, optional
        Where secrets and URL overrides are read (default ``os.environ``).
    require_secret : bool
        False to load names, URLs and kinds without the secrets (enough to queue notifications).

    Raises
    ------
    ConfigError
        Naming the key (``webhooks.ops.url``) and what was expected.
    """
    environ = os.environ if environ is None else environ
    extra = settings.extra if hasattr(settings, "extra") else settings
    section = (extra or {}).get("webhooks", {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"webhooks: expected tables [webhooks.<name>] with url and secret_env, got {section!r}")
    return [_webhook(name, table, environ, require_secret) for name, table in section.items()]


def _webhook(name: Any, table: Any, environ: Mapping[str, str], require_secret: bool) -> Webhook:
    where = f"webhooks.{name}"
    if not isinstance(name, str) or not ID_PATTERN.fullmatch(name) or len(name) > 128:
        raise ConfigError(f"{where}: a webhook name is 1-128 characters from [A-Za-z0-9._-]")
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table with url and secret_env, got {table!r}")
    if "secret" in table:
        raise ConfigError(f"{where}.secret: secrets are never read from workbench.toml; put the secret in an "
                          f"environment variable and name it with secret_env (default {env_prefix(name)}SECRET)")
    for key in table:
        if key not in WEBHOOK_KEYS:
            import difflib

            close = difflib.get_close_matches(str(key), WEBHOOK_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}.{key}: unknown key{hint}; known: {', '.join(WEBHOOK_KEYS)}")
    url = environ.get(env_prefix(name) + "URL") or table.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}.url: required, an http:// or https:// URL")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise ConfigError(f"{where}.url: expected an http:// or https:// URL with a host, got {url!r}")
    fmt = table.get("format", "generic")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    kinds = table.get("kinds")
    if kinds is not None:
        if isinstance(kinds, str) or not isinstance(kinds, Sequence) or not kinds:
            raise ConfigError(f"{where}.kinds: expected a non-empty list of {', '.join(NOTIFICATION_KINDS)}, "
                              f"got {kinds!r}")
        for kind in kinds:
            if kind not in NOTIFICATION_KINDS:
                raise ConfigError(f"{where}.kinds: expected kinds from {', '.join(NOTIFICATION_KINDS)}, got {kind!r}")
        kinds = tuple(dict.fromkeys(kinds))
    timeout = table.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise ConfigError(f"{where}.timeout: expected seconds, a number in (0, 300], got {timeout!r}")
    secret_env = table.get("secret_env", env_prefix(name) + "SECRET")
    if not isinstance(secret_env, str) or not _ENV_NAME.fullmatch(secret_env):
        raise ConfigError(f"{where}.secret_env: expected the name of an environment variable, got {secret_env!r}")
    secret = environ.get(secret_env)
    if require_secret and not secret:
        raise ConfigError(f"{where}.secret_env: environment variable {secret_env} is not set (or empty); it "
                          f"holds the webhook's signing secret")
    return Webhook(name=name, url=url.strip(), secret=secret or None, format=fmt, kinds=kinds,
                   timeout=float(timeout))


def targets(settings: Any, environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, ...] | None]:
    """Webhook name -> kinds it takes (``None``: all), from ``workbench.toml``; secrets not needed."""
    return {w.name: w.kinds for w in load_webhooks(settings, environ, require_secret=False)}


def targets_for(settings: Any, kind: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of the configured webhooks that take ``kind``."""
    return [name for name, kinds in targets(settings, environ).items() if kinds is None or kind in kinds]


def attach(kb: Any, settings: Any, environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, ...] | None]:
    """Point ``kb.enqueue_notification`` (without ``targets``) at the configured webhooks; returns them."""
    found = targets(settings, environ)
    kb.set_notification_targets(found)
    return found


# --------------------------------------------------------------------------- bodies and signatures

def render(notification: Notification, format: str = "generic") -> dict[str, Any]:
    """The JSON object sent for ``notification`` in ``format`` (see the module docstring)."""
    p = notification.payload
    if format == "generic":
        return {
            "delivery_id": notification.delivery_id, "kind": notification.kind,
            "created_at": iso(notification.created_at), "incident": p.get("incident"),
            "summary": p.get("summary"), "details": p.get("details") or {}, "links": p.get("links") or [],
            "recipients": p.get("recipients") or [],
        }
    if format == "ticket":
        return _ticket(notification)
    raise ConfigError(f"webhook format: expected one of {', '.join(FORMATS)}, got {format!r}")


def _ticket(n: Notification) -> dict[str, Any]:
    p, incident = n.payload, n.payload.get("incident")
    kind = n.kind.replace("_", " ")
    prefix = f"{incident['id']}: " if incident else ""
    title = f"[workbench] {kind}: {prefix}{p['summary']}"
    title = " ".join(title.split())
    if len(title) > 200:
        title = title[:199] + "…"
    lines = [p["summary"], ""]
    if incident:
        services = ", ".join(incident.get("services") or []) or "-"
        lines.append(f"Incident: {incident['id']} — {incident['title']} ({incident['severity']}, status "
                     f"{incident['status']}; services: {services})")
    if p.get("recipients"):
        lines.append(f"For: {', '.join(p['recipients'])}")
    if p.get("details"):
        lines += ["", "Details:"]
        for key, value in p["details"].items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
            lines.append(f"- {key}: {shown}")
    if p.get("links"):
        lines += ["", "Links:"]
        lines += [f"- [{link['title']}]({link['url']})" for link in p["links"]]
    lines += ["", f"Delivery {n.delivery_id} ({n.kind}, queued {iso(n.created_at)})"]
    labels = ["workbench", n.kind]
    if incident:
        labels.append(incident["severity"].lower())
        labels += [f"service:{s}" for s in incident.get("services") or []]
    links = p.get("links") or []
    return {"title": title, "body": "\n".join(lines), "labels": labels, "link": links[0]["url"] if links else None}


def body_bytes(notification: Notification, format: str = "generic") -> bytes:
    """The exact request body: :func:`render` as UTF-8 JSON, keys sorted, no spaces (stable bytes)."""
    return json.dumps(render(notification, format), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def sign(secret: str | bytes, body: bytes, delivery_id: str, timestamp: int | str) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<delivery_id>.<body>`` keyed with ``secret``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    message = f"{timestamp}.{delivery_id}.".encode("ascii") + body
    return "sha256=" + hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_headers(secret: str | bytes, body: bytes, delivery_id: str, kind: str,
                   timestamp: int | None = None) -> dict[str, str]:
    """The headers of one request (timestamp: now, in Unix seconds)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "Content-Type": "application/json",
        "User-Agent": f"postmortem-workbench/{_version()}",
        HEADER_DELIVERY: delivery_id,
        HEADER_EVENT: kind,
        HEADER_TIMESTAMP: str(ts),
        HEADER_SIGNATURE: sign(secret, body, delivery_id, ts),
    }


def verify_signature(secret: str | bytes, body: bytes, headers: Any, *, tolerance: float | None = SIGNATURE_TOLERANCE,
                     now: float | None = None) -> bool:
    """The receiver's check: is ``body`` with ``headers`` a request signed with ``secret``?

    Parameters
    ----------
    secret : str or bytes
        The webhook's shared secret.
    body : bytes
        The raw request body, exactly as received (before any JSON parsing).
    headers : mapping or email.message.Message
        The request headers (names case-insensitive), e.g. ``BaseHTTPRequestHandler.headers``.
    tolerance : float or None
        Maximum age (and clock skew) in seconds of ``X-Workbench-Timestamp``; ``None`` skips it.
    now : float, optional
        The receiver's current Unix time (default ``time.time()``).

    Returns
    -------
    bool
        False when a header is missing or malformed, the timestamp is out of tolerance, or the
        signature differs (compared in constant time). Deduplicate on ``X-Workbench-Delivery``
        separately: a re-send is a valid, newly signed request with the same delivery id.
    """
    found = {str(k).lower(): v for k, v in headers.items()}
    given = found.get(HEADER_SIGNATURE.lower())
    ts = found.get(HEADER_TIMESTAMP.lower())
    delivery_id = found.get(HEADER_DELIVERY.lower())
    if not (isinstance(given, str) and isinstance(ts, str) and isinstance(delivery_id, str)):
        return False
    if not given.startswith("sha256=") or not ts.isdigit() or not delivery_id.isascii():
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - int(ts)) > tolerance:
        return False
    return hmac.compare_digest(given.encode("ascii", "replace"),
                               sign(secret, body, delivery_id, ts).encode("ascii"))


@functools.lru_cache(maxsize=1)
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("postmortem-workbench")
    except PackageNotFoundError:
        return "dev"


# --------------------------------------------------------------------------- delivery

@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: the wait after the ``n``-th failed attempt is ``min(cap, base * factor**(n-1))``.

    Defaults: 1 min, 2 min, 4 min ... capped at 6 h. Deterministic (no jitter): one scheduler
    process delivers, so there is no thundering herd to spread.
    """

    base: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=6)

    def delay(self, attempt: int) -> timedelta:
        seconds = self.base.total_seconds() * self.factor ** max(attempt - 1, 0)
        return timedelta(seconds=min(seconds, self.cap.total_seconds()))


@dataclass(frozen=True)
class Attempt:
    """One send: its outcome ``delivered``, ``retry`` (due again at ``retry_at``) or ``dead``."""

    delivery_id: str
    target: str
    kind: str
    attempt: int
    outcome: str
    http_status: int | None = None
    error: str | None = None
    retry_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["retry_at"] = None if self.retry_at is None else iso(self.retry_at)
        return out


@dataclass
class DeliveryReport:
    """What one :func:`deliver` run did.

    Attributes
    ----------
    attempts : list of Attempt
        Every send, in order.
    unconfigured : dict
        Target name -> pending notifications left alone because no such webhook is configured.
    """

    attempts: list[Attempt] = field(default_factory=list)
    unconfigured: dict[str, int] = field(default_factory=dict)

    def _count(self, outcome: str) -> int:
        return sum(a.outcome == outcome for a in self.attempts)

    @property
    def delivered(self) -> int:
        return self._count("delivered")

    @property
    def retried(self) -> int:
        return self._count("retry")

    @property
    def dead(self) -> int:
        return self._count("dead")

    def to_dict(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "retried": self.retried, "dead": self.dead,
                "unconfigured": dict(self.unconfigured), "attempts": [a.to_dict() for a in self.attempts]}

    def summary(self) -> str:
        text = f"{self.delivered} delivered, {self.retried} to retry, {self.dead} dead"
        if self.unconfigured:
            text += "; pending for unconfigured webhooks: " + ", ".join(
                f"{k} ({v})" for k, v in sorted(self.unconfigured.items()))
        return text


def deliver(kb: Any, webhooks: Iterable[Webhook], now: datetime | None = None, *, max_attempts: int = 8,
            backoff: Backoff | Callable[[int], timedelta] = Backoff(), lease: timedelta | None = None,
            limit: int | None = None, batch: int = 10) -> DeliveryReport:
    """Send every due pending notification to its webhook and record the outcome.

    Parameters
    ----------
    kb : KnowledgeBase
    webhooks : iterable of Webhook
        From :func:`load_webhooks` (with secrets).
    now : datetime, optional
        The scheduling clock (aware; default: the current time): rows due at or before it are
        sent and retries are scheduled from it. Signature timestamps always use the real clock.
    max_attempts : int
        Attempts before a notification is dead (default 8: with the default backoff about 2 h).
    backoff : Backoff or callable
        Wait after the n-th failed attempt (``backoff(n)`` or ``backoff.delay(n)``).
    lease : timedelta, optional
        How long claimed rows are held before another run may retry them (default: ``batch``
        times the longest webhook timeout, plus one minute).
    limit : int, optional
        Stop after this many sends.
    batch : int
        Rows claimed per transaction (default 10).

    Notes
    -----
    Rows are claimed ``batch`` at a time (one short transaction), sent one by one, and each is
    marked right after its answer (one transaction each): a crash re-sends at most the row in
    flight, and the batch's unsent rows wait for the lease to run out. An exception while marking propagates: the row
    stays pending and is re-sent, same delivery id, after its lease — the documented
    at-least-once behaviour.
    """
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ParameterError(f"max_attempts: expected an integer >= 1, got {max_attempts!r}")
    hooks = {w.name: w for w in webhooks}
    for hook in hooks.values():
        if not hook.secret:
            raise ConfigError(f"webhooks.{hook.name}.secret_env: no signing secret loaded; unsigned requests are "
                              f"never sent")
    now = datetime.now(timezone.utc) if now is None else now
    if now.tzinfo is None:
        raise ParameterError(f"now: expected a timezone-aware time, got {now!r}")
    delay = backoff.delay if isinstance(backoff, Backoff) else backoff
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ParameterError(f"batch: expected an integer >= 1, got {batch!r}")
    if lease is None:
        slowest = max((h.timeout for h in hooks.values()), default=DEFAULT_TIMEOUT)
        lease = timedelta(seconds=batch * slowest + 60)
    report = DeliveryReport()
    for row in kb.list_outbox(status="pending"):
        if row.target not in hooks:
            report.unconfigured[row.target] = report.unconfigured.get(row.target, 0) + 1
    opener = urllib.request.build_opener(_NoRedirect)
    while limit is None or len(report.attempts) < limit:
        size = batch if limit is None else min(batch, limit - len(report.attempts))
        claimed = kb.claim_notifications(list(hooks), now=now, lease=lease, limit=size)
        if not claimed:
            break
        for row in claimed:
            report.attempts.append(_send(kb, opener, hooks[row.target], row, now, max_attempts, delay))
    return report


def _send(kb: Any, opener: urllib.request.OpenerDirector, hook: Webhook, row: Notification, now: datetime,
          max_attempts: int, delay: Callable[[int], timedelta]) -> Attempt:
    status, error = _post(opener, hook, row)
    if status is not None and 200 <= status < 300:
        kb.mark_delivered(row.delivery_id)
        return Attempt(row.delivery_id, row.target, row.kind, row.attempts, "delivered", status)
    retry_at = None if row.attempts >= max_attempts else now + delay(row.attempts)
    kb.mark_failed(row.delivery_id, error, retry_at=retry_at)
    return Attempt(row.delivery_id, row.target, row.kind, row.attempts, "dead" if retry_at is None else "retry",
                   status, error, retry_at)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would turn into a GET without the body (urllib's rule for 301-303) or
    # carry a signed request to another host: a 3xx is a failed attempt, not something to follow.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


def _where(hook: Webhook) -> str:
    # Errors are stored in the outbox: name the webhook and its host, never the full URL (paths
    # and query strings of chat webhooks often are the credential).
    parts = urllib.parse.urlsplit(hook.url)
    port = f":{parts.port}" if parts.port else ""
    return f"webhook {hook.name} ({parts.scheme}://{parts.hostname}{port})"


def _post(opener: urllib.request.OpenerDirector, hook: Webhook, row: Notification) -> tuple[int | None, str | None]:
    """POST one notification; returns (HTTP status or None, error text or None)."""
    body = body_bytes(row, hook.format)
    request = urllib.request.Request(hook.url, data=body, method="POST",
                                     headers=signed_headers(hook.secret or "", body, row.delivery_id, row.kind))
    try:
        with opener.open(request, timeout=hook.timeout) as response:
            response.read(_ERROR_BODY)
            return response.status, None
    except urllib.error.HTTPError as exc:
        try:
            text = exc.read(_ERROR_BODY).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            text = ""
        moved = " (a redirect, not followed)" if 300 <= exc.code < 400 else ""
        return exc.code, f"HTTP {exc.code} from {_where(hook)}{moved}: {' '.join(text.split())}".rstrip(": ")
    except urllib.error.URLError as exc:
        return None, f"{_where(hook)}: {exc.reason}"
    except (OSError, http.client.HTTPException, ValueError) as exc:  # timeouts, resets, bad answers
        return None, f"{_where(hook)}: {type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- outbox views

def list_outbox(kb: Any, status: str | None = None, kind: str | None = None, incident_id: str | None = None,
                target: str | None = None) -> list[Notification]:
    """Outbox rows in queue order; ``status="dead"`` lists the dead letters."""
    return kb.list_outbox(status=status, kind=kind, incident_id=incident_id, target=target)


def resend(kb: Any, delivery_ids: Iterable[str] | None = None, now: datetime | None = None) -> list[Notification]:
    """Queue dead notifications again (``None``: every dead one), keeping their delivery ids."""
    return kb.resend_notifications(delivery_ids, at=now)


def describe(row: Notification) -> str:
    """One line per notification: ``<delivery_id> <status> <kind> -> <target> ...``."""
    state = row.status
    if row.status == "pending":
        state += f" (next {iso(row.next_attempt_at)})"
    elif row.status == "delivered" and row.delivered_at is not None:
        state += f" ({iso(row.delivered_at)})"
    error = f": {clip(row.last_error, 300)}" if row.last_error and row.status != "delivered" else ""
    return (f"{row.delivery_id}  {state}  {row.kind} -> {row.target}  incident {row.incident_id or '-'}  "
            f"attempts {row.attempts}{error}")
