"""What the routes need, built once by the process entry point and stored on ``app.state``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from farm.clock import Clock
from farm.contract import JobOut
from farm.db.engine import Database
from farm.db.models import Job
from farm.services import jobs
from farm.services.auth import Principal, resolve_token
from farm.settings import ServerSettings
from storage.base import ObjectStore


@dataclass
class AppContext:
    """Collaborators of the API, wired by the entry point."""

    settings: ServerSettings
    db: Database
    store: ObjectStore
    clock: Clock
    notify: Callable[[], None] = field(default=lambda: None)  # wakes an in-process scheduler


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(context)]


def db_session(ctx: Ctx) -> Iterator[Session]:
    with ctx.db.session() as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def principal(request: Request, ctx: Ctx) -> Principal:
    with ctx.db.session() as session:
        return resolve_token(session, bearer(request), ctx.clock.now())


Caller = Annotated[Principal, Depends(principal)]


def act_on_job(
    ctx: AppContext, who: Principal, job_id: str, action: Callable[[Session, Job, datetime], object]
) -> JobOut:
    """The shape of every job control route: lock the job (404 for another company's), record the wish, answer
    with the job as it is now, and wake an in-process scheduler to carry it out."""
    with ctx.db.session() as session:
        job = jobs.get_job(session, who, job_id, lock=True)
        action(session, job, ctx.clock.now())
        out = jobs.job_out(session, job)
    ctx.notify()
    return out
