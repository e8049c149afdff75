"""Monitor pages of the shared platform (issue 20): the asset library (browsable, with thumbnails of image assets)
and the operator's report (platform admins). Browser sessions, like every monitor page; the same rules as the API:
an asset the viewer's company may not see is a 404 page."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from farm.contract import Role
from farm.errors import NotFound
from farm.media import thumbnails
from farm.metering import operator_report
from farm.services import library
from farm.services.auth import require
from web.deps import Ctx
from web.monitor.routes import PageRoute, Seen, page, this_month

router = APIRouter(route_class=PageRoute, include_in_schema=False)

#: File types the library page shows a thumbnail of (what ``farm.media.thumbnails`` reads). HDRIs (``.hdr``,
#: ``.exr``) hold scene-linear light: they are tone-mapped with ``thumbnails.tone_map`` (sRGB with a highlight
#: roll-off whose white point is the image's 99.5th luminance percentile).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".tga", ".exr", ".hdr"})
THUMB_MAX_BYTES = 64 * 1024**2  # larger assets get no thumbnail: the API process decodes it


def has_thumb(filename: str, size: int) -> bool:
    return Path(filename).suffix.lower() in IMAGE_SUFFIXES and size <= THUMB_MAX_BYTES


@router.get("/library")
def library_page(
    request: Request, v: Seen, ctx: Ctx, tag: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    """Assets the viewer's company may use, newest first, with thumbnails of images."""
    with ctx.db.session() as s:
        assets = [library.asset_out(s, v.who, a) for a in library.listing(s, v.who, tag or None)]
    thumbs = {a.id for a in assets if has_thumb(a.filename, a.size)}
    return page(request, v, "library.html", "library", assets=assets, thumbs=thumbs, tag=tag or "")


@router.get("/library/{asset_id}/thumb")
async def library_thumb(asset_id: str, v: Seen, ctx: Ctx) -> Response:
    """A JPEG thumbnail of an image asset, made on request (nothing is stored for it)."""

    def _make() -> bytes:
        with ctx.db.session() as s:
            asset, key = library.pull_key(s, v.who, asset_id)
            filename, size = asset.filename, asset.size
        if not has_thumb(filename, size):
            raise NotFound(f"library asset {asset_id} is not an image the monitor shows")
        with tempfile.TemporaryDirectory(prefix="lib-thumb-") as tmp:
            path = Path(tmp) / f"asset{Path(filename).suffix.lower()}"
            ctx.store.get_file(key, path)
            return thumbnails.make_thumbnail(path)

    data = await run_in_threadpool(_make)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/library/{asset_id}/download")
def library_download(asset_id: str, v: Seen, ctx: Ctx) -> Response:
    """The asset's file (a short-lived store URL on S3)."""
    with ctx.db.session() as s:
        asset, key = library.pull_key(s, v.who, asset_id)
        filename = asset.filename
    info = ctx.store.stat(key)
    if info is None:
        raise NotFound(f"the bytes of library asset {asset_id} are missing from the store")
    presign = getattr(ctx.store, "presigned_get_url", None)
    if presign is not None:
        return RedirectResponse(presign(key, 300, filename=filename), status_code=307)
    return StreamingResponse(
        ctx.store.open(key),
        media_type="application/octet-stream",
        headers={"Content-Length": str(info.size), "Content-Disposition": f'attachment; filename="{asset_id}"'},
    )


@router.get("/admin/report")
def report_page(
    request: Request,
    v: Seen,
    ctx: Ctx,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
) -> Response:
    """The operator's report for a month (platform admins): the same figures as ``farm admin report``."""
    require(v.who, Role.PLATFORM_ADMIN, "the operator's report")
    chosen = month or this_month(ctx.clock.now())
    with ctx.db.session() as s:
        report = operator_report.build(s, v.who, chosen, ctx.settings.currency)
    return page(request, v, "report.html", "report", month=chosen, report=report)
