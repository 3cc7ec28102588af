"""Text of the sample data set: log templates, the past incidents and the README.

Kept apart from the model (:mod:`workbench.telemetry.sample.model`) so the numbers and the words can be
read and changed separately.
"""
from __future__ import annotations

import math
import random
import string
from functools import lru_cache
from typing import Any

#: INFO templates per service: (template, weight, carries a request's trace id).
INFO = {
    "frontend": (("GET {route} 200 {ms}ms", 6, True), ("served {route} from edge cache in {ms_small}ms", 1, True),
                 ("GC pause {gc}ms (G1 Young Generation)", 0.3, False)),
    "catalog": (("GET /products/{sku} 200 {ms}ms", 5, True),
                ("cache hit ratio {ratio} over last 60s (product-details)", 1, False),
                ("GC pause {gc}ms (G1 Young Generation)", 0.4, False)),
    "cart": (("cart {cart} updated: {items} items, total {amount} {currency}", 4, True),
             ("GET /cart/{cart} 200 {ms}ms", 2, True)),
    "checkout": (("order {order} placed: {items} items, {amount} {currency} in {ms}ms", 5, True),
                 ("PlaceOrder validation passed for cart {cart}", 1, True)),
    "payments": (("charge {pid} authorized: {amount} {currency} in {ms}ms", 5, True),
                 ("PSP webhook processed for {pid} (status=succeeded)", 1, False)),
    "inventory": (("reserved {items} units of {sku} for order {order}", 5, True),
                  ("stock sync completed: {n} skus updated", 0.5, False)),
    "orders": (("order {order} persisted in {ms}ms", 5, True), ("outbox relay published {n} events", 1, False)),
    "shipping": (("shipment {shipment} created for order {order} via {carrier}", 5, True),
                 ("label batch printed: {n} labels", 0.5, False)),
}
STARTUP = "Starting {service} v{version} (commit {commit}, profile production)"
RELOAD = "Configuration reloaded: {key}={value}"
POOL_STATS = "HikariPool-1 - Pool stats (total={total}, active={active}, idle={idle}, waiting={waiting})"

