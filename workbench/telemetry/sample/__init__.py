"""The sample data set: a synthetic online shop with labelled incidents, written deterministically.

:func:`generate` writes a folder the ``files`` source reads through its ``manifest.yaml``:

- ``metrics.parquet``, ``spans.parquet`` (zstd; timezone-aware UTC timestamps),
- ``logs.jsonl.gz`` (one JSON object per line; times as ISO strings ending in ``Z``),
- ``events.csv``, ``topology.csv`` (times as ISO strings ending in ``Z``),
- ``incidents/*.yaml``: knowledge-base documents (past incidents with confirmed causes, and the
  evaluation incidents as responders saw them, without causes),
- ``labels.yaml``: the ground truth of the evaluation incidents (analysis never reads it),
- ``README.md``.

Each table file holds exactly the unified columns (:func:`workbench.telemetry.schema.columns`), attributes as
JSON text, and every frame passes :func:`workbench.telemetry.schema.validate` before it is written. The same
``seed`` and ``days`` give byte-identical files. The model is described in
:mod:`workbench.telemetry.sample.model`.
"""
from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from .. import schema
from . import model
from . import timeline
from . import text
from ...formats import iso_utc
from ...errors import ParameterError

MANIFEST = "manifest.yaml"
FILES = {"metrics": "metrics.parquet", "logs": "logs.jsonl.gz", "spans": "spans.parquet",
         "events": "events.csv", "topology": "topology.csv"}
UNITS = {"latency_p50_ms": "ms", "latency_p95_ms": "ms", "latency_p99_ms": "ms", "request_rate": "req/s",
         "error_rate": "ratio", "cpu_utilization": "ratio", "memory_utilization": "ratio",
         "db_pool_usage": "ratio", "queue_depth": "1"}
#: Head-sampled traces per minute at mean traffic, per frontend route.
TRACES_PER_MINUTE = {"browse": 0.8, "cart": 0.3, "checkout": 0.45}
#: The tail sampler looks at this many times more traces than the head sampler and keeps the errors.
TAIL_FACTOR = 10


