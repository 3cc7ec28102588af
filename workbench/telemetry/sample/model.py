"""The model behind :mod:`workbench.telemetry.sample`: services, traffic, load, faults and metrics.

Eight services with a declared topology; frontend traffic has a daily cycle and noise and flows
down the call graph (a callee's request rate is the sum of its callers' calls); each service's own
latency is log-normal and grows with CPU load; a caller's latency adds its callees' (percentiles
are quantiles of the composed distribution, so sampled spans agree with them); errors propagate
upwards. Failures and latency reach a caller one minute after they reach the callee (client
retries and timeouts), so upstream symptoms start later and smaller. A simple autoscaler runs
over the load; its decisions become ``scale`` events. Changes, alerts and incident timelines are
in :mod:`workbench.telemetry.sample.timeline`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

START = pd.Timestamp("2026-11-01T00:00:00Z")
ENVIRONMENT = "production"
_Z = {"latency_p50_ms": 0.0, "latency_p95_ms": 1.6448536, "latency_p99_ms": 2.3263479}
PROPAGATE = 0.85  # share of a callee's failures its caller cannot hide by retrying


@dataclass(frozen=True)
class Service:
    """One service of the shop: sizing, own latency/error, pool, queue, logging, on-call team."""

    name: str
    replicas: int
    own_ms: float           # median own processing time at low load
    sigma: float            # log-normal shape of the own time
    error: float            # baseline own error probability
    pool_hold_s: float = 0  # DB connection seconds per request (0: no pool)
    queue: bool = False
    log_rate: float = 1.0   # INFO lines per minute at mean traffic (subsampled)
    version: str = "1.0.0"
    team: str = ""
    cpu_at_mean: float = 0.44  # CPU at the mean request rate with the initial replicas (sizing)
    min_replicas: int = 0      # autoscaler floor (0: 60 % of the initial replicas, at least 2)


SERVICES = (
    Service("frontend", 6, 12, 0.35, 0.0015, log_rate=1.6, version="4.12.3", team="web"),
    Service("catalog", 8, 18, 0.50, 0.0008, pool_hold_s=0.06, log_rate=1.3, version="5.2.1", team="catalog"),
    Service("cart", 4, 8, 0.40, 0.0010, log_rate=0.9, version="3.7.0", team="web"),
    Service("checkout", 3, 25, 0.40, 0.0015, log_rate=0.8, version="1.31.2", team="checkout",
            cpu_at_mean=0.25, min_replicas=3),
    Service("payments", 3, 120, 0.45, 0.0020, log_rate=0.7, version="2.14.3", team="payments",
            cpu_at_mean=0.2, min_replicas=3),
    Service("inventory", 3, 15, 0.40, 0.0010, pool_hold_s=0.55, log_rate=0.5, version="0.48.0",
            team="fulfilment", cpu_at_mean=0.2, min_replicas=3),
    Service("orders", 3, 22, 0.45, 0.0010, pool_hold_s=1.4, queue=True, log_rate=0.6, version="7.3.5",
            team="checkout", cpu_at_mean=0.2, min_replicas=3),
    Service("shipping", 2, 40, 0.50, 0.0015, queue=True, log_rate=0.5, version="1.9.12", team="fulfilment",
            cpu_at_mean=0.2, min_replicas=2),
)
#: Sequential calls per request of the non-frontend callers.
CALLS = {"cart": ("catalog",), "checkout": ("cart", "inventory", "payments", "orders", "shipping")}
#: Frontend routes: (key, span name, callee, share of requests).
ROUTES = (("browse", "GET /product/{id}", "catalog", 0.70),
          ("cart", "POST /cart/items", "cart", 0.25),
          ("checkout", "POST /checkout", "checkout", 0.05))
SPAN_NAMES = {"catalog": "CatalogService/GetProduct", "cart": "CartService/AddItem",
              "checkout": "CheckoutService/PlaceOrder", "payments": "PaymentService/Charge",
              "inventory": "InventoryService/Reserve", "orders": "OrderService/CreateOrder",
              "shipping": "ShippingService/CreateShipment"}
EDGES = tuple(("frontend", r[2]) for r in ROUTES) + tuple((a, b) for a, bs in CALLS.items() for b in bs)
_LEAVES_FIRST = ("catalog", "inventory", "payments", "orders", "shipping", "cart", "checkout", "frontend")
_FRONTEND_RATE = 120.0  # mean req/s
POOL_MAX = 50


@dataclass
class Fault:
    """An injected effect on one service between minutes ``start`` and ``end`` (exclusive).

    ``ramp`` minutes in and ``ramp_out`` minutes out (rolling deploys); ``kind`` names the log
    templates the fault's errors use (``payments_serialization``, ``pool``, ``db_conn``, ``gc``).
    """

    service: str
    start: int
    end: int
    kind: str
    error: float = 0.0
    latency: float = 1.0
    sigma: float = 0.0
    cpu: float = 0.0
    ramp: int = 1
    ramp_out: int = 1

    def weight(self, n: int) -> np.ndarray:
        t = np.arange(n, dtype=float)
        up = np.clip((t - self.start + 1) / self.ramp, 0, 1)
        down = np.clip((self.end - t) / self.ramp_out, 0, 1)
        return np.minimum(up, down) * ((t >= self.start) & (t < self.end + self.ramp_out))


@dataclass
class Plan:
    """One evaluation incident: what the generator injects and the ground truth it records."""

    id: str
    title: str
    severity: str
    root: str
    cause: str
    onset: pd.Timestamp
    mitigated: pd.Timestamp
    resolved: pd.Timestamp
    mitigation: str
    affected: tuple[str, ...]
    trigger: dict[str, Any] | None = None
    recurrence_of: str | None = None
    signals: tuple[str, ...] = ()
    notes: tuple[tuple[int, str], ...] = ()
    timeline: dict[str, Any] = field(default_factory=dict)


def _t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


def plans() -> list[Plan]:
    """The four evaluation incidents (fresh objects: generation fills in their timelines)."""
    return [
        Plan("INC-20261102-001", "Checkout failures and slow order placement", "SEV2", "payments", "change",
             _t("2026-11-02T14:03Z"), _t("2026-11-02T14:30Z"), _t("2026-11-02T14:55Z"), "rollback",
             ("payments", "checkout", "frontend"),
             trigger={"time": _t("2026-11-02T14:02Z"), "kind": "deploy", "service": "payments", "bump": "minor"},
             signals=("payments/error_rate", "payments/latency_p99_ms", "checkout/error_rate",
                      "frontend/latency_p99_ms", "log payments: InvalidFormatException"),
             notes=((2, "Investigating elevated checkout error rate"),)),
        Plan("INC-20261103-001", "Order placement errors and timeouts", "SEV2", "orders", "change",
             _t("2026-11-03T10:42Z"), _t("2026-11-03T11:16Z"), _t("2026-11-03T11:40Z"), "config_revert",
             ("orders", "checkout", "frontend"),
             trigger={"time": _t("2026-11-03T10:41Z"), "kind": "config_change", "service": "orders",
                      "key": "db.pool.max_size", "old": "50", "new": "5"},
             signals=("orders/db_pool_usage", "orders/latency_p99_ms", "orders/error_rate", "orders/queue_depth",
                      "checkout/error_rate", "log orders: connection pool exhausted"),
             notes=((3, "Orders returning errors, checkout impacted"),)),
        Plan("INC-20261105-001", "Site-wide slowness in the evening peak", "SEV3", "frontend", "traffic",
             _t("2026-11-05T18:20Z"), _t("2026-11-05T18:38Z"), _t("2026-11-05T19:50Z"), "scale_out",
             ("frontend", "catalog", "cart", "checkout", "inventory", "payments", "orders", "shipping"),
             signals=("frontend/request_rate", "*/request_rate", "frontend/cpu_utilization",
                      "catalog/cpu_utilization", "frontend/latency_p95_ms", "shipping/queue_depth"),
             notes=((4, "Frontend latency up; no recent deploys found"),)),
        Plan("INC-20261106-001", "Payment failures at checkout", "SEV2", "payments", "change",
             _t("2026-11-06T15:21Z"), _t("2026-11-06T15:44Z"), _t("2026-11-06T16:05Z"), "rollback",
             ("payments", "checkout", "frontend"),
             trigger={"time": _t("2026-11-06T15:20Z"), "kind": "deploy", "service": "payments", "bump": "reland"},
             recurrence_of="INC-20261102-001",
             signals=("payments/error_rate", "payments/latency_p99_ms", "checkout/error_rate",
                      "log payments: InvalidFormatException"),
             notes=((2, "Payment failures again; looks like the Monday incident"),)),
    ]


def faults(plans: list[Plan], start: pd.Timestamp, n: int) -> tuple[list[Fault], dict[str, Any]]:
    """Faults per plan (and the blips), plus what the traffic model needs for the surge."""
    def m(ts: pd.Timestamp) -> int:
        return int((ts - start) / pd.Timedelta(minutes=1))

    out, surge = [], None
    for p in plans:
        if p.root == "payments":
            strength = 0.16 if p.recurrence_of is None else 0.13
            out.append(Fault("payments", m(p.onset), m(p.mitigated) + 1, "payments_serialization",
                                error=strength, latency=1.9, sigma=0.3, cpu=0.06, ramp=3, ramp_out=2))
        elif p.root == "orders":
            out.append(Fault("orders", m(p.onset), m(p.mitigated) + 1, "pool"))
        elif p.cause == "traffic":
            surge = {"start": m(p.onset), "hold": 40, "decay": 12.0, "factor": 3.0,
                     "manual_scale": m(p.mitigated)}
    blips = [("catalog", "2026-11-01T03:12Z", 2, "gc", dict(latency=2.5, sigma=0.2)),
             ("inventory", "2026-11-04T09:47Z", 3, "db_conn", dict(error=0.015, latency=1.3)),
             ("cart", "2026-11-04T22:05Z", 2, "gc", dict(latency=1.8)),
             ("shipping", "2026-11-06T02:30Z", 4, "db_conn", dict(error=0.01, latency=1.5)),
             ("frontend", "2026-11-07T11:41Z", 2, "gc", dict(latency=1.6, sigma=0.1))]
    for svc, at, dur, kind, eff in blips:
        s = m(_t(at))
        if 0 <= s < n - dur:
            out.append(Fault(svc, s, s + dur, kind, **eff))
    return [f for f in out if f.start < n], surge


# --------------------------------------------------------------------------- traffic and load

def _traffic(rng: np.random.Generator, times: pd.DatetimeIndex, surge: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Frontend req/s and the share of each route per minute (shape n × routes)."""
    n = len(times)
    h = times.hour.to_numpy() + times.minute.to_numpy() / 60
    daily = 1 + 0.42 * np.cos(2 * np.pi * (h - 19) / 24) + 0.08 * np.cos(4 * np.pi * (h - 13) / 24)
    weekend = np.where(times.day_of_week.to_numpy() >= 5, 0.9, 1.0)
    drift = np.zeros(n)
    eps = rng.normal(0, 0.006, n)
    for i in range(1, n):  # slow wander of demand around the daily shape
        drift[i] = 0.985 * drift[i - 1] + eps[i]
    base = _FRONTEND_RATE * daily * weekend * np.exp(drift)
    extra = np.zeros(n)
    if surge:
        t = np.arange(n, dtype=float) - surge["start"]
        ramp = np.clip((t + 1) / 4, 0, 1)
        tail = np.where(t > surge["hold"], np.exp(-(t - surge["hold"]) / surge["decay"]), 1.0)
        extra = (surge["factor"] - 1) * ramp * tail * (t >= 0)
    shares = np.tile(np.array([r[3] for r in ROUTES]), (n, 1))
    return base * (1 + extra), shares


