"""Resubmit a job from its page: the same inputs (manifest, scene, settings) as a new job, optionally with other
frames, priority, samples or resolution. It goes through the API's own ``POST /api/v1/jobs`` route function, so
the caller's limits, budget and blob checks are the API's; the CLI does the same by submitting the scene again."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from farm.contract import JobCreate, JobOut, JobSettings
from farm.errors import Forbidden, ValidationFailed
from farm.services import jobs as jobops
from web import routes_api
from web.deps import Ctx
from web.monitor.routes import PageRoute, Seen, check_post

log = logging.getLogger(__name__)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

#: Form fields that may change on a resubmit (blank keeps the job's own value).
OVERRIDES = ("frames", "priority", "samples", "resolution")


def resubmit_spec(job: Any, form: dict[str, str]) -> JobCreate:
    """The new job's spec: the old job's, with the form's non-blank overrides; ``ValidationFailed`` names the
    field to fix."""
    settings = JobSettings.of(job.settings).model_dump(mode="json")
    values: dict[str, Any] = {k: v for k, v in settings.items() if k in JobCreate.model_fields}
    values.update(
        name=job.name,
        blend_file=job.blend_file,
        manifest=job.manifest,
        frames=job.frames,
        chunk_size=job.chunk_size,
        priority=job.priority,
    )
    for field in OVERRIDES:
        given = form.get(field, "").strip()
        if given:
            values[field] = given
    try:
        return JobCreate.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValidationFailed(f"cannot resubmit with these values: {problems}") from exc


@router.post("/jobs/{job_id}/resubmit")
async def resubmit(request: Request, job_id: str, v: Seen, ctx: Ctx) -> Response:
    """A new job from this one's inputs; answers with the new job's page."""
    form = await check_post(request, ctx)

    def _spec() -> JobCreate:
        with ctx.db.session() as s:
            job = jobops.get_job(s, v.who, job_id)  # 404 for another company's job
            if job.company_id != v.who.company_id:
                raise Forbidden(
                    "only the job's own company can resubmit it (its inputs are that company's)",
                    code="resubmit_company",
                )
            return resubmit_spec(job, form)

    spec = await run_in_threadpool(_spec)
    created: JobOut = await run_in_threadpool(routes_api.create_job, spec, v.who, ctx)
    log.info("job %s resubmitted from the monitor as %s by token %s", job_id, created.id, v.who.token_id)
    return RedirectResponse(f"/jobs/{quote(created.id)}", status_code=303)
