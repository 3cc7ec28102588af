"""Integration tokens: secrets made here, only their SHA-256 stored, checked in constant time.

``workbench token new alertmanager --scope alerts:write`` prints a secret once
(``wbt_<43 characters>``, 256 random bits); the knowledge base keeps its hash
(:mod:`workbench.store.tokens`). A request presents it as ``Authorization: Bearer <secret>`` (what
Alertmanager's ``http_config.authorization`` and the OpenTelemetry exporters' headers send) or as
the password of HTTP basic auth (what a webhook URL with credentials sends, e.g. GitHub's).

Why SHA-256 and not a password hash: the secret is random with 256 bits of entropy, so there is
nothing to guess, and a fast hash keeps every request cheap. The stored and the computed digests
are compared with :func:`hmac.compare_digest`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..store.tokens import SCOPES, Token
from .limits import RequestError

__all__ = ["SCOPES", "PREFIX", "Authenticator", "Caller", "hash_secret", "new_secret", "create_token", "bearer"]

PREFIX = "wbt_"
#: Seconds a verified token is trusted without asking the database again (a revocation takes
#: effect within this time).
CACHE_SECONDS = 10.0
#: At most one ``last_used_at`` write per token in this many seconds.
TOUCH_SECONDS = 60.0


def new_secret() -> str:
    """A new token secret: :data:`PREFIX` and 32 random bytes, URL-safe base64."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a secret (what the knowledge base stores)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(kb: Any, name: str, scopes: list[str], who: str) -> tuple[Token, str]:
    """Store a new token; returns (record, secret). The secret is shown once and never stored."""
    secret = new_secret()
    return kb.create_token(name, scopes, hash_secret(secret), who=who), secret


def bearer(header: str | None) -> str | None:
    """The secret of an ``Authorization`` header: ``Bearer <secret>``, or basic auth's password."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: the token's id, name and scopes."""

    token_id: str
    name: str
    scopes: tuple[str, ...]

    @property
    def who(self) -> str:
        """How the caller is named in history rows."""
        return f"token:{self.name}"


class Authenticator:
    """Checks ``Authorization`` headers against the knowledge base's tokens.

    Parameters
    ----------
    kb : KnowledgeBase
    clock : callable
        Monotonic seconds (tests).
    """

    def __init__(self, kb: Any, clock: Callable[[], float] = time.monotonic):
        self.kb, self._clock = kb, clock
        self._cache: dict[str, tuple[float, tuple[Token, str] | None]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def authenticate(self, header: str | None, scope: str) -> Caller:
        """The caller of a request needing ``scope``.

        Raises
        ------
        RequestError
            401 without a valid, unrevoked token; 403 when the token lacks ``scope``.
        """
        secret = bearer(header)
        if secret is None:
            raise RequestError(401, "unauthorized", "a token is required: send Authorization: Bearer <token> "
                                                    "(workbench token new NAME --scope ...)")
        digest = hash_secret(secret)
        found = self._lookup(digest)
        # The database found the row by its digest; the constant-time comparison of the digests is
        # what admits the request.
        if found is None or not hmac.compare_digest(digest, found[1]) or not found[0].active:
            raise RequestError(401, "unauthorized", "the token is unknown or revoked")
        token = found[0]
        if scope not in token.scopes:
            raise RequestError(403, "forbidden", f"the token {token.name!r} lacks the scope {scope!r} "
                                                 f"(it has {', '.join(token.scopes)})")
        self._touch(token)
        return Caller(token.id, token.name, token.scopes)

    def forget(self) -> None:
        """Drop the cache (after a revocation in this process)."""
        with self._lock:
            self._cache.clear()

    # ------------------------------------------------------------------ internals

    def _lookup(self, digest: str) -> tuple[Token, str] | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and now - hit[0] < CACHE_SECONDS:
                return hit[1]
        found = self.kb.find_token(digest)
        with self._lock:
            if len(self._cache) > 10_000:  # many wrong secrets: start afresh rather than grow
                self._cache.clear()
            self._cache[digest] = (now, found)
        return found

    def _touch(self, token: Token) -> None:
        now = self._clock()
        with self._lock:
            if now - self._touched.get(token.id, -TOUCH_SECONDS) < TOUCH_SECONDS:
                return
            self._touched[token.id] = now
        try:
            self.kb.touch_token(token.id)
        except Exception:  # noqa: BLE001 - a failed bookkeeping write never refuses a valid request
            pass