def _rates(frontend: np.ndarray, shares: np.ndarray) -> dict[str, np.ndarray]:
    route = {r[0]: frontend * shares[:, k] for k, r in enumerate(ROUTES)}
    checkout = route["checkout"]
    cart = route["cart"] + checkout
    rates = {"frontend": frontend, "checkout": checkout, "cart": cart, "catalog": route["browse"] + cart}
    for leaf in CALLS["checkout"][1:]:
        rates[leaf] = checkout.copy()
    return rates


def _autoscale(rng, svc: Service, rate: np.ndarray, cap: float, extra_cpu: np.ndarray,
               manual: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, str]]]:
    """Simulate an HPA: CPU per minute, ready replicas per minute and the scale events.

    Scale up when CPU stayed above 75 % for 5 minutes (new pods ready 2 minutes later), scale down
    when it stayed below 35 % for 30 minutes; the target is 55 %.
    """
    n = len(rate)
    lo, hi = svc.min_replicas or max(2, math.ceil(svc.replicas * 0.6)), svc.replicas * 4
    noise = rng.normal(0, 0.012, n)
    cpu, ready = np.zeros(n), np.zeros(n, dtype=int)
    replicas, pending, last_change, events = svc.replicas, None, -10**6, []
    for i in range(n):
        if pending and i >= pending[0]:
            replicas, pending = pending[1], None
        if manual and i == manual[0]:
            new = max(replicas, manual[1])
            events.append((i, replicas, new, "manual"))
            pending, last_change = (i + 2, new), i
        ready[i] = replicas
        u = rate[i] / (replicas * cap)
        cpu[i] = min(0.99, max(0.01, 0.04 + 0.82 * u + extra_cpu[i] + noise[i]))
        if pending or i - last_change < 5:
            continue
        recent = cpu[max(0, i - 4): i + 1]
        if len(recent) == 5 and recent.min() > 0.75 and replicas < hi:
            new = min(hi, math.ceil(replicas * recent.mean() / 0.55))
            events.append((i, replicas, new, "hpa"))
            pending, last_change = (i + 2, new), i
        elif i - last_change >= 30 and i >= 29 and cpu[i - 29: i + 1].max() < 0.35 and replicas > lo:
            new = max(lo, math.ceil(replicas * cpu[i - 29: i + 1].mean() / 0.55))
            if new < replicas:
                events.append((i, replicas, new, "hpa"))
                pending, last_change = (i + 1, new), i
    return cpu, ready, events


