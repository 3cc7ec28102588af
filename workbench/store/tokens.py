"""Integration tokens in the knowledge base: a name, scopes and the SHA-256 of the secret, never the secret.

The secret is generated and hashed by :mod:`workbench.inbound.tokens`; this module only stores and
finds rows. A token is looked up by the hash of the presented secret: the secret has 256 bits of
entropy, so a fast hash is as good as a slow one here (nothing to brute-force), and a lookup by
hash reveals nothing about a secret nobody has. Revoked tokens stay (the audit trail) and never
authenticate again.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import select

from ..errors import ConflictError, NotFoundError
from .models import TokenRow
from .records import _Record, check_enum, check_text, check_time, fail

#: What a token may do: receivers (alerts, telemetry, changes) and the REST API (read, write).
SCOPES = ("alerts:write", "telemetry:write", "changes:write", "api:read", "api:write")


@dataclass(frozen=True)
class Token(_Record):
    """An integration token (without its secret).

    Attributes
    ----------
    id : str
        ``tok-<12 hex>``.
    name : str
        What the integration is (``alertmanager-prod``); names the writer in history rows.
    scopes : tuple of str
        From :data:`SCOPES`.
    created_at, last_used_at, revoked_at : datetime or None
    created_by : str
    """

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def to_token(row: TokenRow) -> Token:
    return Token(id=row.id, name=row.name, scopes=tuple(copy.deepcopy(row.scopes)), created_at=row.created_at,
                 created_by=row.created_by, last_used_at=row.last_used_at, revoked_at=row.revoked_at)


def check_scopes(scopes: Any) -> list[str]:
    if isinstance(scopes, str):
        scopes = [scopes]
    if not isinstance(scopes, (list, tuple)) or not scopes:
        raise fail("scopes", f"one or more of {', '.join(SCOPES)}", scopes)
    out: list[str] = []
    for i, scope in enumerate(scopes):
        scope = check_enum(scope, f"scopes[{i}]", SCOPES)
        if scope not in out:
            out.append(scope)
    return out


class TokenMethods:
    """The token part of :class:`~workbench.store.KnowledgeBase` (one transaction per call)."""

    def create_token(self, name: str, scopes: Iterable[str], secret_hash: str, *, who: str) -> Token:
        """Store a token whose secret hashes to ``secret_hash`` (64 hex characters)."""
        name = check_text(name, "name")
        scopes = check_scopes(list(scopes) if not isinstance(scopes, str) else scopes)
        if not isinstance(secret_hash, str) or len(secret_hash) != 64:
            raise fail("secret_hash", "a SHA-256 hex digest", secret_hash)
        who = check_text(who, "who")
        with self._session(write=True) as s:
            row = TokenRow(id=f"tok-{uuid.uuid4().hex[:12]}", name=name, scopes=scopes, secret_hash=secret_hash,
                           created_at=self._clock(), created_by=who, last_used_at=None, revoked_at=None)
            s.add(row)
            s.flush()
            return to_token(row)

    def list_tokens(self, include_revoked: bool = False) -> list[Token]:
        """Tokens in creation order (active ones only, unless ``include_revoked``)."""
        query = select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)
        if not include_revoked:
            query = query.where(TokenRow.revoked_at.is_(None))
        with self._session(write=False) as s:
            return [to_token(r) for r in s.scalars(query)]

    def find_token(self, secret_hash: str) -> tuple[Token, str] | None:
        """(token, its stored hash) for the token (active or revoked) whose secret hashes to
        ``secret_hash``, or None. The caller compares the hashes in constant time."""
        if not isinstance(secret_hash, str):
            return None
        with self._session(write=False) as s:
            row = s.scalar(select(TokenRow).where(TokenRow.secret_hash == secret_hash))
            return None if row is None else (to_token(row), row.secret_hash)

    def revoke_token(self, id_or_name: str, at: Any = None) -> list[Token]:
        """Revoke the token with this id, or every active token with this name; returns them.

        Raises :class:`~workbench.errors.NotFoundError` when nothing active matches.
        """
        key = check_text(id_or_name, "token")
        at = self._clock() if at is None else check_time(at, "at")
        with self._session(write=True) as s:
            rows = list(s.scalars(select(TokenRow).where(TokenRow.revoked_at.is_(None))
                                  .where((TokenRow.id == key) | (TokenRow.name == key))))
            if not rows:
                revoked = s.scalar(select(TokenRow).where((TokenRow.id == key) | (TokenRow.name == key)))
                if revoked is not None:
                    raise ConflictError(f"token {key!r} is already revoked")
                raise NotFoundError(f"no active token with id or name {key!r}")
            for row in rows:
                row.revoked_at = at
            s.flush()
            return [to_token(r) for r in rows]

    def touch_token(self, token_id: str, at: Any = None) -> None:
        """Record that a token was used (callers rate-limit this: one write a minute is plenty)."""
        at = self._clock() if at is None else check_time(at, "at")
        with self._session(write=True) as s:
            row = s.get(TokenRow, token_id)
            if row is not None:
                row.last_used_at = at
