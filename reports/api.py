"""The served app's receivers and REST API as Tornado handlers beside the Panel UI.

Thin by design: a handler authenticates (``Authorization: Bearer``, before the body is read),
rate-limits, checks the size, decodes, calls :class:`workbench.inbound.service.Inbound` (or
:mod:`workbench.inbound.rest`) in a thread pool so no database write or ingest runs on the UI's
event loop, and answers. Every error is ``{"error": {"code", "message", "field"}}`` with its
status (OTLP endpoints answer a ``google.rpc.Status`` in the request's encoding, as the OTLP
specification asks), plus ``Retry-After`` on 429 and 503.

These handlers are registered with ``pn.serve(..., extra_patterns=routes(...))``; they bypass
Panel's login (basic auth protects the UI pages), which is why each one checks a token itself.
No endpoint writes without a token, on loopback too.
"""
from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from tornado.ioloop import IOLoop
from tornado.web import RequestHandler, stream_request_body

from workbench.errors import StoreError, WorkbenchError
from workbench.inbound import openapi, otlp, rest
from workbench.inbound.limits import RequestError, from_store_error
from workbench.inbound.service import Inbound

__all__ = ["routes", "PREFIX"]

PREFIX = "/api/v1"
#: Threads running database writes, decoding and ingest preparation for the handlers.
THREADS = 4


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@stream_request_body
class _Handler(RequestHandler):
    """Shared steps: token and rate limit in :meth:`prepare`, a bounded body, JSON answers."""

    scopes: dict[str, str] = {}

    def initialize(self, inbound: Inbound, pool: ThreadPoolExecutor) -> None:
        self.inbound, self.pool = inbound, pool
        self.caller = None
        self._chunks: list[bytes] = []
        self._size = 0

    def check_xsrf_cookie(self) -> None:  # token-authenticated, no cookies: nothing to forge
        return None

    async def prepare(self) -> None:
        limit = self.inbound.settings.max_body
        self.request.connection.set_max_body_size(limit + 1)  # chunked bodies: Tornado stops reading past it
        try:
            scope = self.scopes.get(self.request.method or "")
            if scope is not None:
                self.caller = await self.run(self.inbound.authorize, self.request.headers.get("Authorization"), scope)
            length = self.request.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise RequestError(413, "too_large", f"the request body has {length} bytes; the limit is {limit} "
                                                     f"(receivers.max_body)")
        except RequestError as exc:
            self.fail(exc)

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self.inbound.settings.max_body:
            self._chunks.append(chunk)

    @property
    def raw(self) -> bytes:
        """The body as received (413 when it was larger than the limit)."""
        if self._size > self.inbound.settings.max_body:
            raise RequestError(413, "too_large", f"the request body is larger than {self.inbound.settings.max_body} "
                                                 f"bytes (receivers.max_body)")
        return b"".join(self._chunks)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the handlers' thread pool, off the event loop."""
        return await IOLoop.current().run_in_executor(self.pool, fn, *args)

    async def json_body(self) -> Any:
        kind = (self.request.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if kind != "application/json":
            raise RequestError(415, "unsupported_media_type", f"Content-Type {kind!r}: expected application/json",
                               field="Content-Type")
        body = self.inbound.body(self.raw, self.request.headers.get("Content-Encoding"))
        return await self.run(self.inbound.json, body)

    def query(self) -> dict[str, str]:
        return {k: self.get_query_argument(k) for k in self.request.query_arguments}

    def answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.finish(_dumps(body))

    def fail(self, exc: RequestError) -> None:
        if self._finished:
            return
        if exc.retry_after is not None:
            self.set_header("Retry-After", str(exc.retry_after))
        self.answer(exc.status, exc.to_dict())

    async def guarded(self, work: Callable[[], Any]) -> None:
        """Run a request's work; library errors become JSON errors (500 only for the unexpected)."""
        if self._finished:  # prepare() already answered (401, 403, 413, 429)
            return
        try:
            await work()
        except RequestError as exc:
            self.fail(exc)
        except StoreError as exc:
            self.fail(from_store_error(exc))
        except WorkbenchError as exc:
            self.fail(RequestError(400, "invalid", str(exc)))
        except Exception as exc:  # noqa: BLE001 - answer JSON, never a traceback
            self.fail(RequestError(500, "internal", f"{type(exc).__name__}: the request could not be completed"))
            raise

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.answer(status_code, {"error": {"code": "http_error", "message": self._reason, "field": None}})

    async def stored(self, tables: dict[str, Any]) -> Any:
        """Queue tables for the store and wait until they are written (503 when the queue is full)."""
        future = self.inbound.submit(tables)
        return await asyncio.wrap_future(future)


# --------------------------------------------------------------------------- receivers

class AlertmanagerHandler(_Handler):
    scopes = {"POST": "alerts:write"}

    async def post(self) -> None:
        async def work() -> None:
            payload = await self.json_body()
            receipt, tables = await self.run(self.inbound.alertmanager, payload)
            await self.stored(tables)
            self.answer(200, receipt.to_dict())
        await self.guarded(work)


class OtlpHandler(_Handler):
    """``POST /v1/traces|logs|metrics`` (OTLP/HTTP)."""

    scopes = {"POST": "telemetry:write"}

    def fail(self, exc: RequestError) -> None:
        if self._finished:
            return
        try:
            kind = otlp.media_type(self.request.headers.get("Content-Type"))
        except RequestError:
            kind = "json"
        if exc.retry_after is not None:
            self.set_header("Retry-After", str(exc.retry_after))
        body, content_type = otlp.status_body(kind, exc.status, str(exc))
        self.set_status(exc.status)
        self.set_header("Content-Type", content_type)
        self.finish(body)

    async def post(self, signal: str) -> None:
        async def work() -> None:
            body = self.inbound.body(self.raw, self.request.headers.get("Content-Encoding"))
            kind, batch = await self.run(self.inbound.otlp, signal, body, self.request.headers.get("Content-Type"))
            if batch.tables:
                await self.stored(batch.tables)
            data, content_type = otlp.response(signal, kind, batch)
            self.set_status(200)
            self.set_header("Content-Type", content_type)
            self.finish(data)
        await self.guarded(work)


class ChangeHandler(_Handler):
    """``POST /api/v1/changes`` (the documented shape), ``/changes/github``, ``/changes/argocd``."""

    scopes = {"POST": "changes:write"}

    async def post(self, source: str | None = None) -> None:
        async def work() -> None:
            self.inbound.check_signature(self.raw, self.request.headers.get("X-Hub-Signature-256"))
            payload = await self.json_body()
            event = self.request.headers.get("X-GitHub-Event")
            if source == "github" and event == "ping":
                return self.answer(200, {"recorded": False, "event": None, "applied": [], "reason": "ping"})
            change = await self.run(self.inbound.change, payload, source or "api", event)
            if change is None:
                return self.answer(202, {"recorded": False, "event": None, "applied": [],
                                         "reason": "not a completed change (ignored)"})
            await self.stored(await self.run(self.inbound.change_event, change))
            applied = await self.run(self.inbound.apply_change, change, self.caller)
            self.answer(200, {"recorded": True, "event": change.to_dict(), "applied": [a.to_dict() for a in applied],
                              "reason": None})
        await self.guarded(work)


# --------------------------------------------------------------------------- REST API

class IncidentsHandler(_Handler):
    scopes = {"GET": "api:read", "POST": "api:write"}

    async def get(self) -> None:
        async def work() -> None:
            self.answer(200, await self.run(rest.list_incidents, self.inbound.kb, self.query()))
        await self.guarded(work)

    async def post(self) -> None:
        async def work() -> None:
            body = await self.json_body()
            created = await self.run(rest.create_incident, self.inbound.kb, body, self.caller.who)
            self.answer(201, created)
        await self.guarded(work)


class IncidentHandler(_Handler):
    scopes = {"GET": "api:read"}

    async def get(self, incident_id: str) -> None:
        async def work() -> None:
            self.answer(200, await self.run(rest.get_incident, self.inbound.kb, incident_id))
        await self.guarded(work)


class ReviewHandler(_Handler):
    scopes = {"POST": "api:write"}

    async def post(self, incident_id: str) -> None:
        async def work() -> None:
            body = await self.json_body()
            self.answer(200, await self.run(rest.decide, self.inbound.kb, incident_id, body))
        await self.guarded(work)


class ActionItemHandler(_Handler):
    scopes = {"PATCH": "api:write"}

    async def patch(self, item_id: str) -> None:
        async def work() -> None:
            body = await self.json_body()
            self.answer(200, await self.run(rest.update_action_item, self.inbound.kb, item_id, body, self.caller.who))
        await self.guarded(work)


class MetricsHandler(_Handler):
    scopes = {"GET": "api:read"}

    async def get(self) -> None:
        async def work() -> None:
            self.answer(200, await self.run(rest.metrics, self.inbound.kb, self.query()))
        await self.guarded(work)


class JobsHandler(_Handler):
    scopes = {"GET": "api:read"}

    async def get(self) -> None:
        async def work() -> None:
            self.answer(200, await self.run(rest.list_jobs, self.inbound.kb, self.query()))
        await self.guarded(work)


class OpenApiHandler(_Handler):
    scopes: dict[str, str] = {}

    async def get(self) -> None:
        self.answer(200, openapi.document())


def routes(inbound: Inbound, threads: int = THREADS) -> list[tuple[str, type, dict[str, Any]]]:
    """The URL patterns for ``pn.serve(extra_patterns=...)``, sharing ``inbound`` and one thread pool."""
    args = {"inbound": inbound, "pool": ThreadPoolExecutor(threads, thread_name_prefix="workbench-api")}
    ident = r"([A-Za-z0-9._%-]+)"
    return [
        (openapi.PATH, OpenApiHandler, args),
        (rf"{PREFIX}/alerts/alertmanager", AlertmanagerHandler, args),
        (r"/v1/(traces|logs|metrics)", OtlpHandler, args),
        (rf"{PREFIX}/changes", ChangeHandler, args),
        (rf"{PREFIX}/changes/(github|argocd)", ChangeHandler, args),
        (rf"{PREFIX}/incidents", IncidentsHandler, args),
        (rf"{PREFIX}/incidents/{ident}", IncidentHandler, args),
        (rf"{PREFIX}/incidents/{ident}/review", ReviewHandler, args),
        (rf"{PREFIX}/action-items/{ident}", ActionItemHandler, args),
        (rf"{PREFIX}/metrics", MetricsHandler, args),
        (rf"{PREFIX}/jobs", JobsHandler, args),
    ]
