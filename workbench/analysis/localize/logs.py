"""The logs modality: which service's code paths changed, per operation execution.

Log lines are mined into templates per service (a source location in the line's first tokens
names its statement); with span ids, every span is a *unit* (one execution of one operation) and
its *events* are the templates it logged and the operations it called. Per (service, operation,
event), the mean occurrences per unit in the baseline and the incident (shrunk toward the
baseline by ``K_UNITS`` pseudo-units) are compared; a service scores its largest change. Errors
are attributed through the traces to the service that logged them first (:func:`_error_paths`).
``docs/ranking.md`` has the formulas.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..evidence import Evidence, TelemetryWindow
from .base import ModalityResult

#: Characters of a log body used for mining (payloads beyond carry no template).
MAX_BODY_CHARS = 300
#: Pseudo-units shrinking the incident share of an event toward its baseline share.
K_UNITS = 3.0
#: Fewest baseline / incident units (or lines) of an operation (or service) to compare it.
MIN_BASE_UNITS, MIN_INC_UNITS = 5, 3
# An event's change counts fully, whatever its direction, except a *problem* event (an error or
# warning template, a call that ended in an error span) that falls: errors that stop are a
# recovery, not a fault. (Weighting a new or growing normal event less than a vanished one, as an
# earlier version did with 0.5 and 0.25, lost accuracy under cross-validation: a wrong return value
# adds code paths as often as it removes them.)
#: Later starts of the incident side of the log comparison, as fractions of the window.
SCAN_FRACTIONS = (0.25, 0.5)
#: A template is a problem template when more than this share of its lines are WARN or worse.
PROBLEM_SHARE = 0.5
#: Tokens of a log body that identify its template (the rest of a long line is payload whose
#: varying length would split one statement into many Drain templates).
MAX_TOKENS = 16

_KEY = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]{7,}|\d+")
#: A source location near the start of a line (``c.s.PriceController#46``, ``Foo.java:12``): the
#: log statement that wrote it. Two statements whose texts Drain merges stay two templates.
LOCATION = re.compile(r"(?<![\w.$])((?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$\[\]]*"
                      r"(?:#|\.(?:java|py|go|js|ts|rb|cs|c|cc|cpp|scala|kt|rs):)\d+)(?![\w])")
#: Leading tokens of a line searched for a source location (a logger prefix, not the message).
LOCATION_TOKENS = 5
#: Characters of a token that cannot hold a :data:`LOCATION` when it has no others.
_NO_NAME = "0123456789:.#"
_SPAN_ID = re.compile(r'"span_id"\s*:\s*"([^"]*)"')


def log_modality(window: TelemetryWindow) -> ModalityResult:
    """The logs modality (see the module docstring): scores, evidence and onsets per service."""
    res = ModalityResult("logs")
    logs = window.logs
    if logs.empty:
        res.notes.append("no log lines")
        return res
    mined = _mine(logs)
    inc = (mined["timestamp"] >= window.start).to_numpy()
    base = ((mined["timestamp"] >= window.baseline_start) & (mined["timestamp"] < window.baseline_end)).to_numpy()
    mined = mined.assign(inc=inc, base=base)
    if not base.any():
        res.notes.append("no log lines in the baseline: logs not scored")
        return res
    span_ids = _log_span_ids(mined)
    linked = span_ids.ne("").mean() >= 0.5 and not window.spans.empty
    if linked:
        table, units, events = _unit_events(window, mined.assign(span_id=span_ids.to_numpy()))
        what = "operation executions"
    else:
        res.notes.append("log lines carry no span id (or there are no spans): template shares of whole "
                         "services are compared")
        table, units, events = _service_events(mined)
        what = "lines"
    if table.empty:
        res.notes.append("no operation or service with enough baseline and incident data")
        return res
    problems = mined.groupby("template_id")["is_problem"].mean()
    text = mined.drop_duplicates("template_id").set_index("template_id")["template"]
    failed = window.spans[window.spans["status"].astype(str).eq("error")] if "status" in window.spans.columns \
        else window.spans.iloc[:0]
    error_calls = set("call:" + failed["service"].astype(str) + " " + failed["name"].astype(str))
    table["error"] = table["event"].map(
        lambda e: (problems.get(e[4:], 0.0) > PROBLEM_SHARE) if e.startswith("log:") else e in error_calls)
    table = _scored(table.assign(since=pd.Series(pd.NaT, index=table.index, dtype="datetime64[ns, UTC]")))
    # The onset inside the window is unknown (a fault may show a minute before the recorded start
    # or a minute after it): the incident side is also compared from later cuts of the window, and
    # each event keeps its strongest comparison (a short late suffix is shrunk toward the baseline
    # like any small sample, so the scan does not reward noise).
    for cut in _cuts(window):
        n_cut = units[units["time"] >= cut].groupby(["service", "op"]).size().rename("n_i")
        c_cut = events[events["time"] >= cut].groupby(["service", "op", "event"]).size().rename("c_i")
        later = table.drop(columns=["c_i", "n_i"]).join(n_cut, on=["service", "op"]).join(
            c_cut, on=["service", "op", "event"])
        later = later.assign(c_i=later["c_i"].fillna(0.0), n_i=later["n_i"].fillna(0.0),
                             since=pd.Series(cut, index=later.index).astype("datetime64[ns, UTC]"))
        later = _scored(later[later["n_i"] >= MIN_INC_UNITS])
        better = later[later["score"] > table.loc[later.index, "score"]]
        table.loc[better.index, better.columns] = better
    table = table.sort_values("score", ascending=False, kind="stable")
    res.scores = table.groupby("service", sort=False)["score"].max()
    res.intrinsic = res.scores.copy()
    # Incident units per operation and occurrences per event, grouped once for the onsets of the
    # events that become evidence (a service's three strongest).
    shown = table.groupby("service", sort=False).head(3)
    keys = pd.MultiIndex.from_frame(shown[["service", "op"]].drop_duplicates())
    mine = units[pd.MultiIndex.from_frame(units[["service", "op"]]).isin(keys)].sort_values("time", kind="stable")
    units_of = {key: part for key, part in mine.groupby(["service", "op"], sort=False)}
    counts = events[events["event"].isin(set(shown["event"]))].groupby(["event", "unit"]).size()
    # Sorted by event: each event's counts are one slice (cheaper than a groupby per event).
    ev_level = counts.index.get_level_values(0)
    bounds = np.flatnonzero(ev_level[1:] != ev_level[:-1]) + 1 if len(counts) else np.empty(0, dtype=int)
    unit_level = counts.index.get_level_values(1)
    counts_of = {ev_level[lo]: pd.Series(counts.to_numpy()[lo:hi], index=unit_level[lo:hi])
                 for lo, hi in zip([0, *bounds], [*bounds, len(counts)]) if hi > lo}
    # A service's three strongest events, in the table's order (one pass over the shown rows).
    rows_of: dict[str, list[Any]] = {service: [] for service in pd.unique(table["service"])}
    for row in shown.itertuples(index=False):
        rows_of[row.service].append(row)
    for service, rows in rows_of.items():
        items = []
        for row in rows:
            if row.score <= 0:
                break
            onset = _change_onset(units_of.get((row.service, row.op)), counts_of.get(row.event), row)
            items.append(_log_evidence(row, text, what, onset))
        res.evidence[service] = items
        if items and items[0].time is not None:
            res.onsets[service] = items[0].time
    return res


def _scored(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (``c_b``, ``n_b``, ``c_i``, ``n_i``, ``error`` per event) with ``p_b``, ``p_i_raw``, ``score``."""
    p_b = table["c_b"] / table["n_b"]
    p_i = (table["c_i"] + K_UNITS * p_b) / (table["n_i"] + K_UNITS)
    rise = (p_i > p_b).to_numpy()
    err = table["error"].to_numpy(dtype=bool)
    # A rising error counts for the share of its lines that started their trace's errors; the rest
    # were written after a deeper service's error in the same trace (:func:`_error_paths`).
    own = 1.0 - (table["c_prop"] / table["c_i"].where(table["c_i"] > 0)).fillna(0.0).clip(0, 1).to_numpy()
    # Errors that stop are a recovery; the normal lines that come back in the same operation are
    # that recovery too, not a new code path (a baseline caught while the service was failing).
    ops = pd.MultiIndex.from_frame(table[["service", "op"]])
    recovering = ops.isin(ops[err & ~rise]) if (err & ~rise).any() else np.zeros(len(table), dtype=bool)
    weight = np.where(err, np.where(rise, own, 0.0), np.where(rise & recovering, 0.0, 1.0))
    # Mean occurrences per unit; a change is measured absolutely up to one occurrence per unit and
    # relatively beyond (a statement in a loop that now runs for half of the iterations).
    change = (p_b - p_i).abs() / np.maximum(np.maximum(p_b, p_i), 1.0)
    return table.assign(p_b=p_b, p_i_raw=table["c_i"] / table["n_i"], score=weight * change)