#: WARN templates: the routine one per service, then by cause.
WARN_BASE = {
    "frontend": "request to {callee} took {slow}ms (budget 500ms)",
    "catalog": "slow query took {slow}ms: SELECT * FROM products WHERE sku = ?",
    "cart": "cart-store GET took {slow}ms for cart {cart}",
    "checkout": "request to {callee} took {slow}ms (budget 1000ms)",
    "payments": "PSP response slow: {slow}ms for {pid}",
    "inventory": "slow query took {slow}ms: UPDATE stock SET reserved = reserved + ? WHERE sku = ?",
    "orders": "slow query took {slow}ms: INSERT INTO orders (id, customer_id, total) VALUES (?, ?, ?)",
    "shipping": "carrier {carrier} quote API slow: {slow}ms",
}
WARN = {
    "retry": "retrying call to {callee} (attempt {attempt}/3): {reason}",
    "overload": "load shedding: rejected {n} requests in last 10s (inflight limit {limit})",
    "gc": "GC pause {gc_long}ms (G1 Evacuation Pause, to-space exhausted)",
    "pool": "connection acquisition took {slow}ms (pool total={total}, waiting={waiting})",
}
#: ERROR templates: the routine ones per service, then by fault kind, downstream failure and overload.
ERROR_BASE = {
    "frontend": ("unhandled exception rendering {route}: java.lang.NullPointerException: Cannot invoke "
                 "\"com.shop.web.ProductView.getPrice()\" because \"view\" is null",),
    "catalog": ("timeout after 500ms waiting for product-cache (redis) for {sku}",),
    "cart": ("cart-store connection reset by peer while saving cart {cart}",),
    "checkout": ("PlaceOrder failed for cart {cart}: java.lang.IllegalStateException: cart has no items",),
    "payments": ("PSP request for {pid} failed: read timeout after 3000ms",),
    "inventory": ("deadlock detected while reserving {sku}; transaction rolled back",),
    "orders": ("failed to persist order {order}: duplicate key value violates unique constraint \"orders_pkey\"",),
    "shipping": ("carrier {carrier} API returned 502 Bad Gateway for order {order}",),
}
ERROR_FAULT = {
    "payments_serialization": (
        "charge {pid} failed: com.fasterxml.jackson.databind.exc.InvalidFormatException: Cannot deserialize "
        "value of type `long` from String \"{amount}\": not a valid `long` value (through reference chain: "
        "PaymentIntent[\"amount_minor\"])",
        "PSP request rejected for {pid}: 400 invalid_request_error (amount_minor must be an integer)"),
    "pool": ("connection pool exhausted: HikariPool-1 - Connection is not available, request timed out after "
             "2000ms (total={total}, active={total}, idle=0, waiting={waiting})",
             "CreateOrder {order} failed: org.springframework.jdbc.CannotGetJdbcConnectionException: Failed to "
             "obtain JDBC Connection"),
    "db_conn": ("lost connection to MySQL server during query (errno 2013) while handling {order}",),
    "gc": ("request {order} aborted: deadline exceeded during GC pause",),
}
ERROR_CALLEE = ("call to {callee} failed: {reason}", "{route} 502 Bad Gateway: upstream {callee} returned {reason}")
ERROR_OVERLOAD = "503 Service Unavailable: request rejected, server overloaded (inflight={n})"
#: What a caller sees of a callee's failure, by the callee's dominant fault kind.
REASONS = {"pool": "DEADLINE_EXCEEDED after 2000ms", "db_conn": "500 Internal Server Error",
           "payments_serialization": "500 Internal Server Error", "gc": "DEADLINE_EXCEEDED after 1000ms",
           "base": "503 Service Unavailable", "overload": "503 Service Unavailable"}
#: The span ``error.type`` attribute by error cause.
ERROR_TYPES = {"payments_serialization": "InvalidFormatException", "pool": "SQLTransientConnectionException",
               "db_conn": "CommunicationsException", "gc": "DeadlineExceeded", "base": "TimeoutException",
               "overload": "ServiceUnavailable", "callee": "UpstreamServiceError"}

_CARRIERS = ("DHL", "UPS", "GLS", "DPD")
_CURRENCIES = ("EUR", "EUR", "USD", "GBP")
_ROUTES = ("/cart/items", "/checkout", "/search", "/")


@lru_cache(maxsize=None)
def _fields(template: str) -> tuple[str, ...]:
    return tuple(f for _, f, _, _ in string.Formatter().parse(template) if f)


def render(template: str, rnd: random.Random, ctx: dict[str, Any]) -> str:
    """Fill ``template``; ``ctx`` gives the service-level values (``mu``/``sigma`` of the latency,
    ``callee``, ``reason``, pool figures ...), the rest is drawn from ``rnd``."""
    values = {}
    for f in _fields(template):
        if f in ctx and f not in ("mu", "sigma", "callees"):
            values[f] = ctx[f]
        elif f in ("ms", "slow", "ms_small"):
            ms = math.exp(ctx["mu"] + ctx["sigma"] * rnd.gauss(0, 1))
            values[f] = int(ms * (rnd.uniform(3, 8) if f == "slow" else 0.2 if f == "ms_small" else 1)) + 1
        else:
            values[f] = _draw(f, rnd)
    return template.format(**values)


