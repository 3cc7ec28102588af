"""The Nezha TrainTicket evaluation data: ground truth, and each case's window as the protocol cuts it.

The labels (:func:`load_labels`, :func:`load_inner_labels`) are read by the benchmarks and tests to
score, never by the source or the analysis (:class:`~workbench.telemetry.sources.nezha.NezhaSource`
carries no label). :func:`case_window` cuts a case's telemetry from the whole folder's tables the
way the data set's README recommends (used by ``benchmarks/nezha.py``, ``benchmarks/prior.py``
and the tests).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..analysis.evidence import TelemetryWindow
from ..errors import SourceError
from ..telemetry.sources.nezha import days_in, fault_cases, service_of


def load_labels(path: str | Path, days: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """The injected fault of every case: for benchmarks and tests only; the source never calls it.

    Parameters
    ----------
    path : str or pathlib.Path
        The data set folder (``nezha:`` prefix accepted).
    days : list of str, optional
        Days to read (default every day found).

    Returns
    -------
    dict
        Case id (as in :meth:`~workbench.telemetry.sources.nezha.NezhaSource.incidents`) → ``{"service", "pod", "fault_type"}``;
        ``service`` is the pod name minus its last two ``-`` parts (:func:`~workbench.telemetry.sources.nezha.service_of`).
    """
    root = Path(str(path).removeprefix("nezha:"))
    if not (root / "rca_data").is_dir():
        raise SourceError(f"{root}: not a Nezha data set folder (no rca_data/ inside)")
    out = {}
    for day in (sorted(days) if days else days_in(root)):
        file = root / "rca_data" / day / f"{day}-fault_list.json"
        for cid, _, record in fault_cases(root, day):
            pod, kind = record.get("inject_pod"), record.get("inject_type")
            if not isinstance(pod, str) or not pod or not isinstance(kind, str) or not kind:
                raise SourceError(f"{file}: case {cid} needs text inject_pod and inject_type, got {pod!r}, {kind!r}")
            out[cid] = {"service": service_of(pod), "pod": pod, "fault_type": kind}
    return out


def load_inner_labels(path: str | Path) -> dict[str, dict[str, str]]:
    """The fine-grained labels (``construct_data/root_cause_ts.json``): for benchmarks and tests only.

    Returns
    -------
    dict
        Service -> fault type -> label: a metric column for resource faults
        (``"CpuUsageRate(%)"``), a code region between two log statements for code faults
        (``"c.s.ContactsServiceImpl#31_c.s.ContactsServiceImpl#34"``). Empty when the file is absent.

    Raises
    ------
    SourceError
        The file exists but is not an object of objects of strings.
    """
    root = Path(str(path).removeprefix("nezha:"))
    file = root / "construct_data" / "root_cause_ts.json"
    if not file.is_file():
        return {}
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{file}: not readable JSON ({exc})") from exc
    if not isinstance(doc, dict) or not all(isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
                                            for v in doc.values()):
        raise SourceError(f"{file}: expected an object of service -> {{fault type: label text}}")
    return {str(k): dict(v) for k, v in doc.items()}


#: Seconds the analysis window starts before a case's ``started`` (README trap 1: faults show
#: 40-60 s before the recorded inject time); the cross-validation confirms it (docs/ranking.md).
DEFAULT_LEAD = 60


def construct_windows(root: Path) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Per day, ``[first, last]`` record time of the ``construct_data`` (fault-free) log and trace files."""
    out: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    for day_dir in sorted((root / "construct_data").glob("*")):
        times = []
        for path in sorted(day_dir.glob("log/*.csv.gz")):
            with gzip.open(path, "rt") as handle:
                frame = pd.read_csv(handle, usecols=["Timestamp"], dtype=str)
            text = frame["Timestamp"].str.strip()
            text = text.where(text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True), text + "Z")
            times.append(pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601"))
        for path in sorted(day_dir.glob("trace/*.csv.gz")):
            with gzip.open(path, "rt") as handle:
                frame = pd.read_csv(handle, usecols=["StartTimeUnixNano"], dtype=str)
            times.append(pd.to_datetime(pd.to_numeric(frame["StartTimeUnixNano"], errors="coerce"), unit="ns", utc=True))
        if times:
            stamps = pd.concat(times).dropna()
            stamps = stamps[stamps > pd.Timestamp("2000-01-01", tz="UTC")]
            if len(stamps):
                out[day_dir.name] = (stamps.min(), stamps.max() + pd.Timedelta(microseconds=1))
    return out


def case_window(tables: dict[str, pd.DataFrame], incident: dict, lead: pd.Timedelta,
                reference_window: tuple[pd.Timestamp, pd.Timestamp] | None) -> TelemetryWindow:
    """The case's window cut from the whole-folder tables.

    Telemetry from the incident's ``window.start`` (the previous fault's end) to ``window.end``;
    the analysis window starts ``lead`` before ``started``, the rest being the baseline; with a
    ``reference_window`` (the day's fault-free construct window, :func:`construct_windows`) its
    logs and spans join the baseline, as the data set's protocol allows. Metrics are never taken
    from before ``window.start`` (other faults lie there).
    """
    begin = pd.Timestamp(incident["window"]["start"])
    end = pd.Timestamp(incident["window"]["end"])
    started = pd.Timestamp(incident["started"])
    start = max(started - lead, begin)
    window = TelemetryWindow.from_tables(tables, begin, start, end)
    if reference_window is not None and reference_window[0] < begin:
        ref_start, ref_end = reference_window[0], min(reference_window[1], begin)
        extra = TelemetryWindow.from_tables(tables, ref_start, ref_end, ref_end)
        window.logs = pd.concat([extra.logs, window.logs], ignore_index=True)
        window.spans = pd.concat([extra.spans, window.spans], ignore_index=True)
        window.baseline_start = ref_start
    return window
