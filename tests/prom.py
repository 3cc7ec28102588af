"""Throwaway Prometheus and Alertmanager servers for the tests (Debian's ``prometheus`` 2.42,
``promtool`` and ``prometheus-alertmanager`` 0.25; skipped with the reason when absent).

Prometheus gets ~6 h of the sample's metrics (:data:`BACKFILL_START` to :data:`BACKFILL_END`, the
bad deploy INC-20261102-001 inside) plus a few series the sample has no use for but the source
must handle, backfilled with ``promtool tsdb create-blocks-from openmetrics`` into its own data
folder before it starts (blocks moved into a running server appear only ~60 s later)::

    with running_prometheus() as prom:      # pytest.skip(reason) without the binaries
        prom.url                             # http://127.0.0.1:<free port>
    with running_alertmanager() as am:
        am.post_alerts([...])                # POST /api/v2/alerts

The backfill text follows promtool's rules (measured, see ../shared/STACK.md): timestamps in
SECONDS (milliseconds are silently read as the year 58,000), the file ends with ``# EOF``, names
match ``[a-zA-Z_:][a-zA-Z0-9_:]*``, each series in time order (out-of-order samples are dropped
with exit code 0). Both servers listen on a free loopback port, keep everything in a temp folder
and are stopped by PID. Prometheus runs with ``--storage.tsdb.retention.time=100y`` (retention
counts from the newest block: the sample's 2026 data would vanish at the first reload
otherwise); Alertmanager with ``--cluster.listen-address=`` (with gossip on it stays silent for a
minute) and ``--web.external-url``.
"""
from __future__ import annotations

import atexit
import json
import math
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from conftest import free_port

REPO = Path(__file__).resolve().parents[1]
SAMPLE_METRICS = REPO / "data" / "sample" / "metrics.parquet"
BACKFILL_START = pd.Timestamp("2026-11-02T10:00:00Z")
BACKFILL_END = pd.Timestamp("2026-11-02T16:00:00Z")
#: Labels with hostile values (quotes, backslash, newline, markup): they must come back as data.
HOSTILE_LABELS = {"path": "<script>window.__pwned=1</script>", "note": "quote \" back\\slash\nnew line ' ; DROP"}
#: The synthetic histogram: per minute 100 observations, cumulative per bucket (see expected_quantiles).
HISTOGRAM_PER_MINUTE = {"0.1": 50, "0.5": 90, "1": 99, "+Inf": 100}
#: Cart's gauge ``shop_gappy`` has no samples in this half-open range.
GAP = (pd.Timestamp("2026-11-02T12:00:00Z"), pd.Timestamp("2026-11-02T12:30:00Z"))
#: Password of the ``alice`` user of the secured server (bcrypt cost 4 below keeps requests fast).
PASSWORD = "s3cret-pw"
_BCRYPT = "$2b$04$u4mKiU6Gc.YFmwUrZMvE.u6wsj3z3QPBwXb/bBoSofmpPFvMIxi2K"
_NAME = re.compile(r"[^a-zA-Z0-9_:]")


class Unavailable(Exception):
    """The binaries are not installed; tests skip with the reason."""


def sample_window(start: pd.Timestamp = BACKFILL_START, end: pd.Timestamp = BACKFILL_END) -> pd.DataFrame:
    """The sample's metrics in ``[start, end)`` (unified columns)."""
    frame = pd.read_parquet(SAMPLE_METRICS, filters=[("timestamp", ">=", start), ("timestamp", "<", end)])
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
    return frame.reset_index(drop=True)


def metric_name(name: str) -> str:
    """``name`` made a valid Prometheus metric name (``.`` and ``-`` become ``_``)."""
    text = _NAME.sub("_", name)
    return text if re.match(r"[a-zA-Z_:]", text) else "_" + text


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics_lines(name: str, labels: dict[str, str], times: Iterable[pd.Timestamp], values: Iterable[float]) -> Iterator[str]:
    """OpenMetrics sample lines of one series (seconds timestamps, escaped label values)."""
    body = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(labels.items()))
    head = f"{metric_name(name)}{{{body}}}"
    for ts, value in zip(times, values):
        seconds = pd.Timestamp(ts).value // 1_000_000_000
        yield f"{head} {float(value)!r} {seconds}"