def _cuts(window: TelemetryWindow) -> list[pd.Timestamp]:
    """Later starts of the incident side: a quarter and a half of the window in (scale-free)."""
    length = window.end - window.start
    if length <= pd.Timedelta(0):
        return []
    return [window.start + length * f for f in SCAN_FRACTIONS]


def _mine(logs: pd.DataFrame) -> pd.DataFrame:
    """Template per line; one line per source location, and lines equal up to numbers and ids, are
    mined once (speed).

    A line whose first tokens carry a source location (:data:`LOCATION`) belongs to the template
    of that log statement: the location is part of its identity and shown in its text, since
    Drain may merge two statements with similar words (``Query price`` at #39 and #46) or split
    one whose payload varies.
    """
    from ...signals import logs as log_lib

    # Plain Python over the lines: faster than three pandas string passes on Arrow strings.
    limit = MAX_TOKENS or None
    texts = [" ".join(str(b)[:MAX_BODY_CHARS].split(None, limit)[:limit]) for b in logs["body"].tolist()]
    services = logs["service"].astype(str).tolist()
    seen: dict[str, str] = {}  # a logger token repeats on every line of its statement
    locations = [_location(t, seen) for t in texts]
    # A located statement is one template whatever its payload: one of its lines is mined.
    key = pd.Series([f"{svc}\x1f{loc}" if loc else f"{svc}\x1f\x1f{_KEY.sub('0', t)}"
                     for svc, loc, t in zip(services, locations, texts)], index=logs.index)
    body = pd.Series(texts, index=logs.index, dtype=object)
    first = ~key.duplicated()
    reps = logs.loc[first, ["timestamp", "service"]].assign(body=body[first])
    mined = log_lib.mine(reps)
    where = pd.Series(locations, index=logs.index)[first].to_numpy()
    ids = mined["template_id"].to_numpy(dtype=object)
    text = mined["template"].to_numpy(dtype=object)
    located = where != ""
    svc_first = np.asarray(services, dtype=object)[first.to_numpy()]
    # One statement, one template: its id is the service and the location; its text the first
    # Drain template seen for it, with the location written out.
    ids = np.where(located, "loc:" + pd.Series(svc_first).astype(str).to_numpy() + "@" + where, ids)
    first_text = pd.Series(text).groupby(pd.Series(ids)).transform("first").to_numpy()
    text = np.where(located, [_with_location(t, loc) for t, loc in zip(first_text, where)], text)
    template_of = pd.Series(ids, index=key[first].to_numpy())
    text_of = pd.Series(text, index=key[first].to_numpy())
    severity = logs["severity"].astype(str).str.upper() if "severity" in logs.columns else pd.Series("INFO", index=logs.index)
    return pd.DataFrame({
        "timestamp": logs["timestamp"].reset_index(drop=True), "service": logs["service"].astype(str).to_numpy(),
        "template_id": key.map(template_of).to_numpy(), "template": key.map(text_of).to_numpy(),
        "is_problem": severity.isin(("WARN", "ERROR", "FATAL")).to_numpy(),
        "is_error": severity.isin(("ERROR", "FATAL")).to_numpy(),
        "trace_id": logs["trace_id"].astype(str).to_numpy() if "trace_id" in logs.columns else "",
        "attributes": logs["attributes"].astype(str).to_numpy() if "attributes" in logs.columns else "{}",
        **({"span_id": logs["span_id"].astype(str).to_numpy()} if "span_id" in logs.columns else {}),
    })


