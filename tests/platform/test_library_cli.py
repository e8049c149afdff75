"""``farm library`` against an API served on 127.0.0.1, and the packer's upload skipping library assets."""

from __future__ import annotations

import json
import secrets

from typer.testing import CliRunner

from farm.cli.main import app
from farm.client.library import LibraryClient
from farm.client.packing import Pack
from farm.contract import ManifestEntry, Role
from tests import factories
from tests.platform.conftest import sha


def test_publish_list_show_pull_usage_retract(tmp_path):
    data = b"FONT" + secrets.token_bytes(3000)
    font = tmp_path / "studio.ttf"
    font.write_bytes(data)
    with factories.api_farm(tmp_path / "farm") as farm, factories.serve(farm.app) as url:
        with farm.db.session() as s:
            pub = factories.token(s, "studio-a", Role.COMPANY_ADMIN)
            user = factories.token(s, "studio-b", Role.ARTIST)
            factories.company(s, "studio-c")

        def cli(token, *args):
            return CliRunner().invoke(app, list(args), env={"FARM_URL": url, "FARM_TOKEN": token})

        made = cli(
            pub,
            "library",
            "publish",
            str(font),
            "--name",
            "house font",
            "--licence",
            "members only",
            "--tag",
            "font",
            "--to",
            "studio-b",
            "--json",
        )
        assert made.exit_code == 0, made.output
        asset = json.loads(made.output)
        assert (asset["sha256"], asset["filename"], asset["to"]) == (sha(data), "studio.ttf", ["studio-b"])
        listed = cli(user, "library", "list", "--json")
        assert [a["id"] for a in json.loads(listed.output)["assets"]] == [asset["id"]]
        shown = cli(user, "library", "show", asset["id"])
        assert shown.exit_code == 0 and "members only" in shown.output and "studio-a" in shown.output
        pulled = cli(user, "library", "pull", asset["id"], "--out", str(tmp_path / "got"))
        assert pulled.exit_code == 0, pulled.output
        assert (tmp_path / "got" / "studio.ttf").read_bytes() == data

        # The packer's upload asks the farm what is missing: the library font is reused, not uploaded.
        scene = tmp_path / "scene.blend"
        scene.write_bytes(b"BLENDER" + secrets.token_bytes(100))
        pack = Pack(root=tmp_path, blend_rel="scene.blend", files={"scene.blend": scene, "fonts/studio.ttf": font})
        entries = {
            "scene.blend": ManifestEntry(sha256=sha(scene.read_bytes()), size=scene.stat().st_size),
            "fonts/studio.ttf": ManifestEntry(sha256=sha(data), size=len(data)),
        }
        with LibraryClient(url, user) as client:
            uploaded, reused, files = client.upload_missing(pack, entries, direct=False)
        assert (uploaded, reused, files) == (scene.stat().st_size, len(data), 1)

        usage = cli(pub, "library", "usage", asset["id"], "--json")
        assert usage.exit_code == 0 and json.loads(usage.output)["months"] == []
        other = cli(user, "library", "retract", asset["id"])
        assert other.exit_code == 1 and "not found" in other.output
        gone = cli(pub, "library", "retract", asset["id"])
        assert gone.exit_code == 0 and "retracted" in gone.output
        assert json.loads(cli(user, "library", "list", "--json").output)["assets"] == []
        missing_file = cli(pub, "library", "publish", str(tmp_path / "nope"), "--name", "x", "--licence", "y")
        assert missing_file.exit_code == 2 and "no such file" in missing_file.output
