"""The OpenAPI 3.0 description of the receivers and the REST API, served at :data:`PATH`.

Built here, beside :mod:`workbench.inbound.rest`, and tested against the served implementation
(tests/test_inbound_api.py runs schemathesis over it with the hostile-strings corpus), so the
document and the code cannot drift apart silently.
"""
from __future__ import annotations

import copy
from typing import Any

from ..store.jobs import JOB_STATUSES
from ..store.records import ACTION_KINDS, ACTION_STATUSES, CAUSES, INCIDENT_STATUSES, SEVERITIES
from .changes import CHANGE_KINDS

#: Where the document is served (no token needed: it describes, it holds no data).
PATH = "/api/v1/openapi.json"
VERSION = "1.0.0"

_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": "string", "format": "date-time", "nullable": True}
_TEXT = {"type": "string", "minLength": 1}
_NTEXT = {"type": "string", "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid request (the field is named)", 401: "Missing, unknown or revoked token",
            403: "The token lacks the scope", 404: "Not found", 409: "Stale version: nothing written; "
            "error.current is the current record", 413: "Body too large", 415: "Unsupported media type or encoding",
            429: "Rate limit exceeded (Retry-After)", 503: "Ingest queue full (Retry-After)"}
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"}}


_READ = [{"bearerAuth": []}]
_WRITE = [{"bearerAuth": []}]

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "field"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": _NTEXT,
                       "current": {"type": "object", "nullable": True}}}}},
    "Status": {"type": "object", "required": ["code", "message"],
               "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}},
    "Link": {"type": "object", "required": ["title", "url"], "additionalProperties": False,
             "properties": {"title": _TEXT, "url": {"type": "string", "pattern": "^(https?|mailto):"}}},
    "JobState": {"type": "object", "required": ["state"], "properties": {
        "state": {"type": "string", "enum": ["none", *JOB_STATUSES]}, "kind": _NTEXT, "error": _NTEXT,
        "jobs": {"type": "object"}}},
    "Incident": {"type": "object", "required": ["id", "title", "severity", "status", "services", "started", "version"],
                 "properties": {
                     "id": {"type": "string"}, "title": {"type": "string"},
                     "severity": {"type": "string", "enum": list(SEVERITIES)},
                     "status": {"type": "string", "enum": list(INCIDENT_STATUSES)},
                     "environment": {"type": "string"}, "services": {"type": "array", "items": {"type": "string"}},
                     "started": _TIME, "detected": _NTIME, "mitigated": _NTIME, "resolved": _NTIME,
                     "labels": {"type": "object"}, "links": {"type": "array", "items": _ref("Link")},
                     "version": {"type": "integer"}, "job": _ref("JobState")}},
    "IncidentPage": {"type": "object", "required": ["items", "total", "limit", "offset", "next_offset"], "properties": {
        "items": {"type": "array", "items": _ref("Incident")}, "total": {"type": "integer"},
        "limit": {"type": "integer"}, "offset": {"type": "integer"},
        "next_offset": {"type": "integer", "nullable": True}}},
    "Hypothesis": {"type": "object", "required": ["id", "service", "cause", "status", "version"], "properties": {
        "id": {"type": "string"}, "service": {"type": "string"}, "cause": {"type": "string", "enum": list(CAUSES)},
        "status": {"type": "string"}, "score": {"type": "number"}, "rank": {"type": "integer", "nullable": True},
        "reviewer": _NTEXT, "rationale": _NTEXT, "version": {"type": "integer"}}},
    "ActionItem": {"type": "object", "required": ["id", "incident_id", "title", "status", "version"], "properties": {
        "id": {"type": "string"}, "incident_id": {"type": "string"}, "title": {"type": "string"},
        "owner": {"type": "string"}, "kind": {"type": "string", "enum": list(ACTION_KINDS)},
        "status": {"type": "string", "enum": list(ACTION_STATUSES)}, "ticket": _NTEXT, "applied_at": _NTIME,
        "applied_change": {"type": "object", "nullable": True}, "fix": _NTEXT, "version": {"type": "integer"}}},
    "IncidentDetail": {"allOf": [_ref("Incident"), {"type": "object", "properties": {
        "hypotheses": {"type": "array", "items": _ref("Hypothesis")},
        "conclusions": {"type": "array", "items": {"type": "object"}},
        "action_items": {"type": "array", "items": _ref("ActionItem")},
        "checks": {"type": "array", "items": {"type": "object"}}}}]},
    "NewIncident": {"type": "object", "required": ["title", "started", "services"], "additionalProperties": False,
                    "properties": {
                        "title": _TEXT, "started": _TIME, "services": {"type": "array", "items": _TEXT},
                        "severity": {"type": "string", "enum": list(SEVERITIES)},
                        "environment": _TEXT, "detected": _TIME, "mitigated": _TIME, "resolved": _TIME,
                        "status": {"type": "string", "enum": list(INCIDENT_STATUSES)},
                        "labels": {"type": "object", "additionalProperties": False, "properties": {
                            "symptom": _TEXT, "service": _TEXT, "environment": _TEXT,
                            "confidence": {"type": "number", "minimum": 0, "maximum": 1}}},
                        "links": {"type": "array", "items": _ref("Link")}}},
    "Review": {"type": "object", "required": ["service", "cause", "decision", "reviewer", "rationale"],
               "additionalProperties": False, "properties": {
                   "service": _TEXT, "cause": {"type": "string", "enum": list(CAUSES)},
                   "decision": {"type": "string", "enum": ["confirmed", "rejected"]},
                   "reviewer": _TEXT, "rationale": _TEXT, "version": {"type": "integer", "minimum": 1},
                   "add": {"type": "boolean"}}},
    "ActionItemChange": {"type": "object", "required": ["version"], "additionalProperties": False, "properties": {
        "status": {"type": "string", "enum": list(ACTION_STATUSES)}, "ticket": _TEXT,
        "version": {"type": "integer", "minimum": 1}, "who": _TEXT}},
    "Change": {"type": "object", "required": ["service"], "additionalProperties": False, "properties": {
        "service": _TEXT, "kind": {"type": "string", "enum": list(CHANGE_KINDS)}, "environment": _TEXT,
        "timestamp": _TIME, "title": _TEXT, "version": _TEXT, "previous_version": _TEXT, "commit": _TEXT,
        "commit_message": _TEXT, "author": _TEXT, "url": _TEXT, "key": _TEXT, "old": _TEXT, "new": _TEXT,
        "refs": {"type": "array", "items": _TEXT, "maxItems": 100}, "attributes": {"type": "object"}}},
    "ChangeReceipt": {"type": "object", "required": ["recorded"], "properties": {
        "recorded": {"type": "boolean"}, "event": {"type": "object", "nullable": True},
        "applied": {"type": "array", "items": {"type": "object"}}, "reason": _NTEXT}},
    "AlertReceipt": {"type": "object", "required": ["incident_id", "action"], "properties": {
        "incident_id": _NTEXT, "action": {"type": "string", "enum": ["opened", "updated", "resolved", "ignored"]},
        "alerts": {"type": "integer"}, "truncated_alerts": {"type": "integer"},
        "jobs": {"type": "array", "items": {"type": "string"}}, "warnings": {"type": "array", "items": {"type": "string"}}}},
}


