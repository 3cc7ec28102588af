"""Shared fixtures: the evaluation data beside the repo (skipped when absent), the sample, workspaces."""
from __future__ import annotations

from pathlib import Path

import pytest
import workbench

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "data" / "sample"

#: Strings that must survive every layer byte-identically and never execute.
HOSTILE_STRINGS = [
    "plain",
    "quote ' and \" and `back`",
    "'; DROP TABLE incidents; --",
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "javascript:window.__pwned=1",
    "line one\nline two\r\nline three",
    "tab\there",
    '"); import os; print("pwned',
    "ünïcödé — 日本語 — עברית — 🔥🚒",
    "{{ jinja }} ${shell} $(cmd) %s %(name)s",
]


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


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test of the session (skipped without it)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


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
