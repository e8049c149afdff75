"""Garbage collection of input blobs: ``farm admin gc [--apply] [--retention-days 30]``.

A blob is kept while any job of its company that is still running, or was created or finished within the
retention, names it in its manifest, and while it is younger than the retention itself (a client uploads
its blobs before it creates the job that names them). Everything else is garbage. So are direct uploads
(``uploads/``) never committed for a day. A dry run (the default) only reports; ``apply`` deletes the
database rows first, then the objects, so a failure halfway never leaves a blob that counts without bytes.

Retention (issue 15): a company with ``retention_days`` set has its finished jobs (completed, failed, canceled)
expired once they finished longer ago than that: the job, its chunks, attempts, frames, blocklist and product rows,
then every object under its outputs (frames, thumbnails, preview, video). Queued, running or paused jobs are never
expired, and companies without a retention keep everything. The usage ledger is billing history and stays; the
storage sampler counts only what remains, so metered storage drops with the next sample. An object that cannot be
deleted stays behind as an orphan ``farm admin fsck`` reports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.contract import GcReport
from farm.db.engine import Database
from farm.db.models import Blob, BlocklistEntry, Company, Frame, Job, JobProduct, Task, TaskAttempt
from farm.domain.inputs import input_owner
from farm.domain.states import JOB_TERMINAL
from farm.errors import StorageError
from farm.services import library
from farm.services.blobs import UPLOAD_PREFIX, upload_created
from storage.base import ObjectInfo, ObjectStore, blob_key, check_key

log = logging.getLogger(__name__)

STALE_UPLOAD_AGE = timedelta(days=1)
#: Jobs deleted per transaction: bounded statements, and the API's readers are never blocked for long.
EXPIRE_BATCH = 200


@dataclass
class GcPlan:
    """What a collection would remove."""

    blobs: list[tuple[str, str, int]] = field(default_factory=list)  # (company id, sha256, size)
    stale_uploads: list[str] = field(default_factory=list)  # object keys
    expired_jobs: list[tuple[str, str]] = field(default_factory=list)  # (company id, job id)
    outputs: list[ObjectInfo] = field(default_factory=list)  # the expired jobs' stored files


def expired(session: Session, now: datetime) -> list[tuple[str, str]]:
    """``(company id, job id)`` of every finished job older than its company's retention, oldest first.

    One indexed range per company that set a retention (``ix_jobs_company_finished``): the cost follows the
    expired jobs, not the history kept."""
    out: list[tuple[str, str]] = []
    terminal = [s.value for s in JOB_TERMINAL]
    companies = session.execute(select(Company.id, Company.retention_days).where(Company.retention_days.is_not(None)))
    for company_id, days in companies:
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        rows = session.scalars(
            select(Job.id)
            .where(Job.company_id == company_id, Job.finished_at < cutoff, Job.status.in_(terminal))
            .order_by(Job.finished_at, Job.id)
        )
        out.extend((company_id, job_id) for job_id in rows)
    return out


def still_expired(session: Session, now: datetime, job_ids: list[str]) -> set[str]:
    """Those of ``job_ids`` that are expired now, their rows locked until the transaction ends (PostgreSQL), so a
    retry or a retention change racing with the collection either happens first or finds the job gone."""
    rows = session.execute(
        select(Job.id, Job.finished_at, Company.retention_days)
        .join(Company, Company.id == Job.company_id)
        .where(Job.id.in_(job_ids), Job.status.in_([s.value for s in JOB_TERMINAL]))
        .with_for_update(of=Job)
    )
    return {
        job_id
        for job_id, finished, days in rows
        if finished is not None and days is not None and utc(finished) < now - timedelta(days=days)
    }


def job_outputs_prefix(company_id: str, job_id: str) -> str:
    """Where every stored file of a job lives (``storage.base.output_key``)."""
    return check_key(f"outputs/{company_id}/{job_id}") + "/"


def expire_rows(session: Session, job_ids: list[str]) -> None:
    """Delete the jobs and every row that hangs off them (the usage ledger stays: it is billing history)."""
    tasks = select(Task.id).where(Task.job_id.in_(job_ids))
    session.execute(delete(TaskAttempt).where(TaskAttempt.task_id.in_(tasks)))
    for model in (Frame, BlocklistEntry, JobProduct, Task):
        session.execute(delete(model).where(model.job_id.in_(job_ids)))
    session.execute(delete(Job).where(Job.id.in_(job_ids)))


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
            keep.add((input_owner(company_id, entry), str(entry["sha256"])))  # issue 20: a library asset's publisher
    return keep


def plan(session: Session, store: ObjectStore, now: datetime, retention_days: float) -> GcPlan:
    """Find garbage without deleting anything."""
    cutoff = now - timedelta(days=retention_days)
    keep = referenced(session, cutoff) | library.live_keys(session)  # issue 20: published assets stay
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
    out.expired_jobs = expired(session, now)
    for company_id, job_id in out.expired_jobs:
        out.outputs.extend(store.list(job_outputs_prefix(company_id, job_id)))
    return out


def _expire(db: Database, store: ObjectStore, found: GcPlan, now: datetime) -> int:
    """Delete the planned jobs that are still expired (a retry may have revived one), rows first, then their
    objects (listed again: a late upload of the last attempt is caught too); returns objects not deleted."""
    gone: list[tuple[str, str]] = []
    for start in range(0, len(found.expired_jobs), EXPIRE_BATCH):
        with db.session() as s:
            still = still_expired(s, now, [job_id for _, job_id in found.expired_jobs[start : start + EXPIRE_BATCH]])
            batch = [(c, j) for c, j in found.expired_jobs[start : start + EXPIRE_BATCH] if j in still]
            if batch:
                expire_rows(s, [j for _, j in batch])
        gone.extend(batch)
        for company_id, job_id in batch:
            log.info("gc: job %s of company %s expired (older than the company's retention)", job_id, company_id)
    found.expired_jobs = gone
    found.outputs = []
    failed = 0
    for company_id, job_id in gone:
        for info in store.list(job_outputs_prefix(company_id, job_id)):
            try:
                store.delete(info.key)
                found.outputs.append(info)
            except StorageError as exc:
                failed += 1
                log.warning("gc: could not delete %s: %s", info.key, exc)
    return failed


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
        failed = _expire(db, store, found, now)
        for key in [blob_key(c, sha) for c, sha, _ in found.blobs] + found.stale_uploads:
            try:
                store.delete(key)
            except StorageError as exc:
                failed += 1
                log.warning("gc: could not delete %s: %s", key, exc)
        log.info(
            "gc: deleted %d blob(s), %d stale upload(s), %d expired job(s) with %d output file(s); %d object(s) "
            "could not be deleted",
            len(found.blobs),
            len(found.stale_uploads),
            len(found.expired_jobs),
            len(found.outputs),
            failed,
        )
    return GcReport(
        applied=apply,
        retention_days=retention_days,
        blobs=[f"{names.get(c, c)}/{sha}" for c, sha, _ in found.blobs],
        blob_bytes=sum(size for _, _, size in found.blobs),
        stale_uploads=len(found.stale_uploads),
        expired_jobs=[f"{names.get(c, c)}/{job_id}" for c, job_id in found.expired_jobs],
        output_objects=len(found.outputs),
        output_bytes=sum(info.size for info in found.outputs),
    )
