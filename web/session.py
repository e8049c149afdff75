"""Browser sessions of the monitor: an API token is exchanged once for a signed cookie.

The cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) is signed with ``settings.secret_key`` and carries the
token's *id* (never the token) and a random per-session CSRF token. Every request re-reads the token row, so a
revoked or expired token ends its browser sessions at once. Every POST of the monitor must echo the CSRF token in
a form field (``csrf``) or the ``X-CSRF-Token`` header; SameSite=Lax alone would not stop a same-site attacker.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.contract import Role
from farm.db.models import ApiToken, Company
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
    """What the cookie holds: the CSRF token and, once logged in, the API token's id."""

    csrf: str
    token_id: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.token_id is not None


def new_session(token_id: str | None = None) -> BrowserSession:
    """A fresh session with a new CSRF token (also at login, so a planted cookie is worth nothing)."""
    return BrowserSession(csrf=secrets.token_urlsafe(32), token_id=token_id)


def _serializer(settings: ServerSettings) -> URLSafeTimedSerializer:
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
    token_id = data.get("t")
    return BrowserSession(csrf=data["c"], token_id=token_id if isinstance(token_id, str) else None)


def store(response: Response, request: Request, settings: ServerSettings, session: BrowserSession) -> None:
    """Write the session cookie onto ``response``."""
    value = _serializer(settings).dumps({"c": session.csrf, "t": session.token_id})
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


def principal_for(db: Session, token_id: str, now: datetime) -> Principal:
    """The principal behind a logged-in session; ``Unauthorized`` when its token was revoked or expired since."""
    row = db.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        raise Unauthorized("your session's API token was revoked; log in again")
    if row.expires_at is not None and utc(row.expires_at) <= now:
        raise Unauthorized("your session's API token has expired; log in with a new one")
    company = db.get(Company, row.company_id)
    if company is None:
        raise Unauthorized("your session's company no longer exists")
    return Principal(token_id=row.id, company_id=company.id, company=company.name, role=Role(row.role))


def check_csrf(session: BrowserSession | None, sent: str | None) -> None:
    """Refuse a state-changing request whose CSRF token does not match the session's."""
    if session is None or not sent or not secrets.compare_digest(session.csrf.encode(), sent.encode()):
        raise Forbidden("the form was stale or not sent by this site (CSRF check failed); reload the page and retry")
