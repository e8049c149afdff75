"""/api/v1/library: the common asset library (issue 20), and /api/v1/admin/report, the operator's report.

Every route is authenticated. An asset another company did not make visible to the caller answers 404, exactly
like an id that does not exist; publishing and retracting are company admins' (of the publisher) and platform
admins'; the report is platform admins'.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from farm.contract import LibraryAssetOut, LibraryList, LibraryPublish, LibraryUsage, OperatorReport
from farm.errors import NotFound, ValidationFailed
from farm.metering import operator_report
from farm.services import library
from web.deps import Caller, Ctx
from web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["library"], responses=ERROR_RESPONSES)

_TAG = Query(min_length=1, max_length=64, description="only assets with this tag")
_MONTH = Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (UTC)")


@router.get("/library", response_model=LibraryList)
def list_assets(
    who: Caller,
    ctx: Ctx,
    tag: Annotated[str | None, _TAG] = None,
    mine: Annotated[bool, Query(description="only your company's own assets")] = False,
    retracted: Annotated[bool, Query(description="with mine: retracted ones too")] = False,
) -> LibraryList:
    """Live assets the caller's company may use (every company's, or listed for it), newest first."""
    with ctx.db.session() as s:
        return LibraryList(assets=[library.asset_out(s, who, a) for a in library.listing(s, who, tag, mine, retracted)])


@router.post("/library", response_model=LibraryAssetOut, status_code=201)
def publish_asset(body: LibraryPublish, who: Caller, ctx: Ctx) -> LibraryAssetOut:
    """Publish a blob the company uploaded (company admins); ``to`` lists the companies that may use it."""
    with ctx.db.session() as s:
        asset = library.publish(s, ctx.store, who, body, ctx.clock.now())
        return library.asset_out(s, who, asset)


@router.get("/library/{asset_id}", response_model=LibraryAssetOut)
def show_asset(asset_id: str, who: Caller, ctx: Ctx) -> LibraryAssetOut:
    """One asset: name, tags, licence, size, publisher."""
    with ctx.db.session() as s:
        return library.asset_out(s, who, library.get(s, who, asset_id))


@router.get("/library/{asset_id}/file", response_model=None)
def pull_asset(asset_id: str, who: Caller, ctx: Ctx) -> Response:
    """The asset's bytes: a redirect to a short-lived URL on S3, else streamed."""
    with ctx.db.session() as s:
        asset, key = library.pull_key(s, who, asset_id)
        filename = asset.filename
    info = ctx.store.stat(key)
    if info is None:
        raise NotFound(
            f"the bytes of library asset {asset_id} are missing from the store; `farm admin fsck` reports it"
        )
    presign = getattr(ctx.store, "presigned_get_url", None)
    if presign is not None:
        return RedirectResponse(presign(key, 300, filename=filename), status_code=307)
    return StreamingResponse(
        ctx.store.open(key),
        media_type="application/octet-stream",
        headers={"Content-Length": str(info.size), "Content-Disposition": f'attachment; filename="{asset_id}"'},
    )


@router.post("/library/{asset_id}/retract", response_model=LibraryAssetOut)
def retract_asset(asset_id: str, who: Caller, ctx: Ctx) -> LibraryAssetOut:
    """Stop new use of an asset (its publisher's company admins); jobs already queued keep it."""
    with ctx.db.session() as s:
        asset = library.retract(s, who, asset_id, ctx.clock.now())
        return library.asset_out(s, who, asset)


@router.get("/library/{asset_id}/usage", response_model=LibraryUsage)
def asset_usage(asset_id: str, who: Caller, ctx: Ctx) -> LibraryUsage:
    """Per month, the jobs and companies that used the asset (its publisher's company admins)."""
    with ctx.db.session() as s:
        return library.usage(s, who, asset_id)


@router.get("/admin/report", response_model=OperatorReport)
def report(who: Caller, ctx: Ctx, month: Annotated[str, _MONTH]) -> OperatorReport:
    """The operator's report for a month (platform admins): capacity, use, waits, shares, cost, faults, reuse."""
    if not 2000 <= int(month[:4]) <= 2999:
        raise ValidationFailed(f"month {month!r} is out of range")
    with ctx.db.session() as s:
        return operator_report.build(s, who, month, ctx.settings.currency)
