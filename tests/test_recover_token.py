"""The way back (issue 17): every admin token revoked, a restart does not revive it, and
``farm admin recover-token --data-dir`` issues a new one that works."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from farm.db.models import ApiToken
from farm.services.auth import hash_token
from tests import factories

FARM = str(Path(sys.executable).parent / "farm")


def test_revoked_bootstrap_token_stays_revoked_and_recover_token_gives_a_new_one(tmp_path):
    with factories.api_farm(tmp_path) as farm:
        old = farm.admin_token
        with farm.db.session() as s:
            s.query(ApiToken).filter(ApiToken.token_hash == hash_token(old)).one().revoked_at = datetime.now(UTC)
    # A restart (bootstrap again) does not bring the revoked token back: still locked out.
    with factories.api_farm(tmp_path) as farm, factories.client(farm, auth=False) as http:
        assert farm.admin_token == old
        assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    done = subprocess.run(
        [FARM, "admin", "recover-token", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FARM_TOKEN": ""},
    )
    assert done.returncode == 0, done.stderr
    new = (tmp_path / "admin.token").read_text().strip()
    assert new != old and new in done.stdout
    assert stat.S_IMODE(os.stat(tmp_path / "admin.token").st_mode) == 0o600
    with factories.api_farm(tmp_path) as farm, factories.client(farm, auth=False) as http:
        me = http.get("/api/v1/me", headers={"Authorization": f"Bearer {new}"})
        assert me.status_code == 200 and me.json()["role"] == "platform-admin"


def test_recover_token_refuses_a_folder_without_a_farm(tmp_path):
    done = subprocess.run(
        [FARM, "admin", "recover-token", "--data-dir", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "holds no farm database" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
