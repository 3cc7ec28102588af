"""Fan one pure function out over many tasks: in-process, a local process pool or Dask distributed.

:func:`fan_out` is how the scheduled recheck (:mod:`workbench.loop`) spreads its per-incident work;
it knows nothing about incidents. The function must be importable at module level (workers import
it by name) and each task is a tuple of picklable arguments::

    run = fan_out(check_incident, tasks, "dask://scheduler:8786", failed=lambda task, exc: ...)
    for result in run:          # as they complete, not in task order
        record(result)
    run.workers                 # how many workers did the work (None when unknown)

Executors
---------
- ``"local"`` (default): a :class:`concurrent.futures.ProcessPoolExecutor` of ``workers``
  processes started from a fork server (clean processes forked from one that imported
  ``preload`` once, not from the caller, which may hold database connections and threads); one
  task or one worker runs in-process instead (no pool start);
- ``"serial"``: in-process, one task after the other (debugging);
- ``"dask-local"``: a :class:`distributed.LocalCluster` started for the run (``workers`` worker
  processes, one thread each);
- ``"dask://HOST:PORT"``, ``"tcp://…"``, ``"tls://…"``: an existing Dask scheduler;
- a :class:`distributed.Client` or any :class:`concurrent.futures.Executor` object.

A worker that dies (not the function raising for its data, which the function itself should turn
into a result) is reported through ``failed(task, exc)``, whose return value is yielded in place
of the lost result, so one lost task never stops the others.

The reverse holds too: when the calling process dies (``kill -9`` of an hourly ``workbench
recheck``), its workers exit within about a second instead of waiting for work for ever. Pool
workers watch the caller's process id; the ``dask-local`` cluster's processes are told the caller
is their parent and stop when it is gone (an hourly job that gets killed never piles them up).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from typing import Any, Callable, Iterator, Sequence

from ..errors import MissingDependencyError, WorkbenchError
from ..processes import alive

__all__ = ["DEFAULT_WORKERS", "EXECUTORS", "ExecutorError", "FanOut", "executor_name", "fan_out", "worker_count"]

#: Executor names besides ``dask://HOST:PORT`` and executor objects.
EXECUTORS = ("local", "serial", "dask-local")
#: Processes of the local pool or LocalCluster when not given: the CPUs, at most 2.
DEFAULT_WORKERS = max(1, min(2, os.cpu_count() or 1))
DASK_EXTRA = "postmortem-workbench[dask]"
_DASK_SCHEMES = ("dask://", "tcp://", "tls://")
#: Seconds between a worker's checks that the process that started the work is still alive.
PARENT_POLL = 0.5


class ExecutorError(WorkbenchError):
    """An unknown executor, a bad worker count or an unreachable Dask scheduler."""


class FanOut:
    """The results of :func:`fan_out`, as they complete; :attr:`workers` is set once work started."""

    def __init__(self, results: Callable[["FanOut"], Iterator[Any]]):
        self.workers: int | None = None
        self._results = results

    def __iter__(self) -> Iterator[Any]:
        return self._results(self)


def fan_out(fn: Callable[..., Any], tasks: Sequence[tuple], executor: Any = "local", workers: int | None = None, *,
            failed: Callable[[tuple, BaseException], Any], preload: Sequence[str] = (),
            after_serial: Callable[[], None] | None = None, what: str = "fan_out") -> FanOut:
    """Run ``fn(*task)`` for every task on ``executor``; iterate the returned :class:`FanOut`.

    Parameters
    ----------
    fn : callable
        A module-level function (workers import it by its qualified name).
    tasks : sequence of tuple
        Positional arguments of each call.
    executor : str or executor object
        See the module docstring.
    workers : int, optional
        Processes of the ``local`` pool or ``dask-local`` cluster (default :data:`DEFAULT_WORKERS`).
    failed : callable
        ``failed(task, exc)`` -> the result yielded for a task whose worker died.
    preload : sequence of str
        Modules the fork server imports once before forking workers.
    after_serial : callable, optional
        Called after in-process runs (e.g. to drop caches the workers would have dropped).
    what : str
        Names the caller in error messages (``"recheck"`` gives ``recheck executor: …``).

    Raises
    ------
    ExecutorError
        An unknown executor name or object, a bad ``workers`` (raised here, before any work), or an
        unreachable Dask scheduler (raised when iteration starts).
    MissingDependencyError
        A Dask executor without Dask distributed installed.
    """
    n = worker_count(workers, what)
    tasks = list(tasks)
    if isinstance(executor, str):
        name = executor.strip()
        if name == "serial" or (name == "local" and (len(tasks) <= 1 or n == 1)):
            return FanOut(lambda run: _serial(run, fn, tasks, after_serial))
        if name == "local":
            return FanOut(lambda run: _pool(run, fn, tasks, n, failed, preload))
        if name == "dask-local" or name.startswith(_DASK_SCHEMES):
            return FanOut(lambda run: _dask(run, fn, tasks, name, n, failed, what))
        raise ExecutorError(f"{what} executor: expected one of {', '.join(EXECUTORS)} or dask://HOST:PORT, got {executor!r}")
    if _is_dask_client(executor):
        return FanOut(lambda run: _dask_run(run, executor, fn, tasks, failed))
    if isinstance(executor, cf.Executor):
        def results(run: FanOut) -> Iterator[Any]:
            run.workers = getattr(executor, "_max_workers", None)
            yield from _futures(executor, fn, tasks, failed)
        return FanOut(results)
    raise ExecutorError(f"{what} executor: expected a name ({', '.join(EXECUTORS)}, dask://HOST:PORT), a "
                        f"distributed.Client or a concurrent.futures.Executor, got {type(executor).__name__}")


def executor_name(executor: Any) -> str:
    """The name to report: the string itself, else the executor object's class name."""
    return executor if isinstance(executor, str) else type(executor).__name__


