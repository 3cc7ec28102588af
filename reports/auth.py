"""The served app's password login: Panel's basic-auth pages with a constant-time check and a
per-address limit on failed attempts.

Panel's own basic auth compares the password with ``==`` and lets a client try as often as it
likes; a workbench served to a team network holds postmortems, so :func:`provider` returns a
:class:`panel.auth.BasicAuthProvider` whose login handler

- compares with :func:`hmac.compare_digest` (any user name, the one password);
- counts failed attempts per client address (:class:`LoginThrottle`): after :data:`MAX_FAILURES`
  failures within :data:`WINDOW_S` seconds the address gets ``429 Too Many Requests`` with a
  ``Retry-After`` header for :data:`LOCKOUT_S` seconds, without the password being checked; a
  successful login clears its count;
- sets its cookies ``SameSite=Lax``, and ``Secure`` when the request came over HTTPS.

The cookies are signed with :func:`cookie_secret`: a key kept in the workspace (created on first
use, readable by its owner only) mixed with the password, so restarting ``workbench serve`` logs
nobody out while changing the password logs everyone out.

The address is Tornado's ``request.remote_ip``: behind a reverse proxy every client would share
the proxy's address (one client's failures would lock out everyone behind it). Given the proxies'
addresses (``trusted_proxies``, ``workbench serve --trusted-proxy``), :func:`client_address` takes
the right-most ``X-Forwarded-For`` entry that is not one of them: the address the outermost
trusted proxy saw. A client that is no trusted proxy cannot choose its key with that header.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, Callable, Iterable

from panel.auth import BasicAuthProvider, BasicLoginHandler

__all__ = ["KEY_FILE", "LOCKOUT_S", "MAX_FAILURES", "WINDOW_S", "LoginThrottle", "client_address", "cookie_secret",
           "provider", "proxy_networks"]

#: Failed logins from one address within :data:`WINDOW_S` that lock it out.
MAX_FAILURES = 5
#: Seconds over which failures count.
WINDOW_S = 300.0
#: Seconds an address stays locked out.
LOCKOUT_S = 300.0

#: The file, in the workspace folder, holding the key login cookies are signed with.
KEY_FILE = "serve-cookie.key"


def cookie_secret(root: str | os.PathLike[str], password: str) -> str:
    """The secret the served app signs its login cookies with: HMAC-SHA256 of ``password`` under
    the workspace's key (``root/KEY_FILE``: 32 random bytes, hex, written with mode 0600 the first
    time and then read). Stable across restarts and shared by every ``serve`` of one workspace;
    another password gives another secret, so cookies signed before a password change are void.

    Raises
    ------
    OSError
        The key cannot be read or created (the message names the file).
    """
    path = Path(root) / KEY_FILE
    if not path.exists():
        # Written aside and linked into place: of two servers starting at once, one key wins and
        # neither reads a half-written file.
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        raise OSError(f"{path}: expected the hex key `workbench serve` wrote (64 characters), found {len(key)}; "
                      f"delete the file to make a new one (everyone logs in again)")
    return hmac.new(key.encode("ascii"), password.encode("utf-8"), hashlib.sha256).hexdigest()


#: Trusted proxies as :func:`proxy_networks` gives them (``ipaddress`` networks).
Networks = tuple


def proxy_networks(proxies: Iterable[str]) -> Networks:
    """The trusted proxies (addresses or CIDR networks) as networks; ValueError names a bad one."""
    out = []
    for item in proxies:
        try:
            out.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {item!r}: expected an IP address or a CIDR network "
                             f"(10.0.0.5, 10.0.0.0/8, ::1)") from None
    return tuple(out)


def _trusted(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a server bound to "::" sees IPv4 peers as ::ffff:a.b.c.d
    return any(ip in net for net in networks)


def client_address(remote_ip: str | None, forwarded_for: Iterable[str], networks: Networks) -> str:
    """The address a login attempt is counted against.

    ``remote_ip`` when it is no trusted proxy (or none is configured); else the right-most entry
    of the ``X-Forwarded-For`` headers (``forwarded_for``, in the order received) that is not a
    trusted proxy, i.e. what the outermost trusted proxy saw. Entries left of it are the client's
    own claims and never used. Clipped to 64 characters (it is a dictionary key).
    """
    peer = remote_ip or "?"
    if not networks or not _trusted(peer, networks):
        return peer
    chain = [e.strip() for header in forwarded_for for e in header.split(",") if e.strip()]
    for entry in reversed(chain):
        if not _trusted(entry, networks):
            return entry[:64]
    return (chain[0] if chain else peer)[:64]


_LOCKED_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Too many attempts</title></head>
<body><p>Too many failed logins from this address. Try again in {seconds} seconds.</p></body></html>
"""


