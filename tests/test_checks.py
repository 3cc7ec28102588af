"""The per-incident recheck work (workbench.loop.checks.check_incident) on the shared read-only sample:
it finds the recurrence, stays clear on a calm window, reports a bad incident instead of raising,
and writes nothing at all (the parent records; workers only compute)."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from workbench.loop.checks import RECUR_MIN, check_incident, clear_caches

ORIGINAL = "INC-20261102-001"
RECURRENCE_END = pd.Timestamp("2026-11-06T17:00:00Z")  # the sample's recurrence runs 15:21-16:4x
CALM_END = pd.Timestamp("2026-11-04T12:00:00Z")


def _fingerprint(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def checked(sample_pristine):
    before = _fingerprint(sample_pristine.root)
    clear_caches()
    try:
        recurred = check_incident(sample_pristine.root, ORIGINAL, RECURRENCE_END - pd.Timedelta(hours=6), RECURRENCE_END)
        calm = check_incident(sample_pristine.root, ORIGINAL, CALM_END - pd.Timedelta(hours=6), CALM_END)
        unknown = check_incident(sample_pristine.root, "INC-NOPE", CALM_END - pd.Timedelta(hours=6), CALM_END)
    finally:
        clear_caches()
    return before, _fingerprint(sample_pristine.root), recurred, calm, unknown


def test_the_recurrence_window_is_similar_to_the_original(checked):
    *_, recurred, _, _ = checked
    assert recurred.error is None
    assert recurred.verdict == "recurred" and recurred.similarity >= RECUR_MIN
    assert recurred.reasons == ["signature"]
    # no stored signature in a fresh workspace: computed from the incident's own window, for the parent to write
    assert recurred.signature_source == "computed" and recurred.computed_signature is not None


def test_a_calm_window_is_clear(checked):
    *_, calm, _ = checked
    assert calm.error is None and calm.verdict == "clear" and calm.similarity < RECUR_MIN


def test_an_unknown_incident_comes_back_as_an_error_not_an_exception(checked):
    *_, unknown = checked
    assert unknown.verdict is None and "INC-NOPE" in unknown.error


def test_a_worker_writes_nothing(checked):
    before, after, *_ = checked
    assert after == before


def test_the_query_cache_holds_at_most_its_byte_budget(monkeypatch):
    """Criteria frames (a day of a chatty service's log lines) are kept within QUERY_CACHE_BYTES:
    the oldest go first, the newest stays even when it alone is larger."""
    from workbench.loop import checks

    asked = []

    class Store:
        def query(self, table, start=None, end=None, services=None, names=None):
            asked.append(services[0])
            return pd.DataFrame({"value": [0.0] * 1000})  # 8,000 bytes of values

    size = int(Store().query("metrics", services=["x"]).memory_usage(index=True, deep=False).sum())
    asked.clear()
    clear_caches()
    monkeypatch.setattr(checks, "QUERY_CACHE_BYTES", 2 * size)
    cached = checks._CachedStore(Store())
    for service in ("a", "b", "a", "c", "a", "b"):
        cached.query("metrics", services=[service])
    # a, b cached; a again is a hit; c evicts b (the least recently used); a hit; b is read again
    assert asked == ["a", "b", "c", "b"]
    monkeypatch.setattr(checks, "QUERY_CACHE_BYTES", size // 2)
    cached.query("metrics", services=["d"])
    assert list(checks._QUERY_BYTES) == [("None", "metrics", None, None, ("d",), None)]
    clear_caches()
