"""Whether a process is still alive, for work that must notice a killed caller or a killed run, and
an exclusive lock between processes.

A process is named by its id and its start time (``/proc/<pid>/stat``), so a reused process id is
not taken for the process that died; a zombie (killed, not yet reaped) counts as dead.
:class:`WriterLock` is ``flock(2)`` on a file: the kernel releases it when its holder exits or is
killed, so a ``kill -9`` never leaves it behind.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

try:  # POSIX; elsewhere writers are not serialised across processes
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]


def start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (None where /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[-1].split()
    except OSError:
        return None
    return fields[19].decode("ascii") if len(fields) > 19 else None


def token(pid: int | None = None) -> str:
    """``"<pid> <start time>"`` of this process (or ``pid``): what a lock file records."""
    pid = os.getpid() if pid is None else pid
    return f"{pid} {start_time(pid) or '-'}"


def alive(pid_or_token: int | str) -> bool:
    """Whether the process (an id, or a :func:`token`) still runs: not gone, not a zombie, and when
    a token names a start time, the same process rather than a new one with a reused id."""
    text = str(pid_or_token).split()
    try:
        pid = int(text[0])
    except (IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[-1].split()
    except OSError:
        return True  # no /proc: the signal check is all there is
    if fields and fields[0] == b"Z":
        return False
    return len(text) < 2 or text[1] == "-" or (len(fields) > 19 and fields[19].decode("ascii") == text[1])


class WriterLock:
    """One writer at a time across processes (and threads: each acquire opens the file anew).

    ``acquire`` waits up to ``timeout`` seconds, then raises ``error(message)`` naming the holder
    (the :func:`token` it wrote into the file); ``release`` lets the next writer in.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fh = None

    def acquire(self, timeout: float, error: type[Exception], what: str) -> None:
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    fh.close()
                    raise error(f"{what}: another writer holds it (process {holder}); waited {timeout:.0f} s, "
                                f"nothing was written: try again when it is done") from None
                time.sleep(0.05)
        fh.seek(0)
        fh.truncate()
        fh.write(token())
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
