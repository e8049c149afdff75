"""The monitor's pages, actions and event streams. Everything needs a browser session except the login page.

Pages are rendered on the server (Jinja2); ``static/monitor.js`` only applies what the event streams send.
Errors become HTML pages here (the API keeps its JSON errors): another company's job is a 404 page, an expired
session a redirect to the login page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from farm.domain.states import JobStatus
from farm.errors import FarmError, NotFound, Unauthorized, ValidationFailed
from farm.media import thumbnails
from farm.media.video import video_media_type
from farm.services import jobs as jobops
from farm.services import products
from farm.services.auth import Principal, resolve_token
from storage.base import output_key
from web import errors as web_errors
from web import i18n, session
from web.deps import AppContext, Ctx
from web.monitor import actions, live, views
from web.monitor.workers import WorkerView, workers_board
from web.params import FrameNumber

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
TEMPLATES.env.globals.update(
    locales=i18n.LOCALES,
    html_langs=i18n.HTML_LANG,
    language_names=i18n.LANGUAGE_NAME,
    catalogue=i18n.catalogue(),
    cost_digits=views.cost_digits,
)
#: How often an event stream looks at the database.
STREAM_INTERVAL_S = 0.5
#: A stream ends after this long and the browser reconnects: keeps server shutdown quick, frees idle readers.
STREAM_MAX_S = 60.0
#: How often an open event stream checks that its session still stands (logout, revocation, expiry).
SESSION_CHECK_S = 2.0
MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".exr": "image/x-exr"}


class LoginRequired(Exception):
    """No (valid) browser session: pages redirect to the login page, streams answer 401."""


class PageRoute(APIRoute):
    """Turns login redirects and farm errors into HTML responses for this router only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
                if request.method == "POST":
                    return RedirectResponse("/login", status_code=303)
                return Response("log in first", status_code=401, media_type="text/plain")
            except FarmError as exc:
                return error_page(request, exc.status_code, exc.message, exc)

        return handle


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def locale_of(request: Request) -> i18n.Translator:
    """The viewer's language: the switch's cookie, else Accept-Language."""
    return i18n.translator(
        i18n.negotiate(request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language"))
    )


def error_page(request: Request, status: int, message: str, error: FarmError | None = None) -> HTMLResponse:
    """An error as a page in the viewer's language, with the header, navigation and language switch of every page
    when the request has a session: a coded ``error`` in that language (issue 16), any other detail as the farm
    wrote it."""
    t = locale_of(request)
    said = web_errors.localized(t, error) if error is not None else None
    who: Principal | None = None
    csrf = ""
    ctx: AppContext | None = getattr(request.app.state, "ctx", None)
    browser = session.load(request, ctx.settings) if ctx is not None else None
    if ctx is not None and browser is not None:
        csrf = browser.csrf
        if browser.logged_in:
            try:
                with ctx.db.session() as s:
                    who = session.principal_for(s, browser, ctx.clock.now())
            except (Unauthorized, FarmError):
                who = None
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"t": t, "viewer": who, "csrf": csrf, "status": status, "message": message, "localized": said, "nav": ""},
        status_code=status,
    )


@dataclass(frozen=True)
class Viewer:
    """The logged-in person behind a request."""

    who: Principal
    browser: session.BrowserSession
    t: i18n.Translator

    @property
    def csrf(self) -> str:
        return self.browser.csrf


def viewer(request: Request, ctx: Ctx) -> Viewer:
    """Dependency: the session's principal, or ``LoginRequired``."""
    browser = session.load(request, ctx.settings)
    if browser is None or not browser.logged_in:
        raise LoginRequired
    with ctx.db.session() as s:
        try:
            who = session.principal_for(s, browser, ctx.clock.now())
        except Unauthorized as exc:
            raise LoginRequired from exc
    return Viewer(who=who, browser=browser, t=locale_of(request))


Seen = Annotated[Viewer, Depends(viewer)]


def still_logged_in(v: Viewer, ctx: AppContext) -> bool:
    """Whether the viewer's session still stands (an open event stream asks every few seconds)."""
    with ctx.db.session() as s:
        try:
            session.principal_for(s, v.browser, ctx.clock.now())
        except Unauthorized:
            return False
    return True


