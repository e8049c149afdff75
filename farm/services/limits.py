"""Limits per company on what a job may ask (issue 17): set by the farm admin in the settings (``FARM_*``), checked
before anything is written, each refusal saying which limit and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.db.models import Job
from farm.errors import PayloadTooLarge, QuotaExceeded, ValidationFailed
from farm.services.auth import Principal
from farm.settings import ServerSettings


@dataclass(frozen=True)
class JobLimits:
    manifest_entries: int = 50_000
    frames: int = 1_000_000
    chunks: int = 100_000
    #: Chunks a company may have waiting (queued, on every unfinished job) at once.
    queued_chunks: int = 1_000_000
    #: Jobs a company may submit per minute (every replica counts: read from the database).
    submits_per_minute: int = 120

    @classmethod
    def of(cls, settings: ServerSettings) -> JobLimits:
        return cls(
            manifest_entries=settings.max_manifest_entries,
            frames=settings.max_job_frames,
            chunks=settings.max_job_chunks,
            queued_chunks=settings.max_queued_chunks,
            submits_per_minute=settings.max_submits_per_minute,
        )


class TooManySubmits(QuotaExceeded):
    """429 with Retry-After."""

    retry_after_s = 60


def check_job(
    s: Session, who: Principal, manifest_entries: int, frames: int, chunks: int, limits: JobLimits, now: datetime
) -> None:
    """Refuse a job over a limit, before its rows are written."""
    if manifest_entries > limits.manifest_entries:
        raise PayloadTooLarge(
            f"the manifest lists {manifest_entries:,} files; this farm takes at most {limits.manifest_entries:,} "
            "per job (FARM_MAX_MANIFEST_ENTRIES): pack fewer files, e.g. one job per shot"
        )
    if frames > limits.frames:
        raise ValidationFailed(
            f"the job has {frames:,} frames; this farm takes at most {limits.frames:,} per job "
            "(FARM_MAX_JOB_FRAMES): split the frame range over several jobs"
        )
    if chunks > limits.chunks:
        raise ValidationFailed(
            f"the job makes {chunks:,} chunks; this farm takes at most {limits.chunks:,} per job "
            f"(FARM_MAX_JOB_CHUNKS): raise the chunk size to at least {-(-frames // limits.chunks)}"
        )
    mine = Job.company_id == who.company_id
    recent = s.scalar(select(func.count()).select_from(Job).where(mine, Job.created_at > now - timedelta(minutes=1)))
    if (recent or 0) >= limits.submits_per_minute:
        raise TooManySubmits(
            f"{who.company} submitted {recent} jobs in the last minute; the limit is {limits.submits_per_minute} "
            "(FARM_MAX_SUBMITS_PER_MINUTE): wait a minute, or submit bigger jobs"
        )
    # Both reads use an index of the company's jobs (by creation; unfinished ones by ``finished_at`` null), so a
    # submit does not read the company's history.
    unfinished = Job.finished_at.is_(None)
    waiting = s.scalar(select(func.coalesce(func.sum(Job.tasks_runnable), 0)).where(mine, unfinished)) or 0
    if waiting + chunks > limits.queued_chunks:
        raise QuotaExceeded(
            f"{who.company} has {waiting:,} chunks waiting and this job adds {chunks:,}; at most "
            f"{limits.queued_chunks:,} may wait at once (FARM_MAX_QUEUED_CHUNKS): wait for queued jobs to finish, "
            "or cancel some"
        )