def _location(text: str, seen: dict[str, str]) -> str:
    """The source location among the first :data:`LOCATION_TOKENS` tokens of ``text``, or ``""``."""
    for token in text.split(None, LOCATION_TOKENS)[:LOCATION_TOKENS]:
        if "#" not in token and ":" not in token:
            continue
        found = seen.get(token)
        if found is None and not token.strip(_NO_NAME):
            found = ""  # digits, colons and dots only (a time of day): no name for a location to start with
        if found is None:
            match = LOCATION.search(token)
            found = seen[token] = match.group(1) if match else ""
        if found:
            return found
    return ""


def _with_location(template: str, location: str) -> str:
    """``template`` with its masked source location written out (prefixed when Drain hid it)."""
    if not location:
        return template
    masked = re.sub(r"\d+$", "<NUM>", location)
    if masked in template:
        return template.replace(masked, location, 1)
    return f"{location} {template}"


def _log_span_ids(mined: pd.DataFrame) -> pd.Series:
    if "span_id" in mined.columns:
        return mined["span_id"].fillna("").astype(str)
    return mined["attributes"].str.extract(_SPAN_ID, expand=False).fillna("")


def _unit_events(window: TelemetryWindow, mined: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Spans as units, their templates and calls as events.

    Returns
    -------
    (table, units, events)
        ``table``: per (``service``, ``op``, ``event``) the occurrences ``c_b``/``c_i`` and the
        units ``n_b``/``n_i`` of the operation, baseline and incident (operations with too few
        units left out); ``units``: the incident units (``unit``, ``service``, ``op``, ``time``);
        ``events``: their events (``unit``, ``event``), one row per occurrence.
    """
    spans = window.spans
    units = pd.DataFrame({"span_id": spans["span_id"].to_numpy(), "service": spans["service"].to_numpy(),
                          "op": spans["name"].to_numpy(), "start": spans["start"].reset_index(drop=True)})
    units = units.drop_duplicates("span_id")
    propagated, carriers = _error_paths(mined, spans)
    # A caller's execution that only carried a deeper service's error up is explained by that
    # service: it is left out of the incident side (its changed code path is not its own).
    units["inc"] = (units["start"] >= window.start).to_numpy() & ~units["span_id"].astype(str).isin(carriers).to_numpy()
    units["base"] = ((units["start"] >= window.baseline_start) & (units["start"] < window.baseline_end)).to_numpy()
    # Events: the templates a span logged and the operations it called, located by position (the
    # frames hold tens of thousands of rows: integer codes group much faster than string keys).
    ev_span = np.concatenate([mined["span_id"].to_numpy(dtype=object), spans["parent_span_id"].to_numpy(dtype=object)])
    ev_name = np.concatenate([("log:" + mined["template_id"].astype(str)).to_numpy(dtype=object),
                              ("call:" + spans["service"].astype(str) + " " + spans["name"].astype(str)).to_numpy(dtype=object)])
    ev_prop = np.concatenate([propagated.to_numpy(dtype=bool), np.zeros(len(spans), dtype=bool)])
    pos = pd.Index(units["span_id"].to_numpy(dtype=object)).get_indexer(ev_span)
    keep = pos >= 0
    pos, ev_name, ev_prop = pos[keep], ev_name[keep], ev_prop[keep]
    svc_code, svc_names = pd.factorize(units["service"].to_numpy(dtype=object))
    name_code, op_names = pd.factorize(units["op"].to_numpy(dtype=object))
    op_code, pairs = pd.factorize(svc_code.astype(np.int64) * max(len(op_names), 1) + name_code)
    ev_code, names = pd.factorize(ev_name)
    inc_u, base_u = units["inc"].to_numpy(dtype=bool), units["base"].to_numpy(dtype=bool)
    inc_e, base_e = inc_u[pos], base_u[pos]
    n = pd.DataFrame({"op": op_code, "n_b": base_u, "n_i": inc_u}).groupby("op")[["n_b", "n_i"]].sum()
    counts = pd.DataFrame({"op": op_code[pos], "ev": ev_code, "c_b": base_e, "c_i": inc_e,
                           "c_prop": inc_e & ev_prop}).groupby(["op", "ev"])[["c_b", "c_i", "c_prop"]].sum()
    counts = counts.join(n, on="op").reset_index()
    counts = counts[(counts["n_b"] >= MIN_BASE_UNITS) & (counts["n_i"] >= MIN_INC_UNITS)]
    pair = pairs[counts["op"].to_numpy()]
    c = pd.DataFrame({"service": svc_names[pair // max(len(op_names), 1)], "op": op_names[pair % max(len(op_names), 1)],
                      "event": names[counts["ev"].to_numpy()],
                      **{k: counts[k].to_numpy() for k in ("c_b", "c_i", "c_prop", "n_b", "n_i")}})
    c = c.sort_values(["service", "op", "event"], kind="stable")
    inc_units = units.loc[units["inc"], ["span_id", "service", "op", "start"]].rename(columns={"span_id": "unit", "start": "time"})
    sel = np.flatnonzero(inc_e)
    unit_pos = pos[sel]
    inc_events = pd.DataFrame({"unit": units["span_id"].to_numpy(dtype=object)[unit_pos],
                               "service": units["service"].to_numpy(dtype=object)[unit_pos],
                               "op": units["op"].to_numpy(dtype=object)[unit_pos], "event": ev_name[sel],
                               "time": units["start"].take(unit_pos).reset_index(drop=True)})
    return c.reset_index(drop=True), inc_units, inc_events


def _error_paths(mined: pd.DataFrame, spans: pd.DataFrame) -> tuple[pd.Series, set[str]]:
    """Where each trace's errors started, and the spans that only carried them up.

    An exception travels up the call chain and each caller logs it again, so a trace's errors
    start at the deepest span that logged an error (ERROR or worse; without spans, at the earliest
    error line; a WARN is a remark, not a failure passed up). An error line of another service of
    that trace is *propagated*; the spans
    on the path from the root to the origin that belong to other services are its callers, whose
    changed behaviour in that trace the origin explains.

    Returns
    -------
    (propagated, carriers)
        ``propagated``: bool per line of ``mined``; ``carriers``: span ids of the callers.
    """
    propagated = pd.Series(False, index=mined.index)
    trace = mined["trace_id"].astype(str) if "trace_id" in mined.columns else pd.Series("", index=mined.index)
    flag = mined["is_error"] if "is_error" in mined.columns else mined["is_problem"]
    problem = flag.to_numpy(dtype=bool) & ~trace.isin(("", "nan", "None")).to_numpy()
    if not problem.any():
        return propagated, set()
    span_of = mined["span_id"].astype(str) if "span_id" in mined.columns else pd.Series("", index=mined.index)
    lines = pd.DataFrame({"trace": trace[problem], "service": mined.loc[problem, "service"],
                          "time": mined.loc[problem, "timestamp"], "span": span_of[problem]})
    parent: dict[str, str] = {}
    service_of: dict[str, str] = {}
    if not spans.empty and "span_id" in mined.columns:
        # Only the traces that logged an error matter (a few of thousands): the maps stay small.
        mine = spans[spans["trace_id"].astype(str).isin(set(lines["trace"]))] if "trace_id" in spans.columns else spans
        ids = mine["span_id"].astype(str).tolist()
        parent = dict(zip(ids, mine["parent_span_id"].astype(str).tolist()))
        service_of = dict(zip(ids, mine["service"].astype(str).tolist()))
    depth_of: dict[str, int] = {}

    def depth(span: str) -> int:
        if span not in parent:
            return -1
        if span not in depth_of:
            seen, cur, n = set(), span, 0
            while parent.get(cur, "") in parent and cur not in seen:
                seen.add(cur)
                cur, n = parent[cur], n + 1
            depth_of[span] = n
        return depth_of[span]

    lines["depth"] = [depth(sp) for sp in lines["span"]]
    lines = lines.sort_values(["trace", "depth", "time"], ascending=[True, False, True], kind="stable")
    first = lines.groupby("trace", sort=False).head(1).set_index("trace")
    propagated.loc[lines.index] = (lines["service"] != lines["trace"].map(first["service"])).to_numpy()
    carriers: set[str] = set()
    for row in first.itertuples():
        cur, seen = parent.get(row.span, ""), set()
        while cur in parent and cur not in seen:
            seen.add(cur)
            if service_of.get(cur) != row.service:
                carriers.add(cur)
            cur = parent[cur]
    return propagated, carriers


def _service_events(mined: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Fallback without span ids: a service's lines are the units, its templates the events."""
    lines = mined.assign(event="log:" + mined["template_id"], op="(all lines)", unit=np.arange(len(mined)))
    lines["p_i"] = lines["inc"] & _error_paths(mined, pd.DataFrame())[0].to_numpy()
    n = lines.groupby("service").agg(n_b=("base", "sum"), n_i=("inc", "sum"))
    c = lines.groupby(["service", "op", "event"]).agg(c_b=("base", "sum"), c_i=("inc", "sum"),
                                                      c_prop=("p_i", "sum")).reset_index()
    c = c.join(n, on="service")
    c = c[(c["n_b"] >= MIN_BASE_UNITS) & (c["n_i"] >= MIN_INC_UNITS)].reset_index(drop=True)
    inc = lines[lines["inc"]]
    inc = inc.rename(columns={"timestamp": "time"})
    return c, inc[["unit", "service", "op", "time"]], inc[["unit", "service", "op", "event", "time"]]


def _change_onset(mine: pd.DataFrame | None, counts: pd.Series | None, row: Any, m: int = 5) -> pd.Timestamp | None:
    """When an event's rate in an operation's incident units turned from the baseline's to the incident's.

    ``mine`` holds the operation's incident units (``unit``, ``time``, in time order), ``counts``
    the event's occurrences per unit. The onset is the first unit that is itself on the incident
    side of the baseline rate and from which the mean of the next ``m`` units is closer to the
    incident rate than to the baseline rate.
    """
    if mine is None or mine.empty or row.p_i_raw == row.p_b:
        return None
    counts = counts if counts is not None else pd.Series(dtype=float)
    values = counts.reindex(mine["unit"]).fillna(0).to_numpy(dtype=float)
    # Mean of values[i:i+m] (fewer at the end); counts are whole numbers, so the sums are exact.
    total = np.concatenate([[0.0], np.cumsum(values)])
    stop = np.minimum(np.arange(len(values)) + m, len(values))
    ahead = (total[stop] - total[:len(values)]) / (stop - np.arange(len(values)))
    up = row.p_i_raw > row.p_b
    side = values > row.p_b if up else values < row.p_b
    closer = np.abs(ahead - row.p_i_raw) < np.abs(ahead - row.p_b)
    hits = np.flatnonzero(side & closer)
    return pd.Timestamp(mine["time"].iloc[hits[0]]) if len(hits) else None


def _log_evidence(row: Any, text: pd.Series, what: str, onset: pd.Timestamp | None) -> Evidence:
    kind, _, ident = row.event.partition(":")
    if kind == "log":
        label = str(text.get(ident, ident))
        signal = f"log template {row.service}:{ident[:8]}"
    else:
        label = f"call to {ident}"
        signal = f"span call {row.service}→{ident}"
    up = row.p_i_raw > row.p_b
    new = row.c_b == 0
    state = "new" if new else ("more frequent" if up else ("vanished" if row.c_i == 0 else "less frequent"))
    where = "" if row.op == "(all lines)" else f" in {row.op}"
    if not pd.isna(getattr(row, "since", pd.NaT)):
        where += f" from {pd.Timestamp(row.since):%H:%M:%S}"
    flag = "ERROR " if row.error else ""
    explanation = (f"{flag}{label[:120]!r} {state}{where}: {row.c_i:.0f} of {row.n_i:.0f} {what} "
                   f"({row.p_i_raw:.0%}) vs {row.p_b:.0%} of {row.n_b:.0f} in the baseline")
    return Evidence(kind="log" if kind == "log" else "span", service=row.service, signal=signal, time=onset,
                    magnitude=float(row.score), direction="up" if up else "down", explanation=explanation)
