"""First start: the platform-admin token lands in admin.token (0600) and in the CLI config only when none is set."""

import json

from farm.client import config as clientconfig
from farm.clock import SystemClock
from farm.db.engine import Database
from farm.runtime.bootstrap import bootstrap, offer_to_cli


def test_token_is_created_once_and_kept_across_restarts(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'farm.db'}")
    db.migrate()
    first = bootstrap(db, SystemClock(), tmp_path)
    assert (tmp_path / "admin.token").read_text().strip() == first
    assert (tmp_path / "admin.token").stat().st_mode & 0o777 == 0o600
    assert bootstrap(db, SystemClock(), tmp_path) == first
    db.dispose()


def test_cli_config_follows_a_restarted_farm_but_never_steals_another(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("FARM_TOKEN", raising=False)
    said = offer_to_cli("http://127.0.0.1:9999", "farm_first", tmp_path / "a")
    path = clientconfig.config_path()
    assert "now points at this farm" in said and str(path) in said
    assert json.loads(path.read_text()) == {"url": "http://127.0.0.1:9999", "token": "farm_first"}
    assert path.stat().st_mode & 0o777 == 0o600
    assert "already points" in offer_to_cli("http://127.0.0.1:9999", "farm_first", tmp_path / "a")
    # Another farm on another port: the config is left alone, and the message says how to switch.
    said = offer_to_cli("http://127.0.0.1:1111", "farm_second", tmp_path / "b")
    assert "left as it is" in said and "farm login --url http://127.0.0.1:1111" in said
    assert str(tmp_path / "b" / "admin.token") in said
    assert json.loads(path.read_text())["token"] == "farm_first"
    # The same address restarted with another data dir: the old token is useless there, so the config follows.
    said = offer_to_cli("http://127.0.0.1:9999", "farm_third", tmp_path / "c")
    assert "now points at this farm" in said and json.loads(path.read_text())["token"] == "farm_third"
    loaded = clientconfig.load()
    assert (loaded.url, loaded.token) == ("http://127.0.0.1:9999", "farm_third")
    monkeypatch.setenv("FARM_TOKEN", "from-env")
    assert clientconfig.load().token == "from-env"
