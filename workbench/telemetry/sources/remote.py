"""HTTP for the live sources (Prometheus-compatible servers, Alertmanager): one small client.

Standard library only (``urllib``, as :mod:`workbench.outbox`): a live source makes a handful of
GET requests per window, so a heavier client would buy nothing.

Connection options (keys of a ``[sources.<name>]`` table, or ``-o key=value`` on the command line)
------------------------------------------------------------------------------------------------
``timeout``
    Seconds per request (default 30).
``retries``, ``backoff``
    A 5xx or 429 answer, a refused or reset connection and a timeout are retried ``retries``
    times (default 3), waiting ``backoff * 2**attempt`` seconds (default 0.5, at most 10 s; a
    ``Retry-After`` of at most 30 s is honoured). A 4xx answer is never retried: the request
    itself is wrong.
``bearer_token_env`` / ``bearer_token_file``
    ``Authorization: Bearer <token>`` with the token read from that environment variable or file.
``basic_auth_user`` (or ``basic_auth_user_env``) and ``basic_auth_password_env`` / ``basic_auth_password_file``
    HTTP basic auth. Bearer and basic auth are exclusive.
``ca_file``
    A PEM file of the CA(s) that signed the server's certificate (an in-house CA); the server's
    certificate and host name are always verified.
``client_cert_file``, ``client_key_file``
    A client certificate for servers that require mutual TLS.
``tenant``
    Sent as ``X-Scope-OrgID`` (the tenant header of Mimir, Cortex and Loki-style gateways).

Secrets are never read from ``workbench.toml`` or the command line: a ``bearer_token``,
``password`` or ``basic_auth_password`` key is refused, and so is a URL with ``user:password@``.
Errors name the server, the request (path and query) and the server's own message; they never
contain a credential. Redirects are not followed (they could carry the credential to another
host): the error names where the server points, to be configured instead.
"""
from __future__ import annotations

import base64
import difflib
import http.client
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ...errors import SourceError

#: Option keys this module consumes (a source adds its own).
OPTION_KEYS = ("timeout", "retries", "backoff", "bearer_token_env", "bearer_token_file", "basic_auth_user",
               "basic_auth_user_env", "basic_auth_password_env", "basic_auth_password_file", "ca_file",
               "client_cert_file", "client_key_file", "tenant")
#: Keys that would put a secret in clear text in workbench.toml or the shell history.
SECRET_KEYS = ("bearer_token", "token", "password", "basic_auth_password", "secret")
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
_MAX_DELAY = 10.0
_MAX_RETRY_AFTER = 30.0
_ERROR_TEXT = 400
_QUERY_TEXT = 300


