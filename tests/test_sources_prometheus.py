"""The ``prometheus`` source against a real Prometheus (tests/prom.py backfills ~6 h of the sample)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import prom
from workbench.telemetry import sources
from workbench.errors import SourceError
from workbench.telemetry.ingest import ingest
from workbench.telemetry.sources.prometheus import aligned_points, chunks, duration_ms, with_name

HOUR = (pd.Timestamp("2026-11-02T11:00:00Z"), pd.Timestamp("2026-11-02T12:00:00Z"))
SAMPLE_ONLY = '{environment="production", __name__!~"shop_.*"}'


def _read(server, start=HOUR[0], end=HOUR[1], **options):
    src = sources.open_source(f"prometheus:{server.url}", **options)
    return src, src.read(start, end).metrics


def _empty(ws) -> bool:
    return sum(ws.telemetry().counts().values()) == 0


# --------------------------------------------------------------------------- no server needed

def test_points_are_aligned_to_the_step_and_chunks_cover_each_point_once():
    first, last = aligned_points(pd.Timestamp("2026-11-02T10:00:30Z"), pd.Timestamp("2026-11-02T11:00:00Z"), 60_000)
    assert pd.Timestamp(first, unit="ms", tz="UTC") == pd.Timestamp("2026-11-02T10:01:00Z")
    assert pd.Timestamp(last, unit="ms", tz="UTC") == pd.Timestamp("2026-11-02T10:59:00Z")  # end is excluded
    parts = list(chunks(0, 24_999, 1, 11_000))
    points = np.concatenate([np.arange(lo, hi + 1) for lo, hi in parts])
    assert all(hi - lo + 1 <= 11_000 for lo, hi in parts) and np.array_equal(points, np.arange(25_000))


def test_selector_is_narrowed_to_one_metric_name():
    assert with_name('{job="a", env=~"p.*"}', "up") == '{__name__="up", job="a", env=~"p.*"}'
    assert with_name("{ }", "up") == '{__name__="up"}'
    assert with_name('up{job="a"}', "up") == 'up{job="a"}'


@pytest.mark.parametrize("text, ms", [("60s", 60_000), ("1m30s", 90_000), ("500ms", 500), ("1min", 60_000), (15, 15_000)])
def test_durations(text, ms):
    assert duration_ms(text, "step", "here") == ms


@pytest.mark.parametrize("options, message", [
    ({"bearer_token": "abc"}, "secrets are never taken"),
    ({"basic_auth_password": "pw", "basic_auth_user": "a"}, "secrets are never taken"),
    ({"stpe": "60s"}, "did you mean 'step'"),
    ({"step": "soon"}, "step: expected a duration"),
    ({"max_series": "0"}, "max_series: expected a whole number"),
    ({"quantiles": "[1.5]"}, "quantiles: expected numbers in (0, 1)"),
    ({"basic_auth_user": "alice"}, "basic_auth_password_env or basic_auth_password_file is missing"),
    ({"bearer_token_env": "WB_TEST_SURELY_UNSET"}, "WB_TEST_SURELY_UNSET is not set"),
])
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sources.open_source("prometheus:http://127.0.0.1:9", **options)


def test_credentials_in_the_url_are_refused_and_not_echoed():
    with pytest.raises(SourceError, match="credentials in the URL are refused") as err:
        sources.open_source("prometheus:http://alice:hunter2@127.0.0.1:9090")
    assert "hunter2" not in str(err.value)


def test_a_live_source_needs_a_window():
    src = sources.open_source("prometheus:http://127.0.0.1:9")
    with pytest.raises(SourceError, match="needs a window"):
        src.read(None, None)


def test_configured_sources_from_workbench_toml():
    from workbench.errors import ConfigError, UnknownNameError

    extra = {"sources": {"prod": {"type": "prometheus", "url": "https://prom.example.com/", "step": "30s"},
                         "alerts": {"url": "alertmanager:http://am:9093"}}}
    table = sources.configured(extra, environ={"WORKBENCH_SOURCE_ALERTS_URL": "alertmanager:http://am2:9093"})
    assert table == {"prod": ("prometheus:https://prom.example.com/", {"step": "30s"}),
                     "alerts": ("alertmanager:http://am2:9093", {})}
    assert sources.live_sources(extra, environ={}) == ["prod", "alerts"]
    src = sources.open_configured(extra, "prod", environ={}, match=["up"])
    assert src.url == "prometheus:https://prom.example.com" and src.step_ms == 30_000 and src.selectors == ["up"]
    with pytest.raises(UnknownNameError, match="did you mean 'prod'"):
        sources.open_configured(extra, "prd", environ={})
    with pytest.raises(ConfigError, match=r"sources.x.url: required"):
        sources.configured({"sources": {"x": {"step": "1m"}}}, environ={})
    with pytest.raises(UnknownNameError, match="did you mean 'prometheus'"):
        sources.configured({"sources": {"x": {"url": "prometeus:http://a"}}}, environ={})
    with pytest.raises(SourceError, match=r"^sources.x: .*secrets are never taken"):
        sources.open_configured({"sources": {"x": {"url": "prometheus:http://a", "password": "pw"}}}, "x", environ={})


# --------------------------------------------------------------------------- against the server

@pytest.mark.prometheus
def test_window_equals_the_samples_own_values(prometheus):
    src, got = _read(prometheus, match=[SAMPLE_ONLY])
    want = prom.sample_window(*HOUR)
    assert len(got) == len(want) == 61 * 60
    assert src.stats["chunks"] == src.stats["queries"] == 9 and src.stats["points_not_finite"] == 0
    key = ["timestamp", "service", "environment", "name"]
    both = got.merge(want, on=key, suffixes=("", "_sample"), validate="one_to_one")
    assert len(both) == len(want)
    # Prometheus prints the shortest text that round-trips a float64: the values come back exact.
    assert np.array_equal(both["value"].to_numpy(), both["value_sample"].to_numpy())
    assert set(got["attributes"]) == {"{}"} and set(got["unit"]) == {""}


@pytest.mark.prometheus
def test_chunking_over_more_than_11000_steps_returns_every_point_once(prometheus):
    window = (pd.Timestamp("2026-11-02T10:00:00Z"), pd.Timestamp("2026-11-02T14:00:00Z"))  # 14,400 steps of 1 s
    src, got = _read(prometheus, *window, match=['{__name__="error_rate", service="cart"}'], step="1s")
    assert src.stats["chunks"] == 2
    want = prom.sample_window(*window).query("name == 'error_rate' and service == 'cart'")
    assert not got["timestamp"].duplicated().any()
    assert got["timestamp"].tolist() == want["timestamp"].tolist()
    assert np.array_equal(got["value"].to_numpy(), want["value"].to_numpy())
    # The same with a tiny per-query limit: many chunks, still each point once.
    src, small = _read(prometheus, *HOUR, match=['{__name__="error_rate", service="cart"}'], max_points=7)
    assert src.stats["chunks"] == 9 and len(small) == 60 and not small["timestamp"].duplicated().any()


@pytest.mark.prometheus
def test_counters_become_per_second_rates(prometheus):
    _, got = _read(prometheus, match=["shop_requests_total"])
    got = got[got["service"] == "checkout"].set_index("timestamp")["value"]
    assert set(_read(prometheus, match=["shop_requests_total"])[1]["unit"]) == {"1/s"}
    sample = prom.sample_window().query("name == 'request_rate' and service == 'checkout'").set_index("timestamp")
    expected = pd.Series(prom.rate_expected(sample["value"].to_numpy(), 5), index=sample.index)
    common = got.index.intersection(expected.dropna().index)
    assert len(common) == 60
    np.testing.assert_allclose(got[common].to_numpy(), expected[common].to_numpy(), rtol=1e-9)
    # A rate is not the raw counter: the counter's level here is in the hundreds of thousands.
    assert got.max() < 1_000


@pytest.mark.prometheus
def test_histogram_buckets_become_quantiles(prometheus):
    _, got = _read(prometheus, match=["shop_latency_seconds_bucket"])
    assert sorted(got["name"].unique()) == ["shop_latency_seconds.p50", "shop_latency_seconds.p95",
                                            "shop_latency_seconds.p99"]
    for q in (0.5, 0.95, 0.99):
        values = got.loc[got["name"] == f"shop_latency_seconds.p{round(q * 100)}", "value"]
        assert len(values) == 60
        np.testing.assert_allclose(values, prom.expected_quantiles(q), rtol=1e-9)
    assert "le" not in json.loads(got["attributes"].iloc[0])
    _, raw = _read(prometheus, match=["shop_latency_seconds_bucket"], quantiles="[]")
    assert raw["name"].unique().tolist() == ["shop_latency_seconds_bucket"] and set(raw["unit"]) == {"1/s"}


@pytest.mark.prometheus
def test_a_gap_stays_a_gap(prometheus):
    window = (pd.Timestamp("2026-11-02T11:30:00Z"), pd.Timestamp("2026-11-02T13:00:00Z"))
    _, got = _read(prometheus, *window, match=["shop_gappy"])
    inside = (got["timestamp"] >= prom.GAP[0]) & (got["timestamp"] < prom.GAP[1])
    assert not inside.any() and len(got) == 90 - 30


@pytest.mark.prometheus
def test_hostile_label_values_are_data(prometheus, workspace):
    result = ingest(workspace, f"prometheus:{prometheus.url}", *HOUR, match=["shop_hostile"])
    assert result.rows_added["metrics"] == 60
    stored = workspace.telemetry().query("metrics", *HOUR, names=["shop_hostile"])
    assert {json.dumps(prom.HOSTILE_LABELS, sort_keys=True)} == {json.dumps(json.loads(a), sort_keys=True)
                                                               for a in stored["attributes"]}


@pytest.mark.prometheus
def test_label_mapping_is_configurable(prometheus):
    _, got = _read(prometheus, match=["shop_hostile"], labels="{service: [path], environment: nothing}",
                   default_environment="lab")
    assert set(got["service"]) == {prom.HOSTILE_LABELS["path"]} and set(got["environment"]) == {"lab"}
    attrs = json.loads(got["attributes"].iloc[0])
    assert attrs["service"] == "frontend" and attrs["environment"] == "production" and "path" not in attrs


@pytest.mark.prometheus
def test_reingest_adds_nothing_and_windows_are_half_open(prometheus, workspace):
    url = f"prometheus:{prometheus.url}"
    first = ingest(workspace, url, *HOUR, match=['{service="cart"}'])
    again = ingest(workspace, url, *HOUR, match=['{service="cart"}'])
    assert first.rows_added["metrics"] > 0 and again.rows_added["metrics"] == 0
    times = workspace.telemetry().query("metrics")["timestamp"]
    assert times.min() == HOUR[0] and times.max() == HOUR[1] - pd.Timedelta(minutes=1)


@pytest.mark.prometheus
def test_series_limit_refuses_naming_the_selector(prometheus, workspace):
    with pytest.raises(SourceError, match=r'selector \{service="cart"\} matches 9 series .* max_series = 5'):
        ingest(workspace, f"prometheus:{prometheus.url}", *HOUR, match=['{service="cart"}'], max_series="5")
    assert _empty(workspace)


@pytest.mark.prometheus
def test_server_errors_name_the_url_the_query_and_the_servers_message(prometheus, workspace):
    with pytest.raises(SourceError) as err:
        ingest(workspace, f"prometheus:{prometheus.url}", *HOUR, match=["up{"])
    text = str(err.value)
    assert prometheus.url in text and "match[]='up{'" in text and "HTTP 400" in text and "parse error" in text
    assert _empty(workspace)


@pytest.mark.prometheus
def test_a_stopped_server_gives_a_clear_error_and_stores_nothing(workspace):
    server = prom.start_prometheus()
    url = server.url
    server.stop()
    src = sources.open_source(f"prometheus:{url}", retries="2", backoff="0")
    with pytest.raises(SourceError, match=r"cannot connect .* \(after 3 attempts\)") as err:
        ingest(workspace, f"prometheus:{url}", *HOUR, retries="2", backoff="0")
    assert url in str(err.value)
    with pytest.raises(SourceError):
        src.read(*HOUR)
    assert src.client.requests == 3
    assert _empty(workspace)


@pytest.mark.prometheus
def test_cli_ingest_and_discovery_with_a_configured_source(prometheus, workspace, capsys, monkeypatch):
    from workbench.cli import main

    with open(workspace.root / "workbench.toml", "a", encoding="utf-8") as f:
        f.write(f'\n[sources.shop]\nurl = "prometheus:{prometheus.url}"\nselectors = [\'{{service="payments"}}\']\n'
                f'step = "60s"\n')
    base = ["-w", str(workspace.root)]
    window = ["--start", "2026-11-02T11:00:00Z", "--end", "2026-11-02T12:00:00Z"]
    assert main(["sources", "shop", *window, *base, "--json"]) == 0
    listing = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listing["request_rate"]["kind"] == "gauge" and listing["shop_requests_total"]["kind"] == "counter"
    assert listing["shop_requests_total"]["services"] == "payments"
    assert main(["ingest", "shop", *window, *base, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == f"prometheus:{prometheus.url}" and report["rows_added"]["metrics"] == 8 * 60
    assert report["source_stats"]["chunks"] == 8
    assert main(["ingest", f"prometheus:{prometheus.url}", "--match", "shop_gappy", "--step", "2m", *window, *base,
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_added"]["metrics"] == 30  # one point per 2 min
    assert main(["sources", f"prometheus:{prometheus.url}", "--label", "service", *window, "--json"]) == 0
    assert "checkout" in json.loads(capsys.readouterr().out)
    assert main(["ingest", "shop", *base]) == 2
    assert "needs a window" in capsys.readouterr().err


# --------------------------------------------------------------------------- auth and TLS

@pytest.fixture(scope="module")
def secured():
    """Prometheus over HTTPS (self-signed certificate) with basic auth (alice / prom.PASSWORD)."""
    with prom.running_prometheus(secured=True) as server:
        yield server


@pytest.mark.prometheus
def test_basic_auth_over_tls_with_a_custom_ca(secured, workspace, monkeypatch, tmp_path):
    url = f"prometheus:{secured.url}"
    monkeypatch.setenv("WB_TEST_PROM_PASSWORD", prom.PASSWORD)
    good = {"basic_auth_user": "alice", "basic_auth_password_env": "WB_TEST_PROM_PASSWORD",
            "ca_file": str(secured.ca_file), "match": ["error_rate"]}
    with pytest.raises(SourceError, match="TLS certificate verification failed.*ca_file"):
        ingest(workspace, url, *HOUR, **{k: v for k, v in good.items() if k != "ca_file"})
    with pytest.raises(SourceError, match=r"HTTP 401.*check the credentials") as err:
        ingest(workspace, url, *HOUR, ca_file=str(secured.ca_file), match=["error_rate"])
    assert secured.url in str(err.value)
    monkeypatch.setenv("WB_TEST_PROM_WRONG", "not-it")
    with pytest.raises(SourceError, match="HTTP 401") as err:
        ingest(workspace, url, *HOUR, **{**good, "basic_auth_password_env": "WB_TEST_PROM_WRONG"})
    assert "not-it" not in str(err.value)
    assert _empty(workspace)
    password_file = tmp_path / "password"
    password_file.write_text(prom.PASSWORD + "\n")
    result = ingest(workspace, url, *HOUR, **{**{k: v for k, v in good.items() if k != "basic_auth_password_env"},
                                                "basic_auth_password_file": str(password_file)})
    assert result.rows_added["metrics"] == 8 * 60


@pytest.mark.prometheus
def test_bearer_token_tenant_and_retries_through_a_gateway(prometheus, workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("WB_TEST_PROM_TOKEN", "t0ken-123")
    with prom.gateway(prometheus.url, token="t0ken-123", fail_first=2) as gw:
        url = f"prometheus:{gw.url}"
        options = {"match": ["error_rate"], "bearer_token_env": "WB_TEST_PROM_TOKEN", "tenant": "team-shop",
                   "backoff": "0"}
        result = ingest(workspace, url, *HOUR, **options)  # two 503s, retried
        assert result.rows_added["metrics"] == 8 * 60
        assert result.source_stats["requests"] == gw.requests and gw.requests >= 4
        assert set(gw.seen_tenants) == {"team-shop"}
        with pytest.raises(SourceError, match=r"HTTP 503: upstream overloaded, try again \(after 2 attempts\)"):
            gw.requests, gw.fail_first = 0, 5
            ingest(workspace, url, *HOUR, **{**options, "retries": "1"})
        token_file = tmp_path / "token"
        token_file.write_text("wrong\n")
        gw.fail_first = 0
        with pytest.raises(SourceError, match="HTTP 401: unauthorized: bad or missing token.*check the credentials") as err:
            ingest(workspace, url, *HOUR, match=["error_rate"], bearer_token_file=str(token_file))
        assert "wrong" not in str(err.value)
    assert workspace.telemetry().counts()["metrics"] == 8 * 60


@pytest.mark.prometheus
def test_a_slow_server_times_out_with_a_clear_error(prometheus, workspace, monkeypatch):
    monkeypatch.setenv("WB_TEST_PROM_TOKEN", "t0ken-123")
    with prom.gateway(prometheus.url, token="t0ken-123") as gw:
        gw.delay = 0.5
        with pytest.raises(SourceError, match=r"no answer within 0.2 s \(timeout\) \(after 2 attempts\)") as err:
            ingest(workspace, f"prometheus:{gw.url}", *HOUR, match=["error_rate"], bearer_token_env="WB_TEST_PROM_TOKEN",
                   timeout="0.2", retries="1", backoff="0")
        assert gw.url in str(err.value) and "GET /api/v1/series match[]='error_rate'" in str(err.value)
    assert _empty(workspace)


@pytest.mark.prometheus
def test_discovery_output_escapes_what_a_terminal_would_act_on(prometheus, capsys):
    from workbench.cli import main

    window = ["--start", "2026-11-02T11:00:00Z", "--end", "2026-11-02T12:00:00Z"]
    assert main(["sources", f"prometheus:{prometheus.url}", "--label", "note", *window]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "new line" in out and "\\n" in out  # one value, one line
    assert main(["sources", f"prometheus:{prometheus.url}", "--label", "note", *window, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [prom.HOSTILE_LABELS["note"]]  # --json keeps the data exact