def _draw(name: str, rnd: random.Random) -> Any:
    if name == "sku":
        return f"SKU-{rnd.randrange(10000, 99999)}"
    if name == "order":
        return f"ord_{rnd.getrandbits(32):08x}"
    if name == "pid":
        return f"pi_{rnd.getrandbits(48):012x}"
    if name in ("cart", "shipment"):
        return f"{name[:2]}_{rnd.getrandbits(32):08x}"
    if name == "amount":
        return f"{rnd.randrange(5, 400)}.{rnd.randrange(100):02d}"
    if name == "currency":
        return rnd.choice(_CURRENCIES)
    if name == "carrier":
        return rnd.choice(_CARRIERS)
    if name == "items":
        return rnd.randrange(1, 6)
    if name == "ratio":
        return f"{rnd.uniform(0.9, 0.99):.2f}"
    if name == "gc":
        return rnd.randrange(8, 120)
    if name == "gc_long":
        return rnd.randrange(600, 2400)
    if name == "attempt":
        return rnd.randrange(1, 4)
    if name == "route":
        return f"/product/{_draw('sku', rnd)}" if rnd.random() < 0.6 else rnd.choice(_ROUTES)
    if name == "limit":
        return 512
    if name == "n":
        return rnd.randrange(3, 200)
    raise KeyError(f"sample log template field {name!r} has no generator")


def route_of(callee: str, rnd: random.Random) -> str:
    """The frontend path whose requests call ``callee``."""
    return {"catalog": f"/product/{_draw('sku', rnd)}", "cart": "/cart/items"}.get(callee, "/checkout")


# --------------------------------------------------------------------------- past incidents

def _ev(signal: str, time: str, magnitude: float, explanation: str) -> dict[str, Any]:
    return {"signal": signal, "time": time, "magnitude": magnitude, "explanation": explanation}


def _runbook(service: str) -> dict[str, str]:
    return {"title": f"{service.capitalize()} runbook", "url": f"https://runbooks.example.com/{service}"}