def page(request: Request, v: Viewer, name: str, nav: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render a page with what every page needs (translator, viewer, CSRF token, navigation)."""
    context = {"t": v.t, "viewer": v.who, "csrf": v.csrf, "nav": nav, **values}
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)


def safe_next(target: str | None, default: str = "/jobs") -> str:
    """Only local paths: an open redirect after login would help phishing."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


async def check_post(request: Request, ctx: AppContext) -> dict[str, str]:
    """The form of a POST, after the CSRF check (field ``csrf`` or header ``X-CSRF-Token``)."""
    form = await request.form()
    values = {key: str(value) for key, value in form.items() if isinstance(value, str)}
    sent = values.get(session.CSRF_FIELD) or request.headers.get(session.CSRF_HEADER)
    session.check_csrf(session.load(request, ctx.settings), sent)
    return values


# ---- login, logout, language ----------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    """The only page without a session; makes an anonymous session so the form has a CSRF token."""
    browser = session.load(request, ctx.settings)
    if browser is not None and browser.logged_in:
        with ctx.db.session() as s:
            try:
                session.principal_for(s, browser, ctx.clock.now())
                return RedirectResponse(safe_next(next), status_code=303)
            except Unauthorized:
                browser = None
    fresh = browser is None
    browser = browser or session.new_session()
    t = locale_of(request)
    response = TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"t": t, "viewer": None, "csrf": browser.csrf, "next": safe_next(next), "error": "", "nav": "login"},
    )
    if fresh:
        session.store(response, request, ctx.settings, browser)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, ctx: Ctx) -> Response:
    """Exchange an API token for a session cookie; the token itself never goes into the cookie."""
    form = await check_post(request, ctx)
    token = form.get("token", "").strip()

    def _resolve() -> Principal:
        with ctx.db.session() as s:
            return resolve_token(s, token, ctx.clock.now())

    try:
        who = await run_in_threadpool(_resolve)
    except Unauthorized as exc:
        t = locale_of(request)
        browser = session.load(request, ctx.settings) or session.new_session()
        return TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {
                "t": t,
                "viewer": None,
                "csrf": browser.csrf,
                "next": safe_next(form.get("next")),
                "error": t("login.refused", reason=exc.message),
                "nav": "login",
            },
            status_code=401,
        )

    def _start() -> session.BrowserSession:
        with ctx.db.session() as s:
            return session.start(s, who.token_id, ctx.clock.now())

    started = await run_in_threadpool(_start)
    log.info("browser session started for token %s (%s)", who.token_id, who.company)
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    session.store(response, request, ctx.settings, started)
    return response


@router.post("/logout")
async def logout(request: Request, ctx: Ctx) -> Response:
    """End the browser session (the API token stays valid)."""
    await check_post(request, ctx)

    def _end() -> None:
        with ctx.db.session() as s:
            session.end(s, session.load(request, ctx.settings))

    await run_in_threadpool(_end)
    response = RedirectResponse("/login", status_code=303)
    session.clear(response)
    return response


@router.post("/lang")
async def switch_language(request: Request, ctx: Ctx) -> Response:
    """The language switch: remembered in a cookie for a year."""
    form = await check_post(request, ctx)
    code = form.get("lang", "")
    if code not in i18n.LOCALES:
        raise ValidationFailed(
            f"language {code!r} is not one of {', '.join(i18n.LOCALES)}",
            code="language",
            params={"given": repr(code), "locales": ", ".join(i18n.LOCALES)},
        )
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    response.set_cookie(
        i18n.LANG_COOKIE, code, max_age=365 * 86400, path="/", samesite="lax", secure=request.url.scheme == "https"
    )
    return response


# ---- jobs --------------------------------------------------------------------------------------------------------
@router.get("/")
def home() -> Response:
    """The jobs list is the front page."""
    return RedirectResponse("/jobs", status_code=303)


