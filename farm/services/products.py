"""A job's product: the video the farm encodes once every frame of a video-output scene is in.

One row per completed job (``JobProduct``): ``checking`` while the scene is read and encoded (shown as no
product), then ``ready`` or ``failed`` with the reason, or ``none`` when the scene asks for no video. The encode's
CPU time is appended to the usage ledger like a render attempt's (resource ``cpu``, outcome ``video`` or
``video-failed``); reading a scene that turns out to want no video is the farm's cost, not the company's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.contract import ProductOut, ProductStatus
from farm.db.models import Job, JobProduct
from farm.errors import NotFound
from farm.metering import ledger

log = logging.getLogger(__name__)

CHECKING = "checking"
NONE = "none"  # the scene asks for no video
SHOWN = (ProductStatus.READY.value, ProductStatus.FAILED.value)


@dataclass(frozen=True)
class ProductFacts:
    """What the encode task reports: whether the scene wanted a video, and what became of it."""

    job_id: str
    video: bool
    ok: bool = False
    name: str = ""
    key: str = ""
    size: int = 0
    sha256: str = ""
    detail: str = ""
    reason: str = ""
    node: str = ""
    cpu_seconds: float = 0.0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    #: The encode task's failed store calls, by operation (issue 15: every process that talks to the store).
    storage_errors: dict[str, int] = field(default_factory=dict)


def start(session: Session, job: Job, now: datetime) -> None:
    """The job completed: its product is being checked (a retried job's earlier product is forgotten)."""
    row = session.get(JobProduct, job.id)
    if row is None:
        row = JobProduct(job_id=job.id, company_id=job.company_id, kind="video")
        session.add(row)
    row.status = CHECKING
    row.name = row.key = row.sha256 = row.detail = row.reason = ""
    row.size = 0
    row.updated_at = now


def checking(session: Session) -> list[str]:
    """Jobs whose product was being made when the scheduler stopped (to be made again)."""
    return list(session.scalars(select(JobProduct.job_id).where(JobProduct.status == CHECKING)))


def record(session: Session, facts: ProductFacts, now: datetime) -> None:
    """Apply the encode task's facts to the job's product row and meter the encode's CPU time."""
    row = session.get(JobProduct, facts.job_id)
    if row is None:  # the job was deleted meanwhile
        return
    if facts.video and facts.cpu_seconds > 0 and facts.started_at is not None and facts.ended_at is not None:
        ledger.record(
            session,
            ledger.Usage(
                company_id=row.company_id,
                job_id=facts.job_id,
                task_id=None,
                attempt=None,
                node=facts.node,
                resource="cpu",
                count=1.0,
                started_at=facts.started_at,
                ended_at=facts.ended_at,
                seconds=facts.cpu_seconds,
                outcome="video" if facts.ok else "video-failed",
            ),
        )
    row.updated_at = now
    if not facts.video:
        row.status = NONE
        return
    row.status = ProductStatus.READY.value if facts.ok else ProductStatus.FAILED.value
    row.name, row.key, row.size, row.sha256 = facts.name, facts.key, facts.size, facts.sha256
    row.detail, row.reason = facts.detail, facts.reason
    if facts.ok:
        log.info("job %s: video %s stored (%d bytes)", facts.job_id, facts.key, facts.size)
    else:
        log.warning("job %s: the video failed: %s", facts.job_id, facts.reason)


def _out(row: JobProduct) -> ProductOut:
    return ProductOut(
        kind=row.kind,
        status=ProductStatus(row.status),
        name=row.name,
        size=row.size,
        sha256=row.sha256,
        detail=row.detail,
        reason=row.reason,
    )


def products_out(session: Session, job_ids: list[str]) -> dict[str, ProductOut]:
    """The finished products (ready or failed) of these jobs, by job id."""
    if not job_ids:
        return {}
    rows = session.scalars(select(JobProduct).where(JobProduct.job_id.in_(job_ids), JobProduct.status.in_(SHOWN)))
    return {row.job_id: _out(row) for row in rows}


def ready(session: Session, job: Job) -> JobProduct:
    """The job's stored product, or ``NotFound`` saying why there is none."""
    row = session.get(JobProduct, job.id)
    if row is None or row.status == NONE:
        raise NotFound(
            f"job {job.id} has no video: one is encoded after the last frame when the scene's output is a video"
        )
    if row.status == CHECKING:
        raise NotFound(f"the video of job {job.id} is being encoded; try again shortly")
    if row.status != ProductStatus.READY.value:
        raise NotFound(f"the video of job {job.id} failed: {row.reason} (the frames are still available)")
    return row
