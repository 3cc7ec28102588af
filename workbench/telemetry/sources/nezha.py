"""The ``nezha`` source: the Nezha TrainTicket data set (injected faults; metrics, logs, traces).

``open_source("nezha:../shared/data/nezha-trainticket")`` reads the data set folder laid out as in
its README: ``rca_data/<day>/{metric,log,trace}/`` and ``construct_data/<day>/{log,trace}/``, with
one ``rca_data/<day>/<day>-fault_list.json`` per day. Every time is UTC.

Options
-------
days : list of str, optional
    Days to read (``"2023-01-29"``); default every ``rca_data/<YYYY-MM-DD>`` folder found. A
    comma-separated string is accepted (URL query strings).
cases : list of str, optional
    Case ids (see :meth:`NezhaSource.incidents`) whose log and trace files are read and whose
    incidents are listed; other cases' files are not opened. The construct ("fault-free") files
    are still read when they overlap the window. Metrics are not restricted (whole-day files).
labels : bool
    Must be ``False`` (the default): incidents never carry the injected fault. Labels are for
    scoring only, through :func:`workbench.evaluation.nezha.load_labels`.

How each file maps to the unified schema, which files a window opens, and how malformed rows are
skipped and counted: ``docs/sources.md`` (section *nezha*).
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema
from ...errors import ConfigError, ParameterError, SourceError, UnknownNameError
from ...formats import iso_utc
from . import register
from .base import RawFrame, Source, window
from .gzcsv import ReadAhead, Vocabulary, numbers, read_ahead, read_csv
from .nezha_rows import bodies, coded, level_tokens, log_times, quoted, take_rows

log = logging.getLogger(__name__)

ENVIRONMENT = "trainticket"
#: Each fault lasts 3 minutes (README).
FAULT_DURATION = pd.Timedelta(minutes=3)
#: Margin around a log/trace file's HH:MM name when choosing files for a window.
FILE_MARGIN = pd.Timedelta(minutes=3)
#: Operation names of error-handler spans (the data set's stand-in for span status).
ERROR_OPERATION = re.compile(r"error|exception", re.IGNORECASE)
#: Times before this are overflowed or corrupt values (the 1677 trap), never real records.
EARLIEST = pd.Timestamp("2000-01-01", tz="UTC")

#: Pod metric columns -> (name, unit). Columns not listed (Time, PodSuccessRate(%)) are not read.
POD_METRICS: dict[str, tuple[str, str]] = {
    "CpuUsage(m)": ("cpu_usage", "millicores"),
    "CpuUsageRate(%)": ("cpu_usage_rate", "%"),
    "MemoryUsage(Mi)": ("memory_usage", "MiB"),
    "MemoryUsageRate(%)": ("memory_usage_rate", "%"),
    "SyscallRead": ("syscall_read", ""),
    "SyscallWrite": ("syscall_write", ""),
    "NetworkReceiveBytes": ("network_receive_bytes", "bytes"),
    "NetworkTransmitBytes": ("network_transmit_bytes", "bytes"),
    "PodClientLatencyP90(s)": ("client_latency_p90", "s"),
    "PodClientLatencyP95(s)": ("client_latency_p95", "s"),
    "PodClientLatencyP99(s)": ("client_latency_p99", "s"),
    "PodServerLatencyP90(s)": ("server_latency_p90", "s"),
    "PodServerLatencyP95(s)": ("server_latency_p95", "s"),
    "PodServerLatencyP99(s)": ("server_latency_p99", "s"),
    "PodWorkload(Ops)": ("workload", "ops"),
    "NodeCpuUsageRate(%)": ("node_cpu_usage_rate", "%"),
    "NodeMemoryUsageRate(%)": ("node_memory_usage_rate", "%"),
    "NodeNetworkReceiveBytes": ("node_network_receive_bytes", "bytes"),
}
#: Entry-service columns of ``front_service.csv.gz`` -> (name, unit); SuccessRate(%) is always 0.
FRONT_METRICS: dict[str, tuple[str, str]] = {
    "LatencyP50(s)": ("latency_p50", "s"),
    "LatencyP90(s)": ("latency_p90", "s"),
    "LatencyP95(s)": ("latency_p95", "s"),
    "LatencyP99(s)": ("latency_p99", "s"),
}
FRONT_FILE = "front_service.csv.gz"

_LOG_COLUMNS = ("Timestamp", "Node", "PodName", "Container", "TraceID", "SpanID", "Log")
_TRACE_COLUMNS = ("TraceID", "SpanID", "ParentID", "PodName", "OperationName",
                  "StartTimeUnixNano", "EndTimeUnixNano", "Duration")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FILE_MINUTE = re.compile(r"^(\d{2})_(\d{2})_(log|trace)\.csv\.gz$")
_OPTIONS = ("days", "cases", "labels")
_WARN_LINES = 5


def service_of(pod: str) -> str:
    """The service of a Kubernetes pod name: the name minus its last two ``-`` parts.

    ``ts-basic-service-5dc8d4f9fd-46997`` → ``ts-basic-service``; a name with fewer parts is
    returned unchanged.
    """
    parts = pod.rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[0] else pod


@register("nezha")
class NezhaSource(Source):
    """Reader of the Nezha TrainTicket data set (see the module docstring for the mapping).

    Parameters
    ----------
    location : str
        The data set folder (holding ``rca_data/`` and ``construct_data/``).
    days, cases, labels
        See the module docstring.

    Attributes
    ----------
    skipped : dict of str to int
        Input rows skipped by the last :meth:`frames` call, by file (relative to ``location``).
    """

    def __init__(self, location: str, days: Iterable[str] | str | None = None,
                 cases: Iterable[str] | str | None = None, labels: bool | str = False, **options: Any):
        if options:
            raise ConfigError(f"nezha source: unknown option(s) {', '.join(sorted(options))} "
                              f"(known: {', '.join(_OPTIONS)})")
        if labels not in (False, None, 0, "", "0", "false", "False", "no"):
            raise ConfigError("nezha source: labels must be false; incidents never carry the injected "
                              "fault (use workbench.evaluation.nezha.load_labels to score a benchmark)")
        super().__init__(location, **{k: v for k, v in (("days", days), ("cases", cases)) if v})
        self.root = Path(location)
        if not (self.root / "rca_data").is_dir():
            raise SourceError(f"{self.root}: not a Nezha data set folder (no rca_data/ inside)")
        found = days_in(self.root)
        wanted = _as_list(days)
        if wanted is None:
            self.days = found
        else:
            for day in wanted:
                if day not in found:
                    raise UnknownNameError("nezha day", day, found)
            self.days = sorted(set(wanted))
        self.skipped: dict[str, int] = {}
        self._cases: list[dict[str, Any]] | None = None
        self._metric_cache: dict[Path, dict[str, Any]] = {}
        self._ahead: ReadAhead | None = None
        wanted_cases = _as_list(cases)
        if wanted_cases is not None:
            known = {c["id"]: c for c in self._case_list()}
            for cid in wanted_cases:
                if cid not in known:
                    raise UnknownNameError("nezha case", cid, list(known))
        self.cases = wanted_cases

    # ------------------------------------------------------------------ reading

    def frames(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> Iterator[RawFrame]:
        """Yield one raw frame per table (metrics, spans, topology, logs) for ``[start, end)``.

        Yields
        ------
        RawFrame
            ``frame`` holds the unified columns of its table (see :mod:`workbench.telemetry.schema`); its
            ``origin`` names the folders read. Tables without rows are not yielded.
        """
        start, end = window(start, end)
        self.skipped = {}
        # One reader goes through every file of the three tables in the order they are mapped, so
        # the next table's files are read while this one's rows are mapped and validated.
        jobs = [(p, _metric_columns(p)) for p in self._metric_paths() if p not in self._metric_cache]
        jobs += [(p, _TRACE_COLUMNS) for p in self.files("trace", start, end)]
        logs = self.files("log", start, end)
        days = sorted({p.parent.parent.name for p in logs})
        jobs += [(p, _LOG_COLUMNS) for day in days for p in logs if p.parent.parent.name == day]
        with ReadAhead(jobs) as self._ahead:
            try:
                metrics = self._metrics(start, end)
                if len(metrics):
                    yield RawFrame("metrics", metrics, origin=f"{self.root}/rca_data/{{{','.join(self.days)}}}/metric")
                # Spans before logs: their mapping is quick, so they validate while the logs are mapped.
                spans, topology = self._spans(start, end)
                if len(spans):
                    yield RawFrame("spans", spans, origin=f"{self.root}/{{rca,construct}}_data/*/trace")
                if len(topology):
                    yield RawFrame("topology", topology, origin=f"{self.root}/{{rca,construct}}_data/*/trace")
                # A day's logs at a time: one day validates while the next is mapped.
                for day in days:
                    frame, doubled = self._logs(start, end, [p for p in logs if p.parent.parent.name == day], logs)
                    if len(frame):
                        yield RawFrame("logs", frame, origin=f"{self.root}/{{rca,construct}}_data/{day}/log",
                                       duplicates=doubled)
            finally:
                self._ahead = None

    def reading(self, paths: list[Path], required: Any) -> Iterator[tuple[Path, tuple[Any, list[int]]]]:
        """``(path, read_csv result)`` in order: from the reader :meth:`frames` started, else read
        here one file ahead (``required(path)`` names the columns a file must have)."""
        if self._ahead is None:
            yield from read_ahead(paths, required, as_arrow=True)
            return
        for path in paths:
            yield path, self._ahead.take(path, required(path))

    def _metric_paths(self, day: str | None = None) -> list[Path]:
        days = self.days if day is None else [day]
        return [p for d in days for p in sorted((self.root / "rca_data" / d / "metric").glob("*.csv.gz"))]

    def files(self, kind: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> list[Path]:
        """The ``log`` or ``trace`` files to open for ``[start, end)`` (window pushed down by name).

        Returns
        -------
        list of pathlib.Path
            Construct files first, then case files, each in time order.
        """
        if kind not in ("log", "trace"):
            raise ParameterError(f"kind must be 'log' or 'trace', got {kind!r}")
        start, end = window(start, end)
        owned = None
        if self.cases is not None:
            owned = set()
            for case in self._case_list():
                if case["id"] in self.cases:
                    minute = case["started"].floor("min")
                    owned |= {(case["day"], minute + pd.Timedelta(minutes=k)) for k in range(3)}
        out = []
        for part in ("construct_data", "rca_data"):
            for day in self.days:
                folder = self.root / part / day / kind
                if not folder.is_dir():
                    continue
                for path in sorted(folder.iterdir()):
                    m = _FILE_MINUTE.match(path.name)
                    if not m or m.group(3) != kind:
                        continue
                    named = pd.Timestamp(f"{day}T{m.group(1)}:{m.group(2)}:00Z")
                    if start is not None and named + FILE_MARGIN < start:
                        continue
                    if end is not None and named - FILE_MARGIN >= end:
                        continue
                    if owned is not None and part == "rca_data" and (day, named) not in owned:
                        continue
                    out.append(path)
        return out

    def _metrics(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
        lo, hi = _ns_bounds(start, end)
        # Text columns are gathered as codes into small vocabularies and built once at the end:
        # a million Python strings turned into an Arrow column cost more than all the parsing.
        vocab = Vocabulary()
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("timestamp", "service", "name", "value", "unit", "attributes")}
        for day in self.days:
            if not (self.root / "rca_data" / day / "metric").is_dir():
                continue
            self.say(f"metrics of {day}")
            paths = self._metric_paths(day)
            self._metric_files(list(self.reading([p for p in paths if p not in self._metric_cache], _metric_columns)))
            for path in paths:
                parsed = self._metric_file(path)
                for why, count in parsed["skipped"].items():
                    self._count(path, count, why)
                keep = (parsed["stamp"] >= lo) & (parsed["stamp"] < hi)
                if not keep.any():
                    continue
                service = _codes(vocab, parsed["service"], parsed["names"])
                attributes = _codes(vocab, parsed["attributes"], parsed["names"])
                for name, unit, values in parsed["series"]:
                    has = keep & np.isfinite(values)
                    count = int(has.sum())
                    if not count:
                        continue
                    cols["timestamp"].append(parsed["stamp"][has])
                    cols["service"].append(service[has])
                    cols["name"].append(np.full(count, vocab.code(name)))
                    cols["value"].append(values[has])
                    cols["unit"].append(np.full(count, vocab.code(unit)))
                    cols["attributes"].append(attributes[has])
        if not cols["timestamp"]:
            return schema.empty("metrics")
        # In time order (stable), as codes: validation then checks each text once and sorts nothing.
        stamp = np.concatenate(cols.pop("timestamp"))
        order = np.argsort(stamp, kind="stable")
        data = {k: np.concatenate(v)[order] for k, v in cols.items()}
        return pd.DataFrame({
            "timestamp": pd.Series(stamp[order].view("datetime64[ns]")).dt.tz_localize("UTC"),
            "service": vocab.categorical(data["service"]),
            "environment": vocab.categorical(np.full(len(data["value"]), vocab.code(ENVIRONMENT))),
            "name": vocab.categorical(data["name"]), "value": data["value"], "unit": vocab.categorical(data["unit"]),
            "attributes": vocab.categorical(data["attributes"]),
        })

    def _metric_file(self, path: Path) -> dict[str, Any]:
        """One metric file parsed once per source (see :meth:`_metric_files`)."""
        if path not in self._metric_cache:
            self._metric_files([(path, read_csv(path, _metric_columns(path), as_arrow=True))])
        return self._metric_cache[path]

    def _metric_files(self, reads: list[tuple[Path, tuple[Any, list[int]]]]) -> None:
        """Parse metric files (their :func:`~.gzcsv.read_csv` results) into the per-source cache.

        Whole-day files, parsed once per source; windows only select rows. Files with the same
        columns are parsed together (one cast per column, not one per file and column). Each
        file's entry is a dict: ``stamp`` (int64 ns), ``names`` (each row's code of its pod or
        service name), ``service`` and ``attributes`` (one text per name code), ``series`` (list
        of (name, unit, float array with NaN for missing)) and ``skipped`` (reason -> rows).
        """
        groups: dict[tuple[bool, str], list[tuple[Path, Any, list[int]]]] = {}
        for path, (table, bad_lines) in reads:
            groups.setdefault((path.name == FRONT_FILE, str(table.schema)), []).append((path, table, bad_lines))
        for (front, _), files in groups.items():
            columns = FRONT_METRICS if front else POD_METRICS
            who = "ServiceName" if front else "PodName"
            table = pa.concat_tables([t for _, t, _ in files])
            bounds = np.cumsum([0] + [t.num_rows for _, t, _ in files])
            seconds = numbers(table["TimeStamp"])
            usable = np.isfinite(seconds) & (seconds >= EARLIEST.timestamp()) & (seconds < 2**33)
            ok = usable & np.asarray(pc.not_equal(table[who], ""), dtype=bool)
            encoded = pc.dictionary_encode(table[who]).combine_chunks()
            words = encoded.dictionary.to_pylist()
            names = encoded.indices.to_numpy(zero_copy_only=False)
            values, bad = {}, {}
            for column in columns:
                if column not in table.column_names:
                    continue
                raw = table[column]
                values[column] = numbers(raw)
                missing = ~np.isfinite(values[column])
                bad[column] = np.zeros(len(missing), dtype=bool)
                if missing.any():
                    # "NaN" (Prometheus' answer over no samples) or an empty cell is a missing
                    # sample (documented); anything else unparseable or infinite is bad input.
                    text = pc.utf8_lower(pc.utf8_trim_whitespace(raw))
                    fine = np.asarray(pc.is_in(text, pa.array(["", "nan"])), dtype=bool)
                    bad[column] = missing & ~fine & ok
                    values[column] = np.where(missing, np.nan, values[column])
            services = [word if front else service_of(word) for word in words]
            attributes = ["{}" if front else _attributes({"pod": word}) for word in words]
            stamps = np.round(seconds * 1e3).astype("int64") * 1_000_000
            for (path, _, bad_lines), lo, hi in zip(files, bounds[:-1], bounds[1:]):
                mine = ok[lo:hi]
                skipped: Counter[str] = Counter()
                if bad_lines:
                    skipped[_malformed(bad_lines)] += len(bad_lines)
                if (~mine).any():
                    skipped[f"row(s) with no usable TimeStamp or {who}"] += int((~mine).sum())
                for column, flags in bad.items():
                    if flags[lo:hi].any():
                        skipped[f"value(s) of {column} that are not finite numbers"] += int(flags[lo:hi].sum())
                self._metric_cache[path] = {
                    "stamp": stamps[lo:hi][mine], "names": names[lo:hi][mine],
                    "service": services, "attributes": attributes,
                    "series": [(*columns[c], v[lo:hi][mine]) for c, v in values.items()],
                    "skipped": dict(skipped),
                }

    def _logs(self, start: pd.Timestamp | None, end: pd.Timestamp | None, files: list[Path] | None = None,
              every: list[Path] | None = None) -> tuple[pd.DataFrame, int]:
        """The logs of ``files`` (default: every log file of the window; ``every`` numbers the
        progress), and how many lines read twice were left out."""
        lo, hi = _ns_bounds(start, end)
        read, tables = [], []
        files = self.files("log", start, end) if files is None else files
        every = files if every is None else every
        for path, (table, bad_lines) in self.reading(files, lambda p: _LOG_COLUMNS):
            self.say(f"log file {every.index(path) + 1} of {len(every)}")
            read.append((path, bad_lines, table.num_rows))
            if table.num_rows:
                tables.append(table.select(list(_LOG_COLUMNS)))
        table = pa.concat_tables(tables) if tables else None
        stamp = log_times(table["Timestamp"]) if table else np.zeros(0, dtype=np.int64)
        ok = (stamp >= EARLIEST.value) & (np.asarray(pc.not_equal(table["PodName"], ""), dtype=bool) if table else True)
        # Counted file by file, as they were read: malformed rows, then rows without time or pod.
        bounds = np.cumsum([0] + [rows for _, _, rows in read])
        for (path, bad_lines, _), a, b in zip(read, bounds[:-1], bounds[1:]):
            if bad_lines:
                self._count(path, len(bad_lines), _malformed(bad_lines))
            self._skip(path, ~ok[a:b], "no usable Timestamp or PodName")
        keep = ok & (stamp >= lo) & ((stamp < hi) | (end is None))
        rows = np.flatnonzero(keep)
        if not len(rows):
            return schema.empty("logs"), 0
        # Every file's rows at once (the per-value work costs per call, not per row), in time order
        # (stable): the bodies are laid out once, and validation finds nothing left to sort.
        rows = rows[np.argsort(stamp[rows], kind="stable")]
        # The construct and rca files overlap: a line read twice is left out before its body is
        # built (validation would copy every body to drop it); the count goes to the report.
        rows, doubled = _first_copies(table, stamp, rows)
        pick = pa.array(rows)
        body, partial = bodies(table["Log"], rows)
        pod = table["PodName"].take(pick)
        # Attribute JSON assembled from per-value JSON texts: identical to schema.to_attributes
        # (sorted keys, compact).
        attrs = pc.binary_join_element_wise(
            '{"container":', quoted(table["Container"].take(pick)), ',"node":', quoted(table["Node"].take(pick)),
            ',"pod":', quoted(pod), ',"span_id":', quoted(table["SpanID"].take(pick)),
            pc.if_else(pa.array(partial), ',"truncated":true}', "}"), "")
        return pd.DataFrame({
            "timestamp": pd.Series(stamp[rows].view("datetime64[ns]")).dt.tz_localize("UTC"),
            "service": coded(pod, service_of), "environment": coded(pa.array([ENVIRONMENT] * len(rows))),
            "severity": coded(level_tokens(body), _severity, missing="INFO"), "body": body.to_pandas(),
            "trace_id": coded(table["TraceID"].take(pick)), "attributes": coded(attrs),
        }), doubled

    def _spans(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        from .nezha_spans import read_spans  # it imports this module's helpers

        return read_spans(self, self.files("trace", start, end), start, end)

    def _skip(self, path: Path, mask: pd.Series, why: str) -> None:
        count = int(mask.sum())
        if count:
            self._count(path, count, f"row(s) with {why}")

    def _count(self, path: Path, count: int, why: str) -> None:
        key = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)
        self.skipped[key] = self.skipped.get(key, 0) + count
        log.warning("%s: skipped %d %s", path, count, why)

    # ------------------------------------------------------------------ incidents

    def incidents(self) -> list[dict[str, Any]]:
        """One incident document per fault case of the selected days (and cases), without any label.

        Only ``inject_time`` is read from the fault lists. The window follows the README's
        protocol: from the end of the previous fault of the same day (its inject time + 3 min;
        only faults listed in this folder are known, so held-out faults can fall inside) or,
        for a day's first case, the day's first metric sample, to inject time + 3 min.

        Returns
        -------
        list of dict
            ``id`` (``nezha-YYYYMMDD-HHMM``, ``-2``, ``-3`` … appended on a clash), ``title``,
            ``severity`` (SEV3), ``status`` (resolved), ``environment``, ``services`` (``[]``:
            unknown), ``started`` and ``resolved`` (ISO 8601 UTC with ``Z``), ``window``
            (``{"start", "end"}``, same format; ``start`` is null when a day has no metrics).
        """
        out = []
        previous: dict[str, pd.Timestamp] = {}
        for case in self._case_list():
            day, started = case["day"], case["started"]
            begin = previous.get(day)
            if begin is None:
                begin = self._day_first_metric(day)
            previous[day] = started + FAULT_DURATION
            if self.cases is not None and case["id"] not in self.cases:
                continue
            out.append({
                "id": case["id"],
                "title": f"TrainTicket fault case {started:%Y-%m-%d %H:%M}",
                "severity": "SEV3",
                "status": "resolved",
                "environment": ENVIRONMENT,
                "services": [],
                "started": iso_utc(started),
                "resolved": iso_utc(started + FAULT_DURATION),
                "window": {"start": iso_utc(begin) if begin is not None else None,
                           "end": iso_utc(started + FAULT_DURATION)},
            })
        return out

    def _case_list(self) -> list[dict[str, Any]]:
        if self._cases is None:
            self._cases = [{"id": cid, "day": day, "started": t}
                           for day in self.days for cid, t, _ in fault_cases(self.root, day)]
        return self._cases

    def _day_first_metric(self, day: str) -> pd.Timestamp | None:
        # Parsing through the cache also warms it for the reads that usually follow.
        paths = self._metric_paths(day)
        firsts = [int(stamp.min()) for stamp in (self._metric_file(p)["stamp"] for p in paths) if len(stamp)]
        return pd.Timestamp(min(firsts), tz="UTC") if firsts else None


# --------------------------------------------------------------------------- helpers

def _first_copies(table: pa.Table, stamp: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """``rows`` (in time order) without those repeating an earlier one in every column read, and
    how many were left out. Only rows sharing their time with a neighbour are compared."""
    times = stamp[rows]
    same = np.zeros(len(rows), dtype=bool)
    same[1:] = times[1:] == times[:-1]
    same[:-1] |= same[1:]
    suspects = np.flatnonzero(same)
    if not len(suspects):
        return rows, 0
    frame = pd.DataFrame({"time": times[suspects], **{c: take_rows(table[c], rows[suspects]).to_pandas()
                                                       for c in _LOG_COLUMNS if c != "Timestamp"}})
    repeat = np.zeros(len(rows), dtype=bool)
    repeat[suspects] = schema.duplicate_rows(frame)
    return rows[~repeat], int(repeat.sum())


def _codes(vocab: Vocabulary, texts: list[str], index: np.ndarray) -> np.ndarray:
    """Each row's vocabulary code, from its index into ``texts``."""
    return np.array([vocab.code(text) for text in texts], dtype=np.int64)[index]


