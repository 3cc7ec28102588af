"""Shared fixtures: the evaluation data beside the repo (skipped when absent), the sample, workspaces."""
from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping

import pytest
import workbench
from workbench.telemetry.ingest import ingest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "data" / "sample"

#: Strings that must survive every layer byte-identically and never execute (tests/corpus/strings.json).
CORPUS = Path(__file__).resolve().parent / "corpus"
HOSTILE_STRINGS = json.loads((CORPUS / "strings.json").read_text(encoding="utf-8"))["accepted"]


#: Debian's Chromium, driven by Playwright with ``executable_path`` (never a Playwright download).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def require_browser(*modules: str) -> None:
    """Skip unless Debian's Chromium, Playwright and ``modules`` are installed (before any set-up)."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    for name in ("playwright", *modules):
        pytest.importorskip(name)


@pytest.fixture(scope="session", autouse=True)
def jupyter_data_dir(tmp_path_factory):
    """Jupyter's data folder in a temp folder for the session: ``workbench run`` signs the notebooks
    it writes (their signatures go there), and a test must not write into the user's own."""
    path = tmp_path_factory.mktemp("jupyter-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_DATA_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test of the session (skipped without it)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key in ``folder``, made with openssl (skipped without it)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repo; the test is skipped when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the repo")
    return SHARED_DATA


@pytest.fixture
def workspace(tmp_path):
    """A fresh, initialised workspace in a temp folder."""

    return workbench.init(tmp_path / "ws")


@pytest.fixture(scope="session")
def sample_pristine(tmp_path_factory) -> workbench.Workspace:
    """The shipped sample ingested ONCE per test run (5-6 s), shared read-only by every module that
    needs it. Tests that write (analyse and store, review, run notebooks) take :func:`sample_copy`."""
    ws = workbench.init(tmp_path_factory.mktemp("sample") / "pristine")
    ingest(ws, str(SAMPLE), who="test")
    return ws


@pytest.fixture(scope="session")
def sample_copy(sample_pristine, tmp_path_factory):
    """A factory of private copies of :func:`sample_pristine` (a folder copy, ~0.1 s), for tests that
    write; ``sample_copy("name", extra_settings="...")`` appends TOML to the copy's workbench.toml."""

    def make(name: str = "copy", extra_settings: str = "") -> workbench.Workspace:
        dest = tmp_path_factory.mktemp(name) / "ws"
        shutil.copytree(sample_pristine.root, dest)
        if extra_settings:
            with open(dest / "workbench.toml", "a", encoding="utf-8") as fh:
                fh.write(extra_settings)
        return workbench.open_workspace(dest)

    return make


@pytest.fixture(scope="session")
def prometheus():
    """One Prometheus per session holding ~6 h of the sample's metrics (tests/prom.py); skipped without it."""
    from prom import running_prometheus

    with running_prometheus() as server:
        yield server


@pytest.fixture(scope="session")
def alertmanager():
    """One Alertmanager per session (no gossip; tests/prom.py); skipped without it."""
    from prom import running_alertmanager

    with running_alertmanager() as server:
        yield server


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a server a test started: TERM, then KILL when it has not exited within ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def jupyter_lab(root_dir: Path, cwd: Path, env: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """A real JupyterLab serving ``root_dir`` on a free loopback port: yields (base URL, token) once
    it answers, stops it afterwards; its log is ``cwd/lab.log`` (shown when it does not start)."""
    port, token = free_port(), secrets.token_hex(16)
    log = open(cwd / "lab.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyter")), "lab", "--allow-root", "--no-browser",
         f"--ServerApp.token={token}", f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.root_dir={root_dir}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"],
        cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not start: {(cwd / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        stop_process(server, timeout=20)
        log.close()
