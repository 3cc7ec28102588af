"""The ``alertmanager`` source: the alerts of a window, from Alertmanager's API, as ``alert`` events.

``alertmanager:http://host:9093`` reads ``GET /api/v2/alerts`` (active, silenced, inhibited and
unprocessed alerts; ``filter`` narrows it with Alertmanager matchers such as ``team="payments"``).
Connection, auth and TLS options are those of :mod:`workbench.sources.remote`.

One ``events`` row per alert that started inside the window:

- ``timestamp`` = ``startsAt``; ``kind`` = ``alert``;
- ``service`` and ``environment`` from the alert's labels, with the ``prometheus`` source's rules
  (first of ``service``/``job``/``service_name``, ``environment``/``env``/``deployment_environment``,
  configurable with ``labels``; else ``unknown_service``/``unknown``);
- ``summary`` = ``[FIRING] <alertname> <service>: <summary annotation>`` (``[RESOLVED]`` for a
  resolved alert; the ``description`` annotation when there is no ``summary``), as the sample's
  alert events read;
- ``attributes``: ``alertname``, ``fingerprint``, ``labels``, ``annotations``, ``starts_at``,
  ``ends_at``, ``state`` (``firing``/``resolved``), ``generator_url`` and ``source``.

A resolved alert closes its interval: ``ends_at`` is its ``endsAt`` and ``state`` is ``resolved``.
An alert is resolved when it says so (webhook payloads carry ``status: resolved``) or when its
``endsAt`` is not after the time of the fetch. While an alert fires, Alertmanager's ``endsAt`` is
only a provisional "resolve unless re-sent by" time that moves with every re-send; it is not
stored (``ends_at`` is null), so fetching a firing alert twice gives the same row. Alertmanager's
API lists alerts until they resolve and then forgets them: the alerts of a past incident are the
ones fetched while it was live (the store keeps them).

Runbook URLs in the annotations (``runbook_url``, ``runbook``, ``runbook_link``, ``playbook``;
http and https only) are offered as incident links (:meth:`AlertmanagerSource.links`).
"""
from __future__ import annotations

import json
import urllib.parse
from typing import Any, Iterable, Iterator

import pandas as pd

from .. import schema
from ...errors import SourceError
from ...formats import iso_utc, utc_bound
from . import register, remote
from .base import RawFrame, Source
from .prometheus import DEFAULT_ENVIRONMENT, DEFAULT_SERVICE, _one_line, _text_list, labelling

OPTION_KEYS = ("filter", "receiver", "labels", "default_service", "default_environment")
RUNBOOK_ANNOTATIONS = ("runbook_url", "runbook", "runbook_link", "playbook")


