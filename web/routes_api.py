"""/api/v1: jobs, tasks, frames, logs, blobs and usage. Every route needs a token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from farm.contract import (
    SHA256,
    BlobOut,
    BlobsMissingRequest,
    BlobsMissingResponse,
    FrameList,
    JobCreate,
    JobList,
    JobOut,
    LogOut,
    TaskList,
    UsageReport,
)
from farm.domain.states import JobStatus
from farm.errors import ValidationFailed
from farm.lifecycle import control
from farm.metering import usage_report
from farm.services import blobs, jobs
from farm.services.limits import JobLimits
from web.deps import Caller, Ctx, act_on_job
from web.errors import ERROR_RESPONSES
from web.params import FrameNumber, Offset

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)

MEDIA = {".png": "image/png", ".exr": "image/x-exr", ".jpg": "image/jpeg", ".mp4": "video/mp4"}


@router.post("/blobs/missing", response_model=BlobsMissingResponse)
def blobs_missing(body: BlobsMissingRequest, who: Caller, ctx: Ctx) -> BlobsMissingResponse:
    """Which of these hashes the caller's company still has to upload (with presigned PUT URLs on S3).

    A hash counts as held only while its object is in the store; a lost one is forgotten and listed here.
    """
    with ctx.db.session() as s:
        missing = blobs.missing(s, ctx.store, who, body.hashes)
    uploads = blobs.direct_uploads(ctx.store, who, missing, ctx.clock.now()) if body.direct else {}
    return BlobsMissingResponse(missing=missing, uploads=uploads)


@router.put("/blobs/{sha256}", response_model=BlobOut, status_code=201)
async def put_blob(sha256: SHA256, request: Request, who: Caller, ctx: Ctx, response: Response) -> BlobOut:
    """Upload one blob; the server hashes what it receives and keeps it only if the hash matches."""
    declared = request.headers.get("content-length")
    path, size = await blobs.receive(
        request.stream(),
        sha256,
        ctx.settings.data_dir / "spool",
        ctx.settings.max_upload_bytes,
        int(declared) if declared and declared.isdigit() else None,
    )
    from starlette.concurrency import run_in_threadpool

    def _commit() -> bool:
        with ctx.db.session() as s:
            return blobs.commit(s, ctx.store, who, sha256, path, size, ctx.clock.now())

    created = await run_in_threadpool(_commit)
    if not created:
        response.status_code = 200
    return BlobOut(sha256=sha256, size=size, created=created)


@router.post("/jobs", response_model=JobOut, status_code=201)
def create_job(spec: JobCreate, who: Caller, ctx: Ctx) -> JobOut:
    """Submit a job: validated, written with its tasks in one transaction, then queued."""
    with ctx.db.session() as s:
        job = jobs.create_job(s, who, spec, ctx.clock.now(), JobLimits.of(ctx.settings))
        s.flush()
        out = jobs.job_out(s, job)
    ctx.notify()
    return out


@router.get("/jobs", response_model=JobList)
def list_jobs(
    who: Caller,
    ctx: Ctx,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> JobList:
    """The caller's jobs, newest first."""
    with ctx.db.session() as s:
        return JobList(jobs=jobs.jobs_out(s, jobs.list_jobs(s, who, status, limit, offset)))


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, who: Caller, ctx: Ctx) -> JobOut:
    """One job with its progress."""
    with ctx.db.session() as s:
        return jobs.job_out(s, jobs.get_job(s, who, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, who: Caller, ctx: Ctx) -> JobOut:
    """Ask for the job to stop; running chunks are killed by the scheduler."""
    return act_on_job(ctx, who, job_id, control.request_cancel)


@router.get("/jobs/{job_id}/tasks", response_model=TaskList)
def list_tasks(job_id: str, who: Caller, ctx: Ctx) -> TaskList:
    """The job's chunks with their attempts."""
    with ctx.db.session() as s:
        return TaskList(tasks=jobs.tasks_out(s, jobs.get_job(s, who, job_id)))


@router.get("/jobs/{job_id}/frames", response_model=FrameList)
def list_frames(job_id: str, who: Caller, ctx: Ctx) -> FrameList:
    """Frames stored so far."""
    with ctx.db.session() as s:
        return FrameList(frames=jobs.frames_out(s, jobs.get_job(s, who, job_id)))


@router.get("/jobs/{job_id}/frames/{frame}", response_model=None)
def get_frame(job_id: str, frame: FrameNumber, who: Caller, ctx: Ctx, layer: str | None = None) -> Response:
    """The frame's file (``layer``: that view layer's file of a frame written one file per layer): a short-lived
    presigned URL on S3, streamed otherwise."""
    with ctx.db.session() as s:
        row = jobs.get_frame(s, jobs.get_job(s, who, job_id), frame)
        key, name, size, sha = jobs.frame_file(row, layer)
    name = name.rsplit("/", 1)[-1]  # a frame's name may hold folders (its output pattern): the file's own name
    presign = getattr(ctx.store, "presigned_get_url", None)
    if presign is not None:
        return RedirectResponse(presign(key, 300, filename=name), status_code=307)
    media = MEDIA.get(name[name.rfind(".") :].lower(), "application/octet-stream")
    return StreamingResponse(
        ctx.store.open(key),
        media_type=media,
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256": sha,
        },
    )


@router.get("/jobs/{job_id}/logs", response_model=LogOut)
def job_logs(job_id: str, who: Caller, ctx: Ctx) -> LogOut:
    """Blender's output of every attempt, chunk by chunk."""
    with ctx.db.session() as s:
        job = jobs.get_job(s, who, job_id)
        return LogOut(job_id=job.id, text=jobs.job_log(s, job))


@router.get("/usage", response_model=UsageReport)
def usage(
    who: Caller,
    ctx: Ctx,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
    company: Annotated[str | None, Query(description="one company (platform admins); your own otherwise")] = None,
    per_job: bool = False,
) -> UsageReport:
    """Resource-seconds, hours and cost from the metering ledger; platform admins see every company."""
    if month is not None and not 2000 <= int(month[:4]) <= 2999:
        raise ValidationFailed(f"month {month!r} is out of range")
    with ctx.db.session() as s:
        return usage_report.build(s, who, month, company, per_job, ctx.settings.currency)
