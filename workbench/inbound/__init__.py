"""What arrives by itself: Alertmanager webhooks, OTLP/HTTP telemetry, change events, the REST API,
integration tokens and the job queue that runs each new incident's analysis, notebook and report.

Plain functions and classes, tested without HTTP; the served app's Tornado handlers
(:mod:`workbench.reports.api`) only authenticate, limit, decode, call these and answer.

- :mod:`.service` — :class:`~.service.Inbound`, one workspace's receivers and API.
- :mod:`.alerts` — Alertmanager notifications open, update and resolve incidents.
- :mod:`.otlp` — OTLP/HTTP protobuf and JSON into validated tables.
- :mod:`.changes` — the change-event shape and the GitHub / Argo CD adapters.
- :mod:`.remediation` — a change naming an action item applies its fix.
- :mod:`.rest` and :mod:`.openapi` — the REST API and its OpenAPI description.
- :mod:`.tokens`, :mod:`.limits` — tokens with scopes, size/depth/text/rate limits.
- :mod:`.queue` — the bounded ingest queue (one writer, group commit).
- :mod:`.jobs` — the job chain, retries and the :class:`~.jobs.Worker`.
- :mod:`.settings` — ``[receivers]`` in ``workbench.toml``.
"""
from .limits import RequestError
from .settings import ReceiverSettings, receiver_settings

__all__ = ["RequestError", "ReceiverSettings", "receiver_settings"]
