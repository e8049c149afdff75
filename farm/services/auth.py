"""API tokens: random, shown once, stored as sha256, scoped to one company and one role."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import new_id, utc
from farm.contract import Role
from farm.db.models import ApiToken, Company
from farm.errors import Forbidden, Unauthorized

TOKEN_PREFIX = "farm_"  # noqa: S105 - a prefix, not a secret
DEFAULT_COMPANY = "default"


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from a token on every request."""

    token_id: str
    company_id: str
    company: str
    role: Role

    @property
    def is_platform_admin(self) -> bool:
        return self.role is Role.PLATFORM_ADMIN

    def may(self, role: Role) -> bool:
        """True when this principal's role is ``role`` or above it."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def reads_usage(self) -> bool:
        """The one rule for usage and cost, in the API, the CLI and the monitor (``USAGE_ROLE`` and above)."""
        return self.may(USAGE_ROLE)


#: Each role may do what the ones below it may: artist < company-admin < platform-admin.
ROLE_RANK: dict[Role, int] = {Role.ARTIST: 0, Role.COMPANY_ADMIN: 1, Role.PLATFORM_ADMIN: 2}
#: Usage and cost are a company admin's (their own company's) and the platform admin's (every company's).
USAGE_ROLE = Role.COMPANY_ADMIN


def require(who: Principal, role: Role, action: str) -> None:
    """``Forbidden`` unless the caller holds ``role`` or above; the message names the role needed."""
    if not who.may(role):
        raise Forbidden(f"{action} needs the {role.value} role; this token is {who.role.value}")


def hash_token(token: str) -> str:
    """What the database keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_company(session: Session, name: str, now: datetime) -> Company:
    """The company called ``name``, created when absent."""
    company = session.scalar(select(Company).where(Company.name == name))
    if company is None:
        company = Company(id=new_id("co"), name=name, created_at=now)
        session.add(company)
        session.flush()
    return company


def create_token(
    session: Session,
    company: Company,
    role: Role,
    now: datetime,
    name: str = "",
    token: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, ApiToken]:
    """Make a token; the plain value is returned once and never stored."""
    value = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=new_id("tok"),
        company_id=company.id,
        role=role.value,
        token_hash=hash_token(value),
        name=name,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return value, row


def resolve_token(session: Session, token: str | None, now: datetime) -> Principal:
    """The principal behind a bearer token, or ``Unauthorized`` with the reason."""
    if not token:
        raise Unauthorized("no API token: send 'Authorization: Bearer <token>' (see 'farm login')")
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None:
        raise Unauthorized("unknown API token")
    if row.revoked_at is not None:
        raise Unauthorized("this API token was revoked")
    if row.expires_at is not None and utc(row.expires_at) <= now:
        raise Unauthorized("this API token has expired")
    company = session.get(Company, row.company_id)
    if company is None:
        raise Unauthorized("the token's company no longer exists")
    return Principal(token_id=row.id, company_id=company.id, company=company.name, role=Role(row.role))
