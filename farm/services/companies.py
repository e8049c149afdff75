"""Companies: create, list, read and update their fair-share and quota settings; every read is scoped.

A platform admin sees and changes every company; a company admin sees only its own company; another company's
name answers 404, exactly like a name that does not exist, so names cannot be probed.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import new_id, utc
from farm.contract import CompanyCreate, CompanyOut, CompanyUpdate, Role
from farm.db.models import Company
from farm.errors import Conflict, NotFound, ValidationFailed
from farm.services.auth import Principal, require

log = logging.getLogger(__name__)

#: Fields whose ``null`` on update means "no limit"; for the others ``null`` means "unchanged".
NULLABLE_LIMITS = ("max_slots", "gpu_hours_budget", "cpu_hours_budget", "retention_days")


def company_out(company: Company) -> CompanyOut:
    """The API view of a company."""
    return CompanyOut(
        id=company.id,
        name=company.name,
        gpu_share=company.gpu_share,
        cpu_share=company.cpu_share,
        min_slots=company.min_slots,
        max_slots=company.max_slots,
        gpu_hours_budget=company.gpu_hours_budget,
        cpu_hours_budget=company.cpu_hours_budget,
        rates=dict(company.rates or {}),
        created_at=utc(company.created_at),
        retention_days=company.retention_days,
    )


def create(session: Session, who: Principal, spec: CompanyCreate, now: datetime) -> Company:
    """A new company (platform admins only); 409 when the name is taken."""
    require(who, Role.PLATFORM_ADMIN, "creating a company")
    if session.scalar(select(Company.id).where(Company.name == spec.name)) is not None:
        raise Conflict(f"a company called {spec.name!r} exists already; pick another name or update it")
    company = Company(
        id=new_id("co"),
        name=spec.name,
        created_at=now,
        gpu_share=spec.gpu_share if spec.gpu_share is not None else 1.0,
        cpu_share=spec.cpu_share if spec.cpu_share is not None else 1.0,
        min_slots=spec.min_slots or 0,
        max_slots=spec.max_slots,
        gpu_hours_budget=spec.gpu_hours_budget,
        cpu_hours_budget=spec.cpu_hours_budget,
        rates=dict(spec.rates or {}),
        retention_days=spec.retention_days,
    )
    session.add(company)
    session.flush()
    log.info("company %s (%s) created by %s", company.name, company.id, who.token_id)
    return company


def visible(session: Session, who: Principal) -> list[Company]:
    """Every company for a platform admin, the caller's own otherwise; by name."""
    query = select(Company).order_by(Company.name)
    if not who.is_platform_admin:
        query = query.where(Company.id == who.company_id)
    return list(session.scalars(query))


def get(session: Session, who: Principal, name: str) -> Company:
    """The company called ``name`` if the caller may see it, else 404 (also for another company's name)."""
    query = select(Company).where(Company.name == name)
    if not who.is_platform_admin:
        query = query.where(Company.id == who.company_id)
    company = session.scalar(query)
    if company is None:
        raise NotFound(f"company {name!r} not found")
    return company


def update(session: Session, who: Principal, name: str, spec: CompanyUpdate) -> Company:
    """Change only the fields sent (platform admins only). Raising a budget lets held jobs run again."""
    company = get(session, who, name)
    require(who, Role.PLATFORM_ADMIN, "changing a company's shares, slots, budgets or rates")
    sent = spec.model_fields_set
    for field in sent:
        value = getattr(spec, field)
        if value is None and field not in NULLABLE_LIMITS:
            continue
        setattr(company, field, dict(value) if field == "rates" else value)
    if company.max_slots is not None and company.min_slots > company.max_slots:
        raise ValidationFailed(
            f"min_slots ({company.min_slots}) must not exceed max_slots ({company.max_slots}); change both"
        )
    log.info("company %s updated by %s: %s", company.name, who.token_id, ", ".join(sorted(sent)) or "nothing")
    return company