PAST_INCIDENTS: tuple[dict[str, Any], ...] = (
    {"id": "INC-20260702-001", "title": "Checkout errors for some carts", "severity": "SEV3", "status": "closed",
     "environment": "production", "services": ["checkout"],
     "started": "2026-07-02T09:12:00Z", "detected": "2026-07-02T09:20:00Z",
     "mitigated": "2026-07-02T10:05:00Z", "resolved": "2026-07-02T11:30:00Z",
     "labels": {"symptom": "errors", "service": "checkout", "environment": "production", "confidence": 1.0},
     "links": [_runbook("checkout"), {"title": "PM-1187", "url": "https://tickets.example.com/PM-1187"}],
     "hypotheses": [{"service": "checkout", "cause": "code", "status": "confirmed", "score": 0.8,
                     "summary": "NullPointerException in promo-code handling for carts without a promotion",
                     "reviewer": "carol", "rationale": "Stack traces point at PromoService.apply; hotfix 1.24.1 fixed it",
                     "evidence": [_ev("log checkout: java.lang.NullPointerException", "2026-07-02T09:12:00Z", 6.2,
                                      "new ERROR template, 40 lines/min"),
                                  _ev("metric checkout/error_rate", "2026-07-02T09:13:00Z", 4.1,
                                      "error rate 2.5% vs 0.2% baseline")]}]},
    {"id": "INC-20260814-001", "title": "Payments failing after release", "severity": "SEV2", "status": "closed",
     "environment": "production", "services": ["payments", "checkout"],
     "started": "2026-08-14T13:20:00Z", "detected": "2026-08-14T13:27:00Z",
     "mitigated": "2026-08-14T13:49:00Z", "resolved": "2026-08-14T14:10:00Z",
     "labels": {"symptom": "errors", "service": "payments", "environment": "production", "confidence": 1.0},
     "links": [_runbook("payments"), {"title": "PM-1242", "url": "https://tickets.example.com/PM-1242"}],
     "hypotheses": [{"service": "payments", "cause": "change", "status": "confirmed", "score": 0.92,
                     "summary": "Deploy payments v2.9.0 serialised amount_minor as a string; the PSP and the "
                                "PaymentIntent reader rejected it",
                     "reviewer": "alice", "rationale": "Rollback to v2.8.4 restored the error rate within 3 minutes",
                     "evidence": [_ev("event deploy payments v2.9.0", "2026-08-14T13:19:00Z", 1.0,
                                      "deploy one minute before onset"),
                                  _ev("metric payments/error_rate", "2026-08-14T13:21:00Z", 8.5,
                                      "error rate 14% vs 0.2% baseline"),
                                  _ev("log payments: InvalidFormatException", "2026-08-14T13:20:00Z", 7.0,
                                      "new ERROR template after the deploy")]}]},
    {"id": "INC-20260903-002", "title": "Orders slow and failing", "severity": "SEV2", "status": "closed",
     "environment": "production", "services": ["orders", "checkout"],
     "started": "2026-09-03T16:40:00Z", "detected": "2026-09-03T16:46:00Z",
     "mitigated": "2026-09-03T17:25:00Z", "resolved": "2026-09-03T18:00:00Z",
     "labels": {"symptom": "latency", "service": "orders", "environment": "production", "confidence": 1.0},
     "links": [_runbook("orders"), {"title": "PM-1301", "url": "https://tickets.example.com/PM-1301"}],
     "hypotheses": [{"service": "orders", "cause": "resource", "status": "confirmed", "score": 0.85,
                     "summary": "The nightly order export leaked DB connections until the orders pool was exhausted",
                     "reviewer": "bob", "rationale": "Killing the export job freed the pool; leak fixed in 7.2.1",
                     "evidence": [_ev("metric orders/db_pool_usage", "2026-09-03T16:38:00Z", 6.0,
                                      "pool usage 100% vs 25% baseline"),
                                  _ev("log orders: connection pool exhausted", "2026-09-03T16:40:00Z", 9.0,
                                      "new ERROR template"),
                                  _ev("metric orders/latency_p99_ms", "2026-09-03T16:40:00Z", 5.5,
                                      "p99 2.1 s vs 70 ms")]}]},
    {"id": "INC-20260921-001", "title": "Product pages slow", "severity": "SEV3", "status": "closed",
     "environment": "production", "services": ["catalog", "frontend"],
     "started": "2026-09-21T08:05:00Z", "detected": "2026-09-21T08:12:00Z",
     "mitigated": "2026-09-21T08:40:00Z", "resolved": "2026-09-21T09:15:00Z",
     "labels": {"symptom": "latency", "service": "catalog", "environment": "production", "confidence": 1.0},
     "links": [_runbook("catalog")],
     "hypotheses": [{"service": "catalog", "cause": "resource", "status": "confirmed", "score": 0.75,
                     "summary": "Cache stampede after product-cache eviction saturated the catalog database",
                     "reviewer": "dmitri", "rationale": "Hit ratio fell to 0.3; warming the cache restored latency",
                     "evidence": [_ev("metric catalog/latency_p99_ms", "2026-09-21T08:05:00Z", 7.2,
                                      "p99 900 ms vs 60 ms"),
                                  _ev("metric catalog/db_pool_usage", "2026-09-21T08:05:00Z", 5.0,
                                      "pool usage 85% vs 15%")]}]},
    {"id": "INC-20261005-001", "title": "Checkout slow, shipping timeouts", "severity": "SEV3", "status": "closed",
     "environment": "production", "services": ["shipping", "checkout"],
     "started": "2026-10-05T11:30:00Z", "detected": "2026-10-05T11:36:00Z",
     "mitigated": "2026-10-05T12:10:00Z", "resolved": "2026-10-05T13:00:00Z",
     "labels": {"symptom": "latency", "service": "shipping", "environment": "production", "confidence": 1.0},
     "links": [_runbook("shipping"), {"title": "Carrier status page", "url": "https://status.example-carrier.com"}],
     "hypotheses": [{"service": "shipping", "cause": "dependency", "status": "confirmed", "score": 0.8,
                     "summary": "Carrier quote API degraded; shipping calls timed out and checkout waited on them",
                     "reviewer": "erin", "rationale": "Carrier confirmed an outage; switching the default carrier fixed it",
                     "evidence": [_ev("metric shipping/latency_p99_ms", "2026-10-05T11:30:00Z", 6.4,
                                      "p99 3 s vs 130 ms"),
                                  _ev("log shipping: carrier API returned 502", "2026-10-05T11:31:00Z", 5.0,
                                      "ERROR template 30x baseline")]}]},
    {"id": "INC-20261012-003", "title": "Site slow during the evening", "severity": "SEV3", "status": "closed",
     "environment": "production", "services": ["frontend", "catalog"],
     "started": "2026-10-12T19:02:00Z", "detected": "2026-10-12T19:08:00Z",
     "mitigated": "2026-10-12T19:20:00Z", "resolved": "2026-10-12T20:05:00Z",
     "labels": {"symptom": "latency", "service": "frontend", "environment": "production", "confidence": 1.0},
     "links": [_runbook("frontend")],
     "hypotheses": [{"service": "frontend", "cause": "traffic", "status": "confirmed", "score": 0.8,
                     "summary": "Flash-sale newsletter tripled frontend traffic faster than the autoscaler reacted",
                     "reviewer": "alice", "rationale": "No change in the window; request rate 3x baseline on every service",
                     "evidence": [_ev("metric frontend/request_rate", "2026-10-12T19:02:00Z", 8.0,
                                      "request rate 3.1x the same hour last week"),
                                  _ev("metric frontend/cpu_utilization", "2026-10-12T19:04:00Z", 5.0,
                                      "CPU 99% until scale-out")]}]},
)