@register("alertmanager")
class AlertmanagerSource(Source):
    """Alerts of a window from Alertmanager's API (``/api/v2/alerts``) as ``alert`` events.

    Parameters
    ----------
    location : str
        ``http(s)://host[:port][/prefix]``.
    **options
        ``filter`` (list of matchers), ``receiver`` (a regex), ``labels``, ``default_service``,
        ``default_environment``, and the connection options of :mod:`workbench.sources.remote`.
    """

    live = True

    def __init__(self, location: str, **options: Any):
        super().__init__(location, **options)
        opts = dict(options)
        self.client = remote.client("alertmanager", location, opts, default_port=9093)
        where = self.client.where
        self.location = self.client.base_url
        # One matcher per filter (a matcher may hold a comma, so text is one matcher, not a list).
        self.filters = _text_list(opts.pop("filter", None), "match", where)
        receiver = opts.pop("receiver", None)
        self.receiver = None if receiver is None else _one_line(receiver, "receiver", where)
        (self.service_labels, self.environment_labels, self.default_service,
         self.default_environment) = labelling(opts, where)
        remote.refuse_unknown(opts, OPTION_KEYS + remote.OPTION_KEYS, where)
        self.stats: dict[str, int] = {}
        self._links: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return self.client.where

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (``GET /api/v2/alerts``), as it sends them."""
        params = [("active", "true"), ("silenced", "true"), ("inhibited", "true"), ("unprocessed", "true")]
        params += [("filter", f) for f in self.filters]
        if self.receiver:
            params.append(("receiver", self.receiver))
        answer = self.client.get_json("/api/v2/alerts", params)
        if not isinstance(answer, list):
            raise SourceError(f"{self.url}: {remote._describe('/api/v2/alerts', params)}: expected a list of alerts, "
                              f"got {type(answer).__name__} (is this Alertmanager's URL?)")
        return answer

    def frames(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> Iterator[RawFrame]:
        start, end = utc_bound(start), utc_bound(end)
        now = pd.Timestamp.now(tz="UTC")
        alerts = self.alerts()
        frame = alert_events(alerts, now=now, service_labels=self.service_labels,
                             environment_labels=self.environment_labels, default_service=self.default_service,
                             default_environment=self.default_environment)
        times = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce", format="ISO8601")
        keep = pd.Series(True, index=frame.index)
        if start is not None:
            keep &= ~(times < start)
        if end is not None:
            keep &= ~(times >= end)
        frame = frame[keep.to_numpy()].reset_index(drop=True)
        self._links = runbook_links(frame)
        self.stats.update(alerts=len(alerts), events=len(frame), requests=self.client.requests)
        yield RawFrame("events", frame, origin=self.url)

    def links(self) -> list[dict[str, str]]:
        """Runbook links named by the alerts of the last :meth:`read` (``title``, ``url``)."""
        return list(self._links)

    def catalogue(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
        """The alerts Alertmanager holds, one row each: ``alertname``, ``service``, ``state``, ``starts_at``, ``fingerprint``."""
        frame = self.read(start, end).events
        attrs = frame["attributes"].map(json.loads)
        return pd.DataFrame({
            "alertname": attrs.map(lambda a: a.get("alertname", "")),
            "service": frame["service"], "state": attrs.map(lambda a: a.get("state", "")),
            "starts_at": frame["timestamp"], "fingerprint": attrs.map(lambda a: a.get("fingerprint", "")),
        }, columns=["alertname", "service", "state", "starts_at", "fingerprint"])


def alert_events(alerts: Iterable[dict[str, Any]], now: pd.Timestamp, service_labels: Iterable[str] = ("service", "job", "service_name"),
                 environment_labels: Iterable[str] = ("environment", "env", "deployment_environment"),
                 default_service: str = DEFAULT_SERVICE, default_environment: str = DEFAULT_ENVIRONMENT) -> pd.DataFrame:
    """Alerts (Alertmanager API v2 objects or webhook payload alerts) as raw ``events`` rows.

    Parameters
    ----------
    alerts : iterable of dict
        Each with ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint`` and a
        ``status`` (``{"state": ...}`` from the API, ``"firing"``/``"resolved"`` in webhooks).
    now : pandas.Timestamp
        The time of the fetch: an ``endsAt`` not after it means resolved.

    Returns
    -------
    pandas.DataFrame
        The ``events`` columns, unvalidated (``timestamp`` as the alert's text, so validation
        names an alert with a bad time).
    """
    service_labels, environment_labels = tuple(service_labels), tuple(environment_labels)
    rows = []
    for alert in alerts:
        if not isinstance(alert, dict):
            raise SourceError(f"alertmanager: expected alert objects, got {alert!r}"[:200])
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
        annotations = {str(k): str(v) for k, v in (alert.get("annotations") or {}).items()}
        service = next((labels[k] for k in service_labels if labels.get(k)), default_service)
        environment = next((labels[k] for k in environment_labels if labels.get(k)), default_environment)
        status = alert.get("status")
        ends_text = alert.get("endsAt") or ""
        ends = _time(ends_text)
        resolved = status == "resolved" or (ends is not None and ends <= now)
        alertname = labels.get("alertname", "")
        text = annotations.get("summary") or annotations.get("description") or ""
        summary = f"[{'RESOLVED' if resolved else 'FIRING'}] {alertname} {service}" + (f": {text}" if text else "")
        attributes = {
            "alertname": alertname, "fingerprint": str(alert.get("fingerprint") or ""),
            "labels": labels, "annotations": annotations,
            "starts_at": alert.get("startsAt"), "ends_at": iso_utc(ends) if resolved and ends is not None else None,
            "state": "resolved" if resolved else "firing", "source": "alertmanager",
        }
        if alert.get("generatorURL"):
            attributes["generator_url"] = str(alert["generatorURL"])
        rows.append({"timestamp": alert.get("startsAt"), "service": service, "environment": environment,
                     "kind": "alert", "summary": summary, "attributes": attributes})
    return pd.DataFrame(rows, columns=schema.columns("events"))


def runbook_links(events: pd.DataFrame) -> list[dict[str, str]]:
    """Runbook URLs (http/https) in the annotations of ``alert`` events, once each, as incident links."""
    out: dict[str, dict[str, str]] = {}
    for attrs in events.get("attributes", []):
        attrs = attrs if isinstance(attrs, dict) else json.loads(attrs or "{}")
        annotations = attrs.get("annotations") or {}
        for key in RUNBOOK_ANNOTATIONS:
            url = str(annotations.get(key) or "").strip()
            parts = urllib.parse.urlsplit(url)
            if parts.scheme in ("http", "https") and parts.hostname and url not in out:
                out[url] = {"title": f"Runbook: {attrs.get('alertname') or 'alert'}", "url": url}
    return list(out.values())


def _time(text: Any) -> pd.Timestamp | None:
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    ts = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    return None if pd.isna(ts) else ts
