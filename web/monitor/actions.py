"""Job actions of the monitor (cancel, pause, resume, retry, unblock), carried out by the same code as the API.

Cancel calls ``farm.services.jobs.request_cancel``. Pause, resume and retry are whatever the API offers at
``POST /api/v1/jobs/{job_id}/<action>``: the monitor calls that route's endpoint with the session's principal, so
permissions, state checks and scheduler wake-ups stay in one place, and a button is shown only when the route exists.
Unblock names a node, so it is not one of those plain buttons: it calls the API's ``unblock_job`` the same way.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from farm.contract import Blocklist, UnblockRequest
from farm.domain.states import JOB_TERMINAL, JobStatus
from farm.errors import NotFound
from farm.services import jobs
from farm.services.auth import Principal
from web import routes_control
from web.deps import AppContext

ACTIONS = ("cancel", "pause", "resume", "retry")

#: Job states in which each action makes sense (the API still has the final word).
SHOWN_WHEN: dict[str, frozenset[JobStatus]] = {
    "cancel": frozenset(set(JobStatus) - JOB_TERMINAL - {JobStatus.CANCEL_REQUESTED}),
    "pause": frozenset({JobStatus.QUEUED, JobStatus.ACTIVE}),
    "resume": frozenset({JobStatus.PAUSED, JobStatus.PAUSE_REQUESTED}),
    "retry": frozenset({JobStatus.FAILED, JobStatus.CANCELED, JobStatus.ACTIVE, JobStatus.PAUSED}),
}


def _api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (newer FastAPI keeps those as nested router objects)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        nested = getattr(route, "original_router", None) or getattr(route, "router", None)
        if nested is not None and nested is not route and hasattr(nested, "routes"):
            yield from _api_routes(nested.routes)


def _api_endpoint(app: FastAPI, action: str) -> Callable[..., Any] | None:
    path = f"/api/v1/jobs/{{job_id}}/{action}"
    for route in _api_routes(app.router.routes):
        if route.path == path and "POST" in (route.methods or ()):
            return route.endpoint
    return None


def _plan(endpoint: Callable[..., Any]) -> dict[str, Any]:
    """What to pass for each parameter: "job", "who", "ctx", or a body model built from its defaults.

    ``TypeError`` when a parameter needs something else: such a route is not offered as a button.
    """
    hints = typing.get_type_hints(endpoint, include_extras=True)
    plan: dict[str, Any] = {}
    for name, param in inspect.signature(endpoint).parameters.items():
        hint = hints.get(name)
        base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
        if name == "job_id":
            plan[name] = "job"
        elif base is Principal:
            plan[name] = "who"
        elif base is AppContext:
            plan[name] = "ctx"
        elif param.default is not inspect.Parameter.empty:
            continue
        elif isinstance(base, type) and issubclass(base, BaseModel):
            plan[name] = base  # a body whose fields all have defaults: the action's plain form
        else:
            raise TypeError(f"cannot call {endpoint.__name__}: parameter {name!r} has no value")
    return plan


def _arguments(endpoint: Callable[..., Any], job_id: str, who: Principal, ctx: AppContext) -> dict[str, Any]:
    values = {"job": job_id, "who": who, "ctx": ctx}
    return {name: values[kind] if isinstance(kind, str) else kind() for name, kind in _plan(endpoint).items()}


def available(app: FastAPI) -> frozenset[str]:
    """The actions this server can carry out (cancel always; the others when the API has their route)."""
    found = {"cancel"}
    for action in ACTIONS[1:]:
        endpoint = _api_endpoint(app, action)
        if endpoint is None:
            continue
        try:
            _plan(endpoint)
        except (TypeError, NameError):
            continue
        found.add(action)
    return frozenset(found)


def shown(app_actions: frozenset[str], status: JobStatus) -> list[str]:
    """The action buttons to show for a job in ``status``, in a fixed order."""
    return [a for a in ACTIONS if a in app_actions and status in SHOWN_WHEN[a]]


async def perform(app: FastAPI, ctx: AppContext, who: Principal, job_id: str, action: str) -> None:
    """Carry out ``action`` on the job as ``who``; ``NotFound`` for an unknown action or another company's job."""
    if action == "cancel":
        from starlette.concurrency import run_in_threadpool

        def _cancel() -> None:
            with ctx.db.session() as s:
                job = jobs.get_job(s, who, job_id, lock=True)
                jobs.request_cancel(s, job, ctx.clock.now())

        await run_in_threadpool(_cancel)
        ctx.notify()
        return
    endpoint = _api_endpoint(app, action) if action in ACTIONS else None
    if endpoint is None:
        raise NotFound(f"this server has no {action!r} action for jobs")
    kwargs = _arguments(endpoint, job_id, who, ctx)
    if inspect.iscoroutinefunction(endpoint):
        await endpoint(**kwargs)
    else:
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(endpoint, **kwargs)


def may_unblock(who: Principal) -> bool:
    """Whether ``who`` gets the unblock buttons: the rule the API's unblock route applies."""
    return who.may(routes_control.UNBLOCK_ROLE)


async def unblock(ctx: AppContext, who: Principal, job_id: str, node: str | None) -> Blocklist:
    """Give ``node`` (every node when None) a fresh start on the job as ``who``, through the API's own route
    function: the same permission, job lock, ``farm.lifecycle.control.unblock`` and scheduler wake-up as
    ``farm unblock``."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(routes_control.unblock_job, job_id, UnblockRequest(node=node), who, ctx)
