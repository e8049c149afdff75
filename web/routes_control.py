"""/api/v1 job control: pause, resume, retry, and the per-job node blocklist. The API records the wish; the
scheduler carries out what needs a worker (stopping running chunks, handing out requeued ones)."""

from __future__ import annotations

from fastapi import APIRouter

from farm.contract import Blocklist, JobOut, Role, UnblockRequest
from farm.lifecycle import control
from farm.services import jobs
from farm.services.auth import require
from web.deps import Caller, Ctx, act_on_job
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