def worker_count(workers: int | None, what: str = "fan_out") -> int:
    """``workers`` checked (a whole number >= 1), :data:`DEFAULT_WORKERS` when None."""
    if workers is None:
        return DEFAULT_WORKERS
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ExecutorError(f"{what} workers: expected a whole number >= 1, got {workers!r}")
    return workers


# --------------------------------------------------------------------------- the executors

def _serial(run: FanOut, fn: Callable[..., Any], tasks: list[tuple], after: Callable[[], None] | None) -> Iterator[Any]:
    if not tasks:
        return
    run.workers = 1
    try:
        for task in tasks:
            yield fn(*task)
    finally:
        if after is not None:
            after()


def _pool(run: FanOut, fn: Callable[..., Any], tasks: list[tuple], workers: int,
          failed: Callable[[tuple, BaseException], Any], preload: Sequence[str]) -> Iterator[Any]:
    run.workers = workers
    try:
        ctx = multiprocessing.get_context("forkserver")
        if preload:
            ctx.set_forkserver_preload(list(preload))
    except ValueError:  # no fork server on this platform
        ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=exit_with,
                                initargs=(os.getpid(),)) as pool:
        yield from _futures(pool, fn, tasks, failed)


def exit_with(pid: int, poll: float = PARENT_POLL) -> threading.Thread:
    """In a worker: exit this process as soon as process ``pid`` (the caller) no longer exists.

    A fork-server worker's parent is the fork server, not the caller, so neither the parent-death
    signal nor its pipes tell it that the caller was killed: a daemon thread polls ``pid``.
    """

    def watch() -> None:
        while alive(pid):
            time.sleep(poll)
        os._exit(1)  # no cleanup to run: the caller that would have used the results is gone

    thread = threading.Thread(target=watch, name=f"exit-with-{pid}", daemon=True)
    thread.start()
    return thread


def _futures(pool: cf.Executor, fn: Callable[..., Any], tasks: list[tuple],
             failed: Callable[[tuple, BaseException], Any]) -> Iterator[Any]:
    futures = {pool.submit(fn, *task): task for task in tasks}
    for future in cf.as_completed(futures):
        try:
            yield future.result()
        except Exception as exc:  # a worker died (the function reports its own data problems)
            yield failed(futures[future], exc)


def _dask(run: FanOut, fn: Callable[..., Any], tasks: list[tuple], name: str, workers: int,
          failed: Callable[[tuple, BaseException], Any], what: str) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingDependencyError(f"executor {name!r} needs Dask distributed; install it with "
                                     f"pip install '{DASK_EXTRA}'") from None
    if name == "dask-local":
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield from _dask_run(run, client, fn, tasks, failed)
        return
    address = "tcp://" + name[len("dask://"):] if name.startswith("dask://") else name
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ExecutorError(f"{what} executor: cannot reach the Dask scheduler at {address}: {exc}") from None
    with client:
        yield from _dask_run(run, client, fn, tasks, failed)


def _dask_run(run: FanOut, client: Any, fn: Callable[..., Any], tasks: list[tuple],
              failed: Callable[[tuple, BaseException], Any]) -> Iterator[Any]:
    from distributed import as_completed

    try:
        run.workers = len(client.scheduler_info().get("workers", {})) or None
    except Exception:  # informational only
        run.workers = None
    futures = [client.submit(fn, *task, pure=False) for task in tasks]
    by_key = {f.key: task for f, task in zip(futures, tasks)}
    for future in as_completed(futures):
        try:
            yield future.result()
        except Exception as exc:  # a worker died or the task was lost
            yield failed(by_key[future.key], exc)
        finally:
            future.release()


def _is_dask_client(obj: Any) -> bool:
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")