def _otlp(signal: str) -> dict[str, Any]:
    content = {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
               "application/json": {"schema": {"type": "object"}}}
    return {"post": {
        "summary": f"OTLP/HTTP {signal} (protobuf or JSON, gzip/deflate)", "security": [{"bearerAuth": []}],
        "x-scope": "telemetry:write", "requestBody": {"required": True, "content": content},
        "responses": {"200": {"description": "Accepted (partial_success names rejected items)", "content": content},
                      **_status_errors(400, 401, 403, 413, 415, 429, 503)}}}


def _status_errors(*codes: int) -> dict[str, Any]:
    """OTLP answers errors with a google.rpc.Status in the request's encoding."""
    content = {"application/json": {"schema": _ref("Status")},
               "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}
    return {str(c): {"description": f"google.rpc.Status (HTTP {c})", "content": content} for c in codes}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict each call)."""
    incident_filters = [
        _query("status", {"type": "string", "enum": list(INCIDENT_STATUSES)}, "Only this status"),
        _query("severity", {"type": "string", "enum": list(SEVERITIES)}, "Only this severity"),
        _query("service", {"type": "string"}, "Incidents listing this service"),
        _query("label", {"type": "string", "pattern": "^[a-z]+=.+$"}, "A taxonomy label, key=value"),
        _query("since", {"type": "string", "format": "date-time"}, "Started at or after"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "Page size (default 50)"),
        _query("offset", {"type": "integer", "minimum": 0}, "First item of the page"),
    ]
    change_post = {
        "security": _WRITE, "x-scope": "changes:write",
        "parameters": [{"name": "X-Hub-Signature-256", "in": "header", "required": False,
                        "schema": {"type": "string"},
                        "description": "sha256=HMAC of the body; required when WORKBENCH_CHANGES_SECRET is set"}],
        "responses": {"200": _json(_ref("ChangeReceipt"), "Recorded"),
                      "202": _json(_ref("ChangeReceipt"), "Not a change (ignored)"),
                      **_errors(400, 401, 403, 413, 415, 429, 503)}}
    paths: dict[str, Any] = {
        PATH: {"get": {"summary": "This document", "security": [],
                       "responses": {"200": _json({"type": "object"})}}},
        "/api/v1/incidents": {
            "get": {"summary": "Incidents, newest first", "security": _READ, "x-scope": "api:read",
                    "parameters": incident_filters,
                    "responses": {"200": _json(_ref("IncidentPage")), **_errors(400, 401, 403, 429)}},
            "post": {"summary": "Create an incident", "security": _WRITE, "x-scope": "api:write",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewIncident")}}},
                     "responses": {"201": _json(_ref("Incident"), "Created"),
                                   **_errors(400, 401, 403, 409, 413, 415, 429)}}},
        "/api/v1/incidents/{incident_id}": {
            "get": {"summary": "One incident with hypotheses, conclusions, action items, checks, jobs",
                    "security": _READ, "x-scope": "api:read", "parameters": [_path("incident_id")],
                    "responses": {"200": _json(_ref("IncidentDetail")), **_errors(401, 403, 404, 429)}}},
        "/api/v1/incidents/{incident_id}/review": {
            "post": {"summary": "Confirm or reject a hypothesis (what `workbench review` does)",
                     "security": _WRITE, "x-scope": "api:write", "parameters": [_path("incident_id")],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Review")}}},
                     "responses": {"200": _json(_ref("Hypothesis")), **_errors(400, 401, 403, 404, 409, 413, 415, 429)}}},
        "/api/v1/action-items/{item_id}": {
            "patch": {"summary": "Change an action item's status or ticket", "security": _WRITE,
                      "x-scope": "api:write", "parameters": [_path("item_id")],
                      "requestBody": {"required": True,
                                      "content": {"application/json": {"schema": _ref("ActionItemChange")}}},
                      "responses": {"200": _json(_ref("ActionItem")), **_errors(400, 401, 403, 404, 409, 413, 415, 429)}}},
        "/api/v1/metrics": {
            "get": {"summary": "MTTD, MTTM, MTTR, recurrence and action items", "security": _READ,
                    "x-scope": "api:read",
                    "parameters": [_query("since", {"type": "string", "format": "date-time"}, "Started at or after"),
                                   _query("until", {"type": "string", "format": "date-time"}, "Started before"),
                                   _query("service", {"type": "string"}, "One service")],
                    "responses": {"200": _json({"type": "object"}), **_errors(400, 401, 403, 429)}}},
        "/api/v1/jobs": {
            "get": {"summary": "Jobs, newest first", "security": _READ, "x-scope": "api:read",
                    "parameters": [_query("status", {"type": "string", "enum": list(JOB_STATUSES)}, "Only this status"),
                                   _query("incident_id", {"type": "string"}, "Of one incident"),
                                   _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "Page size")],
                    "responses": {"200": _json({"type": "object", "required": ["items"]}), **_errors(400, 401, 403, 429)}}},
        "/api/v1/alerts/alertmanager": {
            "post": {"summary": "Alertmanager webhook (payload version 4)", "security": _WRITE,
                     "x-scope": "alerts:write",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                     "responses": {"200": _json(_ref("AlertReceipt")), **_errors(400, 401, 403, 413, 415, 429, 503)}}},
        "/api/v1/changes": {"post": {"summary": "A change event (the documented shape)", **change_post,
                                     "requestBody": {"required": True,
                                                     "content": {"application/json": {"schema": _ref("Change")}}}}},
        "/api/v1/changes/github": {"post": {"summary": "A GitHub deployment_status webhook event", **change_post,
                                            "requestBody": {"required": True, "content": {
                                                "application/json": {"schema": {"type": "object"}}}}}},
        "/api/v1/changes/argocd": {"post": {"summary": "An Argo CD notification ({\"app\": {{toJson .app}}})",
                                            **change_post, "requestBody": {"required": True, "content": {
                                                "application/json": {"schema": {"type": "object"}}}}}},
        "/v1/traces": _otlp("traces"), "/v1/logs": _otlp("logs"), "/v1/metrics": _otlp("metrics"),
    }
    return {"openapi": "3.0.3",
            "info": {"title": "Postmortem workbench receivers and API", "version": VERSION,
                     "description": "Tokens: `workbench token new NAME --scope SCOPE`; send `Authorization: Bearer "
                                    "<token>`. Errors are {\"error\": {\"code\", \"message\", \"field\"}}."},
            "paths": paths,
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
                           "schemas": copy.deepcopy(SCHEMAS)}}
