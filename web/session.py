"""Browser sessions of the monitor: an API token is exchanged once for a session kept in the database.

The cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) is signed with the install's secret and carries a random,
unguessable session id (never the token, nor its id) and a random per-session CSRF token. The database keeps only
the id's sha256 (``browser_sessions``), so logout, the session's expiry and the revocation or expiry of its token
end it at once, on every replica, event streams included (they re-check while open). A cookie from before the
login (the login form's CSRF token) holds no id and opens nothing. Every POST of the monitor must echo the CSRF
token in a form field (``csrf``) or the ``X-CSRF-Token`` header; SameSite=Lax alone would not stop a same-site
attacker.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.contract import Role
from farm.db.models import ApiToken, BrowserSessionRow, Company
from farm.errors import Forbidden, Unauthorized
from farm.services.auth import Principal
from farm.settings import ServerSettings

COOKIE = "farm_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
#: A browser session lasts at most this long, however long its token lives.
MAX_AGE_S = 12 * 3600
_SALT = "farm-monitor-session"


@dataclass(frozen=True)
class BrowserSession:
    """What the cookie holds: the CSRF token and, once logged in, the session's random id."""

    csrf: str
    sid: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.sid is not None


def new_session() -> BrowserSession:
    """A fresh anonymous session with a new CSRF token (for the login form)."""
    return BrowserSession(csrf=secrets.token_urlsafe(32))


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start(db: Session, token_id: str, now: datetime) -> BrowserSession:
    """Log in: a new session (new id, new CSRF token, so a planted cookie is worth nothing), kept in the database.
    Sessions that expired meanwhile are removed on the way."""
    db.execute(delete(BrowserSessionRow).where(BrowserSessionRow.expires_at <= now))
    fresh = BrowserSession(csrf=secrets.token_urlsafe(32), sid=secrets.token_urlsafe(32))
    assert fresh.sid is not None
    db.add(
        BrowserSessionRow(
            id_hash=_hash(fresh.sid),
            token_id=token_id,
            csrf=fresh.csrf,
            created_at=now,
            expires_at=now + timedelta(seconds=MAX_AGE_S),
        )
    )
    return fresh


def end(db: Session, browser: BrowserSession | None) -> None:
    """Log out: the session is gone for every replica and every open stream."""
    if browser is not None and browser.sid is not None:
        db.execute(delete(BrowserSessionRow).where(BrowserSessionRow.id_hash == _hash(browser.sid)))


def _serializer(settings: ServerSettings) -> URLSafeTimedSerializer:
    if not settings.secret_key:  # the wiring resolves it (farm.runtime.secret): never sign with a default
        raise RuntimeError("no secret to sign browser sessions with: the app was not wired by farm.runtime.api")
    return URLSafeTimedSerializer(settings.secret_key, salt=_SALT)


def load(request: Request, settings: ServerSettings) -> BrowserSession | None:
    """The session of this request, or None when there is no cookie or it is forged, altered or too old."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(settings).loads(raw, max_age=MAX_AGE_S)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), str):
        return None
    sid = data.get("s")
    return BrowserSession(csrf=data["c"], sid=sid if isinstance(sid, str) else None)


def store(response: Response, request: Request, settings: ServerSettings, session: BrowserSession) -> None:
    """Write the session cookie onto ``response``."""
    value = _serializer(settings).dumps({"c": session.csrf, "s": session.sid})
    response.set_cookie(
        COOKIE,
        value,
        max_age=MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear(response: Response) -> None:
    """Remove the session cookie (logout)."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")


def principal_for(db: Session, browser: BrowserSession, now: datetime) -> Principal:
    """The principal behind a logged-in session; ``Unauthorized`` when the session ended (logout, expiry) or its
    token was revoked or expired since."""
    row = db.get(BrowserSessionRow, _hash(browser.sid)) if browser.sid is not None else None
    if row is None or row.csrf != browser.csrf:
        raise Unauthorized("your session has ended (logged out, or on another farm); log in again")
    if utc(row.expires_at) <= now:
        db.delete(row)
        raise Unauthorized("your session has expired; log in again")
    token = db.get(ApiToken, row.token_id)
    if token is None or token.revoked_at is not None:
        raise Unauthorized("your session's API token was revoked; log in again")
    if token.expires_at is not None and utc(token.expires_at) <= now:
        raise Unauthorized("your session's API token has expired; log in with a new one")
    company = db.get(Company, token.company_id)
    if company is None:
        raise Unauthorized("your session's company no longer exists")
    return Principal(token_id=token.id, company_id=company.id, company=company.name, role=Role(token.role))


def check_csrf(session: BrowserSession | None, sent: str | None) -> None:
    """Refuse a state-changing request whose CSRF token does not match the session's."""
    if session is None or not sent or not secrets.compare_digest(session.csrf.encode(), sent.encode()):
        raise Forbidden("the form was stale or not sent by this site (CSRF check failed); reload the page and retry")