def row_json(t: i18n.Translator, row: views.JobRow, app_actions: frozenset[str]) -> dict[str, Any]:
    """A job's progress as the pages' script applies it: every text already formatted for the viewer."""
    return {
        "id": row.id,
        "status": row.status.value,
        "status_label": t("status." + row.status.value),
        "reason": views.reason_text(t, row.status_reason, row.reason_code, row.reason_params),  # issue 16: coded
        "severity": views.reason_severity(row.reason_code, actions.severity(row.status)),
        "fraction": round(row.fraction, 4),
        "percent": t.percent(row.fraction),
        "frames": t("jobs.frames_of", done=t.number(row.frames_done), total=t.number(row.frames_total)),
        "chunks": t("jobs.frames_of", done=t.number(row.tasks_done), total=t.number(row.tasks_total)),
        "elapsed": t.duration(row.elapsed_s) if row.elapsed_s is not None else "—",
        "eta": t.duration(row.eta_s) if row.eta_s is not None else "—",
        "started": t.datetime(row.started_at),
        "finished": t.datetime(row.finished_at),
        "priority": t.number(row.priority),
        "terminal": row.terminal,
        "retry_label": t("action.retry" if row.tasks_failed else "action.retry_canceled"),
        "actions": actions.shown(app_actions, row.status, row.tasks_failed, row.tasks_done < row.tasks_total),
        "edit_priority": actions.may_set_priority(row.status),  # issue 16: the priority form, shown live
    }


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    v: Seen,
    ctx: Ctx,
    page_number: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> Response:
    """The jobs list: filter by status, search by name or id, sort by a column, 50 per page; live over ``/events``
    (progress, and jobs that start or stop matching the list)."""
    del page_number  # validated here (a 422 for page=0), read with the rest of the query
    query = views.ListQuery.from_params(dict(request.query_params))
    with ctx.db.session() as s:
        rows, total = views.job_page(s, v.who, query, ctx.clock.now())
    pages = max(1, math.ceil(total / views.PAGE_SIZE))
    app_actions = actions.available(request.app)
    return page(
        request,
        v,
        "jobs.html",
        "jobs",
        rows=rows,
        total=total,
        query=query,
        page_number=query.page,
        pages=pages,
        status=query.status.value if query.status else "",
        statuses=[s.value for s in JobStatus],
        sorts=list(views.SORTS),
        topic=f"list:{query.encode()}",
        row_json=lambda r: row_json(v.t, r, app_actions),
        bulk_actions=[a for a in actions.BULK_ACTIONS if a in app_actions or a == "priority"],  # issue 16
        bulk=bulk_result(request),
    )


@dataclass(frozen=True)
class BulkResult:
    """What the last bulk action did (from the list's query string after ``POST /jobs/bulk``)."""

    action: str
    done: int
    refused: int


def bulk_result(request: Request) -> BulkResult | None:
    """The bulk action's counts when the list was reached from one; None otherwise (or when they make no sense)."""
    q = request.query_params
    try:
        action, done, refused = q.get("bulk", ""), int(q.get("done", "")), int(q.get("refused", ""))
    except ValueError:
        return None
    known = action in actions.BULK_ACTIONS  # issue 16: priority too
    return BulkResult(action, done, refused) if known and done >= 0 and refused >= 0 else None


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, v: Seen, ctx: Ctx) -> Response:
    """One job: progress, chunks, frames, log, preview and actions."""
    with ctx.db.session() as s:
        detail = views.job_detail(s, v.who, job_id, ctx.clock.now(), v.t, ctx.settings.currency)
        product = products.products_out(s, [detail.job.id]).get(detail.job.id)  # issue 13: the scene's video
        product_reason = views.product_reason(s, v.t, detail.job.id) if product is not None else ""
    has_preview = ctx.store.stat(detail.preview_key) is not None
    app_actions = actions.available(request.app)
    return page(
        request,
        v,
        "job.html",
        "jobs",
        d=detail,
        tasks=detail.tasks,
        job=detail.job,
        has_preview=has_preview,
        product=product,
        product_reason=product_reason,
        all_actions=[a for a in actions.ACTIONS if a in app_actions],
        shown_actions=row_json(v.t, detail.job, app_actions)["actions"],
        state=row_json(v.t, detail.job, app_actions),
        job_id=detail.job.id,
        blocklist=detail.blocklist,
        can_unblock=actions.may_unblock(v.who),
    )


def blocklist_html(v: Viewer, detail: views.JobDetail) -> str:
    """The inside of the job page's "Blocklisted nodes" section, as the page renders it and the stream sends it."""
    return TEMPLATES.get_template("_blocklist.html").render(
        t=v.t,
        csrf=v.csrf,
        job_id=detail.job.id,
        blocklist=detail.blocklist,
        can_unblock=actions.may_unblock(v.who),
    )


