"""/api/v1/me and /api/v1/admin: companies, tokens and fsck. Artists get 403 here; other companies answer 404."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from farm.contract import (
    CompanyCreate,
    CompanyList,
    CompanyOut,
    CompanyUpdate,
    FsckReport,
    FsckRequest,
    Role,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
    WhoAmI,
)
from farm.services import companies, fsck, tokens
from farm.services.auth import require
from web.deps import Caller, Ctx
from web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["admin"], responses=ERROR_RESPONSES)


@router.get("/me", response_model=WhoAmI)
def whoami(who: Caller) -> WhoAmI:
    """Which company and role the token acts as (``farm login`` checks a token with it)."""
    return WhoAmI(token_id=who.token_id, company=who.company, role=who.role)


@router.get("/admin/companies", response_model=CompanyList)
def list_companies(who: Caller, ctx: Ctx) -> CompanyList:
    """Every company (platform admin) or the caller's own (company admin)."""
    require(who, Role.COMPANY_ADMIN, "reading company settings")
    with ctx.db.session() as s:
        return CompanyList(companies=[companies.company_out(c) for c in companies.visible(s, who)])


@router.post("/admin/companies", response_model=CompanyOut, status_code=201)
def create_company(spec: CompanyCreate, who: Caller, ctx: Ctx) -> CompanyOut:
    """A new company with its shares, slot guarantees and caps, budgets and rate card."""
    with ctx.db.session() as s:
        out = companies.company_out(companies.create(s, who, spec, ctx.clock.now()))
    ctx.notify()
    return out


@router.get("/admin/companies/{name}", response_model=CompanyOut)
def get_company(name: str, who: Caller, ctx: Ctx) -> CompanyOut:
    """One company's settings."""
    require(who, Role.COMPANY_ADMIN, "reading company settings")
    with ctx.db.session() as s:
        return companies.company_out(companies.get(s, who, name))


@router.patch("/admin/companies/{name}", response_model=CompanyOut)
def update_company(name: str, spec: CompanyUpdate, who: Caller, ctx: Ctx) -> CompanyOut:
    """Change some settings; raising a budget lets jobs waiting on it run again at once."""
    require(who, Role.COMPANY_ADMIN, "changing company settings")
    with ctx.db.session() as s:
        out = companies.company_out(companies.update(s, who, name, spec))
    ctx.notify()
    return out


@router.get("/admin/tokens", response_model=TokenList)
def list_tokens(
    who: Caller, ctx: Ctx, company: Annotated[str | None, Query(description="only this company's")] = None
) -> TokenList:
    """Tokens the caller manages (never their values)."""
    with ctx.db.session() as s:
        return TokenList(tokens=[tokens.token_out(s, t) for t in tokens.visible(s, who, company)])


@router.post("/admin/tokens", response_model=TokenCreated, status_code=201)
def create_token(spec: TokenCreate, who: Caller, ctx: Ctx) -> TokenCreated:
    """A new token; its value is in this answer only."""
    with ctx.db.session() as s:
        return tokens.issue(s, who, spec, ctx.clock.now())


@router.post("/admin/tokens/{token_id}/revoke", response_model=TokenOut)
def revoke_token(token_id: str, who: Caller, ctx: Ctx) -> TokenOut:
    """Revoke a token now; requests with it answer 401 from here on."""
    with ctx.db.session() as s:
        return tokens.token_out(s, tokens.revoke(s, who, token_id, ctx.clock.now()))


@router.post("/admin/fsck", response_model=FsckReport)
def check_store(body: FsckRequest, who: Caller, ctx: Ctx) -> FsckReport:
    """Compare blob and frame rows with the object store (platform admins); ``repair`` fixes what is safe.

    Repair deletes blob rows whose object is lost or of the wrong size (clients upload them again) and orphan
    blob objects older than ``grace_minutes`` that no unfinished job names; jobs with lost frames are listed,
    never changed.
    """
    require(who, Role.PLATFORM_ADMIN, "checking the store against the database")
    return fsck.check(ctx.db, ctx.store, ctx.clock.now(), body.repair, timedelta(minutes=body.grace_minutes))
