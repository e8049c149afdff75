"""Bulk actions on the jobs list: cancel, pause, resume or retry every selected job at once.

Each job goes through the same door as its own button (``actions.perform``: the API's permission, job lock and
actions table), one after another; a job that refuses (finished, another company's) is counted, not fatal. The
answer is the list again, with a line saying how many jobs took the action and how many refused.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from farm.errors import FarmError, ValidationFailed
from web.deps import Ctx
from web.monitor import actions
from web.monitor.routes import PageRoute, Seen, check_post, safe_next

log = logging.getLogger(__name__)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

#: The most jobs one bulk action takes (two pages of the list).
MAX_JOBS = 100


@router.post("/jobs/bulk")
async def bulk_action(request: Request, v: Seen, ctx: Ctx) -> Response:
    """Apply the form's ``action`` to each job named by a ``job`` field; back to the list (``next``) with counts."""
    await check_post(request, ctx)
    form = await request.form()
    action = str(form.get("action") or "")
    job_ids = list(dict.fromkeys(str(j) for j in form.getlist("job") if isinstance(j, str) and j))
    if action not in actions.ACTIONS:
        raise ValidationFailed(f"choose one of {', '.join(actions.ACTIONS)} for the selected jobs, not {action!r}")
    if not job_ids:
        raise ValidationFailed("select at least one job (the boxes at the start of each row)")
    if len(job_ids) > MAX_JOBS:
        raise ValidationFailed(f"one bulk action takes at most {MAX_JOBS} jobs, not {len(job_ids)}")
    done = refused = 0
    for job_id in job_ids:
        try:
            await actions.perform(request.app, ctx, v.who, job_id, action)
            done += 1
        except FarmError as exc:
            refused += 1
            log.info("job %s: bulk %s refused for token %s: %s", job_id, action, v.who.token_id, exc.message)
    log.info("bulk %s by token %s: %d job(s) done, %d refused", action, v.who.token_id, done, refused)
    target = safe_next(str(form.get("next") or ""))
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(
        f"{target}{joiner}{urlencode({'bulk': action, 'done': done, 'refused': refused})}", status_code=303
    )
