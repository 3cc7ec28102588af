"""One workspace's receivers and API, without HTTP: what the served app's handlers call.

:class:`Inbound` holds what every request shares (the knowledge base, the token check, the rate
limiter, the ingest queue and the settings) and offers each endpoint's work as plain calls, so
the Tornado handlers (:mod:`workbench.reports.api`) only authenticate, limit, decode, call and
answer, and a test or a script can drive the same code without a server. Every method that
touches the database or the store blocks: handlers run them off the event loop.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from concurrent.futures import Future
from typing import Any, Callable, Mapping

import pandas as pd

from ..errors import SchemaError
from ..telemetry import schema
from ..workspace import Workspace, open_workspace
from . import alerts, changes, otlp, remediation
from .jobs import requeue_for_telemetry
from .limits import RateLimiter, RequestError, decode_body, parse_json
from .queue import IngestQueue
from .settings import SECRET_ENV, ReceiverSettings, receiver_settings
from .tokens import Authenticator, Caller


class Inbound:
    """The receivers and REST API of ``workspace`` (see the module docstring).

    Parameters
    ----------
    workspace : Workspace or path
    settings : ReceiverSettings, optional
        Default: ``[receivers]`` of the workspace's ``workbench.toml`` and the environment.
    secret : str, optional
        The change webhooks' HMAC secret; default ``$WORKBENCH_CHANGES_SECRET`` (None: no
        signature is required).
    """

    def __init__(self, workspace: Workspace | str | os.PathLike[str], settings: ReceiverSettings | None = None,
                 secret: str | None = None):
        self.ws = open_workspace(workspace)
        self.settings = settings or receiver_settings(self.ws.settings.extra)
        self.kb = self.ws.knowledge_base()
        self.auth = Authenticator(self.kb)
        self.limiter = RateLimiter(self.settings.rate, self.settings.burst)
        self.queue = IngestQueue(self.ws.telemetry(), self.settings.queue, on_commit=self._requeue)
        self.secret = secret if secret is not None else os.environ.get(SECRET_ENV) or None

    def close(self) -> None:
        """Write what is queued, stop the writer, close the knowledge base."""
        self.queue.close()
        self.kb.close()

    # ------------------------------------------------------------------ every request

    def authorize(self, header: str | None, scope: str) -> Caller:
        """The caller of a request needing ``scope``, within its rate limit (401/403/429)."""
        caller = self.auth.authenticate(header, scope)
        self.limiter.take(caller.token_id)
        return caller

    def body(self, raw: bytes, encoding: str | None) -> bytes:
        """The request body, decompressed, within ``max_body`` (413/415/400)."""
        return decode_body(raw, encoding, self.settings.max_body)

    def json(self, raw: bytes) -> Any:
        """The body as JSON within ``max_depth``, every string storable (400)."""
        return parse_json(raw, self.settings.max_depth)

    def submit(self, tables: Mapping[str, pd.DataFrame]) -> Future:
        """Queue validated tables for the store; 503 when the queue is full."""
        return self.queue.submit(dict(tables))

    # ------------------------------------------------------------------ receivers

    def alertmanager(self, payload: Any) -> tuple[alerts.AlertReceipt, dict[str, pd.DataFrame]]:
        """Apply an Alertmanager notification; returns the receipt and the alert events to store."""
        note = alerts.parse(payload)
        # The events' rule (one-line service and environment names ...) first: a refused
        # notification leaves no incident behind without its alerts.
        labels = {"service": self.settings.service_label, "environment": self.settings.environment_label}

        def field(column: str, row: int | None) -> str:  # the events' column as the payload's field
            where = f"alerts[{row}]" if row is not None else "alerts"
            return f"{where}.labels.{labels[column]}" if column in labels else f"{where} ({column})"

        self._events(alerts.events(note, None, self.settings), "alertmanager webhook", field)
        receipt = alerts.apply(self.kb, note, self.settings)
        return receipt, self._events(alerts.events(note, receipt.incident_id, self.settings), "alertmanager webhook",
                                     field)

    def otlp(self, signal: str, raw: bytes, content_type: str | None) -> tuple[str, otlp.OtlpBatch]:
        """(encoding kind, validated batch) of an OTLP/HTTP request body (already decompressed)."""
        kind = otlp.media_type(content_type)
        doc = otlp.decode(signal, raw, kind, max_depth=self.settings.max_depth, max_items=self.settings.max_items)
        return kind, otlp.read(signal, doc, f"OTLP/HTTP /v1/{signal}")

    def change(self, payload: Any, source: str, event: str | None = None) -> changes.Change | None:
        """The change an API, GitHub or Argo CD payload describes (None: nothing to record)."""
        if source == "github":
            return changes.from_github(payload, event, self.settings)
        if source == "argocd":
            return changes.from_argocd(payload, self.settings)
        return changes.parse(payload, self.settings)

    def change_event(self, change: changes.Change) -> dict[str, pd.DataFrame]:
        return self._events(change.event(), f"{change.source} change")

    def apply_change(self, change: changes.Change, caller: Caller) -> list[remediation.Applied]:
        """Mark the fixes the change names as applied (after its event is stored)."""
        return remediation.apply_change(self.kb, change, who=caller.who)

    def check_signature(self, raw: bytes, header: str | None) -> None:
        """With a secret configured, ``X-Hub-Signature-256: sha256=<HMAC-SHA256(secret, body)>`` (GitHub's
        scheme) must match, compared in constant time (401 otherwise)."""
        if self.secret is None:
            return
        expected = "sha256=" + hmac.new(self.secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()
        if not header or not hmac.compare_digest(expected, header.strip()):
            raise RequestError(401, "bad_signature", "X-Hub-Signature-256 is missing or does not match the body "
                                                     "(WORKBENCH_CHANGES_SECRET)", field="X-Hub-Signature-256")

    # ------------------------------------------------------------------ internals

    def _events(self, frame: pd.DataFrame, origin: str,
                field: Callable[[str, int | None], str] | None = None) -> dict[str, pd.DataFrame]:
        """The frame validated as events; refused with a 400 naming the field (``field`` maps a
        column and row to the payload's name for it)."""
        try:
            return {"events": schema.validate("events", frame, source=origin).frame}
        except SchemaError as exc:
            failure = exc.failures[0] if exc.failures else {}
            column = failure.get("column")
            rows = failure.get("rows") or [{}]
            row = rows[0].get("row") if isinstance(rows[0], dict) else None
            name = column if field is None or column is None else field(column, row)
            raise RequestError(400, "invalid", str(exc), field=name) from None

    def _requeue(self, tables: dict[str, pd.DataFrame]) -> None:
        requeue_for_telemetry(self.kb, tables, self.settings)
