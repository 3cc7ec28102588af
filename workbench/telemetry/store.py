"""The workspace's telemetry store: validated tables as Parquet, queried by window through DuckDB.

Layout: ``<root>/<table>/day=YYYY-MM-DD/part.parquet`` (one file per table and UTC day) and
``<root>/topology/part.parquet``. A window query opens only the day files that overlap the window
and pushes the time and service filters into DuckDB, so a notebook pulls one incident's window,
not the whole history.

Writes are idempotent and all-or-nothing: a day file is merged with what is already stored
(exact duplicates dropped and counted, conflicting keys refused by :func:`workbench.telemetry.schema.merge`,
or, with ``replace=True``, replaced by the new rows: a live source fetched again), every new file
is written beside its target first, and the targets are swapped in only when every file of the
write is ready. A failure before the swap leaves the store as it was; a failure during the swap
restores the previous files. Frames :func:`~workbench.telemetry.schema.validate` produced are not
validated again (it marks them); any other frame is. One writer at a time, across processes too (a
CLI ingest, a live fetch, the OTLP receiver): :meth:`TelemetryStore.stage` takes the store's
``.write.lock`` (``flock``) and the commit or rollback releases it; without it two writers merged
the same day file and the last one's rename dropped the other's rows.
"""
from __future__ import annotations

import contextlib
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import schema
from ..errors import ConflictError, SourceError
from ..formats import utc_bound
from ..processes import WriterLock, alive, token

_PART = "part.parquet"
#: How long a write waits for another process writing the same store (an ingest of the whole
#: Nezha set holds it ~10 s) before it gives up with a ConflictError.
WRITE_WAIT = 120.0


@dataclass
class WriteStats:
    """What one write added.

    Attributes
    ----------
    rows_added : dict
        New rows per table.
    rows_present : dict
        Rows that were already stored (exact duplicates of stored rows) per table.
    files : int
        Day files written.
    """

    rows_added: dict[str, int] = field(default_factory=dict)
    rows_present: dict[str, int] = field(default_factory=dict)
    files: int = 0

    def to_dict(self) -> dict:
        return {"rows_added": dict(self.rows_added), "rows_present": dict(self.rows_present), "files": self.files}


def _owner() -> str:
    """This process in a file name (``<pid>_<start time>``): a later ingest can tell whether the
    writer of a leftover file is gone."""
    return token().replace(" ", "_")


class StagedWrite:
    """Files written beside their targets, swapped in by :meth:`commit` or dropped by :meth:`rollback`."""

    def __init__(self, moves: list[tuple[Path, Path]], stats: WriteStats, lock: WriterLock | None = None):
        self._moves = moves
        self.stats = stats
        self._backups: list[tuple[Path, Path | None]] = []
        self._done = False
        self._lock = lock

    def commit(self) -> WriteStats:
        """Swap every staged file in; on any failure restore what was there before."""
        if self._done:
            return self.stats
        try:
            for tmp, target in self._moves:
                backup = None
                if target.exists():
                    backup = target.with_name(f".{target.name}.{_owner()}-{uuid.uuid4().hex}.bak")
                    os.replace(target, backup)
                self._backups.append((target, backup))
                os.replace(tmp, target)
        except BaseException:
            self._restore()
            self._unlock()
            raise
        for _, backup in self._backups:
            if backup is not None:
                backup.unlink(missing_ok=True)
        self._done = True
        self._unlock()
        return self.stats

    def rollback(self) -> None:
        """Drop the staged files (before commit) or restore the previous files (after a failed commit)."""
        if self._done:
            return
        self._restore()
        for tmp, _ in self._moves:
            tmp.unlink(missing_ok=True)
        self._done = True
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _restore(self) -> None:
        for target, backup in reversed(self._backups):
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
        self._backups.clear()


