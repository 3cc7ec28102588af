"""Change events, alerts and incident timelines of the sample data set (:mod:`workbench.telemetry.sample`).

Routine deploys, config changes and feature-flag flips are drawn per day (kept away from the
incidents, except for a few harmless decoys placed near them on purpose); the incidents' own
changes (a bad deploy, a config change, their rollbacks and reverts) are planned. Alerts come from
threshold rules run over the generated metrics, so they fire with a realistic delay after onset;
pages, declarations, notes, mitigations and resolutions follow the first alert of each incident.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .model import POOL_MAX, SERVICES, Plan, World, _t

ALERT_FOR = {"HighErrorRate": 5, "HighLatency": 5, "DBPoolSaturation": 3, "HighCPU": 5, "QueueBacklog": 10}


# --------------------------------------------------------------------------- change events

_DEPLOY_WEIGHT = {"frontend": 3, "catalog": 2, "cart": 2, "checkout": 1.5, "payments": 1, "inventory": 1,
                  "orders": 1, "shipping": 1.5}
_CONFIG_KEYS = (("catalog", "cache.ttl_seconds", ("300", "600", "450")),
                ("frontend", "http.client.timeout_ms", ("2000", "2500")),
                ("cart", "session.ttl_minutes", ("30", "45")),
                ("shipping", "carrier.quote_timeout_ms", ("1500", "1200")),
                ("inventory", "reservation.hold_minutes", ("15", "20")),
                ("frontend", "log.level", ("INFO", "DEBUG")),
                ("catalog", "search.max_results", ("50", "100")))
_FLAGS = (("frontend", "new-recs-carousel", ("10%", "25%", "50%", "100%")),
          ("checkout", "express-checkout", ("off", "on (5%)", "on (20%)")),
          ("cart", "save-for-later", ("off", "on")),
          ("shipping", "carrier-dhl-v2", ("off", "on")))
_PEOPLE = ("alice", "bob", "carol", "dmitri", "erin", "farid")
#: Who carries out each kind of mitigation (the change event and the mitigation event agree).
MITIGATION_ACTOR = {"rollback": "erin", "config_revert": "carol", "scale_out": "erin"}
#: Harmless changes placed near the incidents on purpose (decoys for the correlation step).
_DECOYS = (("2026-11-02T13:51Z", "deploy", "catalog", None),
           ("2026-11-03T10:24Z", "deploy", "inventory", None),
           ("2026-11-03T10:50Z", "feature_flag", "frontend", "new-recs-carousel"),
           ("2026-11-05T17:28Z", "config_change", "frontend", "http.keepalive_timeout_s"),
           ("2026-11-06T14:56Z", "deploy", "shipping", None))


@dataclass
class Change:
    """A change event before versions and values are filled in."""

    minute: int
    second: int
    kind: str
    service: str
    key: str | None = None
    how: str = "patch"     # deploys: patch | minor | reland | rollback
    actor: str = "deploy-bot"
    incident: str | None = None


def changes(rng: random.Random, times: pd.DatetimeIndex, plans: list[Plan]) -> list[Change]:
    """Routine deploys, config changes and flag flips, the decoys and the incidents' own changes."""
    n = len(times)
    start = times[0]
    minute = lambda ts: int((ts - start) / pd.Timedelta(minutes=1))  # noqa: E731
    quiet = [(minute(p.onset) - 120, minute(p.resolved) + 30) for p in plans]
    out: list[Change] = []
    services = list(_DEPLOY_WEIGHT)
    weights = list(_DEPLOY_WEIGHT.values())

    def free(m: int) -> bool:
        return 0 <= m < n and all(not (a <= m <= b) for a, b in quiet)

    for day in range(n // 1440):
        weekday = times[day * 1440].day_of_week < 5
        lo, hi = (8 * 60, 18 * 60) if weekday else (10 * 60, 16 * 60)
        plan = [("deploy", 5 if weekday else 1), ("config_change", 1 if weekday else 0), ("feature_flag", 1)]
        for kind, mean in plan:
            count = sum(1 for _ in range(mean * 2) if rng.random() < 0.5) + (rng.random() < 0.3)
            for _ in range(count):
                for _attempt in range(20):
                    m = day * 1440 + rng.randrange(lo, hi)
                    if free(m):
                        break
                else:
                    continue
                if kind == "deploy":
                    out.append(Change(m, rng.randrange(60), kind, rng.choices(services, weights)[0]))
                else:
                    svc, key, _ = rng.choice(_CONFIG_KEYS if kind == "config_change" else _FLAGS)
                    out.append(Change(m, rng.randrange(60), kind, svc, key, actor=rng.choice(_PEOPLE)))
    for at, kind, svc, key in _DECOYS:
        m = minute(_t(at))
        if 0 <= m < n:
            out.append(Change(m, rng.randrange(60), kind, svc, key,
                              actor="deploy-bot" if kind == "deploy" else rng.choice(_PEOPLE)))
    for p in plans:
        if not p.trigger:
            continue
        trig = p.trigger
        m, mm = minute(trig["time"]), minute(p.mitigated)
        if trig["kind"] == "deploy":
            out.append(Change(m, 0, "deploy", p.root, how=trig["bump"], incident=p.id))
            out.append(Change(mm, 0, "deploy", p.root, how="rollback", actor=MITIGATION_ACTOR["rollback"],
                              incident=p.id))
        else:
            out.append(Change(m, 0, "config_change", p.root, trig["key"], actor="bob", incident=p.id))
            out.append(Change(mm, 0, "config_change", p.root, trig["key"], how="revert",
                              actor=MITIGATION_ACTOR["config_revert"], incident=p.id))
    return sorted(out, key=lambda c: (c.minute, c.second, c.service, c.kind))


def _bump(version: str, how: str) -> str:
    major, minor, patch = (int(x) for x in version.split("."))
    return f"{major}.{minor + 1}.0" if how == "minor" else f"{major}.{minor}.{patch + 1}"


def change_events(rng: random.Random, changes: list[Change], times: pd.DatetimeIndex, plans: list[Plan]):
    """Event rows for the changes; version timelines per service; restart minutes per service."""
    version = {s.name: s.version for s in SERVICES}
    before_bad: dict[str, str] = {}
    bad: dict[str, str] = {}
    values = {key: vals[0] for _, key, vals in _CONFIG_KEYS + _FLAGS}
    values["db.pool.max_size"] = str(POOL_MAX)
    values["http.keepalive_timeout_s"] = "60"
    timeline = {s.name: [(0, s.version)] for s in SERVICES}
    commits: dict[tuple[str, str], str] = {}
    restarts: dict[str, list[int]] = {s.name: [] for s in SERVICES}
    rows = []
    for c in changes:
        ts = times[c.minute] + pd.Timedelta(seconds=c.second)
        attrs: dict[str, Any] = {"actor": c.actor}
        if c.incident:
            trig = next(p.trigger for p in plans if p.id == c.incident)
            if c.how not in ("rollback", "revert"):
                trig["time"] = ts
        if c.kind == "deploy":
            old = version[c.service]
            if c.how == "rollback":
                new = before_bad.get(c.service, old)
                summary = f"Rolled back {c.service} to v{new}"
                attrs["rollback"] = True
            elif c.how == "reland":
                new = _bump(bad.get(c.service, _bump(old, "minor")), "patch")
                before_bad[c.service], bad[c.service] = old, new
                summary = f"Deployed {c.service} v{new}"
            else:
                new = _bump(old, c.how)
                if c.how == "minor":
                    before_bad[c.service], bad[c.service] = old, new
                summary = f"Deployed {c.service} v{new}"
            # a rollback redeploys the commit of the version it restores
            commit = commits.get((c.service, new)) or "".join(rng.choice("0123456789abcdef") for _ in range(7))
            commits[(c.service, new)] = commit
            attrs.update(version=new, previous_version=old, commit=commit, strategy="rolling")
            version[c.service] = new
            timeline[c.service].append((c.minute + 1, new))
            restarts[c.service].append(c.minute + 1)
            if c.incident and c.how != "rollback":
                next(p for p in plans if p.id == c.incident).trigger["summary"] = summary
        elif c.kind == "config_change":
            old = values.get(c.key, "")
            if c.incident and c.how == "revert":
                new = next(p.trigger["old"] for p in plans if p.id == c.incident)
            elif c.incident:
                new = next(p.trigger["new"] for p in plans if p.id == c.incident)
            else:
                new = _next_value(c.key, old)
            values[c.key] = new
            summary = f"Config {c.service}: {c.key} {old} -> {new}"
            attrs.update(key=c.key, old=old, new=new)
            if c.incident and c.how != "revert":
                next(p for p in plans if p.id == c.incident).trigger["summary"] = summary
        else:
            old = values.get(c.key, "off")
            new = _next_value(c.key, old)
            values[c.key] = new
            summary = f"Feature flag {c.key}: {old} -> {new}"
            attrs.update(key=c.key, old=old, new=new)
        rows.append((ts, c.service, c.kind, summary, attrs, c))
    return rows, timeline, restarts


def _next_value(key: str, old: str) -> str:
    for _, k, vals in _CONFIG_KEYS + _FLAGS:
        if k == key:
            return vals[(vals.index(old) + 1) % len(vals)] if old in vals else vals[0]
    if key == "http.keepalive_timeout_s":
        return "75"
    return old


# --------------------------------------------------------------------------- alerts and incidents

def alerts(rng: random.Random, world: World) -> list[dict[str, Any]]:
    """Run the threshold rules over the observed metrics; one alert per sustained breach."""
    n = len(world.times)
    out = []
    for s in SERVICES:
        m = world.metrics
        rules = [("HighErrorRate", "error_rate", 0.05),
                 ("HighLatency", "latency_p99_ms", round(3 * float(np.median(m[(s.name, "latency_p99_ms")])), -1)),
                 ("HighCPU", "cpu_utilization", 0.85)]
        if (s.name, "db_pool_usage") in m:
            rules.append(("DBPoolSaturation", "db_pool_usage", 0.9))
        if (s.name, "queue_depth") in m:
            rules.append(("QueueBacklog", "queue_depth", 2000))
        for rule, metric, threshold in rules:
            cond = m[(s.name, metric)] > threshold
            need, run, quiet, firing = ALERT_FOR[rule], 0, 0, False
            for i in range(n):
                run, quiet = (run + 1, 0) if cond[i] else (0, quiet + 1)
                if firing and quiet >= 15:  # the alert resolves after 15 quiet minutes
                    firing = False
                if not firing and run >= need:
                    firing = True
                    at = world.times[i] + pd.Timedelta(seconds=60 + rng.randrange(10, 50))
                    out.append({"time": at, "service": s.name, "rule": rule, "metric": metric,
                                "threshold": threshold, "value": float(m[(s.name, metric)][i]),
                                "since": world.times[i - run + 1], "for": need})
    return sorted(out, key=lambda a: (a["time"], a["service"], a["rule"]))


def incident_events(rng: random.Random, plans: list[Plan], alerts: list[dict], world: World) -> list[tuple]:
    """Pages, declarations, notes, mitigations and resolutions; fills each plan's timeline."""
    team = {s.name: s.team for s in SERVICES}
    rows = []
    paged: dict[str, pd.Timestamp] = {}
    for a in alerts:
        pct = f"{a['value']:.1%}" if a["metric"] in ("error_rate", "db_pool_usage", "cpu_utilization") else f"{a['value']:g}"
        thr = f"{a['threshold']:.0%}" if a["threshold"] < 1 else f"{a['threshold']:g}"
        rows.append((a["time"], a["service"], "alert",
                     f"[FIRING] {a['rule']} {a['service']}: {a['metric']} {pct} > {thr} for {a['for']}m",
                     {"alertname": a["rule"], "metric": a["metric"], "threshold": a["threshold"], "value": a["value"],
                      "state": "firing", "active_since": a["since"].strftime("%Y-%m-%dT%H:%M:%SZ")}))
        last = paged.get(team[a["service"]])
        if last is None or a["time"] - last > pd.Timedelta(hours=1):
            paged[team[a["service"]]] = a["time"]
            at = a["time"] + pd.Timedelta(seconds=rng.randrange(5, 40))
            rows.append((at, a["service"], "page", f"Paged {team[a['service']]} on-call for {a['rule']} on {a['service']}",
                         {"team": team[a["service"]], "alertname": a["rule"], "responder": rng.choice(_PEOPLE)}))
    for p in plans:
        mine = [a for a in alerts if p.onset - pd.Timedelta(minutes=2) <= a["since"] <= p.mitigated]
        if not mine:
            raise RuntimeError(f"sample model: no alert fired for {p.id}")
        first = mine[0]
        services = list(dict.fromkeys(a["service"] for a in mine))
        declared = first["time"].floor("min") + pd.Timedelta(minutes=rng.randrange(4, 8), seconds=rng.randrange(60))
        commander = rng.choice(_PEOPLE)
        p.timeline = {"started": first["since"], "detected": first["time"].floor("s"), "declared": declared,
                      "services": services, "first_alert": first["rule"] + " " + first["service"]}
        base = {"incident_id": p.id}
        rows.append((declared, first["service"], "incident_declared", f"{p.id} declared ({p.severity}): {p.title}",
                     {**base, "severity": p.severity, "commander": commander}))
        for offset, text in p.notes:
            rows.append((declared + pd.Timedelta(minutes=offset), first["service"], "note", text,
                         {**base, "author": commander}))
        if p.mitigation == "rollback":
            what = f"Rolled back {p.root} to the previous version"
        elif p.mitigation == "config_revert":
            what = f"Reverted {p.trigger['key']} on {p.root}"
        else:
            what = "Scaled out frontend and catalog manually"
        rows.append((p.mitigated + pd.Timedelta(seconds=20), p.root if p.mitigation != "scale_out" else "frontend",
                     "mitigation", what, {**base, "action": p.mitigation, "actor": MITIGATION_ACTOR[p.mitigation]}))
        rows.append((p.resolved, first["service"], "resolved", f"{p.id} resolved", {**base, "actor": commander}))
    return rows
