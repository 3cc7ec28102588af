"""Reference root-cause methods the engine is compared with, from the same window it reads.

Each method takes a :class:`~workbench.analysis.evidence.TelemetryWindow` (baseline
``[baseline_start, baseline_end)``, incident ``[start, end)``) and returns a
:class:`Ranking`: a score per service (higher = more suspicious) and, per service, the
inner-service item it blames (an operation, a metric, a template). None has a constant chosen by
looking at results: each follows its published recipe with the textbook choice.

- :func:`trace_spectrum` (MicroRank / TraceRCA style): a trace of the incident is *anomalous*
  when it holds an error span or its root span is slower than the 95th percentile of the same
  root operation in the baseline; each (service, operation) gets the Ochiai coefficient of
  occurring in anomalous traces, ``ef / sqrt((ef + nf) * (ef + ep))``; a service its best.
- :func:`metric_robust_z` (BARO style): every (service, metric) of the pods (node-wide
  ``node_*``/``host_*`` metrics left out) scaled by the median and the
  inter-quartile range of its baseline (scikit-learn's RobustScaler; an IQR of 0 scales by 1),
  the largest absolute value of the incident; a service its largest metric.
- :func:`log_templates`: Drain templates (:func:`workbench.signals.logs.mine`); per service, the largest
  change of a template's share of the service's lines, incident vs baseline (services with fewer
  than 5 baseline or 3 incident lines are not compared).
- :func:`random_expectation`: the expected AS@k and mean rank of a uniformly random order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..analysis.evidence import TelemetryWindow

#: Least baseline / incident lines of a service for :func:`log_templates` to compare it.
MIN_BASE_LINES, MIN_INC_LINES = 5, 3
#: Numbers and hex ids: lines equal up to them are mined once.
_VARIABLE = r"[0-9a-fA-F][0-9a-fA-F-]{7,}|\d+"
#: Metric name prefixes of infrastructure shared by many pods (not a pod's own metric).
SHARED_PREFIXES = ("node_", "node.", "host_", "host.", "machine_")
#: Baseline quantile of a root operation's duration above which an incident trace is slow.
SLOW_QUANTILE = 0.95


@dataclass
class Ranking:
    """A reference method's verdict: ``scores`` (index service) and the item blamed per service."""

    method: str
    scores: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    inner: dict[str, str] = field(default_factory=dict)

    def services(self) -> list[str]:
        """Services by descending score (ties by name); services scored 0 come last, still ranked."""
        frame = pd.DataFrame({"service": self.scores.index.astype(str), "score": self.scores.to_numpy(dtype=float)})
        frame = frame.sort_values(["score", "service"], ascending=[False, True], kind="stable")
        return frame["service"].tolist()


def trace_spectrum(window: TelemetryWindow) -> Ranking:
    """Ochiai spectrum of (service, operation) over anomalous incident traces (module docstring)."""
    out = Ranking("trace_spectrum")
    spans = window.spans
    if spans.empty:
        return out
    inc = spans[spans["start"] >= window.start]
    base = spans[(spans["start"] >= window.baseline_start) & (spans["start"] < window.baseline_end)]
    roots_b = base[base["parent_span_id"].eq("")]
    limit = roots_b.groupby("name")["duration_ms"].quantile(SLOW_QUANTILE)
    roots_i = inc[inc["parent_span_id"].eq("")]
    slow = roots_i["duration_ms"] > roots_i["name"].map(limit).fillna(np.inf)
    bad = set(roots_i.loc[slow, "trace_id"])
    if "status" in inc.columns:
        bad |= set(inc.loc[inc["status"].astype(str).eq("error"), "trace_id"])
    traces = inc[["trace_id", "service", "name"]].drop_duplicates()
    traces = traces.assign(bad=traces["trace_id"].isin(bad).to_numpy())
    n_bad = len(bad & set(inc["trace_id"]))
    stats = traces.groupby(["service", "name"])["bad"].agg(["sum", "size"])
    ef, ep = stats["sum"].astype(float), (stats["size"] - stats["sum"]).astype(float)
    nf = n_bad - ef
    denom = np.sqrt((ef + nf) * (ef + ep))
    ochiai = (ef / denom.where(denom > 0)).fillna(0.0)
    out.scores = _all_services(window, ochiai.groupby(level="service").max())
    best = ochiai[ochiai > 0]
    if len(best):
        top = best.sort_values(ascending=False).groupby(level="service").head(1)
        out.inner = {service: f"operation {name}" for service, name in top.index}
    return out


