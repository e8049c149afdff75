"""The job page's forms beyond its plain action buttons (issue 16): requeue or cancel one chunk from the chunk
table, and change the job's priority in place.

Each calls the API's own route function (``web.routes_control``): the same job lock, 404 for another company's job,
actions table and scheduler wake-up as ``POST /api/v1/jobs/{id}/tasks/{task}/requeue|cancel`` and ``PATCH
/api/v1/jobs/{id}``, so the page, the API and the CLI cannot disagree. Every form carries the session's CSRF token.

The chunk buttons sit in rows the live stream redraws (``_tasks.html``), which know neither the CSRF token nor the
job: they belong (``form="chunk-actions"``) to one form of the page that carries both, and name the action and the
chunk by their own ``name`` and ``value``.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from farm.contract import JobUpdate
from farm.errors import ValidationFailed
from farm.lifecycle import control
from farm.lifecycle.actions import ChunkAction
from web import routes_control
from web.deps import Ctx
from web.monitor.routes import PageRoute, Seen, check_post

log = logging.getLogger(__name__)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_CARRY_OUT = {ChunkAction.REQUEUE: control.requeue_chunk, ChunkAction.CANCEL: control.cancel_chunk}


@router.post("/jobs/{job_id}/chunks")
async def chunk_action(request: Request, job_id: str, v: Seen, ctx: Ctx) -> Response:
    """Requeue or cancel the chunk named by the pressed button (field ``requeue`` or ``cancel``: the chunk's id or
    index); back to the job page."""
    form = await check_post(request, ctx)
    asked = [(action, form[action.value]) for action in ChunkAction if form.get(action.value)]
    if len(asked) != 1:
        raise ValidationFailed(
            "press one chunk's Requeue or Cancel button (one field 'requeue' or 'cancel')", code="chunk_button"
        )
    action, chunk = asked[0]
    result = await run_in_threadpool(routes_control.act_on_chunk, ctx, v.who, job_id, chunk, _CARRY_OUT[action])
    log.info(
        "job %s: chunk %d %s from the monitor by token %s", job_id, result.task.index, action.value, v.who.token_id
    )
    return RedirectResponse(f"/jobs/{quote(job_id)}#chunks-h", status_code=303)


@router.post("/jobs/{job_id}/priority")
async def set_priority(request: Request, job_id: str, v: Seen, ctx: Ctx) -> Response:
    """The job's new priority from the form's ``priority`` (0-100); back to the job page."""
    form = await check_post(request, ctx)
    given = form.get("priority", "").strip()
    if not given.isdigit() or not 0 <= int(given) <= 100:
        raise ValidationFailed(
            f"priority must be a whole number from 0 to 100, not {given!r}",
            code="priority_range",
            params={"given": repr(given)},
        )
    await run_in_threadpool(routes_control.update_job, job_id, JobUpdate(priority=int(given)), v.who, ctx)
    log.info("job %s: priority %s set from the monitor by token %s", job_id, given, v.who.token_id)
    return RedirectResponse(f"/jobs/{quote(job_id)}", status_code=303)