def _lognormal_moments(mu, sigma):
    mean = np.exp(mu + sigma**2 / 2)
    return mean, (np.exp(sigma**2) - 1) * mean**2


def _fit_lognormal(mean, var):
    s2 = np.log1p(var / mean**2)
    return np.log(mean) - s2 / 2, np.sqrt(s2)


def _lag(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x[:1], x[:-1]])


def _mixture_quantile(weights, mus, sigmas, q: float) -> np.ndarray:
    """Quantile ``q`` per minute of a mixture of log-normals (bisection in log space)."""
    lo = np.min(mus - 4 * sigmas, axis=0)
    hi = np.max(mus + 4 * sigmas, axis=0)
    for _ in range(40):
        mid = (lo + hi) / 2
        cdf = np.sum(weights * ndtr((mid - mus) / sigmas), axis=0)
        lo, hi = np.where(cdf < q, mid, lo), np.where(cdf < q, hi, mid)
    return np.exp((lo + hi) / 2)


@dataclass
class World:
    """Everything the model computed, per service and minute (arrays of length ``n``)."""

    times: pd.DatetimeIndex
    rates: dict[str, np.ndarray]
    shares: np.ndarray
    cpu: dict[str, np.ndarray]
    mu: dict[str, np.ndarray]            # own log-normal parameters
    sigma: dict[str, np.ndarray]
    tot_mu: dict[str, np.ndarray]        # whole-request latency (fit), for log line durations
    tot_sigma: dict[str, np.ndarray]
    p_own: dict[str, np.ndarray]         # own error probability
    err_parts: dict[str, dict[str, np.ndarray]]   # error probability by cause (base, fault:x, callee:y, overload)
    p_total: dict[str, np.ndarray]
    overload: dict[str, np.ndarray]
    pool: dict[str, tuple[np.ndarray, np.ndarray]]  # service -> (max size, connections wanted)
    queue: dict[str, np.ndarray]
    metrics: dict[tuple[str, str], np.ndarray]
    scale_events: list[tuple[int, str, int, int, str]]


