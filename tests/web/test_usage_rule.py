"""One rule for who sees usage and cost (issue 17): company admins their own company's, the platform admin every
company's, artists none; the same in the API, the monitor and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from farm.contract import Role
from tests import factories
from tests.web.test_monitor import Monitor

FARM = str(Path(sys.executable).parent / "farm")


def test_artists_see_no_usage_anywhere_admins_see_their_own(mon: Monitor, tmp_path):
    artist = mon.company_token("acme", Role.ARTIST)
    admin = mon.company_token("acme", Role.COMPANY_ADMIN)
    mon.company_token("beta", Role.COMPANY_ADMIN)
    api = mon.http
    r = api.get("/api/v1/usage", headers={"Authorization": f"Bearer {artist}"})
    assert r.status_code == 403 and "company-admin" in r.json()["detail"]
    seen = api.get("/api/v1/usage", headers={"Authorization": f"Bearer {admin}"}).json()
    assert [c["company"] for c in seen["companies"]] == ["acme"]

    mon.login(artist)
    assert 'href="/usage"' not in mon.http.get("/jobs").text  # not offered
    page = mon.http.get("/usage")
    assert page.status_code == 403 and "company-admin" in page.text and "acme" not in page.text.split("<main")[-1]

    mon.http.cookies.clear()
    mon.login(admin)
    assert 'href="/usage"' in mon.http.get("/jobs").text
    page = mon.http.get("/usage")
    assert page.status_code == 200 and "acme" in page.text and "beta" not in page.text

    with factories.serve(mon.http.app) as url:
        home = tmp_path / "home"
        env = {**os.environ, "FARM_URL": url, "FARM_TOKEN": artist, "HOME": str(home), "XDG_CONFIG_HOME": str(home)}
        done = subprocess.run([FARM, "usage"], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 1 and "company-admin" in done.stderr + done.stdout
        assert "Traceback" not in done.stderr
        env["FARM_TOKEN"] = admin
        done = subprocess.run([FARM, "usage", "--json"], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0 and '"acme"' in done.stdout and "beta" not in done.stdout
