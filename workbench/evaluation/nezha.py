"""Ground truth of the Nezha TrainTicket evaluation data: which fault each case injected.

Read by the benchmarks and tests to score, never by the source or the analysis
(:class:`~workbench.telemetry.sources.nezha.NezhaSource` carries no label).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

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
