"""/api/v1 for the studio pipeline (issue 19): resubmit, presets, webhooks and their delivery log; shared presets
(issue 20 item 4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from farm.contract import (
    PRESET_NAME,
    EstimateOut,
    JobOut,
    PresetList,
    PresetOut,
    PresetPublish,
    PresetSave,
    ResubmitRequest,
    SharedPresetList,
    SharedPresetOut,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookList,
)
from farm.services import estimates, jobs, presets, presets_shared, resubmit, webhooks
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


@router.post("/presets/{name}/publish", response_model=SharedPresetOut, status_code=201)
def publish_preset(name: PresetName, body: PresetPublish, who: Caller, ctx: Ctx) -> SharedPresetOut:
    """Share the company's preset with every company or the listed ones (company admins; a platform admin's is
    marked as the platform's); publishing again replaces the shared copy."""
    with ctx.db.session() as s:
        return presets_shared.out(s, who, presets_shared.publish(s, who, name, body, ctx.clock.now()))


@router.delete("/presets/{name}/publish", status_code=204)
def unpublish_preset(name: PresetName, who: Caller, ctx: Ctx, company: CompanyQuery = None) -> Response:
    """Stop sharing the preset (jobs submitted with it keep their settings; the company's own preset stays)."""
    with ctx.db.session() as s:
        presets_shared.unpublish(s, who, name, company)
    return Response(status_code=204)


@router.get("/shared-presets", response_model=SharedPresetList)
def list_shared_presets(who: Caller, ctx: Ctx) -> SharedPresetList:
    """Shared presets the company may use (its own published ones marked ``mine``)."""
    with ctx.db.session() as s:
        return SharedPresetList(presets=[presets_shared.out(s, who, r) for r in presets_shared.listing(s, who)])


@router.get("/shared-presets/{publisher}/{name}", response_model=SharedPresetOut)
def get_shared_preset(
    publisher: Annotated[str, Path(max_length=64, description="the publishing company's name")],
    name: PresetName,
    who: Caller,
    ctx: Ctx,
) -> SharedPresetOut:
    """One shared preset the company may use (404 for one it may not see)."""
    with ctx.db.session() as s:
        return presets_shared.out(s, who, presets_shared.get(s, who, publisher, name))


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
        return estimates.estimate(s, jobs.get_job(s, who, job_id), ctx.settings.currency)
