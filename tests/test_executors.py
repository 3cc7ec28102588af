"""workbench.loop.executors.fan_out: every executor gives the same results; a dead worker is reported, not lost."""
from __future__ import annotations

import concurrent.futures as cf
import os

import pytest

from workbench.loop.executors import ExecutorError, fan_out

TASKS = [(2, i) for i in range(7)]


def _lost(task, exc):
    return ("lost", task, type(exc).__name__)


@pytest.mark.parametrize("executor, workers", [("serial", None), ("local", 2), ("local", 1)])
def test_named_executors_agree(executor, workers):
    run = fan_out(pow, TASKS, executor, workers, failed=_lost)
    assert sorted(run) == [2 ** i for i in range(7)]
    assert run.workers == (workers or 1)


def test_an_executor_object_is_used_as_given():
    with cf.ThreadPoolExecutor(max_workers=3) as pool:
        run = fan_out(pow, TASKS, pool, failed=_lost)
        assert sorted(run) == [2 ** i for i in range(7)] and run.workers == 3


def test_serial_runs_the_cleanup_even_when_the_caller_stops_early():
    cleaned = []
    run = iter(fan_out(pow, TASKS, "serial", failed=_lost, after_serial=lambda: cleaned.append(True)))
    assert next(run) == 1
    run.close()
    assert cleaned == [True]


def test_a_dead_worker_becomes_a_failed_result_and_the_run_goes_on():
    with cf.ProcessPoolExecutor(max_workers=1) as pool:
        results = list(fan_out(os._exit, [(3,), (4,)], pool, failed=_lost))
    assert sorted(r[1] for r in results) == [(3,), (4,)]
    assert all(r[0] == "lost" and r[2] == "BrokenProcessPool" for r in results)


@pytest.mark.parametrize("executor, workers, match", [
    ("threads", None, r"recheck executor: expected one of local, serial, dask-local or dask://HOST:PORT, got 'threads'"),
    (42, None, r"recheck executor: expected a name .* got int"),
    ("local", 0, r"recheck workers: expected a whole number >= 1, got 0"),
    ("local", True, r"recheck workers: expected a whole number >= 1, got True"),
])
def test_bad_executors_and_worker_counts_are_refused_before_any_work(executor, workers, match):
    ran = []
    with pytest.raises(ExecutorError, match=match):
        fan_out(ran.append, [(1,)], executor, workers, failed=_lost, what="recheck")
    assert ran == []
