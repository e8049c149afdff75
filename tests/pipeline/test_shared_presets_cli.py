"""``farm preset publish|unpublish|list|show`` and ``farm submit --preset`` with a shared preset, against an API
served on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from farm.cli.main import app
from farm.contract import Role
from tests import factories


def test_publish_list_show_submit_unpublish(tmp_path: Path, sample_blend: Path) -> None:
    with factories.api_farm(tmp_path / "farm") as farm, factories.serve(farm.app) as url:
        with farm.db.session() as s:
            pub = factories.token(s, "cli-pub", Role.COMPANY_ADMIN)
            user = factories.token(s, "cli-user", Role.ARTIST)
            other = factories.token(s, "cli-other", Role.ARTIST)

        def cli(token: str, *args: str) -> Result:
            return CliRunner().invoke(app, list(args), env={"FARM_URL": url, "FARM_TOKEN": token, "COLUMNS": "300"})

        assert cli(pub, "preset", "save", "lookdev", "--samples", "12", "--chunk", "2").exit_code == 0
        assert cli(pub, "preset", "save", "private", "--samples", "3").exit_code == 0
        made = cli(pub, "preset", "publish", "lookdev", "--description", "Turntables for look-dev", "--to", "cli-user")
        assert made.exit_code == 0 and "lookdev@cli-pub" in made.output, made.output
        no_text = cli(pub, "preset", "publish", "lookdev", "--description", "")
        assert no_text.exit_code == 2 and "--description" in no_text.output

        own = cli(pub, "preset", "list")
        text = " ".join(own.output.split())
        assert "own, published to cli-user" in text and "private" in text
        listed = json.loads(cli(user, "preset", "list", "--json").output)
        assert listed["presets"] == []
        assert [(p["ref"], p["description"]) for p in listed["shared"]] == [
            ("lookdev@cli-pub", "Turntables for look-dev")
        ]
        table = " ".join(cli(user, "preset", "list").output.split())
        assert "│ lookdev@cli-pub │ shared by cli-pub │" in table and "private" not in table
        shown = cli(user, "preset", "show", "lookdev")
        assert shown.exit_code == 0 and "Turntables for look-dev" in shown.output
        assert cli(other, "preset", "show", "lookdev").exit_code == 1
        assert cli(user, "preset", "show", "private@cli-pub").exit_code == 1

        sub = cli(user, "submit", str(sample_blend), "--frames", "1-4", "--preset", "lookdev", "--json")
        assert sub.exit_code == 0, sub.output
        job = json.loads(sub.output)
        headers = {"Authorization": f"Bearer {user}"}
        with factories.client(farm) as http:
            body = http.get(f"/api/v1/jobs/{job['job_id']}", headers=headers).json()
        assert (body["samples"], body["chunk_size"], body["tasks_total"]) == (12, 2, 2)
        refused = cli(other, "submit", str(sample_blend), "--frames", "1-2", "--preset", "lookdev@cli-pub")
        assert refused.exit_code != 0 and "not found" in refused.output

        assert cli(user, "preset", "unpublish", "lookdev").exit_code == 1
        gone = cli(pub, "preset", "unpublish", "lookdev")
        assert gone.exit_code == 0, gone.output
        assert json.loads(cli(user, "preset", "list", "--json").output)["shared"] == []
