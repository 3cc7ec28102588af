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


# ---------------------------------------------------------------- a killed caller leaves nothing behind

_CALLER = """
import sys, time
from workbench.loop.executors import fan_out
run = fan_out(time.sleep, [(60,), (60,)], sys.argv[1], 2, failed=lambda task, exc: None)
print("started", flush=True)
list(run)
"""


def _marked(marker: str) -> list[int]:
    """Processes whose environment carries ``marker`` (every descendant inherits it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if marker.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def _wait(predicate, seconds: float) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the processes")
@pytest.mark.parametrize("executor, least", [("local", 3), ("dask-local", 3)])
def test_kill_9_of_the_caller_stops_its_workers(executor, least, tmp_path):
    import signal
    import subprocess
    import sys
    import uuid

    if executor == "dask-local":
        pytest.importorskip("distributed")
    marker = f"WB_KILL_TEST={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.Popen([sys.executable, "-c", _CALLER, executor], env=env, stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        assert proc.stdout.readline().strip() == "started"
        # the caller, the pool's fork server (or the cluster's processes) and the two sleeping workers
        assert _wait(lambda: len(_marked(marker)) >= least, 60), _marked(marker)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _wait(lambda: not _marked(marker), 20), f"left behind: {_marked(marker)}"