# Before the route of the other actions, which would take "unblock" for an action name.
@router.post("/jobs/{job_id}/unblock")
async def unblock_nodes(request: Request, job_id: str, v: Seen, ctx: Ctx) -> Response:
    """Give the blocklisted node named by the form's ``node`` (every node without one) a fresh start on the job."""
    form = await check_post(request, ctx)
    node = form.get("node") or None
    cleared = await actions.unblock(ctx, v.who, job_id, node)
    log.info(
        "job %s: %s unblocked from the monitor by token %s (%d node(s) still listed)",
        job_id,
        node or "every node",
        v.who.token_id,
        len(cleared.nodes),
    )
    return RedirectResponse(f"/jobs/{quote(job_id)}", status_code=303)


@router.post("/jobs/{job_id}/{action}")
async def job_action(request: Request, job_id: str, action: str, v: Seen, ctx: Ctx) -> Response:
    """Cancel, pause, resume or retry from the job page; answers with the job page again."""
    await check_post(request, ctx)
    if action not in actions.ACTIONS:
        raise NotFound(
            f"jobs have no {action!r} action; use one of {', '.join(actions.ACTIONS)}",
            code="no_such_action",
            params={"given": repr(action), "actions": ", ".join(actions.ACTIONS)},
        )
    await actions.perform(request.app, ctx, v.who, job_id, action)
    log.info("job %s: %s requested from the monitor by token %s", job_id, action, v.who.token_id)
    return RedirectResponse(f"/jobs/{quote(job_id)}", status_code=303)


@router.get("/jobs/{job_id}/frames/{frame}/thumb")
def frame_thumb(job_id: str, frame: FrameNumber, v: Seen, ctx: Ctx) -> Response:
    """The frame's thumbnail, made on first request and kept in the store."""
    with ctx.db.session() as s:
        row = jobops.get_frame(s, jobops.get_job(s, v.who, job_id), frame)
        frame_key, sha = row.key, row.sha256
    key = thumbnails.ensure_thumbnail(ctx.store, frame_key, sha)
    return Response(
        b"".join(ctx.store.open(key)),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400"},
    )


@router.get("/jobs/{job_id}/frames/{frame}/image")
def frame_image(job_id: str, frame: FrameNumber, v: Seen, ctx: Ctx) -> Response:
    """The full frame, shown in the browser when it can (PNG, JPEG), downloaded otherwise (EXR)."""
    with ctx.db.session() as s:
        row = jobops.get_frame(s, jobops.get_job(s, v.who, job_id), frame)
        key, name, size = row.key, row.name, row.size
    presign = getattr(ctx.store, "presigned_get_url", None)
    if presign is not None:
        return RedirectResponse(presign(key, 300, filename=name), status_code=307)
    media = MEDIA.get(Path(name).suffix.lower(), "application/octet-stream")
    disposition = "inline" if media.startswith("image/") and media != "image/x-exr" else "attachment"
    return StreamingResponse(
        ctx.store.open(key),
        media_type=media,
        headers={"Content-Length": str(size), "Content-Disposition": f'{disposition}; filename="{name}"'},
    )


@router.get("/jobs/{job_id}/preview.mp4")
def preview(job_id: str, request: Request, v: Seen, ctx: Ctx) -> Response:
    """The job's preview video, with byte ranges so the player can seek."""
    with ctx.db.session() as s:
        job = jobops.get_job(s, v.who, job_id)
        key = output_key(job.company_id, job.id, "preview.mp4")
    info = ctx.store.stat(key)
    if info is None:
        raise NotFound(f"job {job_id} has no preview video (yet)")
    presign = getattr(ctx.store, "presigned_get_url", None)
    if presign is not None:
        return RedirectResponse(presign(key, 300, filename="preview.mp4"), status_code=307)
    local = ctx.store.local_path(key)
    if local is not None:
        from fastapi.responses import FileResponse

        return FileResponse(local, media_type="video/mp4")  # answers Range requests
    return StreamingResponse(ctx.store.open(key), media_type="video/mp4", headers={"Content-Length": str(info.size)})


