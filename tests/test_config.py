"""Settings (workbench.config) and opening workspaces (workbench.workspace): file values, environment
overrides, errors that name the file and the key, and the one opener every caller uses."""
from __future__ import annotations

import pytest

import workbench
from workbench.config import CONFIG_FILE, Settings, load_settings, write_settings
from workbench.errors import ConfigError


def test_written_defaults_read_back(tmp_path):
    write_settings(tmp_path / CONFIG_FILE, "postgresql+psycopg://db/wb")
    settings = load_settings(tmp_path / CONFIG_FILE, environ={})
    assert settings == Settings(database_url="postgresql+psycopg://db/wb")


def test_environment_overrides_the_file_and_other_tables_are_kept(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text('[workbench]\nstep = "5min"\nfoo = 1\n[webhooks.ops]\nurl = "https://x"\n', encoding="utf-8")
    settings = load_settings(path, environ={"WORKBENCH_STEP": "30s", "WORKBENCH_DETECTOR": "ecod"})
    assert (settings.step, settings.detector) == ("30s", "ecod")
    assert settings.extra == {"foo": 1, "webhooks": {"ops": {"url": "https://x"}}}


@pytest.mark.parametrize("text, message", [
    ('[workbench\nstep = "1min"\n', "not valid TOML"),
    ("[workbench]\nstep = 5\n", "workbench.step must be a string, got int"),
    ('workbench = "x"\n', "[workbench] must be a table"),
])
def test_bad_settings_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / CONFIG_FILE
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="workbench.toml") as exc:
        load_settings(path, environ={})
    assert message in str(exc.value)


def test_open_workspace_takes_a_workspace_a_folder_or_the_environment(tmp_path, monkeypatch):
    ws = workbench.init(tmp_path / "ws")
    assert workbench.open_workspace(ws) is ws
    assert workbench.open_workspace(str(ws.root)).root == ws.root
    monkeypatch.setenv("WORKBENCH_HOME", str(ws.root))
    assert workbench.open_workspace().root == ws.root
    assert workbench.open_workspace("").root == ws.root  # a notebook run by hand leaves it empty
    with pytest.raises(ConfigError, match="is not a workspace"):
        workbench.open_workspace(tmp_path / "nope")


def test_init_is_idempotent_and_keeps_an_edited_file(tmp_path):
    ws = workbench.init(tmp_path / "ws")
    path = ws.root / CONFIG_FILE
    path.write_text(path.read_text(encoding="utf-8").replace('"knn"', '"ecod"'), encoding="utf-8")
    assert workbench.init(ws.root).settings.detector == "ecod"
    assert (ws.root / "telemetry").is_dir() and (ws.root / "incidents").is_dir()


def test_printable_escapes_what_a_terminal_would_act_on():
    from workbench.formats import clip, printable

    assert printable("a\nb\r\tc\x1b[2J\x00\x7f\x9b\u2028\u202e\u2066ok é 日本") == \
        "a\\nb\\r\\tc\\x1b[2J\\x00\\x7f\\x9b\\u2028\\u202e\\u2066ok é 日本"
    assert clip("one\ntwo\x1b]0;title\x07", 40) == "one two\\x1b]0;title\\x07"
