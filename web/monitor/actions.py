"""Job actions of the monitor (cancel, pause, resume, retry, unblock), carried out by the same code as the API.

Which buttons a job gets is the lifecycle's actions table (``farm.lifecycle.actions``), the one the API refuses
by; carrying one out is ``web.deps.act_on_job`` with the lifecycle's own function, exactly what the API route
does (job lock, refusal, scheduler wake-up). Unblock names a node, so it is not one of those plain buttons: it
calls the API's ``unblock_job``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.orm import Session

from farm.contract import Blocklist, UnblockRequest
from farm.db.models import Job
from farm.domain.states import JobStatus
from farm.errors import NotFound
from farm.lifecycle import control
from farm.lifecycle.actions import RULES, Action
from farm.services.auth import Principal
from web import routes_control
from web.deps import AppContext, act_on_job

ACTIONS: tuple[str, ...] = (Action.CANCEL.value, Action.PAUSE.value, Action.RESUME.value, Action.RETRY.value)
#: What the jobs list's bulk form offers: the plain actions, and setting the priority (issue 16).
BULK_ACTIONS: tuple[str, ...] = (*ACTIONS, Action.PRIORITY.value)

_CARRY_OUT: dict[str, Callable[[Session, Job, datetime], object]] = {
    Action.CANCEL.value: control.request_cancel,
    Action.PAUSE.value: control.request_pause,
    Action.RESUME.value: control.resume,
    Action.RETRY.value: control.retry,
}


def available(app: FastAPI) -> frozenset[str]:
    """The plain actions this server carries out (all of them: the lifecycle owns them, not a route)."""
    del app
    return frozenset(ACTIONS)


def shown(
    app_actions: frozenset[str], status: JobStatus, failed_chunks: int = 1, unfinished_chunks: bool = True
) -> list[str]:
    """The action buttons to show for a job in ``status``, in a fixed order: those the actions table says would
    change something. Retry ("Retry failed chunks") only when a chunk failed, or a canceled job has chunks left."""
    out = [a for a in ACTIONS if a in app_actions and status in RULES[Action(a)].acts_in]
    if Action.RETRY.value in out and not (failed_chunks > 0 or (status is JobStatus.CANCELED and unfinished_chunks)):
        out.remove(Action.RETRY.value)
    return out


#: How a job's status reason reads: a wish carried out is information, a hold or a warning needs a look, a
#: failure is an error.
SEVERITY: dict[JobStatus, str] = {
    JobStatus.FAILED: "error",
    JobStatus.QUEUED: "warning",  # a reason on a queued job is a hold (budget, no node may take it)
    JobStatus.ACTIVE: "warning",
    JobStatus.REQUEUEING: "warning",
}


def severity(status: JobStatus) -> str:
    """``info``, ``warning`` or ``error``: the colour of a job's status reason."""
    return SEVERITY.get(status, "info")


async def perform(app: FastAPI, ctx: AppContext, who: Principal, job_id: str, action: str) -> None:
    """Carry out ``action`` on the job as ``who``; ``NotFound`` for an unknown action or another company's job."""
    from starlette.concurrency import run_in_threadpool

    del app
    carry_out = _CARRY_OUT.get(action)
    if carry_out is None:
        raise NotFound(f"this server has no {action!r} action for jobs")
    await run_in_threadpool(act_on_job, ctx, who, job_id, carry_out)


def may_set_priority(status: JobStatus) -> bool:
    """Whether the job page offers its priority form: the actions table's rule for a priority change."""
    return status in RULES[Action.PRIORITY].acts_in


def may_unblock(who: Principal) -> bool:
    """Whether ``who`` gets the unblock buttons: the rule the API's unblock route applies."""
    return who.may(routes_control.UNBLOCK_ROLE)


async def unblock(ctx: AppContext, who: Principal, job_id: str, node: str | None) -> Blocklist:
    """Give ``node`` (every node when None) a fresh start on the job as ``who``, through the API's own route
    function: the same permission, job lock, ``farm.lifecycle.control.unblock`` and scheduler wake-up as
    ``farm unblock``."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(routes_control.unblock_job, job_id, UnblockRequest(node=node), who, ctx)