def metric_robust_z(window: TelemetryWindow) -> Ranking:
    """BARO-style robust z of every metric against its baseline, max over the incident."""
    out = Ranking("metric_robust_z")
    metrics = window.metrics
    metrics = metrics[~metrics["name"].astype(str).str.startswith(SHARED_PREFIXES)]
    if metrics.empty:
        return out
    step = pd.tseries.frequencies.to_offset(window.step)
    rows = metrics.assign(t=metrics["timestamp"].dt.floor(step))
    wide = rows.groupby(["t", "service", "name"])["value"].mean().unstack(["service", "name"]).sort_index()
    base = wide[(wide.index >= window.baseline_start) & (wide.index < window.baseline_end)]
    inc = wide[(wide.index >= window.start) & (wide.index < window.end)]
    if base.empty or inc.empty:
        return out
    center = base.median()
    iqr = base.quantile(0.75) - base.quantile(0.25)
    scale = iqr.where(iqr > 0, 1.0)
    z = ((inc - center) / scale).abs().max().dropna()
    if z.empty:
        return out
    out.scores = _all_services(window, z.groupby(level="service").max())
    top = z.sort_values(ascending=False).groupby(level="service").head(1)
    out.inner = {service: f"metric {name}" for service, name in top.index}
    return out


def log_templates(window: TelemetryWindow) -> Ranking:
    """Largest change of a Drain template's share of its service's lines, incident vs baseline."""
    from ..signals.logs import mine

    out = Ranking("log_templates")
    logs = window.logs
    if logs.empty:
        return out
    logs = logs[(logs["timestamp"] >= window.baseline_start) & (logs["timestamp"] < window.end)]
    if logs.empty:
        return out
    logs = logs.reset_index(drop=True)
    # Lines equal up to numbers and ids are mined once (Drain would give them one template anyway).
    key = logs["service"].astype(str) + "\x1f" + logs["body"].astype(str).str[:300].str.replace(_VARIABLE, "0", regex=True)
    first = ~key.duplicated()
    mined = mine(logs.loc[first, ["timestamp", "service", "body"]])
    template_of = pd.Series(mined["template_id"].to_numpy(), index=key[first].to_numpy())
    lines = pd.DataFrame({"service": logs["service"].astype(str), "template_id": key.map(template_of),
                          "b": (logs["timestamp"] < window.baseline_end).to_numpy(),
                          "i": (logs["timestamp"] >= window.start).to_numpy()})
    counts = lines.groupby(["service", "template_id"])[["b", "i"]].sum()
    totals = counts.groupby(level="service").sum()
    counts = counts.join(totals.rename(columns={"b": "nb", "i": "ni"}), on="service")
    counts = counts[(counts["nb"] >= MIN_BASE_LINES) & (counts["ni"] >= MIN_INC_LINES)]
    if counts.empty:
        return out
    change = (counts["i"] / counts["ni"] - counts["b"] / counts["nb"]).abs()
    out.scores = _all_services(window, change.groupby(level="service").max())
    text = mined.drop_duplicates("template_id").set_index("template_id")["template"]
    top = change.sort_values(ascending=False).groupby(level="service").head(1)
    out.inner = {service: f"log template {text.get(tid, tid)}" for service, tid in top.index}
    return out


def random_expectation(n_services: int, truth_present: bool = True) -> dict[str, float]:
    """Expected ``rank`` and ``AS@k`` of a uniformly random order of ``n_services`` services."""
    n = max(int(n_services), 1)
    if not truth_present:
        return {"rank": float(n + 1), **{f"AS@{k}": 0.0 for k in (1, 3, 5)}}
    return {"rank": (n + 1) / 2, **{f"AS@{k}": min(k, n) / n for k in (1, 3, 5)}}


#: The reference methods by name (random is analytic, see :func:`random_expectation`).
METHODS: dict[str, Callable[[TelemetryWindow], Ranking]] = {
    "trace_spectrum": trace_spectrum,
    "metric_robust_z": metric_robust_z,
    "log_templates": log_templates,
}


def _all_services(window: TelemetryWindow, scores: pd.Series) -> pd.Series:
    """``scores`` over every service of the window (0 for those the method did not score)."""
    index = pd.Index(window.services(), name="service")
    return scores.reindex(index.union(scores.index)).fillna(0.0).astype(float)