@router.get("/jobs/{job_id}/product")
def product_file(job_id: str, v: Seen, ctx: Ctx, download: bool = False) -> Response:
    """The job's video product (issue 13), with byte ranges so the player can seek; ``download=1`` saves it."""
    with ctx.db.session() as s:
        row = products.ready(s, jobops.get_job(s, v.who, job_id))
        key, name = row.key, row.name
    if ctx.store.stat(key) is None:
        raise NotFound(f"the video of job {job_id} is missing from the store")
    disposition = f'{"attachment" if download else "inline"}; filename="{name}"'
    presign = getattr(ctx.store, "presigned_get_url", None)
    if presign is not None:
        return RedirectResponse(presign(key, 300, filename=name), status_code=307)
    local = ctx.store.local_path(key)
    if local is not None:
        from fastapi.responses import FileResponse

        return FileResponse(local, media_type=video_media_type(name), headers={"Content-Disposition": disposition})
    return StreamingResponse(
        ctx.store.open(key), media_type=video_media_type(name), headers={"Content-Disposition": disposition}
    )


# ---- event streams ---------------------------------------------------------------------------------------------
def sse(event: str, data: object) -> str:
    """One Server-Sent Event; JSON never contains a raw newline, so one ``data:`` line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def stream(
    request: Request, tick: Callable[[], Awaitable[tuple[list[str], bool]]], v: Viewer, ctx: AppContext
) -> AsyncIterator[str]:
    """Run ``tick`` every interval and send what it returns, until it says done, the reader leaves, the server
    stops, the viewer's session ends or time is up."""
    yield "retry: 1500\n\n"
    deadline = time.monotonic() + STREAM_MAX_S
    beat = checked = time.monotonic()
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        if time.monotonic() - checked >= SESSION_CHECK_S:
            checked = time.monotonic()
            if not await run_in_threadpool(still_logged_in, v, ctx):
                yield sse("end", {"reason": "session"})
                return
        if getattr(request.app.state, "closing", False):
            return  # the server is stopping (farm.runtime.serving): end now, the browser reconnects elsewhere
        events, done = await tick()
        for event in events:
            yield event
        if done:
            yield sse("end", {})
            return
        if time.monotonic() - beat > 15:
            yield ": keep-alive\n\n"  # proxies drop silent connections
            beat = time.monotonic()
        await asyncio.sleep(STREAM_INTERVAL_S)


def event_response(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# ---- workers and usage -----------------------------------------------------------------------------------------
@router.get("/workers", response_class=HTMLResponse)
def workers_page(request: Request, v: Seen, ctx: Ctx) -> Response:
    """Render slots: node, resources, current job and chunk, last heartbeat, blocklisted jobs; live over
    ``/events`` (topic ``workers``). Slots are shared by every company: others see that a slot is busy, not with
    whose job."""
    table = workers_table(request, v, ctx)
    return page(request, v, "workers.html", "workers", table=table, version=live.version(table))


def workers_table(request: Request, v: Viewer, ctx: AppContext) -> str:
    """The Workers page's table (or its "none" line), as the page renders it and the stream sends it."""
    snapshot: Callable[[], list[WorkerView]] | None = getattr(request.app.state, "worker_snapshot", None)
    with ctx.db.session() as s:
        board = workers_board(s, v.who, snapshot, ctx.clock.now())
    return TEMPLATES.get_template("_workers.html").render(t=v.t, catalogue=i18n.catalogue(), board=board)


def this_month(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"


@router.get("/usage", response_class=HTMLResponse)
def usage_page(
    request: Request,
    v: Seen,
    ctx: Ctx,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
) -> Response:
    """GPU-hours, CPU-hours, storage and cost per company for a month, with a bar chart."""
    chosen = month or this_month(ctx.clock.now())
    body = usage_body(v, ctx, chosen)
    return page(request, v, "usage.html", "usage", month=chosen, body=body, version=live.version(body))


def usage_body(v: Viewer, ctx: AppContext, month: str) -> str:
    """The usage page's chart and table for ``month``, as the page renders it and the stream sends it."""
    with ctx.db.session() as s:
        rows = views.usage(s, v.who, month, ctx.settings.currency)
    top = max([max(r.gpu_hours, r.cpu_hours) for r in rows] + [0.0])
    return TEMPLATES.get_template("_usage.html").render(t=v.t, rows=rows, month=month, top=top or 1.0)
