"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temp folder, Unix socket only.

Tests use it through a fixture (see ``tests/test_store_postgres.py``)::

    with running_server() as server:        # pytest.skip(reason) when PostgreSQL is not installed
        with server.database() as url:      # a fresh, empty database per test
            KnowledgeBase(url)

The server lives in its own temp folder (on /dev/shm when that is a roomy tmpfs) and listens on a
socket there (``listen_addresses = ''``: no TCP port is opened, two test runs never collide),
trusts local connections, and runs with ``fsync`` off (the data is thrown away). Its time zone
is deliberately not UTC (``Pacific/Chatham``, UTC+12:45/+13:45): ``timestamptz`` values come back
in the session's zone, so code that forgets to convert to UTC fails here instead of on a team's
server. Binaries are found on ``PATH``, in ``/usr/local/bin`` and in
``/usr/lib/postgresql/<version>/bin`` (highest version); ``WORKBENCH_TEST_PG_BINDIR`` overrides.
``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user (or
``nobody``; ``WORKBENCH_TEST_PG_USER`` overrides).
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: What a server needs; ``psql`` and friends are not used.
BINARIES = ("initdb", "pg_ctl", "postgres")
#: The database superuser created by ``initdb`` (trust authentication, socket only).
SUPERUSER = "workbench"
#: Settings appended to ``postgresql.conf`` (``{socket}`` is the socket folder).
SETTINGS = """
listen_addresses = ''
unix_socket_directories = '{socket}'
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
max_wal_size = 64MB
min_wal_size = 32MB
timezone = 'Pacific/Chatham'
log_min_messages = warning
"""
# A Unix socket path is at most 107 bytes on Linux; the socket file adds ``/.s.PGSQL.5432``.
_SOCKET_ROOM = 80
_DEBIAN = Path("/usr/lib/postgresql")
#: Free space /dev/shm needs before the cluster goes there (cluster ~40 MB, WAL capped at 64 MB).
_SHM_NEEDED = 512 * 2**20


class Unavailable(Exception):
    """No PostgreSQL server can be started here (the reason says why); tests skip with it."""


class ServerError(Exception):
    """PostgreSQL is installed but the server failed to initialise, start or stop (log attached)."""


def find_bindir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None when there is none."""
    override = os.environ.get("WORKBENCH_TEST_PG_BINDIR")
    if override:
        return Path(override) if _complete(Path(override)) else None
    candidates = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    candidates.append(Path("/usr/local/bin"))
    if _DEBIAN.is_dir():
        versions = [p for p in _DEBIAN.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: tuple(map(int, p.name.split("."))),
                                                 reverse=True)]
    for folder in candidates:
        if _complete(folder):
            return folder
    return None


def _complete(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in BINARIES)


def _run_as() -> dict[str, Any]:
    """``subprocess`` arguments that drop root for the server's processes (empty when not root)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    names = [os.environ["WORKBENCH_TEST_PG_USER"]] if os.environ.get("WORKBENCH_TEST_PG_USER") else ["postgres",
                                                                                                   "nobody"]
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise Unavailable(f"running as root and none of the users {', '.join(names)} exists to run PostgreSQL as "
                      f"(initdb refuses root); set WORKBENCH_TEST_PG_USER to an unprivileged user")


def _base_folder(run_as: dict[str, Any]) -> str:
    """Where the cluster goes: a roomy tmpfs when there is one, else the temp folder.

    On a disk, CREATE DATABASE costs about 0.25 s even with fsync off; on tmpfs about 0.015 s, and
    the tests create one database each. Docker's default /dev/shm (64 MB) is too small: skipped.
    """
    shm = "/dev/shm"
    try:
        stat = os.statvfs(shm)
        if stat.f_bavail * stat.f_frsize >= _SHM_NEEDED and os.access(shm, os.W_OK | os.X_OK):
            return shm
    except OSError:
        pass
    base = tempfile.gettempdir()
    if run_as or len(base) > _SOCKET_ROOM - 20:
        base = "/tmp"  # reachable by the server's user, short enough for a socket path
    return base


