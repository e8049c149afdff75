"""Garbage collection of input blobs: ``farm admin gc [--apply] [--retention-days 30]``.

A blob is kept while any job of its company that is still running, or was created or finished within the
retention, names it in its manifest, and while it is younger than the retention itself (a client uploads
its blobs before it creates the job that names them). Everything else is garbage. So are direct uploads
(``uploads/``) never committed for a day. A dry run (the default) only reports; ``apply`` deletes the
database rows first, then the objects, so a failure halfway never leaves a blob that counts without bytes.
Outputs are not touched: they belong to their job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from farm.contract import GcReport
from farm.db.engine import Database
from farm.db.models import Blob, Company, Job
from farm.domain.states import JOB_TERMINAL
from farm.errors import StorageError
from farm.services.blobs import UPLOAD_PREFIX, upload_created
from storage.base import ObjectStore, blob_key

log = logging.getLogger(__name__)

STALE_UPLOAD_AGE = timedelta(days=1)


@dataclass
class GcPlan:
    """What a collection would remove."""

    blobs: list[tuple[str, str, int]] = field(default_factory=list)  # (company id, sha256, size)
    stale_uploads: list[str] = field(default_factory=list)  # object keys


def referenced(session: Session, cutoff: datetime) -> set[tuple[str, str]]:
    """``(company id, sha256)`` of every blob named by a job that is live or recent."""
    live = or_(
        Job.status.not_in([s.value for s in JOB_TERMINAL]),
        Job.created_at >= cutoff,
        Job.finished_at >= cutoff,
    )
    keep: set[tuple[str, str]] = set()
    for company_id, manifest in session.execute(select(Job.company_id, Job.manifest).where(live)):
        for entry in (manifest or {}).values():
            keep.add((company_id, str(entry["sha256"])))
    return keep


def plan(session: Session, store: ObjectStore, now: datetime, retention_days: float) -> GcPlan:
    """Find garbage without deleting anything."""
    cutoff = now - timedelta(days=retention_days)
    keep = referenced(session, cutoff)
    out = GcPlan()
    old_blobs = (
        select(Blob.company_id, Blob.sha256, Blob.size)
        .where(Blob.created_at < cutoff)
        .order_by(Blob.company_id, Blob.sha256)
    )
    for company_id, sha, size in session.execute(old_blobs):
        if (company_id, sha) not in keep:
            out.blobs.append((company_id, sha, int(size)))
    for info in store.list(UPLOAD_PREFIX):
        created = upload_created(info.key.rsplit("/", 1)[-1])
        if created is None or created < now - STALE_UPLOAD_AGE:
            out.stale_uploads.append(info.key)
    return out


def collect(db: Database, store: ObjectStore, now: datetime, retention_days: float, apply: bool) -> GcReport:
    """Plan, and with ``apply`` delete; the report names blobs as ``company/sha256``."""
    with db.session() as s:
        found = plan(s, store, now, retention_days)
        names = {str(cid): str(name) for cid, name in s.execute(select(Company.id, Company.name))}
    if apply:
        with db.session() as s:
            # A job created since the plan may name one of them now: it stays.
            keep = referenced(s, now - timedelta(days=retention_days))
            found.blobs = [b for b in found.blobs if (b[0], b[1]) not in keep]
            for company_id, sha, _size in found.blobs:
                s.execute(delete(Blob).where(Blob.company_id == company_id, Blob.sha256 == sha))
        failed = 0
        for key in [blob_key(c, sha) for c, sha, _ in found.blobs] + found.stale_uploads:
            try:
                store.delete(key)
            except StorageError as exc:
                failed += 1
                log.warning("gc: could not delete %s: %s", key, exc)
        log.info(
            "gc: deleted %d blob(s), %d stale upload(s); %d object(s) could not be deleted",
            len(found.blobs),
            len(found.stale_uploads),
            failed,
        )
    return GcReport(
        applied=apply,
        retention_days=retention_days,
        blobs=[f"{names.get(c, c)}/{sha}" for c, sha, _ in found.blobs],
        blob_bytes=sum(size for _, _, size in found.blobs),
        stale_uploads=len(found.stale_uploads),
    )