def backfill_text(frame: pd.DataFrame, extras: bool = True) -> str:
    """The sample's rows (plus, with ``extras``, the extra series) as one OpenMetrics text ending in ``# EOF``.

    Extra series (in :data:`BACKFILL_START` .. :data:`BACKFILL_END`): ``shop_requests_total`` per service (a counter: the running sum of
    ``request_rate`` × 60 s, so its rate is request_rate averaged), ``shop_latency_seconds_bucket``
    of checkout (:data:`HISTOGRAM_PER_MINUTE` per minute), ``shop_hostile`` (frontend,
    :data:`HOSTILE_LABELS`) and ``shop_gappy`` (cart, nothing in :data:`GAP`).
    """
    lines: list[str] = []
    frame = frame.sort_values(["name", "service", "timestamp"], kind="stable")
    for (name, service, environment), g in frame.groupby(["name", "service", "environment"], sort=False):
        lines += openmetrics_lines(name, {"service": service, "environment": environment}, g["timestamp"], g["value"])
    if not extras:
        return "\n".join(lines) + "\n# EOF\n"
    rates = frame[frame["name"] == "request_rate"]
    for (service, environment), g in rates.groupby(["service", "environment"]):
        lines += openmetrics_lines("shop_requests_total", {"service": service, "environment": environment},
                                   g["timestamp"], np.cumsum(g["value"].to_numpy() * 60.0))
    minutes = pd.date_range(BACKFILL_START, BACKFILL_END, freq="1min", inclusive="left")
    for le, per_minute in HISTOGRAM_PER_MINUTE.items():
        lines += openmetrics_lines("shop_latency_seconds_bucket", {"service": "checkout", "environment": "production",
                                                                   "le": le},
                                   minutes, per_minute * np.arange(1, len(minutes) + 1, dtype=float))
    lines += openmetrics_lines("shop_hostile", {"service": "frontend", "environment": "production", **HOSTILE_LABELS},
                               minutes, np.arange(len(minutes), dtype=float) / 4)
    kept = minutes[(minutes < GAP[0]) | (minutes >= GAP[1])]
    lines += openmetrics_lines("shop_gappy", {"service": "cart", "environment": "production"}, kept,
                               np.ones(len(kept)))
    return "\n".join(lines) + "\n# EOF\n"


def expected_quantiles(q: float) -> float:
    """``histogram_quantile(q)`` of the synthetic histogram (linear inside the bucket holding the rank)."""
    bounds = [(float(le), count) for le, count in HISTOGRAM_PER_MINUTE.items() if le != "+Inf"]
    rank = q * HISTOGRAM_PER_MINUTE["+Inf"]
    lower, below = 0.0, 0
    for upper, count in bounds:
        if rank <= count:
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


# --------------------------------------------------------------------------- servers


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Unavailable(f"{name} is not installed (Debian: apt-get install --no-install-recommends prometheus "
                          f"prometheus-alertmanager)")
    return path