# --------------------------------------------------------------------------- README

def readme(summary: dict[str, Any], labels: list[dict[str, Any]], topology: list[tuple[str, str]],
           services: list[dict[str, Any]]) -> str:
    """The data set's README (Markdown), built from what was generated."""
    rows = "\n".join(f"| {t} | {summary['rows'][t]:,} |" for t in ("metrics", "logs", "spans", "events", "topology"))
    edges = ", ".join(f"{a} → {b}" for a, b in topology)
    svc = "\n".join(f"| {s['name']} | {s['team']} | {s['extras']} |" for s in services)
    truth = "\n".join(
        f"| {lab['id']} | {lab['root_cause_service']} | {lab['cause']} | "
        f"{(lab['trigger']['kind'] + ': ' + lab['trigger']['summary'] + ' at ' + lab['trigger']['time']) if lab['trigger'] else '—'} | "
        f"{lab['onset']} | {lab['detected']} | {', '.join(lab['affected'])} | {lab['recurrence_of'] or '—'} |"
        for lab in labels)
    past = "\n".join(f"| {p['id']} | {p['title']} | {p['hypotheses'][0]['service']} | {p['hypotheses'][0]['cause']} | "
                     f"{p['hypotheses'][0]['summary']} |" for p in PAST_INCIDENTS)
    return f"""# Online-shop sample (synthetic)

Generated by `workbench sample --out data/sample --seed {summary['seed']}` (the library call is
`workbench.telemetry.sample.generate(out_dir, seed={summary['seed']}, days={summary['days']})`). Everything here
is synthetic; the same seed gives byte-identical files. Window: {summary['start']} to {summary['end']}
(1-minute metrics), environment `production`.

`manifest.yaml` tells the `files` source which file holds which unified table; each file holds exactly
the unified columns of `workbench/schema.py` (UTC times: ISO strings ending in `Z` in CSV and JSON
lines, timezone-aware timestamps in Parquet; `attributes` as JSON text).

| table | rows |
| --- | --- |
{rows}

## The system

Eight services: {', '.join(s['name'] for s in services)}. Declared topology (caller → callee):
{edges}.

| service | team | extra metrics |
| --- | --- | --- |
{svc}

Metrics per service: `latency_p50_ms`, `latency_p95_ms`, `latency_p99_ms` (ms), `request_rate` (req/s),
`error_rate` (ratio 0..1), `cpu_utilization`, `memory_utilization` (ratio), `db_pool_usage` (ratio, services
with a DB pool), `queue_depth` (unit `1`, services with a queue).

How the numbers are made:

- Frontend traffic (≈120 req/s on average) has a daily cycle peaking at 19:00 UTC, a quieter weekend and
  slow random wander. Frontend requests are 70 % product pages (one catalog call), 25 % cart updates
  (cart → catalog) and 5 % checkouts (checkout → cart, inventory, payments, orders, shipping, in sequence),
  so each callee's request rate is the sum of its callers' calls.
- Each service's own time is log-normal; it grows with CPU load and, for services with a DB pool, with
  the pool's load (the database does not autoscale). A caller's latency adds its callees'; the p50/p95/p99
  are quantiles of that composed distribution (plus measurement noise), so the sampled spans agree.
- Errors and latency reach a caller one minute after they reach its callee (client retries and
  timeouts); 85 % of a callee's failures surface at the caller. Upstream symptoms are later and smaller.
- A simple autoscaler scales a service up when CPU stayed above 75 % for 5 minutes (pods ready 2 minutes
  later) and down when it stayed below 35 % for 30 minutes; its decisions are the `scale` events.
- Alerts come from threshold rules evaluated on the generated metrics: error rate > 5 % for 5 min,
  p99 > 3× its median for 5 min, CPU > 85 % for 5 min, DB pool > 90 % for 3 min, queue > 2000 for
  10 min. Each alert pages the owning team once per hour.
- Logs are subsampled (about 0.5–1.6 INFO lines per minute per service at average traffic, more
  WARN/ERROR lines during incidents); about a third carry a trace id (most error lines do), and a
  line reuses the trace id of a sampled span of the same service and minute when there is one. Every line has
  `service.version` in its attributes.
- Spans: about two sampled traces per minute (head sampling in proportion to traffic, product pages,
  cart updates and checkouts), plus tail-sampled error traces; every span carries `service.version`,
  error spans `error.type`.
- Routine changes: about five deploys per weekday (one at weekends), config changes and feature-flag
  flips, each with `actor`; deploys carry `version`/`previous_version`/`commit`, config changes and
  flags `key`/`old`/`new`. A few harmless changes sit close to the incidents on purpose, and a few tiny
  blips (a GC pause, a 3-minute database hiccup) stay below every alert threshold.

## The evaluation incidents (ground truth in `labels.yaml`)

The incident documents in `incidents/` describe them as the responders saw them (no cause); the causes
below are for evaluation only and must never be read by the analysis.

| incident | root-cause service | cause | trigger | onset | first alert | affected (in order) | recurrence of |
| --- | --- | --- | --- | --- | --- | --- | --- |
{truth}

1. A payments deploy (minor version bump) breaks amount serialisation: payments' error rate jumps to
   ≈16 % and its latency roughly doubles with a longer tail; checkout's errors and latency follow a minute
   later, frontend's p99 and error rate rise less. New payments ERROR template (`InvalidFormatException`).
   Mitigated by rolling back.
2. A config change sets `db.pool.max_size` of orders from 50 to 5: `db_pool_usage` pins at ≈1.0, orders
   latency and errors ("connection pool exhausted") jump, the orders outbox queue backs up, checkout and
   frontend follow. Mitigated by reverting the config.
3. A traffic surge (≈3×) at the frontend with no change before it (the nearest change is 52 minutes
   earlier): request rates rise on every service, CPU saturates until the autoscaler and a manual
   scale-out catch up, latency rises somewhat, the shipping queue backs up.
4. A recurrence of incident 1 four days later: the re-landed payments change (a patch of the bad
   version) shows the same symptoms and the same ERROR template; rolled back again.

## Past incidents (before the window, for similar-incident search)

Confirmed causes in their documents' `hypotheses`; no telemetry.

| incident | title | service | cause | summary |
| --- | --- | --- | --- | --- |
{past}
"""
