"""The admin CLI and ``farm usage`` against the session's embedded farm."""

from __future__ import annotations

import csv
import io
import json
import secrets

import pytest
from typer.testing import CliRunner

from farm.cli.main import app
from farm.client import config as clientconfig

pytestmark = [pytest.mark.ray]


def cli(farm, *args, token=None, input=None):
    env = {"FARM_URL": farm.url, "FARM_TOKEN": token or farm.admin_token}
    return CliRunner().invoke(app, list(args), env=env, input=input)


def test_company_create_list_update(farm):
    name = f"cli-co-{secrets.token_hex(3)}"
    made = cli(farm, "admin", "company", "create", name, "--gpu-share", "3", "--cpu-share", "2", "--min-slots", "1",
               "--max-slots", "4", "--gpu-hours-budget", "10", "--rate", "gpu=1.5", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["companies"][0]["rates"] == {"gpu": 1.5}
    listed = json.loads(cli(farm, "admin", "company", "list", "--json").output)["companies"]
    assert name in [c["name"] for c in listed]
    changed = cli(farm, "admin", "company", "update", name, "--cpu-hours-budget", "7", "--unlimited", "max-slots",
                  "--json")
    assert changed.exit_code == 0, changed.output
    company = json.loads(changed.output)["companies"][0]
    assert (company["cpu_hours_budget"], company["max_slots"], company["gpu_share"]) == (7, None, 3)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["x!"], "company name"),
        (["ok-name", "--gpu-share", "-1"], "gpu_share"),
        (["ok-name", "--gpu-hours-budget", "-2"], "gpu_hours_budget"),
        (["ok-name", "--rate", "gpu"], "RESOURCE=PRICE"),
    ],
)
def test_company_create_bad_input(farm, args, fragment):
    result = cli(farm, "admin", "company", "create", *args)
    assert result.exit_code == 2
    assert fragment in result.output


def test_token_create_prints_only_the_token_then_login_and_revoke(farm, tmp_path, monkeypatch):
    name = f"tok-co-{secrets.token_hex(3)}"
    assert cli(farm, "admin", "company", "create", name).exit_code == 0
    result = cli(farm, "admin", "token", "create", "--company", name, "--role", "company-admin")
    token = result.stdout.strip()
    assert len(result.stdout.splitlines()) == 1  # only the token on stdout; the note goes to stderr
    assert result.exit_code == 0 and token.startswith("farm_")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    login = CliRunner().invoke(app, ["login", "--url", farm.url], input=token + "\n", env={"FARM_TOKEN": ""})
    assert login.exit_code == 0, login.output
    assert f"company-admin of {name}" in login.output
    saved = clientconfig.read_file()
    assert saved == {"url": farm.url, "token": token}
    assert (tmp_path / "render-farm" / "config.json").stat().st_mode & 0o777 == 0o600
    listed = json.loads(cli(farm, "admin", "token", "list", "--company", name, "--json").output)["tokens"]
    (entry,) = listed
    assert token not in json.dumps(listed)
    assert cli(farm, "admin", "token", "revoke", entry["id"]).exit_code == 0
    denied = cli(farm, "jobs", token=token)
    assert denied.exit_code == 1 and "revoked" in denied.output
    bad = CliRunner().invoke(app, ["login", "--url", farm.url, "--token", "farm_nonsense"])
    assert bad.exit_code == 1 and "unknown API token" in bad.output
    assert clientconfig.read_file()["token"] == token  # a refused login changes nothing


def test_usage_formats(farm):
    month = "2026-11"
    as_json = cli(farm, "usage", "--month", month, "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["month"] == month
    assert json.loads(cli(farm, "usage", "--month", month, "--format", "json").output)["month"] == month
    table = cli(farm, "usage", "--format", "table", "--per-job")
    assert table.exit_code == 0 and "cost" in table.output
    rows = list(csv.reader(io.StringIO(cli(farm, "usage", "--format", "csv").output)))
    assert rows[0] == ["company", "job_id", "job_name", "resource", "seconds", "hours", "rate", "cost"]
    assert cli(farm, "usage", "--format", "xml").exit_code == 2
    assert cli(farm, "usage", "--company", "no-such-co").exit_code == 1
