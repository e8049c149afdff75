"""/api/v1 job control: pause, resume, retry, the per-job node blocklist, and (issue 16) one chunk's requeue and
cancel, a job's priority and bulk actions. The API records the wish; the scheduler carries out what needs a worker
(stopping running chunks, handing out requeued ones). Rules live in the lifecycle's actions tables, state changes
in ``farm.lifecycle.control``: a route only finds the job (404 for another company's) and answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter
from sqlalchemy.orm import Session

from farm.contract import (
    Blocklist,
    BulkRequest,
    BulkResult,
    ChunkActionOut,
    JobOut,
    JobUpdate,
    Role,
    UnblockRequest,
)
from farm.db.models import Job, Task
from farm.errors import ValidationFailed
from farm.lifecycle import control
from farm.services import bulk, jobs
from farm.services.auth import Principal, require
from web.deps import AppContext, Caller, Ctx, act_on_job
from web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["control"], responses=ERROR_RESPONSES)

#: Who may give nodes a fresh start on a job: everyone who may see the job. The monitor shows its unblock buttons
#: by this rule and calls ``unblock_job`` itself, so the page and the API cannot disagree.
UNBLOCK_ROLE = Role.ARTIST


@router.post("/jobs/{job_id}/pause", response_model=JobOut)
def pause_job(job_id: str, who: Caller, ctx: Ctx, now: bool = False) -> JobOut:
    """Stop handing out the job's chunks; running ones finish first, or are stopped at once with ``now=true``."""
    return act_on_job(ctx, who, job_id, lambda s, job, at: control.request_pause(s, job, at, stop_running=now))


@router.post("/jobs/{job_id}/resume", response_model=JobOut)
def resume_job(job_id: str, who: Caller, ctx: Ctx) -> JobOut:
    """Put a paused job's chunks back in the queue."""
    return act_on_job(ctx, who, job_id, control.resume)


@router.post("/jobs/{job_id}/retry", response_model=JobOut)
def retry_job(job_id: str, who: Caller, ctx: Ctx) -> JobOut:
    """Requeue the chunks that failed or were canceled, each with a fresh count of attempts."""
    return act_on_job(ctx, who, job_id, control.retry)


@router.get("/jobs/{job_id}/blocklist", response_model=Blocklist)
def job_blocklist(job_id: str, who: Caller, ctx: Ctx) -> Blocklist:
    """Nodes that failed chunks of the job; blocked ones get no more of its chunks."""
    with ctx.db.session() as s:
        return control.blocklist_out(s, jobs.get_job(s, who, job_id))


@router.post("/jobs/{job_id}/unblock", response_model=Blocklist)
def unblock_job(job_id: str, body: UnblockRequest, who: Caller, ctx: Ctx) -> Blocklist:
    """Give one node (or every node) a fresh start on the job."""
    require(who, UNBLOCK_ROLE, "unblocking nodes")
    with ctx.db.session() as s:
        job = jobs.get_job(s, who, job_id, lock=True)
        control.unblock(s, job, body.node, ctx.clock.now())
        out = control.blocklist_out(s, job)
    ctx.notify()
    return out


# ---- issue 16 -------------------------------------------------------------------------------------------------
@router.post("/jobs/bulk", response_model=BulkResult)
def bulk_jobs(body: BulkRequest, who: Caller, ctx: Ctx) -> BulkResult:
    """One action (cancel, pause, resume, retry, priority) on many jobs; the answer says for each job whether it was
    done, refused (and why) or not found. Jobs of another company are not found."""
    result = bulk.apply(ctx.db, ctx.clock, who, body)
    ctx.notify()
    return result


@router.patch("/jobs/{job_id}", response_model=JobOut)
def update_job(job_id: str, body: JobUpdate, who: Caller, ctx: Ctx) -> JobOut:
    """Change a job that still renders: ``{"priority": N}`` (0-100, higher first); the scheduler orders by it on its
    next pass."""
    if body.priority is None:
        raise ValidationFailed('nothing to change: send {"priority": N} with N from 0 to 100')
    priority = body.priority
    return act_on_job(ctx, who, job_id, lambda s, job, at: control.set_priority(s, job, priority, at))


def act_on_chunk(
    ctx: AppContext, who: Principal, job_id: str, task_ref: str, action: Callable[[Session, Job, Task, datetime], bool]
) -> ChunkActionOut:
    """Lock the job (404 for another company's), find the chunk (404 naming how chunks are named), carry the action
    out, answer with both, and wake an in-process scheduler."""
    with ctx.db.session() as s:
        job = jobs.get_job(s, who, job_id, lock=True)
        task = control.chunk_of(s, job, task_ref)
        changed = action(s, job, task, ctx.clock.now())
        s.flush()
        job_out = jobs.job_out(s, job)
        task_out = jobs.tasks_out(s, job, only=task.id)[0]
    ctx.notify()
    return ChunkActionOut(changed=changed, job=job_out, task=task_out)


@router.post("/jobs/{job_id}/tasks/{task_id}/requeue", response_model=ChunkActionOut)
def requeue_chunk(job_id: str, task_id: str, who: Caller, ctx: Ctx) -> ChunkActionOut:
    """Render one chunk again (``task_id``: its id or its index): a rendering chunk is stopped first; a finished one
    keeps its frames until the new ones replace them, and a finished job is queued again."""
    return act_on_chunk(ctx, who, job_id, task_id, control.requeue_chunk)


@router.post("/jobs/{job_id}/tasks/{task_id}/cancel", response_model=ChunkActionOut)
def cancel_chunk(job_id: str, task_id: str, who: Caller, ctx: Ctx) -> ChunkActionOut:
    """Leave one chunk out (``task_id``: its id or its index); a rendering chunk is stopped. The rest of the job goes
    on; when it is over, the job ends canceled, saying how many chunks were left out (``retry`` renders them)."""
    return act_on_chunk(ctx, who, job_id, task_id, control.cancel_chunk)
