"""The common asset library (issue 20): assets a company publishes for the others, stored once, used by reference.

A company publishes a blob it uploaded (an HDRI, a texture, a .blend library, a font) with a name, tags, a licence
and a visibility: every company (``all``) or the companies it lists (``listed``). The bytes stay where they are,
``blobs/<publisher>/<sha256>``: nothing is copied, so the storage sampler meters them to the publisher once.

Using it: ``POST /api/v1/blobs/missing`` treats a hash as held when it is a live asset visible to the caller
(``visible_owners``), so the packer does not upload it; ``create_job`` then marks the manifest entry with the
publisher (``farm.domain.inputs.FROM_FIELD``) and records one ``LibraryUse`` per (job, asset); the worker and the
store grants read the entry from the publisher's namespace like any other input.

The blob privacy rule stands: only *published and visible* hashes ever count for another company. A company's
unpublished blobs, assets listed for others, and retracted assets are answered exactly as a hash nobody holds.
Retraction stops new use; jobs that already reference the asset keep its bytes (gc keeps every blob a live job
names, publisher's namespace included).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from farm.clock import new_id
from farm.contract import LibraryAssetOut, LibraryMonth, LibraryPublish, LibraryUsage, Role
from farm.db.models import Blob, Company, Job, LibraryAsset, LibraryGrant, LibraryUse
from farm.domain.inputs import FROM_FIELD
from farm.errors import Conflict, NotFound, ValidationFailed
from farm.services.auth import Principal, require
from storage.base import ObjectStore, blob_key

log = logging.getLogger(__name__)

ALL = "all"
LISTED = "listed"
PUBLISH_ROLE = Role.COMPANY_ADMIN  # publishing under a licence speaks for the company


def _visible_to(company_id: str) -> Any:
    """SQL condition: a live asset that ``company_id`` may use (its own, every company's, or listed for it)."""
    granted = exists().where(LibraryGrant.asset_id == LibraryAsset.id, LibraryGrant.company_id == company_id)
    return and_(
        LibraryAsset.retracted_at.is_(None),
        or_(LibraryAsset.company_id == company_id, LibraryAsset.visibility == ALL, granted),
    )


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def visible_owners(session: Session, who: Principal, hashes: Sequence[str]) -> dict[str, str]:
    """``{sha256: publisher company id}`` for the hashes that are live library assets visible to the caller's
    company (its own published assets included). Nothing else about other companies' blobs is ever read."""
    wanted = sorted(set(hashes))
    owners: dict[str, str] = {}
    for part in _chunks(wanted):
        rows = session.execute(
            select(LibraryAsset.sha256, LibraryAsset.company_id)
            .where(LibraryAsset.sha256.in_(part), _visible_to(who.company_id))
            .order_by(LibraryAsset.created_at)
        )
        for sha, owner in rows:
            owners.setdefault(str(sha), str(owner))
    return owners


def held_in_library(session: Session, store: ObjectStore, who: Principal, hashes: Sequence[str]) -> set[str]:
    """The hashes the caller need not upload because a visible library asset holds them in the store.

    An asset whose object was lost does not count (the client then uploads its own copy)."""
    owners = visible_owners(session, who, hashes)
    from farm.services.blobs import stat_many  # blobs imports this module for the missing answer

    shas = sorted(owners)
    infos = stat_many(store, [blob_key(owners[sha], sha) for sha in shas])
    return {sha for sha, info in zip(shas, infos, strict=True) if info is not None}


def annotate(manifest: dict[str, dict[str, object]], owners: Mapping[str, str], company_id: str) -> None:
    """Mark each entry read from another company's library asset with its publisher (in place)."""
    for entry in manifest.values():
        owner = owners.get(str(entry["sha256"]))
        if owner is not None and owner != company_id:
            entry[FROM_FIELD] = owner


def record_uses(session: Session, job: Job, owners: Mapping[str, str], now: datetime) -> int:
    """One ``LibraryUse`` per library asset the new job references instead of an upload of its own."""
    if not owners:
        return 0
    used = 0
    for sha, owner in sorted(owners.items()):
        asset = session.scalar(
            select(LibraryAsset)
            .where(LibraryAsset.sha256 == sha, LibraryAsset.company_id == owner, LibraryAsset.retracted_at.is_(None))
            .order_by(LibraryAsset.created_at)
            .limit(1)
        )
        if asset is None:
            continue
        session.add(
            LibraryUse(asset_id=asset.id, job_id=job.id, company_id=job.company_id, size=asset.size, used_at=now)
        )
        used += 1
    return used


def live_keys(session: Session) -> set[tuple[str, str]]:
    """``(publisher id, sha256)`` of every live asset: gc keeps them whatever their age."""
    rows = session.execute(
        select(LibraryAsset.company_id, LibraryAsset.sha256).where(LibraryAsset.retracted_at.is_(None))
    )
    return {(str(c), str(s)) for c, s in rows}


# ---- publishing and browsing ----------------------------------------------------------------------------------
def publish(session: Session, store: ObjectStore, who: Principal, spec: LibraryPublish, now: datetime) -> LibraryAsset:
    """Publish a blob the caller's company holds (uploaded before, row and object)."""
    require(who, PUBLISH_ROLE, "publishing to the library")
    if spec.filename.strip(" .") == "":
        raise ValidationFailed(f"filename: {spec.filename!r} is no file name; give the file's name, e.g. sky.hdr")
    blob = session.get(Blob, (who.company_id, spec.sha256))
    info = store.stat(blob_key(who.company_id, spec.sha256)) if blob is not None else None
    if blob is None or info is None:
        raise ValidationFailed(
            f"your company holds no blob {spec.sha256}: upload the file first (`farm library publish PATH` does both)"
        )
    live = session.scalar(
        select(LibraryAsset.id).where(
            LibraryAsset.company_id == who.company_id,
            LibraryAsset.name == spec.name,
            LibraryAsset.retracted_at.is_(None),
        )
    )
    if live is not None:
        raise Conflict(
            f"your company already publishes an asset named {spec.name!r} ({live}); retract it or pick a name"
        )
    grantees: list[Company] = []
    for name in sorted(set(spec.to)):
        company = session.scalar(select(Company).where(Company.name == name))
        if company is None:
            raise ValidationFailed(
                f"to: no company is called {name!r}; `farm library publish --to` takes company names"
            )
        grantees.append(company)
    asset = LibraryAsset(
        id=new_id("lib"),
        company_id=who.company_id,
        sha256=spec.sha256,
        size=blob.size,
        name=spec.name,
        filename=spec.filename,
        tags=sorted(set(spec.tags)),
        licence=spec.licence,
        visibility=LISTED if grantees else ALL,
        created_at=now,
    )
    session.add(asset)
    session.flush()
    for company in grantees:
        session.add(LibraryGrant(asset_id=asset.id, company_id=company.id))
    session.flush()
    log.info(
        "library: company %s published %s (%s, %d bytes) to %s",
        who.company,
        asset.id,
        asset.name,
        asset.size,
        ", ".join(c.name for c in grantees) or "every company",
    )
    return asset


def get(session: Session, who: Principal, asset_id: str) -> LibraryAsset:
    """An asset the caller may see: any live visible one; retracted ones only to the publisher (and platform
    admins). Anything else answers 404, the same as an id that does not exist."""
    asset = session.get(LibraryAsset, asset_id)
    if asset is not None and (who.is_platform_admin or asset.company_id == who.company_id):
        return asset
    if asset is not None and session.scalar(
        select(LibraryAsset.id).where(LibraryAsset.id == asset_id, _visible_to(who.company_id))
    ):
        return asset
    raise NotFound(f"library asset {asset_id!r} not found")


def listing(
    session: Session, who: Principal, tag: str | None = None, mine: bool = False, retracted: bool = False
) -> list[LibraryAsset]:
    """Assets the caller may use, newest first; ``mine``: its company's own (``retracted`` adds retracted ones)."""
    query = select(LibraryAsset).order_by(LibraryAsset.created_at.desc(), LibraryAsset.id)
    if mine:
        query = query.where(LibraryAsset.company_id == who.company_id)
        if not retracted:
            query = query.where(LibraryAsset.retracted_at.is_(None))
    else:
        query = query.where(_visible_to(who.company_id))
    rows = list(session.scalars(query))
    return [a for a in rows if tag is None or tag in (a.tags or [])]


def retract(session: Session, who: Principal, asset_id: str, now: datetime) -> LibraryAsset:
    """Stop new use (the publisher's company admin, or a platform admin); queued jobs keep the bytes."""
    asset = get(session, who, asset_id)
    if asset.company_id != who.company_id and not who.is_platform_admin:
        raise NotFound(f"library asset {asset_id!r} not found")  # visible, but not the caller's to retract
    require(who, PUBLISH_ROLE, "retracting a library asset")
    if asset.retracted_at is None:
        asset.retracted_at = now
        log.info("library: %s (%s) retracted by company %s", asset.id, asset.name, who.company)
    return asset


def asset_out(session: Session, who: Principal, asset: LibraryAsset) -> LibraryAssetOut:
    """The asset as the caller may see it: the list of companies it is shared with is the publisher's business."""
    publisher = session.get(Company, asset.company_id)
    to: list[str] | None = None
    if asset.visibility == LISTED and (who.is_platform_admin or asset.company_id == who.company_id):
        to = sorted(
            session.scalars(
                select(Company.name)
                .join(LibraryGrant, LibraryGrant.company_id == Company.id)
                .where(LibraryGrant.asset_id == asset.id)
            )
        )
    return LibraryAssetOut(
        id=asset.id,
        name=asset.name,
        filename=asset.filename,
        sha256=asset.sha256,
        size=asset.size,
        tags=list(asset.tags or []),
        licence=asset.licence,
        publisher=publisher.name if publisher is not None else "",
        visibility=asset.visibility,
        to=to,
        created_at=asset.created_at,
        retracted_at=asset.retracted_at,
    )


def pull_key(session: Session, who: Principal, asset_id: str) -> tuple[LibraryAsset, str]:
    """The store key to download an asset from; a retracted asset only for its publisher."""
    asset = get(session, who, asset_id)
    if asset.retracted_at is not None and asset.company_id != who.company_id and not who.is_platform_admin:
        raise NotFound(f"library asset {asset_id!r} not found")
    return asset, blob_key(asset.company_id, asset.sha256)


# ---- who uses what -------------------------------------------------------------------------------------------
def _month(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def usage(session: Session, who: Principal, asset_id: str) -> LibraryUsage:
    """Per month: jobs that used the asset, distinct companies, and bytes avoided (publisher's admins only)."""
    asset = get(session, who, asset_id)
    if asset.company_id != who.company_id and not who.is_platform_admin:
        raise NotFound(f"library asset {asset_id!r} not found")  # users of an asset never see who else uses it
    require(who, PUBLISH_ROLE, "reading who uses a library asset")
    rows = session.execute(
        select(LibraryUse.company_id, LibraryUse.job_id, LibraryUse.used_at, LibraryUse.size)
        .where(LibraryUse.asset_id == asset.id)
        .order_by(LibraryUse.used_at)
    ).all()
    months: dict[str, tuple[set[str], set[str], int]] = {}
    first_seen: set[str] = set()
    for company_id, job_id, used_at, size in rows:
        jobs, companies, avoided = months.setdefault(_month(used_at), (set(), set(), 0))
        jobs.add(str(job_id))
        companies.add(str(company_id))
        if company_id != asset.company_id and company_id not in first_seen:
            first_seen.add(str(company_id))
            avoided += int(size)
        months[_month(used_at)] = (jobs, companies, avoided)
    return LibraryUsage(
        asset_id=asset.id,
        name=asset.name,
        months=[
            LibraryMonth(month=m, jobs=len(j), companies=len(c), bytes_avoided=b)
            for m, (j, c, b) in sorted(months.items())
        ],
    )