class TelemetryStore:
    """Validated telemetry tables of one workspace.

    Parameters
    ----------
    root : path
        The ``telemetry/`` folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self._local = threading.local()  # the connection of an open :meth:`session`, per thread

    @contextlib.contextmanager
    def session(self) -> Iterator["TelemetryStore"]:
        """Run the :meth:`query` calls inside the ``with`` block on one DuckDB connection.

        Opening a connection costs ~15-20 ms, as much as reading a small table: reading an
        incident's window (five tables) in one session saves most of that. Per thread, so a store
        shared by threads never shares a connection; nested sessions reuse the outer one.
        """
        if getattr(self._local, "con", None) is not None:
            yield self
            return
        with duckdb.connect() as con:
            con.execute("SET TimeZone='UTC'")
            self._local.con = con
            try:
                yield self
            finally:
                self._local.con = None

    # ------------------------------------------------------------------ write
    def stage(self, tables: dict[str, pd.DataFrame], progress: Callable[[str], None] | None = None,
              replace: bool = False) -> StagedWrite:
        """Merge ``tables`` with the stored ones and write the result beside the targets.

        Nothing is visible until :meth:`StagedWrite.commit`. ``replace``: a new row replaces a
        stored row with the same key instead of conflicting with it (:func:`schema.merge`).
        What a killed ingest left behind is cleaned first (:meth:`recover`). The store's writer
        lock is held from here until the commit or rollback (:data:`WRITE_WAIT`).

        Raises
        ------
        ConflictError
            Another process kept writing the store for :data:`WRITE_WAIT` seconds.
        """
        stager = self.stager(progress, replace)
        try:
            for table, frame in tables.items():
                stager.add(table, frame)
            return stager.finish()
        except BaseException:
            stager.abort()
            raise

    def stager(self, progress: Callable[[str], None] | None = None, replace: bool = False) -> "Stager":
        """A :meth:`stage` that takes its tables one at a time (:meth:`Stager.add`), so the first
        tables are written while later ones are still read or validated."""
        return Stager(self, progress, replace)

    def recover(self) -> list[Path]:
        """Clean up after ingests that were killed (``kill -9``) while writing; return what was removed.

        A staged file (``.<name>.<owner>-<id>.tmp``) of a process that is gone is deleted; a backup
        (``.<name>.<owner>-<id>.bak``, the previous file moved aside during a commit) is put back
        when its file is missing (the commit was cut between the two renames) and deleted
        otherwise; day folders left empty are removed. Files of a live process are left alone.
        """
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for leftover in sorted(self.root.glob("*/*/.*.tmp")) + sorted(self.root.glob("*/*/.*.bak")):
            owner = leftover.name.rsplit(".", 2)[-2].split("-")[0].replace("_", " ")
            if alive(owner):
                continue
            target = leftover.with_name(leftover.name[1:].rsplit(".", 2)[0])
            if leftover.suffix == ".bak" and not target.exists():
                os.replace(leftover, target)
            else:
                leftover.unlink(missing_ok=True)
                removed.append(leftover)
        for day in sorted(self.root.glob("*/day=*")):
            if day.is_dir() and not any(day.iterdir()):
                day.rmdir()
                removed.append(day)
        return removed

    def write(self, tables: dict[str, pd.DataFrame]) -> WriteStats:
        """Stage and commit in one step."""
        return self.stage(tables).commit()

    # ------------------------------------------------------------------ read
    def query(self, table: str, start: pd.Timestamp | str | None = None, end: pd.Timestamp | str | None = None,
              services: Sequence[str] | None = None, names: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of ``table`` in ``[start, end)``, optionally for some services (and metric names).

        Returns a frame with the table's columns (see :mod:`workbench.telemetry.schema`), ordered by time,
        times tz-aware UTC. Only the day files overlapping the window are opened.
        """
        schema.columns(table)  # validates the name
        start_ts, end_ts = utc_bound(start), utc_bound(end)
        files = self._files(table, start_ts, end_ts)
        if not files:
            return schema.empty(table)
        where, params = [], [[str(f) for f in files]]
        time_col = schema.TIME_COLUMN[table]
        if time_col and start_ts is not None:
            where.append(f'"{time_col}" >= ?')
            params.append(start_ts.to_pydatetime())
        if time_col and end_ts is not None:
            where.append(f'"{time_col}" < ?')
            params.append(end_ts.to_pydatetime())
        if services is not None:
            col = "caller" if table == "topology" else "service"
            where.append(f"{col} IN (SELECT unnest(?))")
            params.append(list(services))
        if names is not None:
            where.append("name IN (SELECT unnest(?))")
            params.append(list(names))
        cols = ", ".join(f'"{c}"' for c in schema.columns(table))
        sql = f"SELECT {cols} FROM read_parquet(?)"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if time_col:
            sql += f' ORDER BY "{time_col}"'
        con = getattr(self._local, "con", None)
        if con is not None:
            arrow = con.sql(sql, params=params).to_arrow_table()
        else:
            with duckdb.connect() as con:
                con.execute("SET TimeZone='UTC'")
                arrow = con.sql(sql, params=params).to_arrow_table()
        frame = arrow.to_pandas()
        for col in schema.columns(table):
            if col in ("timestamp", "start"):
                s = frame[col]
                frame[col] = (s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")).astype("datetime64[ns, UTC]")
        return frame

    def time_range(self, table: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """First and last time stored in ``table`` (None when empty)."""
        time_col = schema.TIME_COLUMN[table]
        files = self._files(table, None, None)
        if not files or not time_col:
            return None
        with duckdb.connect() as con:
            con.execute("SET TimeZone='UTC'")
            lo, hi = con.execute(f'SELECT min("{time_col}"), max("{time_col}") FROM read_parquet(?)', [[str(f) for f in files]]).fetchone()
        return pd.Timestamp(lo).tz_convert("UTC"), pd.Timestamp(hi).tz_convert("UTC")

    def counts(self) -> dict[str, int]:
        """Rows stored per table."""
        out = {}
        for table in schema.TABLES:
            files = self._files(table, None, None)
            out[table] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        return out

    def services(self) -> list[str]:
        """Every service with metrics, logs, spans or events."""
        found: set[str] = set()
        for table in ("metrics", "logs", "spans", "events"):
            files = self._files(table, None, None)
            if files:
                with duckdb.connect() as con:
                    rows = con.execute("SELECT DISTINCT service FROM read_parquet(?)", [[str(f) for f in files]]).fetchall()
                found.update(r[0] for r in rows)
        return sorted(found)

    # ------------------------------------------------------------------ internals
    def _partitions(self, table: str, frame: pd.DataFrame) -> Iterable[tuple[Path, pd.DataFrame]]:
        time_col = schema.TIME_COLUMN[table]
        if time_col is None:
            yield self.root / table / _PART, frame
            return
        # Whole UTC days as integers (formatting every timestamp as text costs more than the write);
        # a validated frame is ordered by time, so each day is one slice of it.
        days = frame[time_col].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").view("int64")
        if not (np.diff(days) >= 0).all():
            order = np.argsort(days, kind="stable")
            frame, days = frame.take(order), days[order]
        bounds = [0, *(np.flatnonzero(np.diff(days)) + 1), len(days)]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            name = np.datetime64(int(days[lo]), "D").astype(str)
            yield self.root / table / f"day={name}" / _PART, frame.iloc[lo:hi].reset_index(drop=True)

    def _files(self, table: str, start: pd.Timestamp | None, end: pd.Timestamp | None) -> list[Path]:
        base = self.root / table
        if not base.is_dir():
            return []
        if schema.TIME_COLUMN[table] is None:
            f = base / _PART
            return [f] if f.exists() else []
        out = []
        for d in sorted(base.glob("day=*")):
            day = pd.Timestamp(d.name[4:], tz="UTC")
            if start is not None and day + pd.Timedelta(days=1) <= start.floor("D"):
                continue
            if end is not None and day >= end:
                continue
            f = d / _PART
            if f.exists():
                out.append(f)
        return out

    def _read_file(self, path: Path) -> pd.DataFrame:
        try:
            frame = pq.read_table(path).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"{path}: stored telemetry file is unreadable: {exc}") from None
        return frame


class Stager:
    """Tables staged one at a time (see :meth:`TelemetryStore.stage`, which is built on it).

    The writer lock is taken (and a killed ingest's leftovers cleaned) at the first :meth:`add`,
    so reading a source never holds it; Parquet files are written on two threads while the
    caller goes on. :meth:`finish` gives the :class:`StagedWrite`; :meth:`abort` drops what was
    written and releases the lock.
    """

    def __init__(self, store: TelemetryStore, progress: Callable[[str], None] | None, replace: bool):
        self._store, self._progress, self._replace = store, progress, replace
        self._lock: WriterLock | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._moves: list[tuple[Path, Path]] = []
        self._writes: list = []
        self.stats = WriteStats()

    def add(self, table: str, frame: pd.DataFrame | None) -> None:
        """Merge one table with what is stored and start writing its files."""
        store = self._store
        self._open()
        self.stats.rows_added[table] = 0
        self.stats.rows_present[table] = 0
        if frame is None or frame.empty:
            return
        if frame.attrs.get(schema.VALIDATED_ATTR) != table:
            frame = schema.validate(table, frame, source=f"write to {store.root / table}").frame
        for target, part in store._partitions(table, frame):
            stored = store._read_file(target) if target.exists() else None
            before = 0 if stored is None else len(stored)
            merged, replaced = schema.merge(table, stored, part, source=str(target), replace=self._replace)
            added = len(merged) - (before - replaced)
            self.stats.rows_added[table] += added
            self.stats.rows_present[table] += len(part) - added
            if added == 0 and not replaced and stored is not None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{_owner()}-{uuid.uuid4().hex}.tmp")
            self._moves.append((tmp, target))
            self._writes.append(self._pool.submit(_write_parquet, merged, tmp))
            self.stats.files += 1
            if self._progress:
                self._progress(str(target.relative_to(store.root)))

    def _open(self) -> None:
        if self._lock is not None:
            return
        lock = WriterLock(self._store.root / ".write.lock")
        lock.acquire(WRITE_WAIT, ConflictError, f"telemetry store {self._store.root}")
        self._lock = lock
        self._store.recover()
        # Parquet encoding and compression release the GIL: writes go on beside the caller.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="telemetry-write")

    def finish(self) -> StagedWrite:
        """Wait for every write; the first failed one raises (and everything is dropped)."""
        self._open()  # a stage of nothing holds the lock until its commit too
        try:
            for write in self._writes:
                write.result()
        except BaseException:
            self.abort()
            raise
        self._pool.shutdown(wait=True)
        staged = StagedWrite(self._moves, self.stats, self._lock)
        self._moves, self._writes, self._lock = [], [], None  # the staged write owns them now
        return staged

    def abort(self) -> None:
        """Drop every staged file and release the lock (nothing is visible)."""
        for write in self._writes:
            write.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for tmp, _ in self._moves:
            tmp.unlink(missing_ok=True)
        self._moves = []
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


