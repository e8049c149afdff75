"""The metering ledger: one append-only row per task attempt and resource; reports derive from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.db import deferred
from farm.db.models import Company, UsageEntry
from farm.lifecycle import tallies


@dataclass(frozen=True)
class Usage:
    """Facts of one attempt's use of one resource kind."""

    company_id: str
    job_id: str | None
    task_id: str | None
    attempt: int | None
    node: str
    resource: str
    count: float
    started_at: datetime
    ended_at: datetime
    seconds: float
    outcome: str


def record(session: Session, usage: Usage) -> UsageEntry:
    """Append a ledger row. Rows are never updated: a correction is another row."""
    row = UsageEntry(
        company_id=usage.company_id,
        job_id=usage.job_id,
        task_id=usage.task_id,
        attempt=usage.attempt,
        node=usage.node,
        resource=usage.resource,
        count=usage.count,
        started_at=usage.started_at,
        ended_at=usage.ended_at,
        seconds=usage.seconds,
        outcome=usage.outcome,
    )
    session.add(row)
    if usage.resource in ("cpu", "gpu"):  # the running total /metrics exports (issue 15); storage is GB-seconds
        tallies.observe(
            session, tallies.RESOURCE_SECONDS, usage.company_id, [usage.seconds * usage.count], label=usage.resource
        )
    return row


def append(session: Session, usage: Usage) -> None:
    """Append a ledger row as ``record`` does, sent with the session's next write (``farm.db.deferred``): the
    scheduler appends one per finished attempt, many per dispatch pass, in one statement (issue 12)."""
    deferred.insert_later(session, UsageEntry.__table__, dict(vars(usage)))  # fields named as the columns
    if usage.resource in ("cpu", "gpu"):
        tallies.observe(
            session, tallies.RESOURCE_SECONDS, usage.company_id, [usage.seconds * usage.count], label=usage.resource
        )


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``2026-11`` → [first instant of the month, first instant of the next) in UTC."""
    year, mon = (int(x) for x in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass(frozen=True)
class UsageTotal:
    company: str
    job_id: str | None
    resource: str
    resource_seconds: float


def totals(session: Session, company_id: str | None, month: str | None, per_job: bool) -> list[UsageTotal]:
    """Resource-seconds (wall seconds times resource count) grouped by company, resource and maybe job."""
    cols: list[Any] = [Company.name, UsageEntry.resource]
    if per_job:
        cols.append(UsageEntry.job_id)
    query = (
        select(*cols, func.sum(UsageEntry.seconds * UsageEntry.count))
        .join(Company, Company.id == UsageEntry.company_id)
        .group_by(*cols)
        .order_by(*cols)
    )
    if company_id is not None:
        query = query.where(UsageEntry.company_id == company_id)
    if month:
        start, end = month_bounds(month)
        query = query.where(UsageEntry.started_at >= start, UsageEntry.started_at < end)
    out = []
    for row in session.execute(query).all():
        job_id = row[2] if per_job else None
        out.append(UsageTotal(company=row[0], job_id=job_id, resource=row[1], resource_seconds=float(row[-1])))
    return out
