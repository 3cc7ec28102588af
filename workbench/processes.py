"""Whether a process is still alive, for work that must notice a killed caller or a killed run.

A process is named by its id and its start time (``/proc/<pid>/stat``), so a reused process id is
not taken for the process that died; a zombie (killed, not yet reaped) counts as dead.
"""
from __future__ import annotations

import os


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
