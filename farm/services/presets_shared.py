"""Shared presets (issue 20 item 4): a company's or the platform's job presets published for other companies.

A company admin publishes one of the company's presets (``farm preset publish NAME --description …``): the shared
preset is a copy of its settings at that moment, with a description of when to use it, visible to every company
or to the companies listed, by the library's rule (``farm.services.library``: ``all`` / ``listed``, the publisher's
company admin publishes, names in ``to`` are company names). Published by a platform admin, it is marked as the
platform's practice. Publishing again replaces the copy; unpublishing removes it (jobs keep their settings).

At submit, ``--preset NAME`` means the company's own preset first, then the one shared preset called NAME visible
to it; ``NAME@PUBLISHER`` names a shared preset of that company. A company never sees another company's private
presets, nor shared presets not meant for it: both answer 404 like a name that does not exist.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from farm.clock import new_id, utc
from farm.contract import PRESET_FIELDS, PresetPublish, PresetSettings, SharedPresetOut
from farm.db.models import Company, JobPreset, SharedPreset, SharedPresetGrant
from farm.errors import Conflict, NotFound, ValidationFailed
from farm.services.auth import Principal, require
from farm.services.library import ALL, LISTED, PUBLISH_ROLE

log = logging.getLogger(__name__)

#: The separator of an explicit shared preset reference, ``NAME@PUBLISHER``.
REF_SEP = "@"


def _visible_to(company_id: str) -> Any:
    """SQL condition, the library's visibility rule on shared presets: the company's own, every company's, or
    listed for it."""
    granted = exists().where(SharedPresetGrant.preset_id == SharedPreset.id, SharedPresetGrant.company_id == company_id)
    return or_(SharedPreset.company_id == company_id, SharedPreset.visibility == ALL, granted)


def _grantees(session: Session, names: list[str]) -> list[Company]:
    companies: list[Company] = []
    for name in sorted(set(names)):
        company = session.scalar(select(Company).where(Company.name == name))
        if company is None:
            raise ValidationFailed(f"to: no company is called {name!r}; `farm preset publish --to` takes company names")
        companies.append(company)
    return companies


def _company_named(session: Session, name: str) -> Company | None:
    return session.scalar(select(Company).where(Company.name == name))


def out(session: Session, who: Principal, row: SharedPreset) -> SharedPresetOut:
    """The shared preset as the caller may see it (the list of grantees is the publisher's business)."""
    publisher = session.get(Company, row.company_id)
    publisher_name = publisher.name if publisher is not None else ""
    to: list[str] | None = None
    if row.visibility == LISTED and (who.is_platform_admin or row.company_id == who.company_id):
        to = sorted(
            session.scalars(
                select(Company.name)
                .join(SharedPresetGrant, SharedPresetGrant.company_id == Company.id)
                .where(SharedPresetGrant.preset_id == row.id)
            )
        )
    return SharedPresetOut(
        name=row.name,
        ref=f"{row.name}{REF_SEP}{publisher_name}",
        publisher=publisher_name,
        by_platform=row.by_platform,
        mine=row.company_id == who.company_id,
        description=row.description,
        settings=PresetSettings.model_validate(row.settings),
        visibility=row.visibility,
        to=to,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


def publish(session: Session, who: Principal, name: str, body: PresetPublish, now: datetime) -> SharedPreset:
    """Publish (or publish again) the company's preset ``name``: 404 when the company has none by that name."""
    require(who, PUBLISH_ROLE, "publishing a preset")
    own = session.get(JobPreset, (who.company_id, name))
    if own is None:
        raise NotFound(f"preset {name!r} not found: save it first (farm preset save {name} …), then publish it")
    description = body.description.strip()
    if not description:
        raise ValidationFailed("description: say when to use this preset (the scenes and purposes it suits)")
    grantees = _grantees(session, body.to)
    row = session.scalar(
        select(SharedPreset).where(SharedPreset.company_id == who.company_id, SharedPreset.name == name)
    )
    if row is None:
        row = SharedPreset(id=new_id("spr"), company_id=who.company_id, name=name, created_at=now)
        session.add(row)
    else:
        session.execute(delete(SharedPresetGrant).where(SharedPresetGrant.preset_id == row.id))
    row.description, row.settings = description, dict(own.settings)
    row.visibility, row.by_platform, row.updated_at = (LISTED if grantees else ALL), who.is_platform_admin, now
    session.flush()
    for company in grantees:
        session.add(SharedPresetGrant(preset_id=row.id, company_id=company.id))
    session.flush()
    log.info(
        "presets: company %s published preset %s to %s",
        who.company,
        name,
        ", ".join(c.name for c in grantees) or "every company",
    )
    return row


def unpublish(session: Session, who: Principal, name: str, company: str | None = None) -> None:
    """Remove the company's shared preset ``name`` (a platform admin may name another ``company``)."""
    require(who, PUBLISH_ROLE, "unpublishing a preset")
    company_id = who.company_id
    if company is not None and company != who.company:
        target = _company_named(session, company) if who.is_platform_admin else None
        if target is None:
            raise NotFound(f"shared preset {name!r} of {company!r} not found")
        company_id = target.id
    row = session.scalar(select(SharedPreset).where(SharedPreset.company_id == company_id, SharedPreset.name == name))
    if row is None:
        raise NotFound(f"shared preset {name!r} not found: `farm preset list` shows what your company published")
    session.execute(delete(SharedPresetGrant).where(SharedPresetGrant.preset_id == row.id))
    session.delete(row)
    session.flush()
    log.info("presets: shared preset %s of company %s unpublished by %s", name, company_id, who.company)


def listing(session: Session, who: Principal) -> list[SharedPreset]:
    """Shared presets visible to the caller's company (its own published ones included), by name and publisher."""
    query = select(SharedPreset).where(_visible_to(who.company_id)).order_by(SharedPreset.name, SharedPreset.company_id)
    return list(session.scalars(query))


def get(session: Session, who: Principal, publisher: str, name: str) -> SharedPreset:
    """One shared preset the caller may see; 404 otherwise, exactly as for one that does not exist."""
    company = _company_named(session, publisher)
    row = None
    if company is not None:
        row = session.scalar(
            select(SharedPreset).where(
                SharedPreset.company_id == company.id, SharedPreset.name == name, _visible_to(who.company_id)
            )
        )
    if row is None:
        raise NotFound(f"shared preset {name}{REF_SEP}{publisher} not found")
    return row


def resolve(session: Session, who: Principal, ref: str) -> dict[str, object]:
    """The settings ``ref`` names for a submit: ``NAME@PUBLISHER``, or ``NAME`` (own preset first, then the one
    shared preset of that name the company may use). 404 when none; 409 when several companies share a NAME."""
    if REF_SEP in ref:
        name, publisher = ref.split(REF_SEP, 1)
        row = get(session, who, publisher, name)
        return {k: v for k, v in row.settings.items() if k in PRESET_FIELDS}
    own = session.get(JobPreset, (who.company_id, ref))
    if own is not None:
        return {k: v for k, v in own.settings.items() if k in PRESET_FIELDS}
    rows = list(session.scalars(select(SharedPreset).where(SharedPreset.name == ref, _visible_to(who.company_id))))
    if not rows:
        raise NotFound(f"preset {ref!r} not found: `farm preset list` shows yours and the shared ones")
    if len(rows) > 1:
        refs = sorted(out(session, who, row).ref for row in rows)
        raise Conflict(f"several shared presets are called {ref!r}: {', '.join(refs)}; name one as NAME@PUBLISHER")
    return {k: v for k, v in rows[0].settings.items() if k in PRESET_FIELDS}
