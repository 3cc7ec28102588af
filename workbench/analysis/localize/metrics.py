"""The metrics modality: a service's own metrics against its own baseline, robust and sustained.

Per (service, metric), the ``SUSTAIN``-th largest robust z of the incident steps against the
baseline (:func:`workbench.signals.detect.base.robust_scale`, floored at a share of the metric's
level); a move shared by most services is removed, node-wide metrics are not a service's own;
the detector confirms the most deviating services and gives their onsets.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...signals.detect.base import robust_scale
from ..evidence import Evidence, TelemetryWindow
from .base import SHARED_PREFIXES, ModalityResult

#: Fewest baseline steps of a metric to score it.
MIN_METRIC_BASE = 3
#: Scale floor, as a share of the metric's level.
REL_FLOOR = 0.25
#: The SUSTAIN-th largest |z| of the incident is the metric's deviation (a lone spike is not one).
SUSTAIN = 2
#: The |z| that maps to a metrics score of 1.
Z_REF = 10.0
#: Services the detector runs on (most deviating first).
DETECT_TOP = 5


def metric_modality(window: TelemetryWindow, detector: Any = None) -> ModalityResult:
    """The metrics modality (see the module docstring): robust persistent deviation per service."""
    res = ModalityResult("metrics")
    metrics = window.metrics
    if metrics.empty:
        res.notes.append("no metrics")
        return res
    step = pd.tseries.frequencies.to_offset(window.step)
    rows = metrics.assign(t=metrics["timestamp"].dt.tz_convert("UTC").dt.floor(step),
                          value=pd.to_numeric(metrics["value"], errors="coerce"))
    # One wide frame for every service at once (columns: service, metric); the detector's own
    # alignment is used below only for the few services it is run on.
    wide = rows.groupby(["t", "service", "name"])["value"].mean().unstack(["service", "name"]).sort_index()
    base = wide[(wide.index >= window.baseline_start) & (wide.index < window.baseline_end)]
    scored = wide[(wide.index >= window.start) & (wide.index < window.end)]
    enough = base.count() >= MIN_METRIC_BASE
    if scored.empty or not enough.any():
        res.notes.append(f"no metric has {MIN_METRIC_BASE} baseline steps and incident steps "
                         f"({len(base)} baseline step(s)): metrics not scored")
        return res
    base, scored = base.loc[:, enough], scored.loc[:, enough]
    center = base.median()
    # A metric's normal level is judged across every service that reports it: the scale of a
    # metric flat at zero in one idle service is floored by the metric's mean level over services.
    typical = center.abs().groupby(level="name").mean()
    level = np.maximum(center.abs().to_numpy(), typical.reindex(center.index.get_level_values("name")).to_numpy())
    # The one robust-z step (1.4826·MAD) with the level floor; no fallback: a metric flat in its
    # baseline is judged against the floor, not against its own tiny wiggles.
    scale = robust_scale(base.to_numpy(), floor=REL_FLOOR * np.nan_to_num(level), fallback=False)
    z = (scored.to_numpy() - center.to_numpy()) / scale
    # Sustained deviation per metric: the SUSTAIN-th largest |z| of the incident steps, signed.
    absz = np.where(np.isnan(z), -1.0, np.abs(z))
    order = np.argsort(-absz, axis=0, kind="stable")
    k = np.clip(np.minimum(SUSTAIN, (~np.isnan(z)).sum(axis=0)) - 1, 0, None)
    cols = np.arange(z.shape[1])
    sustained = pd.Series(z[order[k, cols], cols], index=scored.columns)
    peak = pd.Series(scored.to_numpy()[order[0, cols], cols], index=scored.columns)
    table = sustained.unstack("name")  # services x metrics
    z_frame = pd.DataFrame(z, index=scored.index, columns=scored.columns)
    common = table.median().where(table.count() >= 3, 0.0).fillna(0.0)
    shared = (np.sign(table).eq(np.sign(common)) & common.abs().gt(0)).sum() > 0.5 * table.count()
    adjusted = table - common.where(shared, 0.0)
    # A node's metrics repeat on every pod of the node: a node-wide change points at no single
    # service, so they are not a service's own evidence (they stay in the detector's frame).
    adjusted = adjusted[[m for m in adjusted.columns if not str(m).lower().startswith(SHARED_PREFIXES)]]
    best = adjusted.abs().max(axis=1).fillna(0.0)
    res.scores = np.log1p(best) / np.log1p(Z_REF)
    res.intrinsic = res.scores.copy()
    loud = shared & (common.abs() >= 3)
    if loud.any():
        res.notes.append("moved in most services (a shared cause; the cross-service median is removed): "
                         + ", ".join(f"{m} (median z {common[m]:+.1f})" for m in loud[loud].index))
    for service in res.scores.index:
        row = adjusted.loc[service].dropna()
        if len(row) and res.scores[service] > 0:
            top = row.abs().idxmax()
            res.onsets[service] = _z_onset(z_frame[(service, top)], float(sustained[(service, top)]))
        items = []
        for metric in row.abs().sort_values(ascending=False).index[:3]:
            zval = float(row[metric])
            if abs(zval) < 1:
                break
            own = float(sustained[(service, metric)])
            if zval == own:
                moved = f"robust z {own:+.1f}, sustained over {SUSTAIN} steps"
            else:  # the z the score uses is the metric's own less the shift most services share: say both
                moved = (f"robust z {own:+.1f} sustained over {SUSTAIN} steps, {zval:+.1f} against the "
                         f"{float(common[metric]):+.1f} most services moved")
            items.append(Evidence(kind="metric", service=service, signal=f"metric {metric}", time=None,
                                  magnitude=float(np.log1p(abs(zval)) / np.log1p(Z_REF)),
                                  direction="up" if zval > 0 else "down",
                                  explanation=f"{metric} {peak[(service, metric)]:.4g} vs "
                                              f"{center[(service, metric)]:.4g} baseline median ({moved})"))
        res.evidence[service] = items
    _detector_pass(res, metrics, window, detector)
    return res


def _detector_pass(res: ModalityResult, metrics: pd.DataFrame, window: TelemetryWindow, detector: Any) -> None:
    """Onsets from the detector for the most deviating services; unconfirmed scores are halved."""
    from ...signals import detect

    for service in res.scores.sort_values(ascending=False).index[:DETECT_TOP]:
        if res.scores[service] <= 0:
            break
        try:
            frame = detect.align(metrics[metrics["service"] == service], step=window.step)[service]
            result = detect.score_frame(frame, baseline_end=window.baseline_end,
                                        baseline_start=window.baseline_start, end=window.end,
                                        detector=detector, step=window.step, service=service)
        except ValueError as exc:  # DetectionError is a ValueError too
            res.notes.append(f"{service}: detector failed ({exc})")
            continue
        if not result.ok:
            res.notes.append(f"{service}: detector not fitted ({result.notes[-1] if result.notes else 'no reason'}); "
                             "robust deviation only")
            continue
        # The incident window may start after baseline_end (a gap); only its steps count.
        flagged = result.anomalous[result.anomalous.index >= window.start]
        if not flagged.any():
            res.scores[service] *= 0.5
            res.intrinsic[service] *= 0.5
            res.notes.append(f"{service}: the detector flags no incident step; score halved")
            continue
        onset = result.onset if result.onset is not None and result.onset >= window.start else flagged.idxmax()
        # The detector's onset, unless the top metric itself moved later (a noisy first step).
        own = res.onsets.get(service)
        onset = max(onset, own) if own is not None else onset
        res.onsets[service] = onset
        for item in res.evidence.get(service, []):
            item.time = onset


def _z_onset(z: pd.Series, sustained: float) -> pd.Timestamp | None:
    """First step from which the metric stays at least half its sustained deviation for SUSTAIN steps."""
    if not sustained:
        return None
    flags = (np.sign(sustained) * z.to_numpy() >= 0.5 * abs(sustained))
    ahead = pd.Series(flags[::-1].astype(int)).rolling(SUSTAIN, min_periods=1).sum().to_numpy()[::-1]
    need = np.minimum(SUSTAIN, len(flags) - np.arange(len(flags)))
    hits = np.flatnonzero(flags & (ahead >= need))
    return pd.Timestamp(z.index[hits[0]]) if len(hits) else None
