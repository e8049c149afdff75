"""/api/v1 routes of the asset pipeline: committing direct uploads, the preview movie, the video product, and
blob GC."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from farm.contract import SHA256, BlobCommit, BlobOut, GcReport
from farm.errors import Forbidden, NotFound
from farm.media.preview import PREVIEW_NAME
from farm.media.video import video_media_type
from farm.services import blobs, gc, jobs, products
from storage.base import output_key
from web.deps import Caller, Ctx
from web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["assets"], responses=ERROR_RESPONSES)


@router.post("/blobs/{sha256}/commit", response_model=BlobOut, status_code=201)
async def commit_blob(sha256: SHA256, body: BlobCommit, who: Caller, ctx: Ctx, response: Response) -> BlobOut:
    """After a PUT to a presigned URL: the server reads the object back, checks size and sha256, then it counts.

    A mismatch is 422 and an object over the maximum 413; in both cases the upload is deleted.
    """

    def _commit() -> tuple[bool, int]:
        with ctx.db.session() as s:
            return blobs.commit_direct(
                s,
                ctx.store,
                who,
                sha256,
                body,
                ctx.settings.data_dir / "spool",
                ctx.settings.max_upload_bytes,
                ctx.clock.now(),
            )

    created, size = await run_in_threadpool(_commit)
    if not created:
        response.status_code = 200
    return BlobOut(sha256=sha256, size=size, created=created)


@router.get("/jobs/{job_id}/preview", response_model=None)
def get_preview(job_id: str, who: Caller, ctx: Ctx) -> Response:
    """The job's preview MP4 (made after its last frame when ffmpeg is present): redirect on S3, else streamed."""
    with ctx.db.session() as s:
        job = jobs.get_job(s, who, job_id)
        key = output_key(job.company_id, job.id, PREVIEW_NAME)
    info = ctx.store.stat(key)
    if info is None:
        raise NotFound(f"job {job_id} has no preview (yet): it is made after the last frame when ffmpeg is present")
    presign = getattr(ctx.store, "presigned_get_url", None)
    if presign is not None:
        return RedirectResponse(presign(key, 300, filename=f"{job_id}-{PREVIEW_NAME}"), status_code=307)
    return StreamingResponse(
        ctx.store.open(key),
        media_type="video/mp4",
        headers={"Content-Length": str(info.size), "Content-Disposition": f'attachment; filename="{job_id}.mp4"'},
    )


@router.get("/jobs/{job_id}/product", response_model=None)
def get_product(job_id: str, who: Caller, ctx: Ctx) -> Response:
    """The job's video (encoded after its last frame when the scene's output is a video): redirect on S3, else
    streamed. 404 says why there is none: not a video scene, still encoding, or the encode's failure."""
    with ctx.db.session() as s:
        row = products.ready(s, jobs.get_job(s, who, job_id))
        key, name = row.key, row.name
    info = ctx.store.stat(key)
    if info is None:
        raise NotFound(f"the video of job {job_id} is missing from the store; `farm admin fsck` reports such losses")
    presign = getattr(ctx.store, "presigned_get_url", None)
    if presign is not None:
        return RedirectResponse(presign(key, 300, filename=name), status_code=307)
    return StreamingResponse(
        ctx.store.open(key),
        media_type=video_media_type(name),
        headers={"Content-Length": str(info.size), "Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/admin/gc", response_model=GcReport)
def collect_garbage(
    who: Caller,
    ctx: Ctx,
    apply: bool = False,
    retention_days: Annotated[float, Query(gt=0, le=36_500)] = 30.0,
) -> GcReport:
    """Blobs no job within the retention references (platform admins); deleted only with ``apply=true``."""
    if not who.is_platform_admin:
        raise Forbidden("garbage collection is for platform admins")
    return gc.collect(ctx.db, ctx.store, ctx.clock.now(), retention_days, apply)