def simulate(rng_traffic, rng_load, rng_obs, times, faults: list[Fault], surge, plans, restarts) -> World:
    n = len(times)
    frontend, shares = _traffic(rng_traffic, times, surge)
    rates = _rates(frontend, shares)
    mean_rate = {s.name: rates[s.name].mean() for s in SERVICES}
    fault_w = [(f, f.weight(n)) for f in faults]

    pool_max = {s.name: np.full(n, POOL_MAX, dtype=float) for s in SERVICES if s.pool_hold_s}
    for p in plans:
        if p.root == "orders" and p.cause == "change":
            a, b = (int((x - times[0]) / pd.Timedelta(minutes=1)) for x in (p.onset, p.mitigated))
            pool_max["orders"][max(a, 0): max(b + 1, 0)] = 5

    cpu, ready, scale_events, overload = {}, {}, [], {}
    for s in SERVICES:
        extra = sum((w * f.cpu for f, w in fault_w if f.service == s.name), np.zeros(n))
        manual = None
        if surge and s.name in ("frontend", "catalog"):
            manual = (surge["manual_scale"], s.replicas * 4)
        cap = mean_rate[s.name] / (s.replicas * s.cpu_at_mean)
        cpu[s.name], ready[s.name], ev = _autoscale(rng_load, s, rates[s.name], cap, extra, manual)
        overload[s.name] = rates[s.name] / (ready[s.name] * cap)
        scale_events += [(i, s.name, a, b, why) for i, a, b, why in ev]

    mu, sigma, p_own, parts = {}, {}, {}, {}
    pool_use = {}
    for s in SERVICES:
        u = overload[s.name]
        load = 1 + 2.0 * np.clip(u - 0.65, 0, 1.0) ** 1.5
        wander = np.exp(rng_load.normal(0, 0.03, n))  # minute-to-minute jitter of the own time
        lat_mult, sig_add = np.ones(n), np.zeros(n)
        part = {"base": np.full(n, s.error), "overload": 0.02 * np.clip(u - 1, 0, 2)}
        for f, w in fault_w:
            if f.service != s.name:
                continue
            lat_mult *= 1 + (f.latency - 1) * w
            sig_add += f.sigma * w
            if f.error:
                part[f"fault:{f.kind}"] = part.get(f"fault:{f.kind}", 0) + f.error * w
        if s.pool_hold_s:
            demand = rates[s.name] * s.pool_hold_s * np.exp(rng_load.normal(0, 0.05, n))
            excess = np.clip(1 - pool_max[s.name] / demand, 0, 1)
            # requests queue for a connection: they wait, and after 2 s the pool gives up
            part["fault:pool"] = part.get("fault:pool", 0) + 0.6 * excess
            # a busier database answers slower (it does not autoscale): the surge's lasting slowness
            lat_mult *= (1 + 28 * excess) * (1 + 2 * np.clip(demand / pool_max[s.name] - 0.35, 0, 0.6))
            sig_add += 0.25 * (excess > 0)
            pool_use[s.name] = (pool_max[s.name], demand)
        mu[s.name] = np.log(s.own_ms * load * lat_mult) + np.log(wander)
        sigma[s.name] = s.sigma + sig_add
        parts[s.name] = part
        p_own[s.name] = np.clip(sum(part.values()), 0, 0.95)

    # compose latency and errors bottom-up; callers see callees one minute late
    tot_mean, tot_var, p_total, tot_mu, tot_sigma, pct = {}, {}, {}, {}, {}, {}
    for name in _LEAVES_FIRST:
        own_m, own_v = _lognormal_moments(mu[name], sigma[name])
        if name == "frontend":
            comps = [(shares[:, k], (r[2],)) for k, r in enumerate(ROUTES)]
        else:
            comps = [(np.ones(n), CALLS.get(name, ()))]
        ws, mus, sigs, means, seconds, p_tot = [], [], [], [], [], np.zeros(n)
        for w, callees in comps:
            m_, v_, ok = own_m.copy(), own_v.copy(), 1 - p_own[name]
            for c in callees:
                m_, v_ = m_ + _lag(tot_mean[c]), v_ + _lag(tot_var[c])
                prop = PROPAGATE * _lag(p_total[c])
                ok = ok * (1 - prop)
                parts[name][f"callee:{c}"] = parts[name].get(f"callee:{c}", 0) + w * prop
            cm, cs = _fit_lognormal(m_, v_)
            ws.append(w), mus.append(cm), sigs.append(cs), means.append(m_), seconds.append(v_ + m_**2)
            p_tot = p_tot + w * (1 - ok)
        W, M, S = np.array(ws), np.array(mus), np.array(sigs)
        tot_mean[name] = np.sum(W * np.array(means), axis=0)
        tot_var[name] = np.sum(W * np.array(seconds), axis=0) - tot_mean[name] ** 2
        tot_mu[name], tot_sigma[name] = _fit_lognormal(tot_mean[name], tot_var[name])
        p_total[name] = p_tot
        for metric, z in _Z.items():
            pct[(name, metric)] = (np.exp(M[0] + z * S[0]) if len(comps) == 1
                                   else _mixture_quantile(W, M, S, float(ndtr(z))))

    # observed metrics: sampling noise on top of the model
    metrics: dict[tuple[str, str], np.ndarray] = {}
    queues = {}
    for s in SERVICES:
        name, rate = s.name, rates[s.name]
        reqs = np.maximum(1, np.round(rate * 60)).astype(np.int64)
        metrics[(name, "request_rate")] = np.round(rng_obs.poisson(reqs) / 60, 2)
        metrics[(name, "error_rate")] = np.round(rng_obs.binomial(reqs, np.clip(p_total[name], 0, 1)) / reqs, 5)
        for metric, noise in zip(_Z, (0.02, 0.04, 0.07)):
            metrics[(name, metric)] = np.round(pct[(name, metric)] * np.exp(rng_obs.normal(0, noise, n)), 1)
        metrics[(name, "cpu_utilization")] = np.round(cpu[name], 4)
        age = np.zeros(n)
        last = 0
        marks = set(restarts.get(name, ()))
        for i in range(n):
            if i in marks:
                last = i
            age[i] = i - last
        mem = 0.42 + 0.05 * (hash_of(name) % 5) / 4 + 0.018 * age / 1440 + rng_obs.normal(0, 0.004, n)
        metrics[(name, "memory_utilization")] = np.round(np.clip(mem, 0.05, 0.97), 4)
        if name in pool_use:
            size, demand = pool_use[name]
            usage = np.clip(demand / size + rng_obs.normal(0, 0.01, n), 0.0, 1.0)
            usage = np.where(demand >= size, 1 - np.abs(rng_obs.normal(0, 0.004, n)), usage)
            metrics[(name, "db_pool_usage")] = np.round(usage, 4)
        if s.queue:
            arrivals = rng_obs.poisson(rate * 60)
            capacity = 3.0 * mean_rate[name] * 60 * np.ones(n)
            if name == "orders" and name in pool_use:
                capacity = np.where(pool_use[name][1] >= pool_use[name][0], 0.2 * capacity, capacity)
            backlog, depth = 0.0, np.zeros(n)
            jitter = rng_obs.poisson(np.maximum(rate * 60 * 0.04, 1))
            for i in range(n):
                backlog = max(0.0, backlog + arrivals[i] - capacity[i])
                depth[i] = backlog + jitter[i]
            queues[name] = depth
            metrics[(name, "queue_depth")] = np.round(depth)
    return World(times, rates, shares, cpu, mu, sigma, tot_mu, tot_sigma, p_own, parts, p_total, overload,
                 pool_use, queues, metrics, sorted(scale_events))


def hash_of(text: str) -> int:
    """A stable small hash (Python's ``hash`` is salted per process)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(text))
