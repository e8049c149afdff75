"""The monitor's event streams (Server-Sent Events).

``GET /events?watch=…`` is the one stream a browser holds for all of its monitor tabs (``static/monitor-worker.js``
multiplexes it; a browser allows only six connections per host over HTTP/1.1, so a stream per tab hung the 7th).
Every update is ``event: m`` with ``{"topic", "kind", "data"}``; the stream ends only for time (the browser
reconnects and gets the whole state again), server shutdown, or with ``event: end`` + ``{"reason": "session"}``.

``/jobs/{id}/events`` and ``/events/jobs?ids=…`` are the older one-topic streams for scripts: they end with
``event: end`` once what they watch has finished.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from farm.errors import ValidationFailed
from web import i18n
from web.deps import AppContext, Ctx
from web.monitor import actions, live, views
from web.monitor.routes import (
    TEMPLATES,
    PageRoute,
    Seen,
    Viewer,
    event_response,
    row_json,
    sse,
    stream,
    usage_body,
    workers_table,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _render(name: str, values: dict[str, Any]) -> str:
    return TEMPLATES.get_template(name).render(**values)


def make_watches(request: Request, topics: list[str], v: Viewer, ctx: AppContext) -> list[live.Watch]:
    """One watch per distinct topic, in the order asked; ``ValidationFailed`` for a malformed or excess topic."""
    if len(topics) > live.MAX_TOPICS:
        raise ValidationFailed(f"one stream watches at most {live.MAX_TOPICS} topics, not {len(topics)}")
    app_actions = actions.available(request.app)

    def state(row: views.JobRow) -> dict[str, Any]:
        return row_json(v.t, row, app_actions)

    out: list[live.Watch] = []
    seen: set[str] = set()
    for topic in topics:
        kind, arg = live.parse_topic(topic)
        watch: live.Watch
        if kind == "job":
            watch = live.JobWatch(arg, v, ctx, _render, state)
        elif kind == "list":
            watch = live.ListWatch(live.list_query(arg), v, ctx, _render, state)
        elif kind == "workers":
            watch = live.HtmlWatch("workers", "workers", lambda: workers_table(request, v, ctx))
        else:
            watch = live.HtmlWatch(f"usage:{arg}", "usage", partial(usage_body, v, ctx, arg))
        if watch.topic not in seen:
            seen.add(watch.topic)
            out.append(watch)
    return out


@router.get("/events")
async def events(
    request: Request,
    v: Seen,
    ctx: Ctx,
    watch: Annotated[list[str] | None, Query()] = None,
    lang: str = "",
) -> Response:
    """Everything the browser's open monitor tabs show, as one stream (see the module's docstring); texts in the
    pages' language ``lang`` when given (else the viewer's, as for pages)."""
    if lang in i18n.LOCALES:
        v = replace(v, t=i18n.translator(lang))
    watches = make_watches(request, watch or [], v, ctx)

    def poll() -> list[str]:
        return [sse("m", {"topic": w.topic, "kind": kind, "data": data}) for w in watches for kind, data in w.poll()]

    async def tick() -> tuple[list[str], bool]:
        return await run_in_threadpool(poll), False

    return event_response(stream(request, tick, v, ctx))


@router.get("/jobs/{job_id}/events")
async def job_events(request: Request, job_id: str, v: Seen, ctx: Ctx) -> Response:
    """One job's updates as events named by kind (``job``, ``tasks``, ``blocklist``, ``frames``, ``log``,
    ``preview``), then ``end`` once it has finished (and its preview is stored or given up on)."""
    watch = live.JobWatch(job_id, v, ctx, _render, lambda row: row_json(v.t, row, actions.available(request.app)))
    await run_in_threadpool(watch.load)  # 404 before the stream starts

    async def tick() -> tuple[list[str], bool]:
        updates = await run_in_threadpool(watch.poll)
        return [sse(kind, data) for kind, data in updates], watch.gone or watch.settled()

    return event_response(stream(request, tick, v, ctx))


@router.get("/events/jobs")
async def jobs_events(request: Request, v: Seen, ctx: Ctx, ids: str = "") -> Response:
    """The named jobs' progress as ``job`` events (the viewer's jobs only), then ``end`` once all have finished."""
    wanted = [i for i in ids.split(",") if i][:200]
    app_actions = actions.available(request.app)
    sent: dict[str, dict[str, Any]] = {}

    def load() -> list[views.JobRow]:
        with ctx.db.session() as s:
            return views.job_rows(s, v.who, wanted, ctx.clock.now())

    async def tick() -> tuple[list[str], bool]:
        rows = await run_in_threadpool(load)
        out = []
        for row in rows:
            state = row_json(v.t, row, app_actions)
            if sent.get(row.id) != state:
                out.append(sse("job", state))
                sent[row.id] = state
        return out, all(row.terminal for row in rows)

    return event_response(stream(request, tick, v, ctx))