@dataclass
class HttpClient:
    """GET/POST JSON against one base URL with auth, TLS, timeouts and retries.

    Build it with :func:`client`. ``requests`` counts the HTTP requests made (retries included),
    ``sleep`` is the wait function (tests make retries instant).

    Attributes
    ----------
    where : str
        The source URL as the user wrote it without credentials (``prometheus:http://host:9090``);
        it starts every error message.
    base_url : str
        ``scheme://host[:port][/prefix]`` without a trailing slash; API paths are appended.
    """

    where: str
    base_url: str
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    context: ssl.SSLContext | None = field(default=None, repr=False)
    requests: int = 0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def get_json(self, path: str, params: Iterable[tuple[str, str]] = ()) -> Any:
        """GET ``base_url + path`` with query ``params`` and return the decoded JSON body."""
        params = list(params)
        query = urllib.parse.urlencode(params)
        return self._request("GET", path, query, _describe(path, params), None)

    def post_json(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``base_url + path`` and return the decoded JSON answer (or None)."""
        data = json.dumps(body).encode("utf-8")
        return self._request("POST", path, "", f"POST {path}", data)

    # ---------------------------------------------------------------- internals
    def _request(self, method: str, path: str, query: str, what: str, data: bytes | None) -> Any:
        url = self.base_url + path + (f"?{query}" if query else "")
        headers = {"Accept": "application/json", "User-Agent": "postmortem-workbench", **self.headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=self.context))
        attempts = self.retries + 1
        last = ""
        delay = 0.0  # set by each attempt (backoff, or the server's Retry-After) for the next one
        for attempt in range(attempts):
            if attempt:
                self.sleep(delay)
            self.requests += 1
            delay = min(self.backoff * 2 ** attempt, _MAX_DELAY)
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with opener.open(request, timeout=self.timeout) as response:
                    body = response.read()
            except urllib.error.HTTPError as exc:
                text = _read_error(exc)
                if 300 <= exc.code < 400:
                    target = exc.headers.get("Location", "?") if exc.headers else "?"
                    raise SourceError(f"{self.where}: {what}: HTTP {exc.code}, the server redirects to {target}; "
                                      f"configure that URL (redirects are not followed)") from None
                last = f"HTTP {exc.code}{_server_message(text)}"
                if exc.code >= 500 or exc.code == 429:
                    delay = _retry_after(exc, delay)
                    continue
                hint = ""
                if exc.code in (401, 403):
                    hint = (" (check the credentials: bearer_token_env/_file or basic_auth_user with "
                            "basic_auth_password_env/_file)")
                raise SourceError(f"{self.where}: {what}: {last}{hint}") from None
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, ssl.SSLCertVerificationError):
                    raise SourceError(f"{self.where}: {what}: TLS certificate verification failed "
                                      f"({reason.verify_message}); give the CA that signed the server's "
                                      f"certificate with ca_file") from None
                if isinstance(reason, ssl.SSLError):
                    raise SourceError(f"{self.where}: {what}: TLS error: {reason}") from None
                last = f"cannot connect ({reason})"
                continue
            except (socket.timeout, TimeoutError):
                last = f"no answer within {self.timeout:g} s (timeout)"
                continue
            except (OSError, http.client.HTTPException) as exc:  # resets, truncated answers
                last = f"{type(exc).__name__}: {exc}"
                continue
            if not body:
                return None
            try:
                return json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise SourceError(f"{self.where}: {what}: the answer is not JSON "
                                  f"({body[:120].decode('utf-8', 'replace')!r}...); is this the right URL?") from None
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        raise SourceError(f"{self.where}: {what}: {last}{tries}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


def refuse_unknown(options: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """A SourceError naming the options left over (with the closest known one), when any is."""
    if options:
        known = list(known)
        unknown = sorted(map(str, options))
        hint = difflib.get_close_matches(unknown[0], known, n=1)
        raise SourceError(f"{where}: unknown option(s) {', '.join(unknown)}"
                          f"{f' (did you mean {hint[0]!r}?)' if hint else ''}; known: {', '.join(known)}")


def client(scheme: str, location: str, options: dict[str, Any], environ: Mapping[str, str] | None = None,
           default_port: int | None = None) -> HttpClient:
    """An :class:`HttpClient` for ``scheme:location``; consumes the connection keys of ``options``.

    Parameters
    ----------
    scheme : str
        The source's scheme, for messages.
    location : str
        ``http(s)://host[:port][/path-prefix]``.
    options : dict
        Source options; the keys of :data:`OPTION_KEYS` are removed from it (the caller checks
        the rest).
    environ : mapping, optional
        Where ``*_env`` variables are read (default ``os.environ``).

    Raises
    ------
    SourceError
        A malformed URL, a secret given in clear, an unset variable, an unreadable file.
    """
    environ = os.environ if environ is None else environ
    where_scheme = f"{scheme}:"
    for key in SECRET_KEYS:
        if key in options:
            raise SourceError(f"{where_scheme}{_safe(location)}: option {key!r}: secrets are never taken from "
                              f"workbench.toml or the command line; name an environment variable "
                              f"(bearer_token_env, basic_auth_password_env) or a file (bearer_token_file, "
                              f"basic_auth_password_file)")
    parts = urllib.parse.urlsplit(location.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{where_scheme}{_safe(location)}: expected an http:// or https:// URL with a host, "
                          f"e.g. {scheme}:http://localhost:{default_port or 9090}")
    if parts.username or parts.password:
        raise SourceError(f"{where_scheme}{_safe(location)}: credentials in the URL are refused (they end up in "
                          f"shell history and logs); use basic_auth_user with basic_auth_password_env")
    if parts.query or parts.fragment:
        raise SourceError(f"{where_scheme}{_safe(location)}: the URL must not carry a query string or fragment")
    base = urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))
    where = f"{scheme}:{base}"
    c = HttpClient(where=where, base_url=base)
    c.timeout = _number(options.pop("timeout", DEFAULT_TIMEOUT), "timeout", where, 0.001, 3600)
    c.retries = int(_number(options.pop("retries", DEFAULT_RETRIES), "retries", where, 0, 20, integer=True))
    c.backoff = _number(options.pop("backoff", DEFAULT_BACKOFF), "backoff", where, 0, 60)
    c.headers = _auth_headers(options, where, environ)
    tenant = options.pop("tenant", None)
    if tenant is not None:
        if not isinstance(tenant, str) or not tenant.strip() or any(ch in tenant for ch in "\r\n"):
            raise SourceError(f"{where}: tenant: expected a tenant id (one line of text), got {tenant!r}")
        c.headers["X-Scope-OrgID"] = tenant.strip()
    c.context = _ssl_context(options, where)
    return c


def _auth_headers(options: dict[str, Any], where: str, environ: Mapping[str, str]) -> dict[str, str]:
    token = _secret(options, "bearer_token", where, environ)
    user = options.pop("basic_auth_user", None)
    user_env = options.pop("basic_auth_user_env", None)
    if user_env is not None:
        user = _env(user_env, "basic_auth_user_env", where, environ)
    password = _secret(options, "basic_auth_password", where, environ)
    if token is not None and (user is not None or password is not None):
        raise SourceError(f"{where}: give either a bearer token or basic auth, not both")
    if token is not None:
        return {"Authorization": f"Bearer {token}"}
    if (user is None) != (password is None):
        missing = "basic_auth_password_env or basic_auth_password_file" if password is None else "basic_auth_user"
        raise SourceError(f"{where}: basic auth needs a user and a password; {missing} is missing")
    if user is not None:
        if not isinstance(user, str) or ":" in user or not user:
            raise SourceError(f"{where}: basic_auth_user: expected a user name without ':', got {user!r}")
        pair = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
        return {"Authorization": f"Basic {pair}"}
    return {}


def _secret(options: dict[str, Any], key: str, where: str, environ: Mapping[str, str]) -> str | None:
    env, path = options.pop(f"{key}_env", None), options.pop(f"{key}_file", None)
    if env is not None and path is not None:
        raise SourceError(f"{where}: give {key}_env or {key}_file, not both")
    if env is not None:
        return _env(env, f"{key}_env", where, environ)
    if path is not None:
        file = Path(str(path)).expanduser()
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SourceError(f"{where}: {key}_file: cannot read {file} ({exc.strerror or exc})") from None
        if not value:
            raise SourceError(f"{where}: {key}_file: {file} is empty")
        _check_header_text(value, f"{key}_file {file}", where)
        return value
    return None


def _env(name: Any, key: str, where: str, environ: Mapping[str, str]) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SourceError(f"{where}: {key}: expected the name of an environment variable, got {name!r}")
    value = environ.get(name.strip())
    if not value:
        raise SourceError(f"{where}: {key}: environment variable {name.strip()} is not set (or empty)")
    _check_header_text(value, f"environment variable {name.strip()}", where)
    return value.strip()


def _check_header_text(value: str, what: str, where: str) -> None:
    if any(ord(ch) < 32 and ch != "\t" for ch in value.strip()):
        raise SourceError(f"{where}: {what} holds control characters (a credential is one line of text)")


def _ssl_context(options: dict[str, Any], where: str) -> ssl.SSLContext | None:
    ca = options.pop("ca_file", None)
    cert, key = options.pop("client_cert_file", None), options.pop("client_key_file", None)
    if ca is None and cert is None and key is None:
        return None
    try:
        context = ssl.create_default_context(cafile=str(Path(str(ca)).expanduser()) if ca is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise SourceError(f"{where}: ca_file: cannot load {ca} ({getattr(exc, 'strerror', None) or exc})") from None
    if (cert is None) != (key is None):
        raise SourceError(f"{where}: client_cert_file and client_key_file go together")
    if cert is not None:
        try:
            context.load_cert_chain(str(Path(str(cert)).expanduser()), str(Path(str(key)).expanduser()))
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(f"{where}: cannot load the client certificate {cert} ({exc})") from None
    return context


def _number(value: Any, key: str, where: str, low: float, high: float, integer: bool = False) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not low <= number <= high or (integer and number != int(number)):
        kind = "a whole number" if integer else "a number"
        raise SourceError(f"{where}: {key}: expected {kind} in [{low:g}, {high:g}], got {value!r}")
    return number


def _read_error(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read(8192).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""


def _server_message(text: str) -> str:
    """``": <errorType>: <error>"`` from a Prometheus-style JSON error body, else its first words."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("error"):
        kind = f"{data['errorType']}: " if data.get("errorType") else ""
        message = f"{kind}{data['error']}"
    elif isinstance(data, dict) and data.get("message"):  # Alertmanager's v2 errors
        message = str(data["message"])
    else:
        message = text
    message = " ".join(str(message).split())
    if len(message) > _ERROR_TEXT:
        message = message[:_ERROR_TEXT - 3] + "..."
    return f": {message}" if message else ""


def _retry_after(exc: urllib.error.HTTPError, default: float) -> float:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        seconds = None
    return seconds if seconds is not None and 0 <= seconds <= _MAX_RETRY_AFTER else default


def _describe(path: str, params: list[tuple[str, str]]) -> str:
    """``GET /api/v1/query_range query='rate(x[5m])' start=... end=... step=...`` for messages."""
    parts = []
    for key, value in params:
        text = str(value)
        if len(text) > _QUERY_TEXT:
            text = text[:_QUERY_TEXT - 3] + "..."
        parts.append(f"{key}={text!r}" if key in ("query", "match[]", "filter") else f"{key}={text}")
    return f"GET {path}" + (f" {' '.join(parts)}" if parts else "")


def _safe(location: str) -> str:
    """``location`` with any ``user:password@`` removed (for the error that refuses it)."""
    parts = urllib.parse.urlsplit(location.strip())
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit((parts.scheme, "***@" + netloc, parts.path, "", ""))
    return location.strip()