@dataclass
class Server:
    """A started server process in its own temp folder.

    Attributes
    ----------
    url : str
        ``http(s)://127.0.0.1:<port>``.
    root : pathlib.Path
        Its folder (data, configuration, ``server.log``).
    start_seconds : float
        Wall time until ``/-/ready`` answered.
    """

    name: str
    url: str
    root: Path
    process: subprocess.Popen | None = None
    start_seconds: float = 0.0
    ca_file: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop the process by its PID (TERM, then KILL after 10 s) and delete the folder; safe twice."""
        atexit.unregister(self.stop)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def request(self, path: str, data: Any = None, method: str | None = None) -> Any:
        """A JSON request to the server (with its auth and CA), for test set-up."""
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.url + path, data=body, method=method, headers={
            **self.headers, **({"Content-Type": "application/json"} if body is not None else {})})
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            text = resp.read()
            kind = resp.headers.get("Content-Type", "")
        return json.loads(text) if text and "json" in kind else text.decode()

    def _start(self, argv: list[str], timeout: float = 30.0) -> None:
        begun = time.monotonic()
        log = open(self.root / "server.log", "wb")
        self.process = subprocess.Popen(argv, cwd=self.root, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        atexit.register(self.stop)  # the fixture stops it; this covers an interrupted session
        while time.monotonic() - begun < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}:\n{self.log()}")
            try:
                self.request("/-/ready")
                self.start_seconds = time.monotonic() - begun
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s:\n{self.log()}")


def start_prometheus(blocks: Path | None = None, secured: bool = False) -> Server:
    """Start Prometheus on a free loopback port with ``blocks`` copied into its data folder.

    ``secured``: HTTPS with a self-signed certificate (``Server.ca_file``) and basic auth (user
    ``alice``, :data:`PASSWORD`) through ``--web.config.file``; needs ``openssl``.
    """
    exe = binary("prometheus")
    root = Path(tempfile.mkdtemp(prefix="wb-prom-"))
    data = root / "data"
    data.mkdir()
    if blocks is not None:
        for block in blocks.iterdir():
            if block.is_dir():
                shutil.copytree(block, data / block.name)
    (root / "prom.yml").write_text("global: {scrape_interval: 1m}\nscrape_configs: []\n")
    port = free_port()
    argv = [exe, f"--config.file={root / 'prom.yml'}", f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y",
            "--log.level=warn"]
    server = Server("prometheus", f"http://127.0.0.1:{port}", root)
    if secured:
        from conftest import self_signed_certificate

        cert, key = self_signed_certificate(root)
        (root / "web.yml").write_text(
            f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
            f"basic_auth_users:\n  alice: '{_BCRYPT}'\n")
        argv.append(f"--web.config.file={root / 'web.yml'}")
        server.url = f"https://127.0.0.1:{port}"
        server.ca_file = cert
        import base64

        server.headers = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
    try:
        server._start(argv)
    except BaseException:
        server.stop()
        raise
    return server


def backfill(text: str, folder: Path) -> Path:
    """Write ``text`` to ``folder`` and turn it into TSDB blocks with promtool; return the blocks folder."""
    exe = binary("promtool")
    source, blocks = folder / "backfill.om", folder / "blocks"
    source.write_text(text, encoding="utf-8")
    done = subprocess.run([exe, "tsdb", "create-blocks-from", "openmetrics", str(source), str(blocks)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"promtool failed ({done.returncode}): {done.stdout}{done.stderr}")
    return blocks


def start_alertmanager(config: str | None = None) -> Server:
    """Start Alertmanager on a free loopback port (no gossip); ``config`` is its YAML (default: one
    receiver that sends nothing; tests/test_inbound_http.py gives webhooks to the served app)."""
    exe = binary("prometheus-alertmanager")
    root = Path(tempfile.mkdtemp(prefix="wb-am-"))
    (root / "am.yml").write_text(config or "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    port = free_port()
    server = Server("alertmanager", f"http://127.0.0.1:{port}", root)
    argv = [exe, f"--config.file={root / 'am.yml'}", f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
            f"--web.external-url=http://127.0.0.1:{port}", "--log.level=warn"]
    try:
        server._start(argv)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def running_prometheus(secured: bool = False) -> Iterator[Server]:
    """A Prometheus holding the backfill, stopped at the end; ``pytest.skip`` when unavailable."""
    import pytest

    try:
        binary("prometheus")
        binary("promtool")
        with tempfile.TemporaryDirectory(prefix="wb-backfill-") as tmp:
            blocks = backfill(backfill_text(sample_window()), Path(tmp))
            server = start_prometheus(blocks, secured=secured)
    except Unavailable as exc:
        pytest.skip(f"Prometheus tests skipped: {exc}")
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running_alertmanager() -> Iterator[Server]:
    """A started Alertmanager, stopped at the end; ``pytest.skip`` when unavailable."""
    import pytest

    try:
        server = start_alertmanager()
    except Unavailable as exc:
        pytest.skip(f"Alertmanager tests skipped: {exc}")
    try:
        yield server
    finally:
        server.stop()


def rate_expected(values: np.ndarray, window_steps: int) -> np.ndarray:
    """``rate`` of the counter built from per-minute ``values`` (× 60 s), over ``window_steps`` minutes,
    at every point with a full window: the mean of the last ``window_steps`` values."""
    out = np.full(len(values), math.nan)
    for i in range(window_steps, len(values)):
        out[i] = values[i - window_steps + 1:i + 1].sum() * 60.0 / (window_steps * 60.0)
    return out


@dataclass
class Gateway:
    """An authenticating reverse proxy in front of a real server, as teams run one (oauth2-proxy, a
    Mimir/Grafana Cloud gateway): it wants ``Authorization: Bearer <token>``, records the
    ``X-Scope-OrgID`` it sees and answers 503 to the first ``fail_first`` requests (an overloaded
    gateway), waits ``delay`` seconds before answering (a slow one), then forwards each GET to
    ``upstream`` unchanged.
    """

    upstream: str
    token: str
    fail_first: int = 0
    delay: float = 0.0
    url: str = ""
    seen_tenants: list[str] = field(default_factory=list)
    requests: int = 0


@contextmanager
def gateway(upstream: str, token: str, fail_first: int = 0) -> Iterator[Gateway]:
    """Run a :class:`Gateway` on a free loopback port for the ``with`` block."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = Gateway(upstream, token, fail_first)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

        def _answer(self, code: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.requests += 1
            if state.delay:
                time.sleep(state.delay)
            state.seen_tenants.append(self.headers.get("X-Scope-OrgID", ""))
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                return self._answer(401, b'{"status":"error","errorType":"unauthorized","error":"bad or missing token"}')
            if state.requests <= state.fail_first:
                return self._answer(503, b"upstream overloaded, try again", "text/plain")
            try:
                with urllib.request.urlopen(state.upstream + self.path, timeout=10) as resp:
                    return self._answer(resp.status, resp.read(), resp.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as exc:
                return self._answer(exc.code, exc.read(), exc.headers.get("Content-Type", ""))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
