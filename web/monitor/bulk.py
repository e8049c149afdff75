"""Bulk actions on the jobs list: cancel, pause, resume, retry or set the priority of every selected job at once.

The form goes through the API's own service (``farm.services.bulk``, behind ``POST /api/v1/jobs/bulk`` and ``farm
cancel J1 J2``): each job through its own door (the caller's company, the job's lock, the actions table) in its own
transaction; a job that refuses (finished, another company's) is counted, not fatal. The answer is the list again,
with a line saying how many jobs took the action and how many refused.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from farm.contract import MAX_BULK_JOBS, BulkRequest
from farm.errors import ValidationFailed
from farm.services import bulk
from web.deps import Ctx
from web.monitor import actions
from web.monitor.routes import PageRoute, Seen, check_post, safe_next

router = APIRouter(route_class=PageRoute, include_in_schema=False)

#: The most jobs one bulk action takes (two pages of the list).
MAX_JOBS = MAX_BULK_JOBS


@router.post("/jobs/bulk")
async def bulk_action(request: Request, v: Seen, ctx: Ctx) -> Response:
    """Apply the form's ``action`` (with ``priority`` for the priority) to each job named by a ``job`` field; back
    to the list (``next``) with counts."""
    await check_post(request, ctx)
    form = await request.form()
    action = str(form.get("action") or "")
    job_ids = list(dict.fromkeys(str(j) for j in form.getlist("job") if isinstance(j, str) and j))
    if action not in actions.BULK_ACTIONS:
        raise ValidationFailed(
            f"choose one of {', '.join(actions.BULK_ACTIONS)} for the selected jobs, not {action!r}",
            code="bulk_action",
            params={"actions": ", ".join(actions.BULK_ACTIONS), "given": repr(action)},
        )
    if not job_ids:
        raise ValidationFailed("select at least one job (the boxes at the start of each row)", code="bulk_none")
    if len(job_ids) > MAX_JOBS:
        raise ValidationFailed(
            f"one bulk action takes at most {MAX_JOBS} jobs, not {len(job_ids)}",
            code="bulk_too_many",
            params={"most": MAX_JOBS, "given": len(job_ids)},
        )
    given = str(form.get("priority") or "").strip()
    if action == "priority" and not (given.isdigit() and 0 <= int(given) <= 100):
        raise ValidationFailed(
            f"give the new priority as a whole number from 0 to 100, not {given!r}",
            code="bulk_priority",
            params={"given": repr(given)},
        )
    try:
        body = BulkRequest(action=action, job_ids=job_ids, priority=int(given) if action == "priority" else None)
    except ValidationError as exc:
        raise ValidationFailed(f"cannot apply {action} to these jobs: {exc.errors()[0]['msg']}") from exc
    result = await run_in_threadpool(bulk.apply, ctx.db, ctx.clock, v.who, body)
    ctx.notify()
    target = safe_next(str(form.get("next") or ""))
    joiner = "&" if "?" in target else "?"
    counts = {"bulk": action, "done": result.done, "refused": result.refused + result.not_found}
    return RedirectResponse(f"{target}{joiner}{urlencode(counts)}", status_code=303)