class LoginThrottle:
    """Failed logins per key (a client address), in memory, thread-safe.

    Parameters
    ----------
    max_failures, window, lockout : see the module constants
    clock : callable
        Seconds, monotonic (tests pass their own).
    """

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_S, lockout: float = LOCKOUT_S,
                 clock: Callable[[], float] = time.monotonic):
        self.max_failures, self.window, self.lockout, self.clock = max_failures, window, lockout, clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> float:
        """Seconds ``key`` must still wait (0 when it may try)."""
        with self._lock:
            until = self._locked_until.get(key)
            if until is None:
                return 0.0
            left = until - self.clock()
            if left <= 0:
                del self._locked_until[key]
                return 0.0
            return left

    def failed(self, key: str) -> None:
        """Count a failure; the one that reaches :attr:`max_failures` starts a lockout."""
        with self._lock:
            now = self.clock()
            times = self._failures[key]
            times.append(now)
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.max_failures:
                self._locked_until[key] = now + self.lockout
                times.clear()

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
            self._locked_until.pop(key, None)


def provider(password: str, *, login_template: str | None = None, logout_template: str | None = None,
             throttle: LoginThrottle | None = None, trusted_proxies: Iterable[str] = ()) -> BasicAuthProvider:
    """A basic-auth provider for :func:`panel.serve` (``auth_provider=``) checking ``password``;
    failed logins are counted per :func:`client_address` (``trusted_proxies``: addresses or CIDR
    networks of the reverse proxies in front)."""
    if not isinstance(password, str) or not password:
        raise ValueError("basic auth needs a non-empty password")
    limiter = throttle or LoginThrottle()
    networks = proxy_networks(trusted_proxies)
    secret = password.encode("utf-8")

    class Handler(BasicLoginHandler):
        def _validate(self, username: str, given: str) -> bool:
            return hmac.compare_digest(str(given).encode("utf-8"), secret)

        def set_cookie(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            # Over HTTPS the login cookies never travel in clear text, and no other site posts with them.
            if self.request.protocol == "https":
                kwargs.setdefault("secure", True)
            kwargs.setdefault("samesite", "Lax")
            super().set_cookie(name, value, *args, **kwargs)

        def post(self) -> None:
            key = client_address(self.request.remote_ip, self.request.headers.get_list("X-Forwarded-For"), networks)
            wait = limiter.retry_after(key)
            if wait > 0:
                seconds = int(wait) + 1
                self.set_status(429)
                self.set_header("Retry-After", str(seconds))
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.finish(_LOCKED_PAGE.format(seconds=html.escape(str(seconds))))
                return
            if self._validate(self.get_argument("username", ""), self.get_argument("password", "")):
                limiter.succeeded(key)
            else:
                limiter.failed(key)
            super().post()

    class Provider(BasicAuthProvider):
        @property
        def login_handler(self) -> Any:
            Handler._login_endpoint = self._login_endpoint
            Handler._login_template = self._login_template
            return Handler

    return Provider(login_template=login_template, logout_template=logout_template)
