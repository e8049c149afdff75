"""API tokens as company admins and platform admins manage them: issue, list, revoke.

Tokens are random, shown once (``TokenCreated.token``), stored as a sha256 hash (``farm.services.auth``), expire
(90 days unless asked otherwise) and can be revoked. A company admin manages its own company's tokens and cannot
mint a role above its own; a platform admin manages all. Another company's token id answers 404.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from farm.clock import new_id, utc
from farm.contract import Role, TokenCreate, TokenCreated, TokenOut
from farm.db.models import ApiToken, BrowserSessionRow, Company, User
from farm.errors import Forbidden, NotFound
from farm.services import companies
from farm.services.auth import Principal, create_token, require

log = logging.getLogger(__name__)


def ensure_user(session: Session, company: Company, name: str, now: datetime) -> User:
    """The company's user called ``name``, created when absent."""
    user = session.scalar(select(User).where(User.company_id == company.id, User.name == name))
    if user is None:
        user = User(id=new_id("usr"), company_id=company.id, name=name, created_at=now)
        session.add(user)
        session.flush()
    return user


def token_out(session: Session, row: ApiToken) -> TokenOut:
    """The API view of a token (never its value)."""
    company = session.get(Company, row.company_id)
    user = session.get(User, row.user_id) if row.user_id else None
    return TokenOut(
        id=row.id,
        company=company.name if company else "",
        role=Role(row.role),
        name=row.name,
        user=user.name if user else None,
        created_at=utc(row.created_at),
        expires_at=utc(row.expires_at) if row.expires_at else None,
        revoked_at=utc(row.revoked_at) if row.revoked_at else None,
    )


def issue(session: Session, who: Principal, spec: TokenCreate, now: datetime) -> TokenCreated:
    """A new token for ``spec.company``; the value is in the answer and nowhere else."""
    require(who, Role.COMPANY_ADMIN, "creating tokens")
    company = companies.get(session, who, spec.company)  # 404 for another company: names are not probed
    if not who.may(spec.role):
        raise Forbidden(f"a {who.role.value} cannot create a {spec.role.value} token")
    user = ensure_user(session, company, spec.user, now) if spec.user else None
    expires = now + timedelta(days=spec.expires_in_days) if spec.expires_in_days else None
    value, row = create_token(session, company, spec.role, now, name=spec.name, expires_at=expires)
    row.user_id = user.id if user else None
    session.flush()
    log.info("token %s (%s, %s) created by %s", row.id, company.name, spec.role.value, who.token_id)
    return TokenCreated(**token_out(session, row).model_dump(), token=value)


def visible(session: Session, who: Principal, company: str | None = None) -> list[ApiToken]:
    """Tokens the caller may manage, newest first; ``company`` narrows (404 if not visible)."""
    require(who, Role.COMPANY_ADMIN, "listing tokens")
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)
    if company is not None:
        query = query.where(ApiToken.company_id == companies.get(session, who, company).id)
    elif not who.is_platform_admin:
        query = query.where(ApiToken.company_id == who.company_id)
    return list(session.scalars(query))


def revoke(session: Session, who: Principal, token_id: str, now: datetime) -> ApiToken:
    """Revoke a token at once (idempotent); the next request with it answers 401."""
    require(who, Role.COMPANY_ADMIN, "revoking tokens")
    query = select(ApiToken).where(ApiToken.id == token_id)
    if not who.is_platform_admin:
        query = query.where(ApiToken.company_id == who.company_id)
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"token {token_id!r} not found")
    if not who.may(Role(row.role)):
        raise Forbidden(f"a {who.role.value} cannot revoke a {row.role} token")
    if row.revoked_at is None:
        row.revoked_at = now
        log.info("token %s revoked by %s", row.id, who.token_id)
    # Its monitor sessions end with it (they are refused anyway: this keeps the table clean).
    session.execute(delete(BrowserSessionRow).where(BrowserSessionRow.token_id == row.id))
    return row