class Server:
    """A running throwaway server; :meth:`start` makes one, :meth:`stop` removes every trace.

    Attributes
    ----------
    bindir : pathlib.Path
        Where the binaries came from.
    root : pathlib.Path
        Temp folder holding ``data/`` (the cluster), ``s/`` (the socket) and ``server.log``.
    version : str
        ``initdb --version`` output, e.g. ``initdb (PostgreSQL) 15.18``.
    start_seconds : float
        Wall time of initdb plus start, until the server accepted connections.
    """

    def __init__(self, bindir: Path, root: Path, run_as: dict[str, Any], version: str):
        self.bindir, self.root, self.version = bindir, root, version
        self.socket = root / "s"
        self.data = root / "data"
        self.log = root / "server.log"
        self.start_seconds = 0.0
        self._run_as = run_as
        self._running = False

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def start(cls, bindir: Path | None = None) -> "Server":
        """initdb a new cluster in a temp folder and start it; returns once it accepts connections.

        Raises
        ------
        Unavailable
            No binaries, no psycopg, or root without an unprivileged user (tests skip).
        ServerError
            initdb or pg_ctl failed; the message holds their output and the server log.
        """
        try:
            import psycopg  # noqa: F401  (the store's driver: without it nothing can connect)
        except ImportError:
            raise Unavailable("psycopg is not installed (pip install 'postmortem-workbench[postgres]')") from None
        bindir = bindir or find_bindir()
        if bindir is None and os.environ.get("WORKBENCH_TEST_PG_BINDIR"):
            raise Unavailable(f"WORKBENCH_TEST_PG_BINDIR={os.environ['WORKBENCH_TEST_PG_BINDIR']} does not hold "
                              f"{', '.join(BINARIES)}")
        if bindir is None:
            raise Unavailable("no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH, in /usr/local/bin "
                              "or /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
        run_as = _run_as()
        begun = time.monotonic()
        server = cls(bindir, Path(tempfile.mkdtemp(prefix="wb-pg-", dir=_base_folder(run_as))), run_as, version="")
        try:
            if run_as:
                os.chown(server.root, run_as["user"], run_as["group"])
            server.version = server._tool("initdb", "--version").strip()
            server._tool("initdb", "-D", str(server.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                         "--locale", "C", "--no-sync", "--no-instructions")
            server.socket.mkdir()
            if run_as:
                os.chown(server.socket, run_as["user"], run_as["group"])
            with open(server.data / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write(SETTINGS.format(socket=server.socket))
            server._tool("pg_ctl", "start", "-w", "-t", "60", "-D", str(server.data), "-l", str(server.log))
            server._running = True
            atexit.register(server.stop)  # the fixture stops it; this covers an interrupted session
        except BaseException:
            server.stop()
            raise
        server.start_seconds = time.monotonic() - begun
        return server

    def stop(self) -> None:
        """Stop the server (if running) and delete its folder; safe to call twice."""
        atexit.unregister(self.stop)
        if self._running:
            self._running = False
            try:
                self._tool("pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", str(self.data))
            except (ServerError, subprocess.TimeoutExpired):
                self._tool("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data), check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _tool(self, name: str, *args: str, check: bool = True) -> str:
        # A clean environment: PGDATA, PGHOST ... from the caller's shell must not leak in.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "HOME": str(self.root)}
        done = subprocess.run([str(self.bindir / name), *args], cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120, **self._run_as)
        if check and done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise ServerError(f"{name} {' '.join(args)} failed with exit code {done.returncode}:\n"
                              f"{done.stdout}{done.stderr}\n--- server log ---\n{log}")
        return done.stdout

    # ---------------------------------------------------------------- databases

    def url(self, database: str = "postgres") -> str:
        """The store URL of ``database`` (``postgresql+psycopg://workbench@/db?host=<socket folder>``)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket}"

    def connect(self, database: str = "postgres", **kwargs: Any) -> Any:
        """A plain psycopg connection (autocommit unless told otherwise), e.g. to look under the store."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        return psycopg.connect(host=str(self.socket), user=SUPERUSER, dbname=database, **kwargs)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (from ``template0``) and return its name."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name: expected [a-z_][a-z0-9_]*, got {name!r}")
        with self.connect() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing connections a failed test left open."""
        with self.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh empty database for one test: yields its URL, drops it afterwards."""
        name = self.create_database()
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)


@contextmanager
def running_server() -> Iterator[Server]:
    """A started :class:`Server`, stopped at the end; calls ``pytest.skip`` when PostgreSQL is unavailable.

    A server that is installed but fails to start is an error, not a skip: it would otherwise hide
    a broken CI image.
    """
    import pytest

    try:
        server = Server.start()
    except Unavailable as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield server
    finally:
        server.stop()
