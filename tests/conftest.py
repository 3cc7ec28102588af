"""Shared fixtures: the evaluation data beside the repo (skipped when absent), the sample, workspaces."""
from __future__ import annotations

from pathlib import Path

import pytest

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


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repo; the test is skipped when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the repo")
    return SHARED_DATA


@pytest.fixture
def workspace(tmp_path):
    """A fresh, initialised workspace in a temp folder."""
    from workbench import config

    return config.init(tmp_path / "ws")
