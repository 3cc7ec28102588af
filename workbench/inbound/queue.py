"""The ingest queue: every telemetry write of the served app goes through one bounded queue and one
writer thread.

Why one writer: the telemetry store rewrites a day's file to add rows (:mod:`workbench.telemetry.store`),
so two writers in one process would race on the same file. Why a bound: a receiver must answer
"come back later" (HTTP 503 with ``Retry-After``, which OTLP exporters and Alertmanager retry)
instead of growing memory without limit when the store cannot keep up.

Group commit: the writer takes everything waiting (up to :data:`BATCH` requests), writes it in
one store write, and only then resolves each request's future, so a request is answered 200 only
once its rows are on disk, and a burst of small requests costs one file rewrite. When the combined
write fails (one request's rows conflict with another's), each request is written on its own so a
bad request fails alone.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pandas as pd

from ..telemetry import schema
from .limits import RequestError

#: Requests merged into one store write at most.
BATCH = 256
#: Seconds a client is told to wait when the queue is full.
RETRY_AFTER = 1


@dataclass
class _Item:
    tables: dict[str, pd.DataFrame]
    future: Future
    queued_at: float = field(default_factory=time.monotonic)


class IngestQueue:
    """A bounded queue of validated tables with one writer thread.

    Parameters
    ----------
    store : TelemetryStore
    capacity : int
        Requests waiting or being written at most; :meth:`submit` refuses more with a 503.
    on_commit : callable, optional
        Called by the writer after each successful write with the written tables (re-queueing
        analyses of open incidents); its failures are swallowed (the data is stored).
    """

    def __init__(self, store: Any, capacity: int, on_commit: Callable[[dict[str, pd.DataFrame]], None] | None = None):
        self.store, self.capacity, self.on_commit = store, int(capacity), on_commit
        self._items: deque[_Item] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._held = 0
        self._closed = False
        #: Store writes done, and requests refused because the queue was full (since start).
        self.writes = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._run, name="workbench-ingest", daemon=True)
        self._thread.start()

    def submit(self, tables: dict[str, pd.DataFrame]) -> Future:
        """Queue validated ``tables`` for writing; the future gives the store's ``WriteStats``.

        Raises
        ------
        RequestError
            503 with ``retry_after`` when :attr:`capacity` requests are already waiting.
        """
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RequestError(503, "unavailable", "the server is shutting down", retry_after=RETRY_AFTER)
            if self._pending >= self.capacity:
                self.refused += 1
                raise RequestError(503, "queue_full", f"the ingest queue is full ({self.capacity} requests waiting, "
                                                      f"receivers.queue); retry later", retry_after=RETRY_AFTER)
            self._pending += 1
            self._items.append(_Item(tables, future))
            self._cond.notify()
        return future

    @property
    def pending(self) -> int:
        """Requests waiting or being written."""
        with self._cond:
            return self._pending

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Accept requests but write none until the block ends (a consistent file backup; tests)."""
        with self._cond:
            self._held += 1
        try:
            yield
        finally:
            with self._cond:
                self._held -= 1
                self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the writer

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items or self._held:
                    if self._closed and not self._items:
                        return
                    self._cond.wait(0.5)
                batch = [self._items.popleft() for _ in range(min(BATCH, len(self._items)))]
            outcomes, written = self._write(batch)
            # Free the slots before answering: a client that sends its next request the moment it
            # has the answer must find room (a capacity of 1 serves one sequential client).
            with self._cond:
                self._pending -= len(batch)
            for item, (ok, value) in zip(batch, outcomes):
                if ok:
                    item.future.set_result(value)
                else:
                    item.future.set_exception(value)
            for tables in written:
                self._committed(tables)

    def _write(self, batch: list[_Item]) -> tuple[list[tuple[bool, Any]], list[dict[str, pd.DataFrame]]]:
        """((ok, stats or exception) per item, the tables written), one store write if possible."""
        merged = _merge([item.tables for item in batch])
        try:
            stats = self.store.write(merged)
        except Exception:  # noqa: BLE001 - retried one by one below, where each failure is reported
            stats = None
        if stats is not None:
            self.writes += 1
            return [(True, stats)] * len(batch), [merged]
        outcomes: list[tuple[bool, Any]] = []
        written = []
        for item in batch:
            try:
                outcomes.append((True, self.store.write(item.tables)))
            except BaseException as exc:  # noqa: BLE001 - handed to the request that sent the rows
                outcomes.append((False, exc))
                continue
            self.writes += 1
            written.append(item.tables)
        return outcomes, written

    def _committed(self, tables: dict[str, pd.DataFrame]) -> None:
        if self.on_commit is None:
            return
        try:
            self.on_commit(tables)
        except Exception:  # noqa: BLE001 - the rows are stored; a failed follow-up must not undo that
            pass


def _merge(parts: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    for table in schema.TABLES:
        frames = [p[table] for p in parts if p.get(table) is not None and not p[table].empty]
        if frames:
            out[table] = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return out