def generate(out_dir: str | Path, seed: int = 7, days: int = 7) -> dict[str, Any]:
    """Write the sample data set for ``days`` days from 2026-11-01 00:00Z into ``out_dir``.

    Evaluation incidents that do not fit in the window are left out (all four need ``days=7``;
    ``days=2`` keeps the first).

    Parameters
    ----------
    out_dir : str or Path
        Folder to write (created if needed; existing files of the same names are overwritten).
    seed : int
        Seed of every random draw; the same seed gives byte-identical files.
    days : int
        Length of the telemetry window, 1 to 28.

    Returns
    -------
    dict
        ``seed``, ``days``, ``start``, ``end``, ``rows`` (per table), ``incidents`` (evaluation
        incident ids), ``past_incidents``, ``files`` (relative path -> bytes) and ``bytes`` (total).
    """
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 28:
        raise ParameterError(f"days must be an integer from 1 to 28, got {days!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    (out / "incidents").mkdir(parents=True, exist_ok=True)

    times = pd.date_range(model.START, periods=days * 1440, freq="min")
    end = times[-1] + pd.Timedelta(minutes=1)
    plans = [p for p in model.plans() if p.resolved < end]
    seeds = np.random.SeedSequence(seed).spawn(5)
    rng_traffic, rng_load, rng_obs, rng_spans, rng_logs = (np.random.default_rng(s) for s in seeds)
    rnd = random.Random(seed)

    changes = timeline.changes(rnd, times, plans)
    change_rows, version_changes, restarts = timeline.change_events(rnd, changes, times, plans)
    faults, surge = model.faults(plans, times[0], len(times))
    world = model.simulate(rng_traffic, rng_load, rng_obs, times, faults, surge, plans, restarts)
    alerts = timeline.alerts(rnd, world)
    incident_rows = timeline.incident_events(rnd, plans, alerts, world)
    versions = _version_arrays(version_changes, len(times))

    span_rows, span_index = _spans(rng_spans, random.Random(seed + 1), world, versions)
    log_rows = _logs(rng_logs, random.Random(seed + 2), world, versions, span_index, change_rows, faults)

    frames = {
        "metrics": _metrics_frame(world),
        "logs": _with_times(pd.DataFrame(log_rows, columns=schema.columns("logs")), "timestamp", "ms"),
        "spans": _with_times(pd.DataFrame(span_rows, columns=schema.columns("spans")), "start", "us"),
        "events": _events_frame(change_rows, world, incident_rows, rnd),
        "topology": pd.DataFrame(model.EDGES, columns=schema.columns("topology")),
    }
    valid = {t: schema.validate(t, f, source=f"workbench.telemetry.sample(seed={seed})").frame for t, f in frames.items()}

    # one series after another: delta-encoded timestamps and dictionary-encoded values compress
    # to a third of the time-ordered, plain-encoded size
    _write_parquet(valid["metrics"].sort_values(["service", "name", "timestamp"], kind="stable"),
                   out / FILES["metrics"], dictionary=("service", "environment", "name", "unit", "attributes", "value"),
                   delta=("timestamp",))
    # random ids compress better without a dictionary
    _write_parquet(_by_trace(valid["spans"]), out / FILES["spans"],
                   dictionary=("service", "name", "status", "attributes"))
    _write_jsonl_gz(valid["logs"], out / FILES["logs"])
    _write_csv(valid["events"], out / FILES["events"])
    _write_csv(valid["topology"], out / FILES["topology"])

    docs = [_incident_doc(p) for p in plans] + [dict(d) for d in text.PAST_INCIDENTS]
    for doc in docs:
        _write_yaml(doc, out / "incidents" / f"{doc['id']}.yaml")
    labels = [_label(p) for p in plans]
    _write_yaml({"description": "Ground truth of the evaluation incidents; the analysis never reads this file.",
                 "seed": seed, "incidents": labels}, out / "labels.yaml")
    _write_text(_manifest(seed), out / MANIFEST)

    summary: dict[str, Any] = {
        "out_dir": str(out), "seed": seed, "days": days, "start": iso_utc(times[0]), "end": iso_utc(end),
        "rows": {t: len(f) for t, f in valid.items()}, "incidents": [p.id for p in plans],
        "past_incidents": [d["id"] for d in text.PAST_INCIDENTS],
    }
    services = [{"name": s.name, "team": s.team,
                 "extras": ", ".join(x for x, on in (("db_pool_usage", s.pool_hold_s), ("queue_depth", s.queue)) if on)
                 or "—"} for s in model.SERVICES]
    _write_text(text.readme(summary, labels, list(model.EDGES), services), out / "README.md")
    written = [FILES[t] for t in FILES] + [f"incidents/{d['id']}.yaml" for d in docs] + ["labels.yaml", MANIFEST, "README.md"]
    files = {name: (out / name).stat().st_size for name in written}
    summary["files"] = files
    summary["bytes"] = sum(files.values())
    return summary


# --------------------------------------------------------------------------- spans and logs

def _version_arrays(version_changes: dict[str, list[tuple[int, str]]], n: int) -> dict[str, np.ndarray]:
    """The version each service runs, per minute."""
    out = {}
    for svc, changes in version_changes.items():
        starts = np.array([m for m, _ in changes])
        names = np.array([v for _, v in changes], dtype=object)
        out[svc] = names[np.searchsorted(starts, np.arange(n), side="right") - 1]
    return out


def _own_cause(world: model.World, svc: str, i: int, rnd: random.Random) -> str:
    """Draw the cause of one of ``svc``'s own errors at minute ``i`` (``base``, ``overload``, a fault kind)."""
    keys = [k for k in world.err_parts[svc] if not k.startswith("callee:")]
    weights = [float(np.broadcast_to(world.err_parts[svc][k], (len(world.times),))[i]) for k in keys]
    if sum(weights) <= 0:
        return "base"
    key = rnd.choices(keys, weights)[0]
    return key.split(":", 1)[1] if key.startswith("fault:") else key


def _spans(rng: np.random.Generator, rnd: random.Random, world: model.World, versions):
    """Sampled traces: frontend roots with their call trees; durations from the model at that minute.

    Returns the span rows and an index (service, minute) -> [(trace_id, is_error)] the logs use.
    """
    n = len(world.times)
    fe = world.rates["frontend"]
    epoch_ms = world.times.as_unit("ms").asi8
    counts = []
    for k, (key, _, callee, share) in enumerate(model.ROUTES):
        lam = TRACES_PER_MINUTE[key] * fe * world.shares[:, k] / (fe.mean() * share)
        p_err = 1 - (1 - world.p_own["frontend"]) * (1 - model.PROPAGATE * world.p_total[callee])
        counts.append((rng.poisson(lam), rng.poisson(TAIL_FACTOR * lam * p_err)))
    rows, index = [], {}

    def children(svc: str, route_callee: str) -> tuple[str, ...]:
        return (route_callee,) if svc == "frontend" else model.CALLS.get(svc, ())

    def span(svc, name, parent, start, i, origin, route_callee, trace_id):
        own = rnd.lognormvariate(world.mu[svc][i], world.sigma[svc][i])
        span_id = f"{rnd.getrandbits(64):016x}"
        t, child_error = start + own * 0.4, False
        for c in children(svc, route_callee):
            cname = "CartService/GetCart" if (svc, c) == ("checkout", "cart") else model.SPAN_NAMES[c]
            d, e = span(c, cname, span_id, t, i, origin, route_callee, trace_id)
            t, child_error = t + d + 0.2, child_error or e
        duration = t - start + own * 0.6
        own_error = svc == origin or rnd.random() < world.p_own[svc][i]
        error = own_error or (child_error and rnd.random() < model.PROPAGATE)
        attrs = {"service.version": versions[svc][i]}
        if error:
            attrs["error.type"] = text.ERROR_TYPES[_own_cause(world, svc, i, rnd) if own_error else "callee"]
        rows.append((trace_id, span_id, parent, svc, name, int(start * 1000), round(duration, 3),
                     "error" if error else "ok", attrs))
        index.setdefault((svc, i), []).append((trace_id, error))
        return duration, error

    tree_services = {"browse": ("frontend", "catalog"), "cart": ("frontend", "cart", "catalog"),
                     "checkout": ("frontend", "checkout", "cart", "catalog", "inventory", "payments", "orders",
                                  "shipping")}
    for i in range(n):
        for k, (key, name, callee, _) in enumerate(model.ROUTES):
            head, tail = counts[k][0][i], counts[k][1][i]
            for j in range(head + tail):
                origin = None
                if j >= head:  # a tail-sampled trace: it failed somewhere, in proportion to own error rates
                    svcs = tree_services[key]
                    weights = [world.p_own[s][i] for s in svcs]
                    origin = rnd.choices(svcs, weights)[0]
                start = float(epoch_ms[i]) + rnd.random() * 60_000
                span("frontend", name, "", start, i, origin, callee, f"{rnd.getrandbits(128):032x}")
    return rows, index


def _logs(rng: np.random.Generator, rnd: random.Random, world: model.World, versions, span_index,
          change_rows, faults) -> list[tuple]:
    """Subsampled log lines per service and minute: INFO follows traffic, WARN/ERROR follow trouble."""
    n = len(world.times)
    epoch_ms = world.times.as_unit("ms").asi8
    rows: list[tuple] = []

    def emit(i, svc, severity, body, trace=None, at_ms=None):
        ms = int(epoch_ms[i] + (rnd.randrange(60_000) if at_ms is None else at_ms))
        rows.append((ms, svc, model.ENVIRONMENT, severity, body, trace or "", {"service.version": versions[svc][i]}))

    def trace_for(svc, i, share, want_error=False):
        if rnd.random() >= share:
            return ""
        seen = span_index.get((svc, i), [])
        pick = [t for t, e in seen if e] if want_error else [t for t, _ in seen]
        return rnd.choice(pick) if pick and rnd.random() < 0.8 else f"{rnd.getrandbits(128):032x}"

    slowness = {s.name: world.metrics[(s.name, "latency_p99_ms")] / np.median(world.metrics[(s.name, "latency_p99_ms")])
                for s in model.SERVICES}
    fault_weight = {}
    for f in faults:
        fault_weight.setdefault((f.service, f.kind), np.zeros(n))
        fault_weight[(f.service, f.kind)] += f.weight(n)

    for s in model.SERVICES:
        svc = s.name
        rate = world.rates[svc]
        ratio = rate / rate.mean()
        parts = {k: np.broadcast_to(v, (n,)) for k, v in world.err_parts[svc].items()}
        p99 = world.metrics[(svc, "latency_p99_ms")]
        warn_w = {"base": 0.06 * ratio, "slow": 0.6 * np.clip(p99 / np.median(p99) - 1.5, 0, 4),
                  "overload": 2 * np.clip(world.overload[svc] - 1, 0, 2)}
        for k, v in parts.items():
            if k.startswith("callee:"):
                warn_w["retry:" + k.split(":", 1)[1]] = 8 * v
        if (svc, "gc") in fault_weight:
            warn_w["gc"] = 3 * fault_weight[(svc, "gc")]
        if svc in world.pool:
            size, demand = world.pool[svc]
            warn_w["pool"] = 1.5 * (demand > size)
        warn_keys = list(warn_w)
        warn_mat = np.array([warn_w[k] for k in warn_keys])
        err_keys = list(parts)
        err_mat = np.array([parts[k] for k in err_keys])
        scale = 0.05 / (s.error * rate.mean() * 60)
        counts = (rng.poisson(s.log_rate * ratio), rng.poisson(warn_mat.sum(axis=0)),
                  rng.poisson(np.minimum(12, scale * world.p_total[svc] * rate * 60)))
        infos = text.INFO[svc]
        for i in np.flatnonzero(counts[0] + counts[1] + counts[2]):
            ctx = _context(world, svc, i, rnd)
            for _ in range(counts[0][i]):
                template, _, traced = rnd.choices(infos, [w for _, w, _ in infos])[0]
                emit(i, svc, "INFO", text.render(template, rnd, ctx), trace_for(svc, i, 0.3) if traced else "")
            for _ in range(counts[1][i]):
                key = rnd.choices(warn_keys, warn_mat[:, i])[0]
                if key.startswith("retry:"):
                    ctx2 = dict(ctx, callee=key[6:], reason=_reason(world, key[6:], i, rnd))
                    body = text.render(text.WARN["retry"], rnd, ctx2)
                elif key in ("base", "slow"):
                    if key == "slow" and "callee" in ctx:  # name the callee that is slowest right now
                        ctx2 = dict(ctx, callee=max(ctx["callees"], key=lambda c: slowness[c][i]))
                    else:
                        ctx2 = ctx
                    body = text.render(text.WARN_BASE[svc], rnd, ctx2)
                else:
                    body = text.render(text.WARN[key], rnd, ctx)
                emit(i, svc, "WARN", body, trace_for(svc, i, 0.4))
            for _ in range(counts[2][i]):
                key = rnd.choices(err_keys, err_mat[:, i])[0]
                if key.startswith("callee:"):
                    callee = key.split(":", 1)[1]
                    template = text.ERROR_CALLEE[1 if svc == "frontend" else 0]
                    ctx2 = dict(ctx, callee=callee, reason=_reason(world, callee, i, rnd))
                    if svc == "frontend":
                        ctx2["route"] = text.route_of(callee, rnd)
                    body = text.render(template, rnd, ctx2)
                elif key.startswith("fault:"):
                    body = text.render(rnd.choice(text.ERROR_FAULT[key[6:]]), rnd, ctx)
                elif key == "overload":
                    body = text.render(text.ERROR_OVERLOAD, rnd, ctx)
                else:
                    body = text.render(rnd.choice(text.ERROR_BASE[svc]), rnd, ctx)
                emit(i, svc, "ERROR", body, trace_for(svc, i, 0.9, want_error=True))
        if svc in world.pool:  # periodic pool statistics, which show the pool's size
            for i in range(model.hash_of(svc) % 10, n, 10):
                emit(i, svc, "INFO", text.render(text.POOL_STATS, rnd, _context(world, svc, i, rnd)))

    for ts, svc, kind, _, attrs, _ in change_rows:
        i = int((ts - world.times[0]) / pd.Timedelta(minutes=1))
        if kind == "deploy" and i + 1 < n:
            body = text.STARTUP.format(service=svc, version=attrs["version"], commit=attrs["commit"])
            emit(i + 1, svc, "INFO", body, at_ms=rnd.randrange(5_000, 40_000))
        elif kind == "config_change":
            body = text.RELOAD.format(key=attrs["key"], value=attrs["new"])
            emit(i, svc, "INFO", body, at_ms=min(59_999, ts.second * 1000 + rnd.randrange(3_000, 20_000)))
    return sorted(rows, key=lambda r: (r[0], r[1]))


def _context(world: model.World, svc: str, i: int, rnd: random.Random) -> dict[str, Any]:
    ctx: dict[str, Any] = {"mu": world.tot_mu[svc][i], "sigma": world.tot_sigma[svc][i]}
    callees = [b for a, b in model.EDGES if a == svc]
    if callees:
        ctx["callee"], ctx["callees"] = rnd.choice(callees), callees
    if svc in world.pool:
        size, demand = (float(x[i]) for x in world.pool[svc])
        active = int(round(min(size, demand)))
        ctx.update(total=int(size), active=active, idle=int(size) - active,
                   waiting=int(round(max(0.0, demand - size) * 3)))
    return ctx


def _reason(world: model.World, callee: str, i: int, rnd: random.Random) -> str:
    return text.REASONS.get(_own_cause(world, callee, i, rnd), "503 Service Unavailable")


# --------------------------------------------------------------------------- frames

def _by_trace(spans: pd.DataFrame) -> pd.DataFrame:
    """Spans ordered by their trace's start, then trace, then start: a trace's rows stay together."""
    root_start = spans.groupby("trace_id")["start"].transform("min")
    return spans.assign(_root=root_start).sort_values(["_root", "trace_id", "start"], kind="stable").drop(columns="_root")


def _with_times(frame: pd.DataFrame, column: str, unit: str) -> pd.DataFrame:
    frame[column] = pd.to_datetime(frame[column].to_numpy(dtype="int64"), unit=unit, utc=True)
    return frame


def _metrics_frame(world: model.World) -> pd.DataFrame:
    parts = []
    for (svc, name), values in world.metrics.items():
        parts.append(pd.DataFrame({"timestamp": world.times, "service": svc, "environment": model.ENVIRONMENT,
                                   "name": name, "value": values.astype("float64"), "unit": UNITS[name],
                                   "attributes": "{}"}))
    return pd.concat(parts, ignore_index=True)


def _events_frame(change_rows, world: model.World, incident_rows, rnd: random.Random) -> pd.DataFrame:
    rows = [(ts, svc, kind, summary, attrs) for ts, svc, kind, summary, attrs, _ in change_rows]
    for i, svc, old, new, why in world.scale_events:
        manual = why == "manual"
        rows.append((world.times[i] + pd.Timedelta(seconds=30), svc, "scale",
                     f"{'Manually scaled' if manual else 'Autoscaled'} {svc} from {old} to {new} replicas",
                     {"old_replicas": old, "new_replicas": new, "actor": timeline.MITIGATION_ACTOR["scale_out"] if manual else "hpa",
                      "reason": "manual scale-out" if manual else ("cpu above target" if new > old else "cpu below target")}))
    rows += list(incident_rows)
    frame = pd.DataFrame(rows, columns=["timestamp", "service", "kind", "summary", "attributes"])
    frame.insert(2, "environment", model.ENVIRONMENT)
    return frame.sort_values(["timestamp", "service", "kind"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- documents

def _incident_doc(p: model.Plan) -> dict[str, Any]:
    tl = p.timeline
    return {"id": p.id, "title": p.title, "severity": p.severity, "status": "resolved", "environment": model.ENVIRONMENT,
            "services": list(tl["services"]), "started": iso_utc(tl["started"]), "detected": iso_utc(tl["detected"]),
            "mitigated": iso_utc(p.mitigated), "resolved": iso_utc(p.resolved),
            "links": [{"title": f"{s.capitalize()} runbook", "url": f"https://runbooks.example.com/{s}"}
                      for s in tl["services"][:2]]}


def _label(p: model.Plan) -> dict[str, Any]:
    trigger = None
    if p.trigger:
        trigger = {"time": iso_utc(p.trigger["time"]), "kind": p.trigger["kind"], "service": p.trigger["service"],
                   "summary": p.trigger["summary"]}
    return {"id": p.id, "title": p.title, "root_cause_service": p.root, "cause": p.cause, "trigger": trigger,
            "onset": iso_utc(p.onset), "detected": iso_utc(p.timeline["detected"]),
            "detection_gap_minutes": round((p.timeline["detected"] - p.onset) / pd.Timedelta(minutes=1), 1),
            "mitigation": p.mitigation, "mitigated": iso_utc(p.mitigated), "resolved": iso_utc(p.resolved),
            "affected": list(p.affected), "signals": list(p.signals), "recurrence_of": p.recurrence_of}


def _manifest(seed: int) -> str:
    return (f"name: online-shop sample (synthetic, generated by `workbench sample --seed {seed}`)\n"
            "tables:\n" + "".join(f"  {t}: {{path: {path}}}\n" for t, path in FILES.items()) + "incidents: incidents/\n")


# --------------------------------------------------------------------------- writers (deterministic)

def _write_parquet(frame: pd.DataFrame, path: Path, dictionary: tuple[str, ...], delta: tuple[str, ...] = ()) -> None:
    fields = []
    for col in frame.columns:
        if col in ("timestamp", "start"):
            fields.append(pa.field(col, pa.timestamp("us", tz="UTC"), nullable=False))
        elif col in ("value", "duration_ms"):
            fields.append(pa.field(col, pa.float64(), nullable=False))
        else:
            fields.append(pa.field(col, pa.string(), nullable=False))
    arrays = []
    for f in fields:
        col = frame[f.name]
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(col.dt.tz_convert("UTC").astype("datetime64[us, UTC]"), type=f.type))
        else:
            arrays.append(pa.array(col.to_numpy(dtype=object if f.type == pa.string() else "float64"), type=f.type))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))  # no pandas metadata: no version in the bytes
    pq.write_table(table, path, compression="zstd", compression_level=9, row_group_size=1_000_000,
                   use_dictionary=list(dictionary), column_encoding={c: "DELTA_BINARY_PACKED" for c in delta} or None,
                   write_statistics=True)


def _write_jsonl_gz(frame: pd.DataFrame, path: Path) -> None:
    buf = io.StringIO()
    enc = json.JSONEncoder(ensure_ascii=False).encode
    cols = [_iso_ms(frame["timestamp"])] + [frame[c].tolist() for c in schema.columns("logs")[1:]]
    for t, svc, env, sev, body, trace, attrs in zip(*cols):
        buf.write(f'{{"timestamp":"{t}","service":{enc(svc)},"environment":{enc(env)},"severity":"{sev}",'
                  f'"body":{enc(body)},"trace_id":{enc(trace)},"attributes":{enc(attrs)}}}\n')
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue().encode("utf-8"))


def _iso_ms(series: pd.Series) -> list[str]:
    return [s[:23] + "Z" for s in series.dt.strftime("%Y-%m-%dT%H:%M:%S.%f")]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    if "timestamp" in out:
        out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, lineterminator="\n")


def _write_yaml(doc: Any, path: Path) -> None:
    _write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110), path)


def _write_text(content: str, path: Path) -> None:
    path.write_text(content, encoding="utf-8", newline="\n")