def _metric_columns(path: Path) -> tuple[str, str]:
    return ("TimeStamp", "ServiceName" if path.name == FRONT_FILE else "PodName")


def _malformed(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:_WARN_LINES])) + (" …" if len(lines) > _WARN_LINES else "")
    return f"malformed CSV row(s) (wrong number of fields or bad quoting; records {shown}, the header is 1)"


def fault_cases(root: Path, day: str) -> list[tuple[str, pd.Timestamp, dict[str, Any]]]:
    """(case id, inject time, raw record) of one day's fault list, in inject-time order."""
    file = root / "rca_data" / day / f"{day}-fault_list.json"
    if not file.is_file():
        return []
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{file}: not readable JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise SourceError(f"{file}: expected an object of hour -> list of faults, got {type(doc).__name__}")
    found = []
    for hour, items in doc.items():
        if not isinstance(items, list):
            raise SourceError(f"{file}: hour {hour!r} must hold a list of faults")
        for item in items:
            text = item.get("inject_time") if isinstance(item, dict) else None
            try:
                # inject_time is UTC (README); inject_timestamp is inconsistent and never read.
                started = pd.Timestamp(text, tz="UTC") if isinstance(text, str) else None
            except ValueError:
                started = None
            if started is None or started is pd.NaT:
                raise SourceError(f"{file}: hour {hour!r}: inject_time must be 'YYYY-MM-DD HH:MM:SS' (UTC), got {text!r}")
            found.append((started, item))
    found.sort(key=lambda pair: pair[0])
    out, used = [], Counter()
    for started, item in found:
        base = f"nezha-{started:%Y%m%d-%H%M}"
        used[base] += 1
        cid = base if used[base] == 1 else f"{base}-{used[base]}"
        out.append((cid, started, item))
    return out


def days_in(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "rca_data").iterdir() if p.is_dir() and _DAY.match(p.name))


def _as_list(value: Iterable[str] | str | None) -> list[str] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _ns_bounds(start: pd.Timestamp | None, end: pd.Timestamp | None) -> tuple[int, int]:
    """The window as int64 nanoseconds (open ends as the int64 range)."""
    info = np.iinfo("int64")
    return (start.value if start is not None else info.min), (end.value if end is not None else info.max)


def _severity(token: str) -> str:
    level = schema.normalize_severity(token)
    return level if level in schema.SEVERITIES else "INFO"


def _attributes(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
