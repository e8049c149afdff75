"""Sessions that really end, cookies nobody can forge, and security headers (issue 17, item 1)."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import UTC, datetime

import pytest
from itsdangerous import URLSafeTimedSerializer
from pydantic import ValidationError

from farm.db.models import ApiToken, BrowserSessionRow
from farm.runtime.secret import FILE, install_secret
from farm.settings import ServerSettings
from tests import factories
from tests.web.test_monitor import csrf_of

OLD_PUBLIC_DEFAULT = "embedded-dev-secret-change-me"


def _session_cookie(mon) -> str:
    value = mon.http.cookies.get("farm_session")
    assert value
    return value


def test_a_cookie_replayed_after_logout_opens_nothing(mon):
    mon.login(mon.admin)
    html = mon.http.get("/jobs").text
    replay = _session_cookie(mon)
    assert mon.http.post("/logout", data={"csrf": csrf_of(html)}, follow_redirects=False).status_code == 303
    mon.http.cookies.set("farm_session", replay)  # the attacker kept a copy of the cookie
    assert mon.http.get("/jobs", follow_redirects=False).status_code == 303
    assert mon.http.get("/events/jobs?ids=x", headers={"accept": "text/event-stream"}).status_code == 401
    with mon.db.session() as s:
        assert s.query(BrowserSessionRow).count() == 0


def test_cookies_signed_with_the_old_default_or_holding_a_token_id_are_refused(mon):
    with mon.db.session() as s:
        admin_id = s.query(ApiToken.id).order_by(ApiToken.created_at).first()[0]
    for secret in (OLD_PUBLIC_DEFAULT, "guessed-secret-of-sixteen"):
        forged = URLSafeTimedSerializer(secret, salt="farm-monitor-session").dumps({"c": "x", "t": admin_id, "s": "y"})
        mon.http.cookies.set("farm_session", forged)
        assert mon.http.get("/jobs", follow_redirects=False).status_code == 303, secret
    # Even signed with the install's real secret, a token id (what the old cookie held) is no session.
    secret = mon.http.app.state.ctx.settings.secret_key
    forged = URLSafeTimedSerializer(secret, salt="farm-monitor-session").dumps({"c": "x", "t": admin_id})
    mon.http.cookies.set("farm_session", forged)
    assert mon.http.get("/jobs", follow_redirects=False).status_code == 303
    # A session id that was never issued is refused too.
    forged = URLSafeTimedSerializer(secret, salt="farm-monitor-session").dumps({"c": "x", "s": "made-up"})
    mon.http.cookies.set("farm_session", forged)
    assert mon.http.get("/jobs", follow_redirects=False).status_code == 303


def test_the_session_row_keeps_a_hash_not_the_cookies_id(mon):
    mon.login(mon.admin)
    cookie = _session_cookie(mon)
    with mon.db.session() as s:
        rows = s.query(BrowserSessionRow).all()
        assert len(rows) == 1 and rows[0].id_hash not in cookie and len(rows[0].id_hash) == 64


def test_an_expired_session_ends_although_the_token_lives(mon):
    mon.login(mon.admin)
    with mon.db.session() as s:
        for row in s.query(BrowserSessionRow):
            row.expires_at = datetime(2020, 1, 1, tzinfo=UTC)
    assert mon.http.get("/jobs", follow_redirects=False).status_code == 303


def test_an_open_event_stream_ends_within_seconds_of_revocation(mon):
    token = mon.company_token("acme")
    job = mon.add_job(company="acme")  # queued: its stream would stay open for a minute
    mon.login(token)
    with mon.http.stream("GET", f"/events/jobs?ids={job}", headers={"accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        with mon.db.session() as s:
            for row in s.query(ApiToken).filter(ApiToken.name == "test"):
                row.revoked_at = datetime.now(UTC)
        revoked = time.monotonic()
        ended = None
        for line in lines:
            if line.startswith("event: end"):
                ended = json.loads(next(lines).removeprefix("data: "))
                break
            assert time.monotonic() - revoked < 10, "the stream kept going after its token was revoked"
        assert ended == {"reason": "session"}
        assert time.monotonic() - revoked < 6


def test_security_headers_on_pages_api_and_streams(mon):
    for path in ("/login", "/healthz", "/api/v1/me", "/static/monitor.js"):
        r = mon.http.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["referrer-policy"] == "same-origin", path
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, path
        script = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
        assert "unsafe-inline" not in script and "unsafe-eval" not in script, path
    mon.login(mon.admin)
    with mon.http.stream("GET", "/events/jobs?ids=x", headers={"accept": "text/event-stream"}) as stream:
        assert "frame-ancestors 'none'" in stream.headers["content-security-policy"]


def test_the_install_secret_is_random_private_and_kept(tmp_path):
    first = install_secret(tmp_path / "a")
    assert len(first) >= 32 and first != OLD_PUBLIC_DEFAULT
    assert stat.S_IMODE(os.stat(tmp_path / "a" / FILE).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o700  # the data dir: the farm's user only
    assert install_secret(tmp_path / "a") == first  # kept across restarts: sessions survive them
    assert install_secret(tmp_path / "b") != first  # every install its own
    with factories.api_farm(tmp_path / "c") as farm:
        assert farm.app.state.ctx.settings.secret_key == (tmp_path / "c" / FILE).read_text().strip()


def test_cluster_mode_refuses_to_start_without_a_secret():
    with pytest.raises(ValidationError, match="FARM_SECRET_KEY must be set"):
        ServerSettings(mode="cluster", secret_key=None)
    with pytest.raises(ValidationError, match="too short"):
        ServerSettings(mode="cluster", secret_key="short")
