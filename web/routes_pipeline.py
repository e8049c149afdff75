"""/api/v1 for the studio pipeline (issue 19): resubmit, presets, webhooks and their delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from farm.contract import (
    PRESET_NAME,
    EstimateOut,
    JobOut,
    PresetList,
    PresetOut,
    PresetSave,
    ResubmitRequest,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookList,
)
from farm.services import estimates, jobs, presets, resubmit, webhooks
from farm.services.limits import JobLimits
from web.deps import Caller, Ctx
from web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["pipeline"], responses=ERROR_RESPONSES)

PresetName = Annotated[str, Path(pattern=PRESET_NAME, description="letters, digits, '.', '_', '-'; 1..64")]
CompanyQuery = Annotated[str | None, Query(max_length=64, description="another company (platform admins)")]


@router.post("/jobs/{job_id}/resubmit", response_model=JobOut, status_code=201)
def resubmit_job(job_id: str, body: ResubmitRequest, who: Caller, ctx: Ctx) -> JobOut:
    """A new job from this job's inputs (nothing uploaded again), with the given settings changed."""
    with ctx.db.session() as s:
        job = resubmit.resubmit(s, who, job_id, body, ctx.clock.now(), JobLimits.of(ctx.settings))
        s.flush()
        out = jobs.job_out(s, job)
    ctx.notify()
    return out


@router.get("/presets", response_model=PresetList)
def list_presets(who: Caller, ctx: Ctx) -> PresetList:
    """The company's presets by name."""
    with ctx.db.session() as s:
        return PresetList(presets=presets.listed(s, who))


@router.get("/presets/{name}", response_model=PresetOut)
def get_preset(name: PresetName, who: Caller, ctx: Ctx) -> PresetOut:
    """One preset."""
    with ctx.db.session() as s:
        return presets.get(s, who, name)


@router.put("/presets/{name}", response_model=PresetOut)
def save_preset(name: PresetName, body: PresetSave, who: Caller, ctx: Ctx) -> PresetOut:
    """Create or replace a preset (``from_job``: start from that job's settings)."""
    with ctx.db.session() as s:
        return presets.save(s, who, name, body, ctx.clock.now())


@router.delete("/presets/{name}", status_code=204)
def delete_preset(name: PresetName, who: Caller, ctx: Ctx) -> Response:
    """Delete a preset (jobs submitted with it keep their settings)."""
    with ctx.db.session() as s:
        presets.delete(s, who, name)
    return Response(status_code=204)


@router.get("/admin/webhooks", response_model=WebhookList)
def list_webhooks(who: Caller, ctx: Ctx, company: CompanyQuery = None) -> WebhookList:
    """The company's webhooks (company admins)."""
    with ctx.db.session() as s:
        return WebhookList(webhooks=webhooks.listed(s, who, company))


@router.post("/admin/webhooks", response_model=WebhookCreated, status_code=201)
def add_webhook(body: WebhookCreate, who: Caller, ctx: Ctx, company: CompanyQuery = None) -> WebhookCreated:
    """A new webhook; the answer holds its signing secret, shown this once."""
    with ctx.db.session() as s:
        return webhooks.add(s, who, body, ctx.clock.now(), company)


@router.delete("/admin/webhooks/{webhook_id}", status_code=204)
def remove_webhook(webhook_id: str, who: Caller, ctx: Ctx, company: CompanyQuery = None) -> Response:
    """Remove a webhook; its pending deliveries are given up (the log keeps them)."""
    with ctx.db.session() as s:
        webhooks.remove(s, who, webhook_id, company, ctx.clock.now())
    return Response(status_code=204)


@router.post("/admin/webhooks/{webhook_id}/test", response_model=WebhookDeliveryOut, status_code=202)
def test_webhook(webhook_id: str, who: Caller, ctx: Ctx, company: CompanyQuery = None) -> WebhookDeliveryOut:
    """Queue a ``test`` event for the webhook; its delivery shows in the log."""
    with ctx.db.session() as s:
        return webhooks.test(s, who, webhook_id, company, ctx.clock.now())


@router.get("/admin/webhooks/deliveries", response_model=WebhookDeliveryList)
def webhook_log(
    who: Caller,
    ctx: Ctx,
    company: CompanyQuery = None,
    webhook: Annotated[str | None, Query(max_length=40, description="only this webhook's")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> WebhookDeliveryList:
    """The delivery log, newest first: event, attempts, last HTTP status or error, delivered or not."""
    with ctx.db.session() as s:
        return WebhookDeliveryList(deliveries=webhooks.log_of(s, who, company, webhook, limit))


@router.get("/jobs/{job_id}/estimate", response_model=EstimateOut)
def job_estimate(job_id: str, who: Caller, ctx: Ctx) -> EstimateOut:
    """What the job a sample job stands for would cost (``ready`` once the samples are rendered); 409 for a job
    that is not an estimate's."""
    with ctx.db.session() as s:
        return estimates.estimate(s, jobs.get_job(s, who, job_id))
