"""``farm resubmit``: a new job from an earlier one's inputs (its manifest: nothing is uploaded again), with some
settings changed. Dependencies are not carried over (the jobs it waited for are done)."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.orm import Session

from farm.contract import JobCreate, JobSettings, ManifestEntry, ResubmitRequest
from farm.db.models import Job
from farm.errors import ValidationFailed
from farm.services import jobs
from farm.services.auth import Principal
from farm.services.limits import JobLimits


def spec_of(job: Job, change: ResubmitRequest) -> JobCreate:
    """The request that makes the same job again, with ``change`` applied."""
    settings = JobSettings.of(job.settings)
    values: dict[str, object] = {
        "name": change.name or job.name,
        "blend_file": job.blend_file,
        "manifest": {
            path: ManifestEntry(sha256=str(entry["sha256"]), size=int(str(entry["size"])))
            for path, entry in job.manifest.items()
        },
        "frames": change.frames or job.frames,
        "chunk_size": change.chunk_size or job.chunk_size,
        "priority": job.priority if change.priority is None else change.priority,
        "output_format": settings.output_format,
        "output_pattern": settings.output_pattern,
        "view_layers": list(settings.view_layers),
        "camera": settings.camera,
        "resolution": change.resolution or settings.resolution,
        "samples": change.samples or settings.samples,
        "gpu": settings.gpu,
        "allow_cpu_fallback": settings.allow_cpu_fallback,
        "max_attempts": settings.max_attempts,
        "on_chunk_failure": settings.on_chunk_failure,
        "preview": settings.preview,
        "allow_missing": settings.allow_missing,
        "order": settings.order,
    }
    try:
        return JobCreate.model_validate(values)
    except ValidationError as exc:
        raise ValidationFailed(
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from None


def resubmit(
    session: Session, who: Principal, job_id: str, change: ResubmitRequest, now: datetime, limits: JobLimits
) -> Job:
    """The new job (404 for another company's; 409 if an input was collected since, naming what to upload)."""
    old = jobs.get_job(session, who, job_id)
    return jobs.create_job(session, who, spec_of(old, change), now, limits)
